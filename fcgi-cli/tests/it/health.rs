//! `fcgi ping` and `fcgi status` against php-fpm's own pages: success lines, `--json`,
//! `--silent`, thresholds failing with one-line reasons (exit 12), and bad specs (exit 2).

use std::time::{Duration, Instant};

use crate::common::*;

fn ping(args: &[&str]) -> std::process::Output {
    let php = php();
    run(fcgi().arg("ping").args(args).arg("--socket").arg(&php.socket))
}

fn status(args: &[&str]) -> std::process::Output {
    let php = php();
    run(fcgi().arg("status").args(args).arg("--socket").arg(&php.socket))
}

#[test]
fn ping_answers_pong() {
    let output = ping(&[]);
    assert_code(&output, 0);
    assert_eq!(stderr(&output), "");
    let text = stdout(&output);
    assert!(text.starts_with("pong (") && text.ends_with(")\n") && text.lines().count() == 1, "{text:?}");
}

#[test]
fn ping_over_tcp_and_from_fcgi_address() {
    let php = php();
    let output = run(fcgi().args(["ping", "--connect", &php.tcp.to_string()]));
    assert_code(&output, 0);
    let output = run(fcgi().arg("ping").env("FCGI_ADDRESS", format!("tcp://{}", php.tcp)));
    assert_code(&output, 0);
    assert!(stdout(&output).starts_with("pong"));
}

#[test]
fn ping_as_json() {
    let output = ping(&["--json"]);
    assert_code(&output, 0);
    let doc = json(&output);
    assert_eq!(doc["schema"], "fcgi.ping/1");
    assert_eq!(doc["address"], format!("unix:{}", php().socket.display()));
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["body"], "pong");
    assert!(doc["time_ms"].as_f64().unwrap() >= 0.0, "{doc}");
    assert!(doc["message"].as_str().unwrap().starts_with("pong ("), "{doc}");
}

#[test]
fn ping_silent_prints_nothing() {
    let output = ping(&["--silent"]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "");
    assert_eq!(stderr(&output), "");
    let output = ping(&["-s"]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "");
}

#[test]
fn ping_with_an_unexpected_answer_exits_12() {
    let output = ping(&["--expect", "pang"]);
    let line = assert_error(&output, 12);
    assert_eq!(stdout(&output), "");
    assert!(line.contains("answered \"pong\"") && line.contains("expected \"pang\""), "{line}");
    let output = ping(&["--expect", "pang", "--json"]);
    assert_code(&output, 12);
    assert_eq!(stderr(&output), "");
    let doc = json(&output);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit_code"], 12);
    assert_eq!(doc["body"], "pong");
    // --silent does not hide a failure.
    let output = ping(&["--expect", "pang", "--silent"]);
    assert_error(&output, 12);
}

#[test]
fn ping_on_a_path_php_fpm_does_not_serve() {
    let output = ping(&["--path", "/not-the-ping-path"]);
    let line = assert_error(&output, 4);
    assert!(line.contains("404") && line.contains("ping.path"), "a hint: {line}");
}

#[test]
fn ping_connection_failures_keep_their_codes() {
    let address = format!("127.0.0.1:{}", closed_port());
    let output = run(fcgi().args(["ping", "--connect", &address]));
    let line = assert_error(&output, 7);
    assert!(line.starts_with("fcgi: ping: "), "{line}");
    let output = run(fcgi().args(["ping", "--json", "--connect", &address]));
    assert_code(&output, 7);
    let doc = json(&output);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit_code"], 7);
    assert!(doc["time_ms"].is_null(), "{doc}");
}

#[test]
fn ping_of_a_stuck_backend_times_out() {
    let server = FakeServer::silent();
    let started = Instant::now();
    let output = run(fcgi().args(["ping", "--max-time", "800ms", "--socket"]).arg(&server.path));
    assert_error(&output, 28);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(750) && took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn ping_of_an_overloaded_backend() {
    let server = FakeServer::end_with(2);
    let output = run(fcgi().args(["ping", "--socket"]).arg(&server.path));
    let line = assert_error(&output, 9);
    assert!(line.contains("OVERLOADED"), "{line}");
}

#[test]
fn status_prints_a_summary_line() {
    let output = status(&[]);
    assert_code(&output, 0);
    assert_eq!(stderr(&output), "");
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("ok: pool "), "{text}");
    for part in [" idle, ", " active, ", " total, ", "listen queue ", "accepted "] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
}

#[test]
fn status_as_json_with_checks() {
    let output = status(&[
        "--json",
        "--min-idle",
        "1",
        "--max-listen-queue",
        "1000",
        "--max",
        "slow_requests=1000000",
    ]);
    assert_code(&output, 0);
    let doc = json(&output);
    assert_eq!(doc["schema"], "fcgi.status/1");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["exit_code"], 0);
    assert!(doc["message"].as_str().unwrap().starts_with("ok: pool "), "{doc}");
    let pool = &doc["status"];
    for key in [
        "pool",
        "process manager",
        "idle processes",
        "active processes",
        "total processes",
        "listen queue",
        "accepted conn",
    ] {
        assert!(pool.get(key).is_some(), "php-fpm's {key:?} in {doc}");
    }
    assert_eq!(pool["total processes"], php().workers as u64);
    let checks = doc["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "{doc}");
    let idle = checks.iter().find(|c| c["field"] == "idle processes").unwrap();
    assert_eq!(idle["op"], ">=");
    assert_eq!(idle["limit"], 1);
    assert_eq!(idle["ok"], true);
    assert!(idle["value"].as_u64().unwrap() >= 1);
    let queue = checks.iter().find(|c| c["field"] == "listen queue").unwrap();
    assert_eq!(queue["op"], "<=");
    let slow = checks.iter().find(|c| c["field"] == "slow requests").unwrap();
    assert_eq!(slow["limit"], 1_000_000);
}

#[test]
fn status_min_idle_above_the_pool_exits_12() {
    let output = status(&["--min-idle", "100"]);
    let line = assert_error(&output, 12);
    assert_eq!(stdout(&output), "");
    assert!(line.starts_with("fcgi: status: idle processes is "), "{line}");
    assert!(line.ends_with(", below the minimum 100"), "{line}");
    let output = status(&["--min-idle", "100", "--json"]);
    assert_code(&output, 12);
    let doc = json(&output);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit_code"], 12);
    assert_eq!(doc["checks"][0]["ok"], false);
}

#[test]
fn status_generic_max_exits_12_with_the_reason() {
    // "accepted conn" counts this very request, so it is at least 1.
    let output = status(&["--max", "accepted-conn=0"]);
    let line = assert_error(&output, 12);
    assert!(line.contains("accepted conn is ") && line.ends_with("above the maximum 0"), "{line}");
    // Several failures: one line, joined.
    let output = status(&["--max", "Accepted_Conn=0", "--min", "total processes=100000"]);
    let line = assert_error(&output, 12);
    assert!(line.contains("; "), "{line}");
    assert!(line.contains("accepted conn is ") && line.contains("above the maximum 0"), "{line}");
    assert!(line.contains("total processes is ") && line.contains("below the minimum 100000"), "{line}");
}

#[test]
fn status_every_named_threshold_passes_when_generous() {
    let output = status(&[
        "--max-active",
        "1000",
        "--max-listen-queue",
        "1000",
        "--max-children-reached",
        "1000000",
        "--max-slow-requests",
        "1000000",
        "--min-idle",
        "0",
        "--min",
        "total-processes=1",
        "--json",
    ]);
    assert_code(&output, 0);
    let doc = json(&output);
    let fields: Vec<&str> =
        doc["checks"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    for field in [
        "active processes",
        "listen queue",
        "max children reached",
        "slow requests",
        "idle processes",
        "total processes",
    ] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
}

#[test]
fn status_unknown_field_fails_the_check() {
    let output = status(&["--max", "no-such-field=1"]);
    let line = assert_error(&output, 12);
    assert!(line.contains("no field \"no such field\"") && line.contains("idle processes"), "{line}");
    let output = status(&["--max", "pool=1"]);
    let line = assert_error(&output, 12);
    assert!(line.contains("not a count"), "{line}");
}

#[test]
fn status_bad_threshold_specs_exit_2() {
    for args in [&["--min", "foo"][..], &["--max", "idle=x"], &["--max", "idle=-1"], &["--min-idle", "x"]] {
        let output = status(args);
        assert_error(&output, 2);
        assert_eq!(stdout(&output), "", "{args:?}");
    }
}

#[test]
fn status_silent_prints_nothing_on_success() {
    let output = status(&["--silent"]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "");
    assert_eq!(stderr(&output), "");
    let output = status(&["-s", "--min-idle", "100"]);
    assert_error(&output, 12);
}

#[test]
fn status_over_tcp() {
    let php = php();
    let output = run(fcgi().args(["status", "--json", "--connect", &php.tcp.to_string()]));
    assert_code(&output, 0);
    assert_eq!(json(&output)["status"]["total processes"], php.workers as u64);
}

#[test]
fn status_on_a_path_that_is_not_json() {
    // /ping answers "pong", which is not a status document: a malformed answer (8).
    let output = status(&["--path", "/ping"]);
    let line = assert_error(&output, 8);
    assert!(line.contains("JSON"), "{line}");
}

#[test]
fn a_redirect_is_not_a_healthy_page() {
    // A health page answering 302 is not php-fpm's ping/status page: the check fails (12),
    // it is not a success as it would be for `get`.
    let server = FakeServer::answer(b"Status: 302 Found\r\nLocation: /login\r\n\r\n", true);
    for command in ["ping", "status"] {
        let output = run(fcgi().arg(command).arg("--socket").arg(&server.path));
        let line = assert_error(&output, 12);
        assert!(line.contains("HTTP 302"), "{command}: {line}");
        assert_eq!(stdout(&output), "", "{command}");
        let output = run(fcgi().arg(command).arg("--json").arg("--socket").arg(&server.path));
        assert_code(&output, 12);
        assert_eq!(json(&output)["ok"], false, "{command}");
    }
}

#[test]
fn a_5xx_health_page_exits_5() {
    let server = FakeServer::answer(b"Status: 503 Service Unavailable\r\n\r\nbusy", true);
    for command in ["ping", "status"] {
        let output = run(fcgi().arg(command).arg("--socket").arg(&server.path));
        let line = assert_error(&output, 5);
        assert!(line.contains("503") && line.contains("busy"), "{command}: {line}");
    }
}

#[test]
fn ping_and_status_json_failures_carry_the_error_kind() {
    // As every other command's --json failure document: `error` with kind, exit_code, message.
    for command in ["ping", "status"] {
        let output = run(fcgi().args([command, "--json", "--socket", "/nonexistent/php.sock"]));
        assert_code(&output, 7);
        let doc = json(&output);
        assert_eq!(doc["exit_code"], 7, "{doc}");
        assert_eq!(doc["error"]["kind"], "connect", "{command}: {doc}");
        assert_eq!(doc["error"]["exit_code"], 7, "{command}: {doc}");
        assert!(doc["error"]["message"].as_str().unwrap().contains("/nonexistent/php.sock"), "{doc}");
    }
    let output = ping(&["--json"]);
    assert_code(&output, 0);
    assert!(json(&output)["error"].is_null());
    // A failed threshold is an error too.
    let output = status(&["--json", "--max", "total-processes=0"]);
    assert_code(&output, 12);
    assert_eq!(json(&output)["error"]["kind"], "check_failed");
}

/// The keys of the first JSON object in `text` after `after`, in the order they are written
/// (read from the text itself, whatever a JSON parser does with the order).
fn keys_in_order(text: &str, after: &str, keys: &[String]) -> Vec<String> {
    let start = text.find(after).unwrap_or_else(|| panic!("{after} in {text}"));
    let mut found: Vec<(usize, String)> = keys
        .iter()
        .map(|key| {
            let at = text[start..].find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {text}"));
            (at, key.clone())
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, key)| key).collect()
}

#[test]
fn status_json_keeps_php_fpm_s_key_order() {
    let php = php();
    let raw = run(fcgi().args(["get", "/status?json", "--socket"]).arg(&php.socket));
    assert_code(&raw, 0);
    let raw = stdout(&raw);
    let page: serde_json::Value = serde_json::from_str(&raw).expect("php-fpm's status page is JSON");
    let keys: Vec<String> = page.as_object().unwrap().keys().cloned().collect();
    let output = status(&["--json"]);
    assert_code(&output, 0);
    let printed = stdout(&output);
    assert_eq!(
        keys_in_order(&printed, "\"status\":", &keys),
        keys_in_order(&raw, "{", &keys),
        "php-fpm's order: {raw}\nfcgi status --json: {printed}"
    );
}

#[test]
fn status_takes_curl_s_unix_socket_name() {
    let php = php();
    let output = run(fcgi().args(["status", "-s", "--unix-socket"]).arg(&php.socket));
    assert_code(&output, 0);
}
