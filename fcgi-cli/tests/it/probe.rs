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
