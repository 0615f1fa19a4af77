//! The messages that used to be unclear (issue 14), `-v` on every command, and the `--json`
//! error document of every command: each against a real php-fpm, a real kernel condition (a
//! full listen queue, a file-descriptor limit) or a fake server for what php-fpm never sends.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;

use crate::common::*;

#[test]
fn a_regular_file_given_as_socket_is_named_as_such() {
    let dir = temp_dir();
    let file = dir.path().join("php-fpm.conf");
    std::fs::write(&file, "[www]\n").unwrap();
    let line = assert_error(&run(fcgi().args(["get", "/x.php", "--socket"]).arg(&file)), 7);
    assert!(line.ends_with(&format!("{} is a regular file, not a socket", file.display())), "{line}");
    let line = assert_error(&run(fcgi().args(["ping", "--socket"]).arg(dir.path())), 7);
    assert!(line.contains("is a directory, not a socket"), "{line}");
}

#[test]
fn a_stale_socket_file_is_not_just_refused() {
    let dir = temp_dir();
    let path = dir.path().join("stale.sock");
    drop(UnixListener::bind(&path).unwrap()); // the file stays, nothing listens
    let line = assert_error(&run(fcgi().args(["get", "/x.php", "--socket"]).arg(&path)), 7);
    assert!(line.contains("nothing listens on the socket (a stale socket file"), "{line}");
}

/// A unix listener with a backlog of 0 that never accepts, its queue filled by
/// non-blocking connects until the kernel refuses more (EAGAIN).
fn full_listener(path: &Path) -> (std::os::fd::OwnedFd, Vec<std::os::fd::OwnedFd>) {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect, listen, socket,
    };
    let addr = UnixAddr::new(path).unwrap();
    let listener = socket(AddressFamily::Unix, SockType::Stream, SockFlag::empty(), None).unwrap();
    bind(listener.as_raw_fd(), &addr).unwrap();
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let mut clients = Vec::new();
    for _ in 0..64 {
        let client = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).unwrap();
        match connect(client.as_raw_fd(), &addr) {
            Ok(()) => clients.push(client),
            Err(nix::errno::Errno::EAGAIN) => return (listener, clients),
            Err(other) => panic!("connect: {other}"),
        }
    }
    panic!("the listen queue never filled");
}

#[test]
fn a_full_listen_queue_says_so_and_is_retried() {
    let dir = temp_dir();
    let path = dir.path().join("busy.sock");
    let _held = full_listener(&path);
    let line = assert_error(&run(fcgi().args(["get", "/x.php", "--socket"]).arg(&path)), 7);
    assert!(line.contains("listen queue full: every worker is busy"), "{line}");
    assert!(!line.contains("Resource temporarily unavailable"), "{line}");
    let output = run(fcgi().args(["ping", "--socket"]).arg(&path));
    assert!(assert_error(&output, 7).contains("listen queue full"));
    // Nothing reached the application: --retry tries again.
    let mut cmd = fcgi();
    cmd.args(["get", "/x.php", "--retry", "1", "--retry-delay", "50ms", "--socket"]).arg(&path);
    let output = run(&mut cmd);
    assert_code(&output, 7);
    assert!(stderr(&output).contains("listen queue full: every worker is busy and the socket's backlog"));
    assert!(stderr(&output).contains("trying again in 50 ms"), "{}", stderr(&output));
}

#[test]
fn urls_given_to_connect_are_explained() {
    for args in [
        &["get", "/index.php", "--connect", "http://127.0.0.1:9000/index.php"][..],
        &["ping", "--connect", "https://localhost:9000"],
        &["probe", "--connect", "fcgi://127.0.0.1:9000"],
    ] {
        let line = assert_error(&run(fcgi().args(args)), 2);
        assert!(line.contains("a FastCGI server is not reached by URL: give HOST:PORT"), "{args:?}: {line}");
        assert!(
            line.contains("--connect 127.0.0.1:9000") || line.contains("--connect localhost:9000"),
            "{line}"
        );
    }
    let line = assert_error(&run(fcgi().args(["get", "/x"]).env("FCGI_ADDRESS", "http://127.0.0.1:9000")), 2);
    assert!(line.contains("is a http:// URL"), "{line}");
    // tcp:// and unix: stay addresses.
    let php = php();
    let output = run(fcgi()
        .args(["get", "/hello.php", "--connect"])
        .arg(format!("unix:{}", php.socket.display()))
        .current_dir(&php.docroot));
    assert_code(&output, 0);
}

#[test]
fn get_from_the_wrong_directory_hints_at_the_document_root() {
    let php = php();
    let elsewhere = temp_dir();
    let output = run(fcgi()
        .args(["get", "/hello.php", "-s", "-S", "--socket"])
        .arg(&php.socket)
        .current_dir(elsewhere.path()));
    let line = assert_error(&output, 4);
    let expected = format!("SCRIPT_FILENAME {}/hello.php does not exist", elsewhere.path().display());
    assert!(line.contains(&expected), "{line}");
    assert!(line.ends_with("run fcgi from the document root or give --docroot)"), "{line}");
    // Not for a mounted application, which has no SCRIPT_FILENAME.
    let output = run(fcgi()
        .args(["get", "/missing.php", "-s", "-S", "--mount", "/", "--socket"])
        .arg(&php.socket)
        .current_dir(&php.docroot));
    assert!(!stderr(&output).contains("--docroot"), "{}", stderr(&output));
}

#[test]
fn verbose_names_the_headers_the_safety_rules_dropped() {
    let output = php_get(&[
        "get",
        "/hello.php",
        "-v",
        "-H",
        "Proxy: http://evil.test:8080",
        "-H",
        "X_Forwarded_For: 1.2.3.4",
        "-H",
        "Connection: close",
        "-H",
        "Proxy-Authorization: Basic eA==",
        "-H",
        "X-Kept: 1",
    ]);
    assert_code(&output, 0);
    let err = stderr(&output);
    for expected in [
        "* header proxy not sent: never passed: it would become HTTP_PROXY",
        "* header x_forwarded_for not sent: an unusual name",
        "* header connection not sent: a hop-by-hop header",
        "* header proxy-authorization not sent: credentials for a proxy",
    ] {
        assert!(err.contains(expected), "{expected:?} in:\n{err}");
    }
    assert!(!err.contains("header x-kept not sent"), "{err}");
    assert!(err.contains("* param HTTP_X_KEPT=1"), "{err}");
    // Without -v, nothing.
    let output = php_get(&["get", "/hello.php", "-H", "Proxy: http://evil.test"]);
    assert_eq!(stderr(&output), "");
}

/// Runs `fcgi ARGS` from the docroot under `ulimit -n limit`.
fn with_fd_limit(limit: u32, args: &str) -> std::process::Output {
    let php = php();
    let script = format!("ulimit -n {limit} && exec \"$0\" {args} --socket \"$1\"");
    let mut cmd = assert_cmd::Command::new("sh");
    cmd.args(["-c", &script, BIN]).arg(&php.socket).current_dir(&php.docroot).env("RUST_BACKTRACE", "1");
    run(&mut cmd)
}

// How many descriptors the process starts with depends on what it inherits, so the limits
// are tried from high to low, stopping at the first one that fails: the connection needs more
// than the runtime, so it is the connection that fails first. (Lower still, a test build's
// runtime cannot start: its tokio has the `signal` feature from the test crates, whose driver
// panics on EMFILE; the `fcgi` binary built alone has no signal driver.)

#[test]
fn running_out_of_file_descriptors_is_a_local_limit() {
    for limit in (6..=24).rev() {
        let output = with_fd_limit(limit, "get /hello.php");
        if code(&output) == 0 {
            assert_eq!(stdout(&output), "Hello, world!");
            continue;
        }
        let line = assert_error(&output, 1);
        assert!(
            line.contains("cannot connect to unix:")
                && line.ends_with(
                    "too many open files, this process's (ulimit -n) limit: a local limit, not the server's"
                ),
            "ulimit -n {limit}: {line}"
        );
        return;
    }
    panic!("no limit between 24 and 6 made the connect fail");
}

#[test]
fn bench_reports_connections_it_could_not_open() {
    for limit in (8..=40).rev() {
        let output = with_fd_limit(limit, "bench /hello.php -c 8 -n 100 --json");
        assert_no_panic(&stderr(&output));
        let doc = json(&output);
        let opened = doc["connections_opened"].as_u64().unwrap_or_else(|| panic!("{doc}"));
        if opened == 8 {
            assert_eq!(doc["errors"], 0, "{doc}");
            continue;
        }
        assert_eq!(doc["connections"], 8);
        assert!(opened > 0, "ulimit -n {limit}: the first limit that fails leaves room for some: {doc}");
        assert!(doc["errors_by_kind"]["failure"].as_u64().unwrap() > 0, "{doc}");
        let notes = doc["notes"].to_string();
        assert!(notes.contains("a local limit of this machine"), "{notes}");
        assert!(doc["error_messages"]["failure"].as_str().unwrap().contains("too many open files"), "{doc}");
        return;
    }
    panic!("no limit between 40 and 8 kept bench from opening its 8 connections");
}

#[test]
fn a_status_outside_100_to_599_is_a_malformed_response() {
    let output = php_get(&["get", "/status.php?code=999"]);
    let line = assert_error(&output, 8);
    assert!(line.contains("Status 999 is outside 100-599"), "{line}");
    // The status page of something that is not php-fpm.
    let server = FakeServer::answer(b"Status: 999 Odd\r\nContent-Type: application/json\r\n\r\n{}", true);
    let output = run(fcgi().args(["status", "--socket"]).arg(&server.path));
    let line = assert_error(&output, 8);
    assert!(line.contains("Status 999 is outside 100-599"), "{line}");
}

#[test]
fn verbose_works_on_every_command() {
    let php = php();
    let socket = php.socket.to_str().unwrap();
    for (args, expected) in [
        (
            vec!["ping", "-v"],
            vec![
                "* server unix:",
                "* param SCRIPT_NAME=/ping",
                "-> FCGI_BEGIN_REQUEST",
                "<- FCGI_END_REQUEST",
            ],
        ),
        (vec!["status", "--verbose"], vec!["* param QUERY_STRING=json", "<- FCGI_STDOUT"]),
        (vec!["probe", "-v"], vec!["* server unix:", "-> FCGI_GET_VALUES ", "<- FCGI_GET_VALUES_RESULT"]),
        (vec!["dump", "/hello.php", "-v"], vec!["* param SCRIPT_FILENAME=", "* GET /hello.php"]),
        (
            vec!["bench", "/hello.php", "-n", "2", "-s", "-v"],
            vec!["* param SCRIPT_FILENAME=", "* server unix:"],
        ),
    ] {
        let mut cmd = fcgi();
        cmd.args(&args).args(["--socket", socket]).current_dir(&php.docroot);
        let output = run(&mut cmd);
        assert_code(&output, 0);
        let err = stderr(&output);
        for line in expected {
            assert!(err.contains(line), "{args:?}: {line:?} in:\n{err}");
        }
    }
    // Without -v the checks print nothing on stderr.
    let output = run(fcgi().args(["ping", "--socket", socket]));
    assert_eq!(stderr(&output), "");
}

/// The last line of standard output as JSON.
fn last_json_line(output: &std::process::Output) -> serde_json::Value {
    let text = stdout(output);
    let last = text.lines().last().unwrap_or_else(|| panic!("no output: {output:?}"));
    serde_json::from_str(last).unwrap_or_else(|err| panic!("invalid JSON ({err}): {last}"))
}

#[track_caller]
fn assert_error_document(doc: &serde_json::Value, exit: i32, kind: &str) {
    assert_eq!(doc["exit_code"], exit, "{doc}");
    assert_eq!(doc["error"]["exit_code"], exit, "{doc}");
    assert_eq!(doc["error"]["kind"], kind, "{doc}");
    let message = doc["error"]["message"].as_str().unwrap_or_else(|| panic!("a message: {doc}"));
    assert!(!message.is_empty() && !message.contains('\n'), "{doc}");
}

#[test]
fn every_command_fails_with_a_json_document_under_json() {
    let nowhere = "/nonexistent/php.sock";
    for (args, schema, exit, kind) in [
        (vec!["get", "/x", "--json", "--socket", nowhere], "fcgi.response/1", 7, "connect"),
        (vec!["ping", "--json"], "fcgi.ping/1", 2, "usage"),
        (vec!["status", "--json"], "fcgi.status/1", 2, "usage"),
        (vec!["probe", "--json", "--connect", "http://x:1"], "fcgi.probe/1", 2, "usage"),
        (vec!["bench", "/x", "--json", "-n", "1"], "fcgi.bench/1", 2, "usage"),
        (vec!["dump", "/x", "--json", "--socket", nowhere], "fcgi.error/1", 7, "connect"),
        // A command line that did not parse.
        (vec!["get", "/x", "--json", "--bogus"], "fcgi.response/1", 2, "usage"),
        (vec!["status", "--json", "--min-idle", "many"], "fcgi.status/1", 2, "usage"),
    ] {
        let output = run(fcgi().args(&args));
        assert_code(&output, exit);
        assert_eq!(stderr(&output), "", "{args:?}: --json: the error is in the document");
        let doc = json(&output);
        assert_eq!(doc["schema"], schema, "{args:?}");
        assert_error_document(&doc, exit, kind);
    }
    // The suggestion is in the document too.
    let doc = json(&run(fcgi().args(["get", "/x", "--json", "--hedaer", "a: b"])));
    assert!(doc["error"]["message"].as_str().unwrap().contains("did you mean '--header'?"), "{doc}");
}

#[test]
fn dump_json_ends_with_the_error_document() {
    // Records first, one object per line, then the failure as the last line.
    let server = FakeServer::answer(b"Status: 200\r\nContent-Type: text/plain\r\n\r\npartial", false);
    let output =
        run(fcgi().args(["dump", "/x.php", "--json", "--max-time", "500ms", "--socket"]).arg(&server.path));
    assert_code(&output, 56);
    assert_eq!(stderr(&output), "");
    let text = stdout(&output);
    assert!(text.lines().count() >= 3, "the records before the error: {text}");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|err| panic!("{err}: {line}"));
    }
    let doc = last_json_line(&output);
    assert_eq!(doc["schema"], "fcgi.error/1");
    assert_error_document(&doc, 56, "connection_lost");
    // A capture with a malformed record: the same, exit 8.
    let dir = temp_dir();
    let capture = dir.path().join("capture.bin");
    let mut bytes = record(6, 1, b"ok");
    bytes.extend_from_slice(&[2, 6, 0, 1, 0, 0, 0, 0]); // version 2
    std::fs::write(&capture, bytes).unwrap();
    let output = run(fcgi().args(["dump", "--json", "--input"]).arg(&capture));
    assert_code(&output, 8);
    let doc = last_json_line(&output);
    assert_error_document(&doc, 8, "protocol");
    assert!(doc["error"]["message"].as_str().unwrap().contains("malformed record at byte 10"), "{doc}");
}

#[test]
fn a_timeout_is_worded_one_way_whichever_step_and_command() {
    // A script still running, a server that never answers: the same sentence.
    let output = php_get(&["get", "/slow.php?ms=3000", "-m", "300ms"]);
    let line = assert_error(&output, 28);
    assert!(
        line.starts_with("fcgi: no complete response from unix:")
            && line.ends_with(" within 300 ms (--max-time)"),
        "{line}"
    );
    let server = FakeServer::silent();
    for args in [&["get", "/x.php"][..], &["dump", "/x.php"]] {
        let output = run(fcgi().args(args).args(["-m", "300ms", "--socket"]).arg(&server.path));
        let line = assert_error(&output, 28);
        assert!(
            line.ends_with(&format!(
                "no complete response from unix:{} within 300 ms (--max-time)",
                server.path.display()
            )),
            "{args:?}: {line}"
        );
    }
    let output = run(fcgi().args(["ping", "-m", "300ms", "--socket"]).arg(&server.path));
    let line = assert_error(&output, 28);
    assert!(line.ends_with("within 300 ms (--max-time)"), "{line}");
    // bench: the report names the address once; the error the same way without it.
    let output = php_get(&["bench", "/slow.php?ms=3000", "-n", "1", "-m", "300ms", "--json"]);
    let doc = json(&output);
    assert_eq!(doc["error_messages"]["timeout"], "no complete response within 300 ms (--max-time)", "{doc}");
}
