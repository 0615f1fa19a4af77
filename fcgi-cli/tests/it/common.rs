//! Shared helpers of the `fcgi` CLI tests: running the binary, checking its error lines, and
//! small fake FastCGI servers (plain std listeners in threads) for the faults php-fpm never
//! produces.
//!
//! Tests that need php-fpm call [`php()`], which panics when the harness did not start it
//! (`cargo xtask test`, or the exports of `cargo xtask backends`): they never skip.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

pub use fcgi_tests::backends::PhpFpm;

/// The `fcgi` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fcgi");

/// Longest any single `fcgi` run may take before the test fails (nothing may hang).
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The php-fpm started by the harness (panics when it was not started).
pub fn php() -> PhpFpm {
    fcgi_tests::backends::php_fpm()
}

/// `fcgi` with a clean environment for its own variables, run from `cwd`-independent
/// defaults: `FCGI_ADDRESS` and `FCGI_DOCROOT` removed, backtraces on (so a panic would show).
pub fn fcgi() -> assert_cmd::Command {
    assert_cmd::Command::from_std(std_fcgi())
}

/// The same as [`fcgi`], as a `std::process::Command`.
pub fn std_fcgi() -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    cmd.env_remove("FCGI_ADDRESS").env_remove("FCGI_DOCROOT").env("RUST_BACKTRACE", "1");
    // php-fpm-healthcheck's names, honoured for compatibility.
    cmd.env_remove("FCGI_CONNECT").env_remove("FCGI_STATUS_PATH");
    cmd
}

/// Runs `cmd` (bounded by [`RUN_LIMIT`]) and returns its output, whatever the exit code.
pub fn run(cmd: &mut assert_cmd::Command) -> Output {
    cmd.timeout(RUN_LIMIT).output().expect("run fcgi")
}

/// Runs a `std::process::Command` whose stdout the caller already set (assert_cmd would
/// replace it with a pipe), capturing stderr; killed after [`RUN_LIMIT`].
pub fn run_std(cmd: &mut std::process::Command) -> Output {
    let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().expect("spawn fcgi");
    let stderr_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut pipe = stderr_pipe;
        let _ = pipe.read_to_end(&mut text);
        text
    });
    let status = wait_bounded(&mut child);
    Output { status, stdout: Vec::new(), stderr: reader.join().expect("stderr reader") }
}

/// Waits for `child`, killing it (and failing) after [`RUN_LIMIT`].
pub fn wait_bounded(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + RUN_LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("fcgi did not exit within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `fcgi ARGS --socket <php-fpm socket>` from the docroot.
pub fn php_get(args: &[&str]) -> Output {
    let php = php();
    let mut cmd = fcgi();
    cmd.args(args).arg("--socket").arg(&php.socket).current_dir(&php.docroot);
    run(&mut cmd)
}

/// The exit code (panics when killed by a signal).
pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or_else(|| panic!("fcgi was killed: {output:?}"))
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, showing everything when it differs.
#[track_caller]
pub fn assert_code(output: &Output, expected: i32) {
    assert_eq!(
        code(output),
        expected,
        "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

/// Asserts that stderr holds exactly one line, starting with `fcgi: `, with no panic or
/// backtrace text, and returns that line.
#[track_caller]
pub fn one_error_line(output: &Output) -> String {
    let text = stderr(output);
    assert_no_panic(&text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one line on stderr, got: {text:?}");
    assert!(text.ends_with('\n'), "the error line ends with a newline: {text:?}");
    assert!(lines[0].starts_with("fcgi: "), "the error starts with 'fcgi: ': {text:?}");
    lines[0].to_string()
}

/// Asserts the exit code and that stderr is one `fcgi: ` line; returns the line.
#[track_caller]
pub fn assert_error(output: &Output, expected: i32) -> String {
    assert_code(output, expected);
    one_error_line(output)
}

/// No panic message, no backtrace hint.
#[track_caller]
pub fn assert_no_panic(text: &str) {
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!text.contains(bad), "{bad:?} in output: {text}");
    }
}

/// Parses standard output as one JSON document.
#[track_caller]
pub fn json(output: &Output) -> serde_json::Value {
    let text = stdout(output);
    assert_eq!(text.lines().count(), 1, "one JSON document on one line: {text:?}");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("invalid JSON ({err}): {text}"))
}

/// A fresh temporary directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fcgi-cli-test-").tempdir().expect("temp dir")
}

/// Names in `dir` that look like the CLI's temporary output files (`.fcgi-*.part`).
pub fn part_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".fcgi-") || name.ends_with(".part"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Records, by hand (the fake servers must not depend on the code under test).

/// FCGI_STDOUT.
pub const STDOUT: u8 = 6;
/// FCGI_END_REQUEST.
pub const END_REQUEST: u8 = 3;
/// FCGI_STDIN.
pub const STDIN: u8 = 5;
/// FCGI_GET_VALUES.
pub const GET_VALUES: u8 = 9;

/// One record: version 1, `kind`, request id `id`, no padding.
pub fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("content fits one record");
    let mut bytes = vec![1, kind];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(content);
    bytes
}

/// FCGI_END_REQUEST with `app_status` and `protocol_status` (0 complete, 1 cant-mpx,
/// 2 overloaded, 3 unknown role).
pub fn end_request(id: u16, app_status: u32, protocol_status: u8) -> Vec<u8> {
    let mut content = app_status.to_be_bytes().to_vec();
    content.extend_from_slice(&[protocol_status, 0, 0, 0]);
    record(END_REQUEST, id, &content)
}

/// The types of the records a client sent, read until its empty FCGI_STDIN (a whole
/// request), a FCGI_GET_VALUES, EOF, or 10 s.
pub fn read_request(stream: &mut UnixStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    let mut buffer = Vec::new();
    let mut types = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut at = 0;
        types.clear();
        while buffer.len() >= at + 8 {
            let kind = buffer[at + 1];
            let len = usize::from(u16::from_be_bytes([buffer[at + 4], buffer[at + 5]]));
            let total = 8 + len + usize::from(buffer[at + 6]);
            if buffer.len() < at + total {
                break;
            }
            types.push(kind);
            if (kind == STDIN && len == 0) || kind == GET_VALUES {
                return types;
            }
            at += total;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return types,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads until the peer closes (or 10 s), so that closing our side sends FIN, not RST.
pub fn drain(stream: &mut UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut chunk = [0u8; 16 * 1024];
    while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
}

// ---------------------------------------------------------------------------------------
// Fake servers.

/// A unix-socket server in a temporary directory; every connection is handled by
/// `behaviour` on its own thread. The listener thread outlives the test harmlessly.
pub struct FakeServer {
    /// The socket's path.
    pub path: PathBuf,
    /// Keeps the directory (and the socket) alive.
    pub dir: tempfile::TempDir,
}

impl FakeServer {
    /// Starts a server answering every connection with `behaviour`.
    pub fn start(behaviour: impl Fn(UnixStream) + Send + Sync + 'static) -> FakeServer {
        let dir = temp_dir();
        let path = dir.path().join("fake.sock");
        let listener = UnixListener::bind(&path).expect("bind fake server");
        let behaviour = Arc::new(behaviour);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let behaviour = Arc::clone(&behaviour);
                std::thread::spawn(move || behaviour(stream));
            }
        });
        FakeServer { path, dir }
    }

    /// Answers anything with an HTTP error: not FastCGI at all.
    pub fn http() -> FakeServer {
        FakeServer::start(|mut stream| {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = stream.read(&mut [0u8; 4096]);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            let _ = stream.shutdown(Shutdown::Write);
            drain(&mut stream);
        })
    }

    /// Accepts and never says anything (a stuck backend); holds the connection until the
    /// client closes it.
    pub fn silent() -> FakeServer {
        FakeServer::start(|mut stream| drain(&mut stream))
    }

    /// Accepts and closes at once.
    pub fn closing() -> FakeServer {
        FakeServer::start(drop)
    }

    /// Reads the whole request, then closes without answering.
    pub fn close_after_request() -> FakeServer {
        FakeServer::start(|mut stream| {
            read_request(&mut stream);
        })
    }

    /// Reads the request and answers END_REQUEST with `protocol_status`, nothing else.
    pub fn end_with(protocol_status: u8) -> FakeServer {
        FakeServer::start(move |mut stream| {
            read_request(&mut stream);
            let _ = stream.write_all(&end_request(1, 0, protocol_status));
            drain(&mut stream);
        })
    }

    /// Reads the request and answers `stdout` (already split into records or not) followed
    /// by END_REQUEST when `end` is set; otherwise closes after the STDOUT bytes.
    pub fn answer(stdout: &'static [u8], end: bool) -> FakeServer {
        FakeServer::start(move |mut stream| {
            read_request(&mut stream);
            let mut reply = record(STDOUT, 1, stdout);
            if end {
                reply.extend_from_slice(&end_request(1, 0, 0));
            }
            let _ = stream.write_all(&reply);
            if end {
                drain(&mut stream);
            }
        })
    }
}

/// A TCP port on 127.0.0.1 on which nothing listens (bound, then closed).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}

/// True when the tests run as root (file permissions do not apply to root).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").expect("/proc/self").uid() == 0
}

/// A self-signed certificate for localhost and 127.0.0.1 and its key, made by openssl in `dir`:
/// (cert, key). For the TLS tests of `serve` and `exporter`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let output = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (the Debian package openssl) to make a test certificate");
    assert!(output.status.success(), "openssl: {}", String::from_utf8_lossy(&output.stderr));
    (cert, key)
}

/// `promtool check metrics` on `text`: its exit code and its report lines.
pub fn promtool(text: &str) -> (i32, Vec<String>) {
    use std::process::{Command, Stdio};
    let prometheus = fcgi_tests::backends::prometheus();
    let mut child = Command::new(&prometheus.promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let report =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), report.lines().map(str::to_string).collect())
}
