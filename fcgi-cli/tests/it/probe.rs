//! `fcgi probe`: FCGI_GET_VALUES against php-fpm (exit 0), a silent server (10, within its
//! time limit: a stuck backend never hangs a probe) and a server that is not FastCGI (11).

use std::time::{Duration, Instant};

use crate::common::*;

fn probe(args: &[&str]) -> std::process::Output {
    run(fcgi().arg("probe").args(args))
}

#[test]
fn php_fpm_answers_mpxs_conns_0() {
    let php = php();
    let output = probe(&["--socket", php.socket.to_str().unwrap()]);
    assert_code(&output, 0);
    assert_eq!(stderr(&output), "");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("unix:{}: answered FCGI_GET_VALUES in ", php.socket.display())),
        "{text}"
    );
    assert!(lines.contains(&"  FCGI_MPXS_CONNS = 0"), "{text}");
    assert!(
        text.contains("multiplexing: no; max connections: not answered; max requests: not answered"),
        "{text}"
    );
}

#[test]
fn php_fpm_over_tcp_as_json() {
    let php = php();
    let output = probe(&["--connect", &php.tcp.to_string(), "--json"]);
    assert_code(&output, 0);
    let doc = json(&output);
    assert_eq!(doc["schema"], "fcgi.probe/1");
    assert_eq!(doc["address"], php.tcp.to_string());
    assert_eq!(doc["outcome"], "answered");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["values"], serde_json::json!({ "FCGI_MPXS_CONNS": "0" }));
    assert_eq!(doc["mpxs_conns"], false);
    assert!(doc["max_conns"].is_null() && doc["max_reqs"].is_null(), "{doc}");
    assert!(doc["connect_ms"].as_f64().is_some() && doc["answer_ms"].as_f64().is_some(), "{doc}");
}

#[test]
fn a_silent_server_is_no_answer_within_max_time() {
    let server = FakeServer::silent();
    let started = Instant::now();
    let output = probe(&["--socket", server.path.to_str().unwrap(), "--max-time", "700ms"]);
    assert_code(&output, 10);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(650) && took < Duration::from_secs(4), "took {took:?}");
    assert!(stdout(&output).contains("no answer to FCGI_GET_VALUES"), "{}", stdout(&output));

    let output = probe(&["--socket", server.path.to_str().unwrap(), "--max-time", "300ms", "--json"]);
    assert_code(&output, 10);
    let doc = json(&output);
    assert_eq!(doc["outcome"], "no_answer");
    assert_eq!(doc["exit_code"], 10);
}

#[test]
fn a_silent_server_never_hangs_a_probe_with_the_default_limit() {
    // No --max-time: the 5 s default of the health commands applies.
    let server = FakeServer::silent();
    let started = Instant::now();
    let output = probe(&["--socket", server.path.to_str().unwrap()]);
    assert_code(&output, 10);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(4900) && took < Duration::from_secs(9), "took {took:?}");
}

#[test]
fn a_server_closing_at_once_is_no_answer() {
    let server = FakeServer::closing();
    let output = probe(&["--socket", server.path.to_str().unwrap(), "--json"]);
    assert_code(&output, 10);
    assert_eq!(json(&output)["outcome"], "closed");
    let output = probe(&["--socket", server.path.to_str().unwrap()]);
    assert_code(&output, 10);
    assert!(stdout(&output).contains("closed the connection"), "{}", stdout(&output));
}

#[test]
fn a_server_that_is_not_fastcgi() {
    let server = FakeServer::http();
    let output = probe(&["--socket", server.path.to_str().unwrap()]);
    assert_code(&output, 11);
    let text = stdout(&output);
    assert!(text.contains("does not speak FastCGI") && text.contains("version byte is 72"), "{text}");
    let output = probe(&["--socket", server.path.to_str().unwrap(), "--json"]);
    assert_code(&output, 11);
    let doc = json(&output);
    assert_eq!(doc["outcome"], "not_fastcgi");
    assert_eq!(doc["exit_code"], 11);
    assert!(doc["error"].as_str().unwrap().contains("version byte"), "{doc}");
}

#[test]
fn connection_failures_keep_their_exit_codes() {
    let address = format!("127.0.0.1:{}", closed_port());
    let output = probe(&["--connect", &address]);
    let line = assert_error(&output, 7);
    assert!(line.contains(&address), "{line}");
    let output = probe(&["--connect", &address, "--json"]);
    assert_code(&output, 7);
    assert_eq!(stderr(&output), "");
    let doc = json(&output);
    assert_eq!(doc["schema"], "fcgi.probe/1");
    assert_eq!(doc["outcome"], "error");
    assert_eq!(doc["error"]["kind"], "connect");
    assert_eq!(doc["error"]["exit_code"], 7);
    let output = probe(&["--connect", "no-such-host.invalid:9000"]);
    assert_error(&output, 6);
    let output = probe(&[]);
    assert_error(&output, 2);
}

#[test]
fn fcgi_address_works_for_probe() {
    let php = php();
    let output = run(fcgi().arg("probe").env("FCGI_ADDRESS", php.tcp.to_string()));
    assert_code(&output, 0);
}

/// A server that writes `first` as soon as it accepts and then holds the connection open
/// without reading a FastCGI record or closing (nginx's 400, a TLS alert, an SSH banner).
fn speaking_first(first: &'static [u8]) -> FakeServer {
    FakeServer::start(move |mut stream| {
        use std::io::Write;
        let _ = stream.write_all(first);
        drain(&mut stream);
    })
}

/// A server that answers FCGI_GET_VALUES with one FCGI_GET_VALUES_RESULT of `content`.
fn answering(content: Vec<u8>) -> FakeServer {
    FakeServer::start(move |mut stream| {
        use std::io::Write;
        read_request(&mut stream);
        let _ = stream.write_all(&record(GET_VALUES + 1, 0, &content));
        drain(&mut stream);
    })
}

/// One name-value pair with 1-byte lengths.
fn pair(name: &str, value: &str) -> Vec<u8> {
    let mut bytes = vec![name.len() as u8, value.len() as u8];
    bytes.extend_from_slice(name.as_bytes());
    bytes.extend_from_slice(value.as_bytes());
    bytes
}

#[test]
fn foreign_first_bytes_are_not_fastcgi_at_once_and_named() {
    #[rustfmt::skip]
    let cases: [(&'static [u8], &str, &str); 4] = [
        (b"HTTP/1.1 400 Bad Request\r\n", "an HTTP server", "HTTP/1.1 400 Bad Request\\r\\n"),
        // A TLS alert is 7 bytes: less than a record header, so it used to wait for the limit.
        (&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46], "a TLS server", "\\u{15}"),
        (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "an SSH server", "SSH-2.0-OpenSSH_9.2p1"),
        (b"220 mail.example ESMTP\r\n", "a text (line-based) protocol", "220 mail.example"),
    ];
    for (first, name, shown) in cases {
        let server = speaking_first(first);
        let started = Instant::now();
        let output = probe(&["--socket", server.path.to_str().unwrap(), "--max-time", "5s"]);
        let took = started.elapsed();
        assert_code(&output, 11);
        assert!(took < Duration::from_secs(2), "{name}: exit 11 as soon as the bytes arrive, took {took:?}");
        let text = stdout(&output);
        assert!(text.contains("does not speak FastCGI") && text.contains(name), "{text}");
        assert!(text.contains(shown), "{shown:?} in {text}");

        let output = probe(&["--socket", server.path.to_str().unwrap(), "--max-time", "5s", "--json"]);
        assert_code(&output, 11);
        let doc = json(&output);
        assert_eq!(doc["outcome"], "not_fastcgi");
        assert_eq!(doc["looks_like"], name);
        assert_eq!(
            doc["first_bytes"],
            *String::from_utf8_lossy(first),
            "JSON carries the bytes as they came"
        );
        assert!(doc["answer_ms"].as_f64().unwrap() < 2000.0, "{doc}");
    }
}

#[test]
fn a_line_based_server_is_no_answer_with_the_measured_causes() {
    // Like Python's http.server: reads, waiting for a line end that the query never sends.
    let server = FakeServer::start(|mut stream| {
        use std::io::Read;
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            if seen.contains(&b'\n') {
                let _ = std::io::Write::write_all(&mut stream, b"HTTP/1.0 400 Bad request\r\n");
                return;
            }
        }
    });
    let output = probe(&["--socket", server.path.to_str().unwrap(), "--max-time", "500ms"]);
    assert_code(&output, 10);
    let text = stdout(&output);
    for cause in ["fcgiwrap, libfcgi", "uWSGI", "php-fpm with every worker busy", "waits for a line end"] {
        assert!(text.contains(cause), "{cause:?} in {text}");
    }
    let output = probe(&["--socket", server.path.to_str().unwrap(), "--max-time", "300ms", "--json"]);
    assert_code(&output, 10);
    let doc = json(&output);
    assert_eq!(doc["outcome"], "no_answer");
    assert_eq!(doc["causes"].as_array().map(Vec::len), Some(3), "{doc}");
}

#[test]
fn a_malformed_pair_in_valid_framing_is_a_protocol_error() {
    // FCGI_MAX_CONNS announces a 5-byte value, the record holds 1: the pair runs past its end.
    let server = answering(b"\x0e\x05FCGI_MAX_CONNS1".to_vec());
    let output = probe(&["--socket", server.path.to_str().unwrap()]);
    assert_code(&output, 8);
    let text = stdout(&output);
    assert!(text.contains("speaks FastCGI framing") && text.contains("malformed"), "{text}");
    assert!(!text.contains("does not speak FastCGI"), "{text}");
    let output = probe(&["--socket", server.path.to_str().unwrap(), "--json"]);
    assert_code(&output, 8);
    let doc = json(&output);
    assert_eq!(doc["outcome"], "malformed");
    assert_eq!(doc["exit_code"], 8);
    assert!(doc["error"].as_str().unwrap().contains("FCGI_GET_VALUES_RESULT"), "{doc}");
}

#[test]
fn a_non_numeric_max_conns_is_answered_and_shown_as_sent() {
    let content =
        [pair("FCGI_MAX_CONNS", "lots"), pair("FCGI_MAX_REQS", "10"), pair("FCGI_MPXS_CONNS", "1")].concat();
    let server = answering(content);
    let output = probe(&["--socket", server.path.to_str().unwrap()]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("  FCGI_MAX_CONNS = lots"), "{text}");
    assert!(
        text.contains("multiplexing: yes; max connections: \"lots\" (not a number); max requests: 10"),
        "{text}"
    );
    let doc = json(&probe(&["--socket", server.path.to_str().unwrap(), "--json"]));
    assert_eq!(doc["values"]["FCGI_MAX_CONNS"], "lots");
    assert!(doc["max_conns"].is_null(), "{doc}");
    assert_eq!(doc["max_reqs"], 10);
}
