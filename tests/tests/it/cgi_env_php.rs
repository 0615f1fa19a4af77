//! fcgi-cgi-env against real php-fpm: derive the environment for an HTTP request, send it to
//! `env.php` (which dumps `$_SERVER` as JSON) and check what PHP actually sees.
//!
//! Runs under `cargo xtask test`, which starts php-fpm and exports its coordinates.

use std::net::SocketAddr;

use fcgi_cgi_env::http::{self, Request};
use fcgi_cgi_env::{AppConfig, CgiParams, ConnectionInfo, Endpoint, derive};
use fcgi_tests::backends::{PhpFpm, php_fpm};
use fcgi_tests::client::{self, Target};
use serde_json::Value;

fn targets(fpm: &PhpFpm) -> [Target; 2] {
    [Target::Unix(fpm.socket.clone()), Target::Tcp(fpm.tcp)]
}

fn config(fpm: &PhpFpm) -> AppConfig {
    AppConfig::new(fpm.docroot.to_str().expect("UTF-8 docroot"))
}

fn tcp_connection() -> ConnectionInfo {
    ConnectionInfo::new()
        .client("203.0.113.9:52000".parse::<SocketAddr>().unwrap())
        .server("192.0.2.10:8080".parse::<SocketAddr>().unwrap())
}

/// Sends `params` (and `body`) to php-fpm and returns `$_SERVER` as PHP saw it.
fn php_sees(target: &Target, params: &CgiParams, body: &[u8]) -> Value {
    let pairs: Vec<(&str, &[u8])> = params.iter().collect();
    let reply = client::request(target, &pairs, body)
        .unwrap_or_else(|e| panic!("request over {target:?} failed: {e}\n{}", params.redacted()));
    assert_eq!(
        reply.status(),
        200,
        "over {target:?}: {:?}\nstderr: {}\nparams:\n{}",
        String::from_utf8_lossy(&reply.stdout),
        String::from_utf8_lossy(&reply.stderr),
        params.redacted()
    );
    serde_json::from_slice(reply.body()).unwrap_or_else(|e| {
        panic!("env.php did not answer JSON ({e}): {:?}", String::from_utf8_lossy(reply.body()))
    })
}

fn get_env(fpm: &PhpFpm, request: &Request<()>, conn: &ConnectionInfo, config: &AppConfig) -> Vec<Value> {
    let params = derive(request, None, conn, config).expect("derive");
    targets(fpm).iter().map(|t| php_sees(t, &params, b"")).collect()
}

fn s<'a>(env: &'a Value, key: &str) -> Option<&'a str> {
    env.get(key).and_then(Value::as_str)
}

#[test]
fn path_info_split_reaches_php() {
    let fpm = php_fpm();
    let req = Request::get("/env.php/extra/path?x=1").header("Host", "example.com").body(()).unwrap();
    let docroot = fpm.docroot.display().to_string();
    for env in get_env(&fpm, &req, &tcp_connection(), &config(&fpm)) {
        assert_eq!(s(&env, "SCRIPT_NAME"), Some("/env.php"));
        assert_eq!(s(&env, "PATH_INFO"), Some("/extra/path"));
        assert_eq!(s(&env, "PHP_SELF"), Some("/env.php/extra/path"));
        assert_eq!(s(&env, "SCRIPT_FILENAME"), Some(format!("{docroot}/env.php").as_str()));
        assert_eq!(s(&env, "PATH_TRANSLATED"), Some(format!("{docroot}/extra/path").as_str()));
        assert_eq!(s(&env, "DOCUMENT_ROOT"), Some(docroot.as_str()));
        assert_eq!(s(&env, "QUERY_STRING"), Some("x=1"));
        assert_eq!(s(&env, "REQUEST_URI"), Some("/env.php/extra/path?x=1"));
        assert_eq!(s(&env, "DOCUMENT_URI"), Some("/env.php/extra/path"));
        assert_eq!(env["_GET"]["x"], "1");
    }
}

#[test]
fn no_path_info_and_encoded_path() {
    let fpm = php_fpm();
    let req = Request::get("/%65nv.php").body(()).unwrap();
    for env in get_env(&fpm, &req, &tcp_connection(), &config(&fpm)) {
        assert_eq!(s(&env, "SCRIPT_NAME"), Some("/env.php"));
        assert_eq!(s(&env, "PHP_SELF"), Some("/env.php"));
        assert_eq!(s(&env, "PATH_INFO"), None);
        assert_eq!(s(&env, "PATH_TRANSLATED"), None);
        assert_eq!(s(&env, "REQUEST_URI"), Some("/%65nv.php"));
    }
    let req = Request::get("/env.php/a%20b/%2525").body(()).unwrap();
    for env in get_env(&fpm, &req, &tcp_connection(), &config(&fpm)) {
        assert_eq!(s(&env, "PATH_INFO"), Some("/a b/%25"), "decoded exactly once");
        assert_eq!(s(&env, "PHP_SELF"), Some("/env.php/a b/%25"));
    }
}

#[test]
fn index_is_appended() {
    let fpm = php_fpm();
    let req = Request::get("/?q=1").body(()).unwrap();
    let config = config(&fpm).index(Some("env.php"));
    for env in get_env(&fpm, &req, &tcp_connection(), &config) {
        assert_eq!(s(&env, "SCRIPT_NAME"), Some("/env.php"));
        assert_eq!(s(&env, "PHP_SELF"), Some("/env.php"));
        assert_eq!(s(&env, "REQUEST_URI"), Some("/?q=1"));
    }
}

#[test]
fn query_string_is_undecoded() {
    let fpm = php_fpm();
    let req = Request::get("/env.php?a=%20b&c&d=%26%3D").body(()).unwrap();
    for env in get_env(&fpm, &req, &tcp_connection(), &config(&fpm)) {
        assert_eq!(s(&env, "QUERY_STRING"), Some("a=%20b&c&d=%26%3D"));
        assert_eq!(env["_GET"]["a"], " b", "PHP decodes it itself, once");
        assert_eq!(env["_GET"]["c"], "");
        assert_eq!(env["_GET"]["d"], "&=");
    }
    let req = Request::get("/env.php").body(()).unwrap();
    for env in get_env(&fpm, &req, &tcp_connection(), &config(&fpm)) {
        assert_eq!(s(&env, "QUERY_STRING"), Some(""));
    }
}

#[test]
fn basic_authorization_gives_php_auth() {
    let fpm = php_fpm();
    // "alice:s3cr:et" — the password may contain colons.
    let req =
        Request::get("/env.php").header("Authorization", "Basic YWxpY2U6czNjcjpldA==").body(()).unwrap();
    for env in get_env(&fpm, &req, &tcp_connection(), &config(&fpm)) {
        assert_eq!(s(&env, "PHP_AUTH_USER"), Some("alice"));
        assert_eq!(s(&env, "PHP_AUTH_PW"), Some("s3cr:et"));
        assert_eq!(s(&env, "HTTP_AUTHORIZATION"), Some("Basic YWxpY2U6czNjcjpldA=="));
    }
}

#[test]
fn headers_as_php_sees_them() {
    let fpm = php_fpm();
    let req = Request::get("/env.php")
        .header("Host", "Example.COM:8443")
        .header("X-Custom-Header", "custom value")
        .header("X-Forwarded-For", "192.0.2.1")
        .header("X-Forwarded-For", "192.0.2.2")
        .header("Cookie", "a=1")
        .header("Cookie", "b=2")
        .header("Accept-Language", "fr, en;q=0.5")
        .header("Content-Type", "text/plain")
        .header("Proxy", "http://evil.example:3128")
        .header("Proxy-Authorization", "Basic cHJveHk6cHc=")
        .header("X_Custom_Header", "spoofed")
        .header("Connection", "keep-alive, X-Hop")
        .header("X-Hop", "hop")
        .header("Keep-Alive", "timeout=5")
        .header("Upgrade", "h2c")
        .body(())
        .unwrap();
    for env in get_env(&fpm, &req, &tcp_connection(), &config(&fpm)) {
        assert_eq!(s(&env, "HTTP_HOST"), Some("Example.COM:8443"));
        assert_eq!(s(&env, "SERVER_NAME"), Some("example.com"));
        assert_eq!(s(&env, "HTTP_X_CUSTOM_HEADER"), Some("custom value"), "X_Custom_Header must not win");
        assert_eq!(s(&env, "HTTP_X_FORWARDED_FOR"), Some("192.0.2.1, 192.0.2.2"));
        assert_eq!(s(&env, "HTTP_COOKIE"), Some("a=1; b=2"));
        assert_eq!(env["_COOKIE"]["a"], "1");
        assert_eq!(env["_COOKIE"]["b"], "2");
        assert_eq!(s(&env, "HTTP_ACCEPT_LANGUAGE"), Some("fr, en;q=0.5"));
        assert_eq!(s(&env, "CONTENT_TYPE"), Some("text/plain"));
        for absent in [
            "HTTP_CONTENT_TYPE",
            "HTTP_PROXY",
            "HTTP_PROXY_AUTHORIZATION",
            "HTTP_CONNECTION",
            "HTTP_X_HOP",
            "HTTP_KEEP_ALIVE",
            "HTTP_UPGRADE",
        ] {
            assert_eq!(env.get(absent), None, "{absent} must be hidden");
        }
    }
}

#[test]
fn connection_facts_reach_php() {
    let fpm = php_fpm();
    let req = Request::get("/env.php").header("Host", "example.com").body(()).unwrap();
    for env in get_env(&fpm, &req, &tcp_connection().tls(true), &config(&fpm)) {
        assert_eq!(s(&env, "REMOTE_ADDR"), Some("203.0.113.9"));
        assert_eq!(s(&env, "REMOTE_PORT"), Some("52000"));
        assert_eq!(s(&env, "SERVER_ADDR"), Some("192.0.2.10"));
        assert_eq!(s(&env, "SERVER_PORT"), Some("8080"));
        assert_eq!(s(&env, "HTTPS"), Some("on"));
        assert_eq!(s(&env, "REQUEST_SCHEME"), Some("https"));
        assert_eq!(s(&env, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
        assert_eq!(s(&env, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
        assert_eq!(s(&env, "REDIRECT_STATUS"), Some("200"));
        assert!(s(&env, "SERVER_SOFTWARE").is_some_and(|v| v.starts_with("fcgi/")));
    }
    let unix = ConnectionInfo::new()
        .client(Endpoint::Unix(None))
        .server(std::path::PathBuf::from("/run/front.sock"));
    for env in get_env(&fpm, &req, &unix, &config(&fpm)) {
        assert_eq!(s(&env, "REMOTE_ADDR"), Some("unix:"));
        assert_eq!(s(&env, "REMOTE_PORT"), None);
        assert_eq!(s(&env, "SERVER_ADDR"), Some("unix:/run/front.sock"));
        assert_eq!(s(&env, "SERVER_PORT"), Some("80"));
        assert_eq!(s(&env, "HTTPS"), None);
    }
}

#[test]
fn content_length_for_get_and_post() {
    let fpm = php_fpm();
    let req = Request::get("/env.php").body(()).unwrap();
    for env in get_env(&fpm, &req, &tcp_connection(), &config(&fpm)) {
        assert_eq!(s(&env, "CONTENT_LENGTH"), Some("0"));
        assert_eq!(s(&env, "REQUEST_METHOD"), Some("GET"));
    }

    // The body arrives whole, and PHP's view of CONTENT_LENGTH matches it.
    let body = b"name=value&x=%20y";
    let req = Request::post("/echo.php")
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", body.len().to_string())
        .body(())
        .unwrap();
    let params = derive(&req, Some(body.len() as u64), &tcp_connection(), &config(&fpm)).unwrap();
    assert_eq!(params.get_str("CONTENT_LENGTH"), Some("17"));
    for target in targets(&fpm) {
        let pairs: Vec<(&str, &[u8])> = params.iter().collect();
        let reply = client::request(&target, &pairs, body).unwrap();
        assert_eq!(reply.status(), 200, "{:?}", String::from_utf8_lossy(&reply.stdout));
        assert_eq!(reply.body(), body);
        assert_eq!(reply.header("X-Content-Length").as_deref(), Some("17"));
        assert_eq!(reply.header("X-Body-Length").as_deref(), Some("17"));
        assert_eq!(reply.header("X-Method").as_deref(), Some("POST"));
    }
}

#[test]
fn large_headers_arrive_intact() {
    let fpm = php_fpm();
    // Three 50 KiB values (about 150 KiB of headers), each with a distinct pattern.
    let values: Vec<String> = (0..3u8)
        .map(|i| (0..50 * 1024).map(|j| char::from(b'a' + ((j + usize::from(i) * 7) % 26) as u8)).collect())
        .collect();
    let mut req = Request::get("/env.php").body(()).unwrap();
    for (i, v) in values.iter().enumerate() {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(format!("x-big-{i}").as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let params = derive(&req, None, &tcp_connection(), &config(&fpm)).unwrap();
    assert!(params.encoded_len() > 150 * 1024);
    for target in targets(&fpm) {
        let env = php_sees(&target, &params, b"");
        for (i, v) in values.iter().enumerate() {
            let got = s(&env, &format!("HTTP_X_BIG_{i}")).unwrap_or_else(|| panic!("HTTP_X_BIG_{i} missing"));
            assert_eq!(got.len(), v.len());
            assert!(got == v, "HTTP_X_BIG_{i} altered");
        }
        assert_eq!(s(&env, "SCRIPT_NAME"), Some("/env.php"));
    }
}

#[test]
fn overrides_reach_php() {
    let fpm = php_fpm();
    let req = Request::get("/env.php").header("X-Blah", "from the client").body(()).unwrap();
    let config = config(&fpm).param("HTTP_X_BLAH", "configured").param("APP_ENV", "test");
    for env in get_env(&fpm, &req, &tcp_connection(), &config) {
        assert_eq!(s(&env, "HTTP_X_BLAH"), Some("configured"));
        assert_eq!(s(&env, "APP_ENV"), Some("test"));
    }
}
