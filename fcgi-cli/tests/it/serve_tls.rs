//! `fcgi serve` over TLS (rustls) with a self-signed certificate made by the openssl CLI:
//! curl over HTTPS with ALPN choosing HTTP/2 or HTTP/1.1, HTTPS=on in the environment, and
//! clear errors for unusable certificate files.

use std::path::PathBuf;

use super::common::{assert_error, fcgi, run, self_signed};
use super::serve_support::{Serve, curl, text};

/// A self-signed certificate for 127.0.0.1 and localhost: (dir, cert, key).
fn certificate() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    (dir, cert, key)
}

#[test]
fn https_with_alpn_h2_and_http1() {
    let (_dir, cert, key) = certificate();
    let serve = Serve::app(&["--tls-cert", text(&cert), "--tls-key", text(&key)]);
    assert!(serve.stderr().contains(&format!("listening on https://{}", serve.addr)), "{}", serve.stderr());
    let url = format!("https://{}/env", serve.addr);
    for (flag, version, protocol) in
        [("--http2", "HTTP/2", "HTTP/2.0"), ("--http1.1", "HTTP/1.1", "HTTP/1.1")]
    {
        let answer = curl(&["--cacert", text(&cert), flag, &url]);
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.version, version);
        let env = answer.json();
        assert_eq!(env["HTTPS"], "on");
        assert_eq!(env["REQUEST_SCHEME"], "https");
        assert_eq!(env["SERVER_PROTOCOL"], protocol);
        assert_eq!(env["SERVER_PORT"], serve.addr.port().to_string());
    }
    let css = curl(&["--cacert", text(&cert), &format!("https://{}/assets/style.css", serve.addr)]);
    assert_eq!((css.status, css.version.as_str()), (200, "HTTP/2"));
    // Plain HTTP on the TLS port is not answered as HTTP.
    let plain = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("http://{}/", serve.addr)])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    // The server is still fine.
    assert_eq!(curl(&["--cacert", text(&cert), &url]).status, 200);
}

#[test]
fn unusable_certificate_files_are_usage_errors() {
    let (dir, cert, key) = certificate();
    let php = super::common::php();
    let socket = text(&php.socket).to_string();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    for (cert, key, expected) in [
        (&missing, &key, "--tls-cert"),
        (&garbage, &key, "no certificate"),
        (&cert, &garbage, "--tls-key"),
        (&key, &cert, "--tls-cert"),
    ] {
        let mut cmd = fcgi();
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--socket",
            &socket,
            "--tls-cert",
            text(cert),
            "--tls-key",
            text(key),
        ]);
        let output = run(&mut cmd);
        let line = assert_error(&output, 2);
        assert!(line.contains(expected), "{line}");
    }
    let mut cmd = fcgi();
    cmd.args(["serve", "--socket", &socket, "--tls-cert", text(&cert)]);
    let line = assert_error(&run(&mut cmd), 2);
    assert!(line.contains("--tls-key"), "{line}");
}
