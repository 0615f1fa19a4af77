//! `fcgi bench`: the load test against php-fpm and flup (multiplexed), and fake servers for
//! the failures: counts, the JSON document, stopping on time, errors counted not fatal, exit
//! codes.
//!
//! The php-fpm tests hold [`PHP_FPM`] so that two loads never compete for the harness's
//! workers (php-fpm serves one kept-alive connection per worker).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

static PHP_FPM: Mutex<()> = Mutex::new(());

fn php_fpm_to_myself() -> MutexGuard<'static, ()> {
    PHP_FPM.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `fcgi bench ARGS --socket <php-fpm> --json` from the docroot: (exit code, document).
fn bench_php(args: &[&str]) -> (i32, Value, std::process::Output) {
    let php = php();
    let output = run(fcgi()
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg("--socket")
        .arg(&php.socket)
        .current_dir(&php.docroot));
    assert_no_panic(&stderr(&output));
    let document = json(&output);
    (code(&output), document, output)
}

fn ms(document: &Value, key: &str) -> f64 {
    document["latency_ms"][key].as_f64().unwrap_or_else(|| panic!("latency_ms.{key}: {document}"))
}

#[test]
fn n_requests_against_php_fpm_are_all_counted() {
    let _php = php_fpm_to_myself();
    let (code, doc, output) = bench_php(&["/hello.php", "-n", "200", "-c", "8"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(stderr(&output), "", "--json: nothing on stderr");
    assert_eq!(doc["schema"], "fcgi.bench/1");
    assert_eq!(doc["requests"], 200);
    assert_eq!(doc["completed"], 200);
    assert_eq!(doc["errors"], 0);
    assert_eq!(doc["cancelled"], 0);
    assert_eq!(doc["status"], serde_json::json!({"200": 200}));
    assert_eq!(doc["errors_by_kind"], serde_json::json!({}));
    assert_eq!(doc["body_bytes"], 200 * "Hello, world!".len());
    assert_eq!(doc["stopped"], "requests");
    assert_eq!((doc["concurrency"].as_u64(), doc["connections"].as_u64()), (Some(8), Some(8)));
    assert_eq!(doc["multiplex"], false);
    assert_eq!(doc["method"], "GET");
    assert_eq!(doc["path"], "/hello.php");
    assert_eq!(doc["exit_code"], 0);
    let order = ["min", "p50", "p75", "p90", "p99", "p99_9", "max"];
    for pair in order.windows(2) {
        assert!(ms(&doc, pair[0]) <= ms(&doc, pair[1]), "{} <= {}: {doc}", pair[0], pair[1]);
    }
    assert!(
        ms(&doc, "min") > 0.0 && ms(&doc, "min") <= ms(&doc, "mean") && ms(&doc, "mean") <= ms(&doc, "max")
    );
    assert!(doc["req_per_s"].as_f64().unwrap() > 0.0);
    assert!(doc["duration_s"].as_f64().unwrap() > 0.0);
    assert!(doc["cpu_us_per_req"].as_f64().unwrap() > 0.0, "{doc}");
    for key in ["cpu_user_s", "cpu_sys_s", "warmup_s"] {
        assert!(doc[key].is_number(), "{key}: {doc}");
    }
    assert!(doc["address"].as_str().unwrap().starts_with("unix:"));
}

#[test]
fn the_human_report_has_every_section() {
    let _php = php_fpm_to_myself();
    let php = php();
    let output = run(fcgi()
        .args(["bench", "/hello.php", "-n", "50", "--socket"])
        .arg(&php.socket)
        .current_dir(&php.docroot));
    assert_code(&output, 0);
    assert_eq!(stderr(&output), "", "no progress bar when stderr is not a terminal");
    let text = stdout(&output);
    for needle in [
        "Summary:",
        "GET /hello.php on unix:",
        "4 in flight, 4 connections",
        "50 finished: 50 responses, 0 errors",
        "Requests/s:",
        "µs per request",
        "Latency (send to end of body, 50 responses):",
        "p50",
        "p99",
        "max",
        "Status codes:",
        "200 OK",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(!text.contains("Errors:"), "{text}");
}

#[test]
fn the_duration_ends_the_run_on_time() {
    let _php = php_fpm_to_myself();
    let started = Instant::now();
    let (code, doc, _) = bench_php(&["/hello.php", "-D", "1s", "-c", "4"]);
    let elapsed = started.elapsed();
    assert_eq!(code, 0, "{doc}");
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    assert_eq!(doc["stopped"], "duration");
    let duration = doc["duration_s"].as_f64().unwrap();
    assert!((1.0..1.2).contains(&duration), "{doc}");
    assert!(doc["completed"].as_u64().unwrap() > 10, "{doc}");
    assert_eq!(doc["errors"], 0, "{doc}");
    assert!(doc["cancelled"].as_u64().unwrap() <= 4, "{doc}");
}

#[test]
fn ctrl_c_ends_the_run_with_the_report_so_far() {
    let _php = php_fpm_to_myself();
    let php = php();
    let mut child = std_fcgi()
        .args(["bench", "/hello.php", "-D", "60s", "-c", "2", "--json", "--socket"])
        .arg(&php.socket)
        .current_dir(&php.docroot)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fcgi bench");
    // Long enough for the run to be under way (the handler is installed before it starts).
    std::thread::sleep(Duration::from_millis(1500));
    let sent = Instant::now();
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(kill.expect("run kill").success());
    let status = wait_bounded(&mut child);
    assert!(sent.elapsed() < Duration::from_secs(5), "took {:?} after Ctrl-C", sent.elapsed());
    let mut stdout = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("read stdout");
    assert_eq!(status.code(), Some(0), "{status:?}: {stdout}");
    let doc: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["stopped"], "interrupted", "{doc}");
    assert!(doc["completed"].as_u64().unwrap() > 10, "{doc}");
    assert_eq!(doc["errors"], 0, "{doc}");
}

#[test]
fn requests_in_flight_at_the_deadline_are_cancelled_not_waited_for() {
    // flup's /sleep answers after 3 s; the run must end at -D all the same.
    let flup = fcgi_tests::backends::flup();
    let started = Instant::now();
    let output = run(fcgi()
        .args(["bench", "/sleep?ms=3000", "-D", "500ms", "-c", "2", "--json", "--socket"])
        .arg(&flup.multiplexed));
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    assert_code(&output, 28);
    let doc = json(&output);
    assert_eq!((doc["completed"].as_u64(), doc["cancelled"].as_u64()), (Some(0), Some(2)), "{doc}");
    assert_eq!(doc["latency_ms"], Value::Null);
    assert_eq!(doc["error"]["kind"], "timeout");
    assert!(doc["error"]["message"].as_str().unwrap().contains("no request finished"), "{doc}");
}

#[test]
fn a_warmup_is_not_counted() {
    let _php = php_fpm_to_myself();
    let started = Instant::now();
    let (code, doc, _) = bench_php(&["/hello.php", "--warmup", "300ms", "-n", "50", "-c", "2"]);
    assert_eq!(code, 0, "{doc}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(doc["completed"], 50);
    assert_eq!(doc["warmup_s"], 0.3);
}

#[test]
fn http_errors_are_status_counts() {
    let _php = php_fpm_to_myself();
    let (code, doc, _) = bench_php(&["/status.php?code=404", "-n", "40"]);
    assert_eq!(doc["status"], serde_json::json!({"404": 40}), "{doc}");
    assert_eq!(doc["errors"], 0);
    assert_eq!(doc["completed"], 40);
    // Not a single success: the exit code says why, as `get` would.
    assert_eq!(code, 4);
    assert_eq!(doc["error"]["kind"], "http_4xx");
}

#[test]
fn a_post_body_is_sent_with_every_request() {
    let _php = php_fpm_to_myself();
    let (code, doc, _) = bench_php(&["/echo.php", "-d", "a=1&b=2", "-n", "20"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["method"], "POST", "-d makes it a POST, as with curl and h2load");
    assert_eq!(doc["body_bytes"], 20 * "a=1&b=2".len(), "{doc}");
}

/// A server that answers every other request and closes the connection on the others.
fn half_broken_server() -> FakeServer {
    let count = Arc::new(AtomicUsize::new(0));
    FakeServer::start(move |mut stream: UnixStream| {
        loop {
            if read_request(&mut stream).is_empty() {
                return;
            }
            if count.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
                return; // closes: the request fails with connection_lost
            }
            let mut reply = record(STDOUT, 1, b"Status: 200 OK\r\n\r\nok");
            reply.extend_from_slice(&end_request(1, 0, 0));
            if stream.write_all(&reply).is_err() {
                return;
            }
        }
    })
}

#[test]
fn errors_are_counted_not_fatal() {
    let server = half_broken_server();
    let output =
        run(fcgi().args(["bench", "/x", "-n", "100", "-c", "2", "--json", "--socket"]).arg(&server.path));
    assert_code(&output, 0);
    let doc = json(&output);
    let completed = doc["completed"].as_u64().unwrap();
    let lost = doc["errors_by_kind"]["connection_lost"].as_u64().unwrap_or(0);
    assert_eq!(doc["requests"], 100, "{doc}");
    assert_eq!(completed + lost, 100, "{doc}");
    assert!(completed >= 30 && lost >= 30, "{doc}");
    assert_eq!(doc["errors"].as_u64(), Some(lost));
    assert_eq!(doc["status"]["200"].as_u64(), Some(completed));
    assert!(
        doc["error_messages"]["connection_lost"].as_str().unwrap().contains("closed the connection"),
        "{doc}"
    );
}

#[test]
fn a_server_that_always_closes_is_exit_56_with_the_counts() {
    let server = FakeServer::close_after_request();
    let output = run(fcgi().args(["bench", "/x", "-n", "20", "-c", "2", "--socket"]).arg(&server.path));
    assert_code(&output, 56);
    let text = stdout(&output);
    assert!(text.contains("20 finished: 0 responses, 20 errors"), "{text}");
    assert!(text.contains("connection_lost"), "{text}");
    let line = one_error_line(&output);
    assert!(line.starts_with("fcgi: no request succeeded: 20 of 20 failed (connection_lost): "), "{line}");
}

#[test]
fn nothing_to_connect_to_is_exit_7_at_once() {
    let dir = temp_dir();
    let started = Instant::now();
    let output = run(fcgi()
        .args(["bench", "/hello.php", "-D", "10s", "--socket"])
        .arg(dir.path().join("nothing.sock")));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let line = assert_error(&output, 7);
    assert!(line.starts_with("fcgi: cannot connect to unix:"), "{line}");
    assert_eq!(stdout(&output), "", "no report when nothing could connect");

    let port = closed_port();
    let output =
        run(fcgi().args(["bench", "/hello.php", "--json", "--connect"]).arg(format!("127.0.0.1:{port}")));
    assert_code(&output, 7);
    let doc = json(&output);
    assert_eq!(doc["stopped"], "no_connection");
    assert_eq!(doc["error"]["kind"], "connect");
    assert!(doc["errors_by_kind"]["connect"].as_u64().unwrap() >= 1, "{doc}");
}

#[test]
fn two_thousand_requests_32_in_flight_multiplexed_on_one_connection_to_flup() {
    let flup = fcgi_tests::backends::flup();
    let output = run(fcgi()
        .args(["bench", "/echo?x=1", "--multiplex", "--connections", "1", "-c", "32", "-n", "2000", "--json"])
        .arg("--socket")
        .arg(&flup.multiplexed));
    assert_code(&output, 0);
    let doc = json(&output);
    assert_eq!(doc["completed"], 2000, "{doc}");
    assert_eq!(doc["errors"], 0, "{doc}");
    assert_eq!(doc["status"], serde_json::json!({"200": 2000}));
    assert_eq!(doc["body_bytes"], 2000 * "query=x=1\n".len());
    assert_eq!((doc["connections"].as_u64(), doc["multiplex"].as_bool()), (Some(1), Some(true)));
}

#[test]
fn bad_command_lines_are_exit_2() {
    for args in [
        vec!["bench"],
        vec!["bench", "/x", "-c", "0"],
        vec!["bench", "/x", "-c", "many"],
        vec!["bench", "/x", "-n", "0"],
        vec!["bench", "/x", "-D", "0"],
        vec!["bench", "/x", "-D", "5h"],
        vec!["bench", "/x", "--connections", "0"],
        vec!["bench", "/x", "--warmup", "soon"],
        vec!["bench", "/x", "--bogus"],
        vec!["bench", "x.php", "--socket", "/nowhere.sock"],
        vec!["bench", "/x"],
    ] {
        let output = run(fcgi().args(&args));
        let line = assert_error(&output, 2);
        assert!(!line.is_empty(), "{args:?}");
    }
    // With --json, a request that cannot be built is a JSON document too.
    let output = run(fcgi().args(["bench", "/../etc/passwd", "--json", "--socket", "/nowhere.sock"]));
    assert_code(&output, 2);
    let doc = json(&output);
    assert_eq!(
        (doc["schema"].as_str(), doc["error"]["kind"].as_str()),
        (Some("fcgi.bench/1"), Some("usage"))
    );
}
