//! The exit-code table, code by code, and the one-line error rule: every error is a single
//! line on stderr starting with `fcgi: `, never a panic or a backtrace.

use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn exit_0_on_success_with_nothing_on_stderr() {
    let output = php_get(&["get", "/hello.php"]);
    assert_code(&output, 0);
    assert_eq!(stderr(&output), "");
}

#[test]
fn exit_4_on_http_4xx() {
    let output = php_get(&["get", "/status.php?code=404"]);
    let line = assert_error(&output, 4);
    assert_eq!(stdout(&output), "status 404", "the body is still printed");
    assert!(line.starts_with("fcgi: HTTP 404 Not Found from unix:"), "{line}");
    let output = php_get(&["get", "/status.php?code=403"]);
    assert_error(&output, 4);
    // php-fpm's own 404 comes with "Primary script unknown" on its STDERR stream, shown first.
    let output = php_get(&["get", "/no-such-script.php"]);
    assert_code(&output, 4);
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "fcgi: app stderr: Primary script unknown");
    assert!(lines[1].starts_with("fcgi: HTTP 404 Not Found from "), "{text}");
}

#[test]
fn exit_5_on_http_5xx() {
    let output = php_get(&["get", "/status.php?code=500"]);
    let line = assert_error(&output, 5);
    assert!(line.starts_with("fcgi: HTTP 500 Internal Server Error from "), "{line}");
    assert!(!line.contains("busy"), "{line}");
    let output = php_get(&["get", "/status.php?code=503"]);
    let line = assert_error(&output, 5);
    assert!(line.starts_with("fcgi: HTTP 503 Service Unavailable from "), "{line}");
    assert!(line.contains("busy"), "503 gets the busy note: {line}");
}

#[test]
fn a_script_dying_after_its_first_output_keeps_its_200() {
    let output = php_get(&["get", "/dies.php", "-s"]);
    // PHP has already sent "partial output" with status 200 when it dies: the status line
    // cannot change any more, so this is the body php-fpm sent and exit 0. The fatal error is
    // on STDERR.
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "partial output\n");
    let output = php_get(&["get", "/dies.php"]);
    assert!(stderr(&output).contains("Call to undefined function"), "{}", stderr(&output));
}

#[test]
fn no_fail_turns_http_errors_into_exit_0() {
    for code in ["404", "500", "503"] {
        let output = php_get(&["get", &format!("/status.php?code={code}"), "--no-fail"]);
        assert_code(&output, 0);
        assert_eq!(stdout(&output), format!("status {code}"));
        assert_eq!(stderr(&output), "", "--no-fail: nothing to report");
    }
}

#[test]
fn exit_2_on_bad_command_lines() {
    let php = php();
    let cases: Vec<Vec<&str>> = vec![
        vec!["get", "/hello.php", "--bogus"],
        vec!["frobnicate"],
        vec!["get"],
        vec!["get", "/hello.php", "--max-time", "5h"],
        vec!["get", "/hello.php", "--max-time", "0"],
        vec!["get", "/hello.php", "--connect-timeout", "soon"],
        vec!["dump"],
        vec!["dump", "/hello.php", "--input", "capture.bin"],
        vec!["completions", "tcsh"],
        vec!["status", "--min-idle", "many"],
    ];
    for args in cases {
        let output = run(fcgi().args(&args).current_dir(&php.docroot));
        let line = assert_error(&output, 2);
        assert!(!line.contains("Usage:"), "{args:?}: {line}");
        assert_eq!(stdout(&output), "", "{args:?}");
    }
    // With --json the same error is a document on stdout (tests/it/messages.rs).
    let output = run(fcgi().args(["get", "/hello.php", "--json", "-o", "x.json"]).current_dir(&php.docroot));
    assert_code(&output, 2);
    assert_eq!(json(&output)["error"]["kind"], "usage");
    // --socket and --connect together.
    let output =
        run(fcgi().args(["get", "/hello.php", "--connect", "127.0.0.1:9000", "--socket"]).arg(&php.socket));
    let line = assert_error(&output, 2);
    assert!(line.contains("--socket") && line.contains("--connect"), "{line}");
}

#[test]
fn exit_2_without_a_target() {
    let output = run(fcgi().args(["get", "/hello.php"]));
    let line = assert_error(&output, 2);
    assert!(line.contains("--socket") && line.contains("FCGI_ADDRESS"), "{line}");
    for bad in ["no-port-here", "tcp://", "unix:"] {
        let output = run(fcgi().args(["get", "/hello.php"]).env("FCGI_ADDRESS", bad));
        assert_error(&output, 2);
    }
}

#[test]
fn exit_2_on_paths_that_cannot_be_sent() {
    for path in ["hello.php", "", "/../etc/passwd", "/a/../../etc/passwd", "/%2e%2e/etc/passwd", "/x%00.php"]
    {
        let output = php_get(&["get", path]);
        let line = assert_error(&output, 2);
        assert_eq!(stdout(&output), "", "{path:?}: nothing was sent");
        if path == "hello.php" {
            assert!(line.contains("must start with '/'"), "{line}");
        }
        if path == "/../etc/passwd" {
            assert!(line.contains("document root"), "{line}");
        }
    }
}

#[test]
fn exit_6_when_the_host_does_not_resolve() {
    let output = run(fcgi().args(["get", "/hello.php", "--connect", "no-such-host.invalid:9000"]));
    let line = assert_error(&output, 6);
    assert!(line.contains("no-such-host.invalid"), "{line}");
}

#[test]
fn exit_7_when_the_connection_is_refused() {
    let address = format!("127.0.0.1:{}", closed_port());
    let output = run(fcgi().args(["get", "/hello.php", "--connect", &address]));
    let line = assert_error(&output, 7);
    assert!(line.contains(&address) && line.contains("refused"), "{line}");
    // The cause is said once ("refused: refused" was a bug).
    assert_eq!(line.matches("refused").count(), 1, "{line}");
    assert!(line.ends_with("connection refused: nothing listens on that port"), "{line}");
}

#[test]
fn exit_7_when_the_socket_does_not_exist() {
    let dir = temp_dir();
    let missing = dir.path().join("missing.sock");
    let output = run(fcgi().args(["get", "/hello.php", "--socket"]).arg(&missing));
    let line = assert_error(&output, 7);
    assert!(line.contains(missing.to_str().unwrap()), "{line}");
    assert!(line.ends_with(": no such socket"), "{line}");
}

#[test]
fn exit_7_when_the_socket_is_not_accessible() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    // Root bypasses file permissions, so under root `fcgi` runs as nobody (65534), the way a
    // monitoring agent would; otherwise it runs as the current user. Either way the same
    // command is first shown to connect when the socket is accessible, so this test fails
    // if permissions do not matter.
    let server = FakeServer::end_with(2); // answers OVERLOADED: exit 9 once connected
    std::fs::set_permissions(server.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // nobody may not reach the build directory (a checkout under /root): run a copy.
    let bin = server.dir.path().join("fcgi");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let command = || {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(["get", "/x.php", "--docroot", "/", "--socket"])
            .arg(&server.path)
            .current_dir("/")
            .env_remove("FCGI_ADDRESS")
            .env_remove("FCGI_DOCROOT");
        if running_as_root() {
            cmd.uid(65534).gid(65534);
        }
        assert_cmd::Command::from_std(cmd)
    };

    // A fresh copy can be "busy" (ETXTBSY) for a moment while another test thread forks.
    let run_copy = || {
        for _ in 0..50 {
            match command().timeout(RUN_LIMIT).output() {
                Err(err) if err.to_string().contains("Text file busy") => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                result => return result.expect("run the copy of fcgi"),
            }
        }
        panic!("the copy of fcgi stayed busy");
    };

    std::fs::set_permissions(&server.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = run_copy();
    assert_error(&output, 9);

    std::fs::set_permissions(&server.path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let output = run_copy();
    let line = assert_error(&output, 7);
    assert!(line.contains("permission denied (the socket's mode"), "{line}");
}

#[test]
fn exit_8_when_the_server_does_not_speak_fastcgi() {
    let server = FakeServer::http();
    let output = run(fcgi().args(["get", "/x.php", "--socket"]).arg(&server.path));
    let line = assert_error(&output, 8);
    assert!(line.contains("version byte is 72"), "the reason is named: {line}");
    assert_eq!(stdout(&output), "");
}

#[test]
fn exit_8_on_a_malformed_cgi_response() {
    // A header line without a colon.
    let server = FakeServer::answer(b"Content-Type: text/plain\r\nthis is not a header\r\n\r\nbody", true);
    let output = run(fcgi().args(["get", "/x.php", "--socket"]).arg(&server.path));
    let line = assert_error(&output, 8);
    assert!(line.contains("CGI"), "{line}");
}

#[test]
fn exit_9_when_the_server_is_overloaded() {
    let server = FakeServer::end_with(2);
    let output = run(fcgi().args(["get", "/x.php", "--socket"]).arg(&server.path));
    let line = assert_error(&output, 9);
    assert!(line.contains("OVERLOADED"), "{line}");
    let server = FakeServer::end_with(3);
    let output = run(fcgi().args(["get", "/x.php", "--socket"]).arg(&server.path));
    let line = assert_error(&output, 9);
    assert!(line.contains("UNKNOWN_ROLE"), "{line}");
}

#[test]
fn exit_23_when_the_output_cannot_be_written() {
    let dir = temp_dir();
    let target = dir.path().join("no-such-dir").join("out.txt");
    let output = php_get(&["get", "/hello.php", "-o", target.to_str().unwrap()]);
    let line = assert_error(&output, 23);
    assert!(line.contains(target.to_str().unwrap()), "{line}");
    assert!(!line.contains(".part"), "the message names the destination, not a temp file: {line}");
    assert!(!dir.path().join("no-such-dir").exists());
    // A directory as the destination.
    let output = php_get(&["get", "/hello.php", "-o", dir.path().to_str().unwrap()]);
    let line = assert_error(&output, 23);
    assert!(line.contains("directory"), "{line}");
}

#[test]
fn exit_23_when_stdout_is_full() {
    // /dev/full fails every write with ENOSPC.
    let php = php();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let mut cmd = std_fcgi();
    cmd.args(["get", "/hello.php", "--socket"]).arg(&php.socket).current_dir(&php.docroot).stdout(full);
    let output = run_std(&mut cmd);
    let line = assert_error(&output, 23);
    assert!(line.contains("standard output"), "{line}");
}

#[test]
fn exit_26_when_an_input_file_cannot_be_read() {
    let output = php_get(&["post", "/echo.php", "-d", "@/nonexistent/form.txt"]);
    let line = assert_error(&output, 26);
    assert!(line.contains("/nonexistent/form.txt"), "{line}");
    let output = php_get(&["post", "/echo.php", "--data-binary", "@/nonexistent/body.bin"]);
    assert_error(&output, 26);
    let dir = temp_dir();
    let output = php_get(&["post", "/echo.php", "--data-binary", &format!("@{}", dir.path().display())]);
    assert_error(&output, 26);
}

#[test]
fn exit_28_when_the_script_is_slower_than_max_time() {
    let started = Instant::now();
    let output = php_get(&["get", "/slow.php?ms=6000", "--max-time", "500ms"]);
    let line = assert_error(&output, 28);
    // Well under the script's 6 s: fcgi stopped waiting (the margin is for loaded machines).
    assert!(started.elapsed() < Duration::from_millis(4500), "took {:?}", started.elapsed());
    assert!(line.contains("500 ms"), "{line}");
    // Within the limit it succeeds.
    let output = php_get(&["get", "/slow.php?ms=100", "--max-time", "5s"]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "slept 100");
}

#[test]
fn exit_28_when_the_server_never_answers() {
    let server = FakeServer::silent();
    let started = Instant::now();
    let output = run(fcgi().args(["get", "/x.php", "--max-time", "1s", "--socket"]).arg(&server.path));
    assert_error(&output, 28);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn exit_56_when_the_server_closes_without_answering() {
    let server = FakeServer::close_after_request();
    let output = run(fcgi().args(["get", "/x.php", "--socket"]).arg(&server.path));
    let line = assert_error(&output, 56);
    assert!(line.contains("closed the connection"), "{line}");
}

#[test]
fn exit_56_when_the_server_closes_mid_body() {
    let server = FakeServer::answer(b"Content-Type: text/plain\r\n\r\npartial", false);
    let output = run(fcgi().args(["get", "/x.php", "--socket"]).arg(&server.path));
    assert_error(&output, 56);
}

#[test]
fn exit_1_when_the_current_directory_is_gone() {
    // Without --docroot the docroot is the current directory: when that was removed the
    // request cannot be built, an environment problem (1).
    let php = php();
    let dir = temp_dir();
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let output = run(assert_cmd::Command::new("sh")
        .args(["-c", r#"cd "$1" && rmdir "$1" && exec "$2" get /hello.php --socket "$3""#, "sh"])
        .arg(&gone)
        .arg(BIN)
        .arg(&php.socket)
        .env_remove("FCGI_DOCROOT"));
    let line = assert_error(&output, 1);
    assert!(line.contains("current directory"), "{line}");
}

#[test]
fn json_errors_carry_kind_and_exit_code() {
    let http = FakeServer::http();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec!["--connect".into(), format!("127.0.0.1:{}", closed_port())], 7, "connect"),
        (vec!["--connect".into(), "no-such-host.invalid:9000".into()], 6, "resolve"),
        (vec!["--socket".into(), http.path.to_str().unwrap().into()], 8, "protocol"),
    ];
    for (target, exit, kind) in cases {
        let output = run(fcgi().args(["get", "/x.php", "--json"]).args(&target));
        assert_code(&output, exit);
        assert_eq!(stderr(&output), "", "--json: the error is in the document");
        let doc = json(&output);
        assert_eq!(doc["schema"], "fcgi.response/1");
        assert_eq!(doc["path"], "/x.php");
        assert_eq!(doc["error"]["kind"], kind, "{doc}");
        assert_eq!(doc["error"]["exit_code"], exit, "{doc}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty() && !message.contains('\n'), "{doc}");
    }
    let output = php_get(&["get", "/slow.php?ms=3000", "--json", "--max-time", "300ms"]);
    assert_code(&output, 28);
    assert_eq!(json(&output)["error"]["kind"], "timeout");
    let output = php_get(&["get", "/../etc/passwd", "--json"]);
    assert_code(&output, 2);
    assert_eq!(json(&output)["error"]["kind"], "usage");
    let server = FakeServer::end_with(2);
    let output = run(fcgi().args(["get", "/x.php", "--json", "--socket"]).arg(&server.path));
    assert_code(&output, 9);
    assert_eq!(json(&output)["error"]["kind"], "fastcgi_status");
    let server = FakeServer::close_after_request();
    let output = run(fcgi().args(["get", "/x.php", "--json", "--socket"]).arg(&server.path));
    assert_code(&output, 56);
    assert_eq!(json(&output)["error"]["kind"], "connection_lost");
}

#[test]
fn help_lists_every_exit_code() {
    let output = run(fcgi().arg("--help"));
    assert_code(&output, 0);
    let text = stdout(&output);
    for code in [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 23, 26, 28, 56] {
        assert!(
            text.lines().any(|line| line.trim_start().starts_with(&format!("{code}  "))),
            "exit code {code} in --help:\n{text}"
        );
    }
    assert!(text.contains("FCGI_ADDRESS") && text.contains("FCGI_DOCROOT"), "{text}");
}

/// A reason phrase with a C1 CSI (U+009B), U+202E (right-to-left override), a TAB and 60 KB.
fn hostile_reason() -> String {
    format!("Not \u{9b}2J\u{202e}Found\there{}", "x".repeat(60_000))
}

#[test]
fn the_http_error_line_escapes_and_cuts_the_reason_phrase() {
    let head = format!("Status: 404 {}\r\nContent-Type: text/plain\r\n\r\nnope", hostile_reason());
    let server = FakeServer::answer(Box::leak(head.into_bytes().into_boxed_slice()), true);
    let output = run(fcgi().args(["get", "/x.php", "--socket"]).arg(&server.path));
    let line = assert_error(&output, 4);
    assert!(
        line.starts_with("fcgi: HTTP 404 Not \\u{9b}2J\\u{202e}Found\\there"),
        "{}",
        &line[..line.len().min(200)]
    );
    // 256 bytes of reason, the address and the document-root hint.
    assert!(line.len() < 600, "a short line, not {} bytes", line.len());
    assert!(
        line.contains(&format!("…({} more bytes) from unix:", hostile_reason().len() - 256)),
        "{}",
        &line[..line.len().min(400)]
    );
    for bad in ['\u{9b}', '\u{202e}', '\t', '\u{1b}'] {
        assert!(!line.contains(bad), "{bad:?} reached the terminal");
    }

    // --json carries the reason losslessly: JSON's own escapes only.
    let output = run(fcgi().args(["get", "/x.php", "--json", "--socket"]).arg(&server.path));
    assert_code(&output, 4);
    assert_eq!(json(&output)["reason"], hostile_reason());
}

#[test]
fn app_stderr_escapes_the_backslash() {
    // STDERR holds a real line feed and, on the second line, the two characters `\` `n`.
    let mut stderr_records = record(7, 1, b"first\nsecond \\n not a line feed\x1b[2J\n");
    stderr_records.extend_from_slice(&record(STDOUT, 1, b"Content-Type: text/plain\r\n\r\nok"));
    stderr_records.extend_from_slice(&end_request(1, 0, 0));
    let server = FakeServer::start(move |mut stream| {
        use std::io::Write;
        read_request(&mut stream);
        let _ = stream.write_all(&stderr_records);
        drain(&mut stream);
    });
    let output = run(fcgi().args(["get", "/x.php", "--socket"]).arg(&server.path));
    assert_code(&output, 0);
    assert_eq!(
        stderr(&output),
        "fcgi: app stderr: first\nfcgi: app stderr: second \\\\n not a line feed\\u{1b}[2J\n"
    );
}
