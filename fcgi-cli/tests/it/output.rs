//! Where the body goes: `--json`, `-o FILE` (atomic for regular files, direct for devices
//! and FIFOs), and standard output closed early by its reader.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::common::*;

#[test]
fn json_describes_the_whole_response() {
    let output = php_get(&["get", "/stderr.php?msg=to%20stderr", "--json"]);
    assert_code(&output, 0);
    assert_eq!(stderr(&output), "", "--json: app stderr is in the document");
    let doc = json(&output);
    let php = php();
    assert_eq!(doc["schema"], "fcgi.response/1");
    assert_eq!(doc["address"], format!("unix:{}", php.socket.display()));
    assert_eq!(doc["path"], "/stderr.php?msg=to%20stderr");
    assert_eq!(doc["status"], 200);
    assert_eq!(doc["reason"], "OK");
    assert_eq!(doc["body"], "body");
    assert_eq!(doc["body_encoding"], "utf-8");
    assert_eq!(doc["body_bytes"], 4);
    assert!(doc["stderr"].as_str().unwrap().contains("to stderr"), "{doc}");
    assert_eq!(doc["stderr_dropped_bytes"], 0);
    assert_eq!(doc["app_status"], 0);
    assert_eq!(doc["protocol_status"], "FCGI_REQUEST_COMPLETE");
    assert_eq!(doc["exit_code"], 0);
    let headers = doc["headers"].as_array().unwrap();
    assert!(
        headers.iter().any(|h| h[0] == "content-type" && h[1] == "text/plain;charset=UTF-8"),
        "headers are [name, value] pairs: {doc}"
    );
    for key in ["connect_ms", "first_byte_ms", "total_ms"] {
        let ms = doc["timings"][key].as_f64().unwrap_or_else(|| panic!("timings.{key}: {doc}"));
        assert!((0.0..60_000.0).contains(&ms), "{key} = {ms}");
    }
    let timings = &doc["timings"];
    assert!(timings["connect_ms"].as_f64() <= timings["first_byte_ms"].as_f64());
    assert!(timings["first_byte_ms"].as_f64() <= timings["total_ms"].as_f64());
    let mut keys: Vec<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = vec![
        "address",
        "app_status",
        "body",
        "body_bytes",
        "body_encoding",
        "exit_code",
        "headers",
        "path",
        "protocol_status",
        "reason",
        "schema",
        "status",
        "stderr",
        "stderr_dropped_bytes",
        "timings",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected, "the documented keys, no more, no less");
}

#[test]
fn json_keeps_repeated_headers() {
    let output = php_get(&["get", "/headers.php", "--json"]);
    let doc = json(&output);
    let cookies: Vec<&str> = doc["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == "set-cookie")
        .map(|h| h[1].as_str().unwrap())
        .collect();
    assert_eq!(cookies, ["a=1; path=/", "b=2; path=/"]);
}

#[test]
fn json_body_is_base64_when_not_utf8() {
    let dir = temp_dir();
    let file = dir.path().join("bin");
    std::fs::write(&file, [0xff, 0x00, 0x80]).unwrap();
    let output = php_get(&["post", "/echo.php", "--json", "--data-binary", &format!("@{}", file.display())]);
    assert_code(&output, 0);
    let doc = json(&output);
    assert_eq!(doc["body_encoding"], "base64");
    assert_eq!(doc["body"], "/wCA");
    assert_eq!(doc["body_bytes"], 3);
    // A large ASCII body stays text.
    let output = php_get(&["get", "/big.php?bytes=100000", "--json"]);
    let doc = json(&output);
    assert_eq!(doc["body_encoding"], "utf-8");
    assert_eq!(doc["body_bytes"], 100_000);
    assert!(doc["body"].as_str().unwrap().starts_with("0123456789ABCDEF"));
}

#[test]
fn json_reports_http_errors_with_their_exit_code() {
    let output = php_get(&["get", "/status.php?code=503", "--json"]);
    assert_code(&output, 5);
    assert_eq!(stderr(&output), "");
    let doc = json(&output);
    assert_eq!(doc["status"], 503);
    assert_eq!(doc["exit_code"], 5);
    assert_eq!(doc["body"], "status 503");
    assert!(doc.get("error").is_none());
    let output = php_get(&["get", "/status.php?code=503", "--json", "--no-fail"]);
    assert_code(&output, 0);
    assert_eq!(json(&output)["exit_code"], 0);
}

#[test]
fn json_of_a_head_request_has_an_empty_body() {
    let output = php_get(&["get", "/hello.php", "-I", "--json"]);
    assert_code(&output, 0);
    let doc = json(&output);
    assert_eq!(doc["body"], "");
    assert_eq!(doc["body_bytes"], 0);
    assert_eq!(doc["status"], 200);
}

#[test]
fn output_file_receives_the_body() {
    let dir = temp_dir();
    let file = dir.path().join("body.txt");
    let output = php_get(&["get", "/hello.php", "-o", file.to_str().unwrap()]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "", "the body went to the file");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "Hello, world!");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644);
    assert!(part_files(dir.path()).is_empty(), "{:?}", part_files(dir.path()));

    // -i goes to the file too; an existing file's permissions are kept.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = php_get(&["get", "/hello.php", "-i", "--output", file.to_str().unwrap()]);
    assert_code(&output, 0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\nHello, world!"), "{text:?}");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    // A large body arrives whole.
    let output = php_get(&["get", "/big.php?bytes=3000000", "-o", file.to_str().unwrap()]);
    assert_code(&output, 0);
    let body = std::fs::read(&file).unwrap();
    assert_eq!(body.len(), 3_000_000);
    let pattern = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/";
    assert!(body.iter().enumerate().all(|(i, b)| *b == pattern[i % 64]), "the big.php pattern");
    assert!(part_files(dir.path()).is_empty());
}

#[test]
fn output_relative_to_the_current_directory() {
    let php = php();
    let dir = temp_dir();
    let output = run(fcgi()
        .args(["get", "/hello.php", "-o", "out.txt", "--socket"])
        .arg(&php.socket)
        .arg("--docroot")
        .arg(&php.docroot)
        .current_dir(dir.path()));
    assert_code(&output, 0);
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).unwrap(), "Hello, world!");
    assert!(part_files(dir.path()).is_empty());
}

#[test]
fn output_dash_is_stdout() {
    let output = php_get(&["get", "/hello.php", "-o", "-"]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "Hello, world!");
}

#[test]
fn an_error_mid_body_leaves_no_file_behind() {
    // The server sends the head and part of the body, then closes.
    let server = FakeServer::answer(b"Content-Type: text/plain\r\n\r\npartial body", false);
    let dir = temp_dir();
    let file = dir.path().join("out.txt");
    let output = run(fcgi().args(["get", "/x.php", "-o"]).arg(&file).arg("--socket").arg(&server.path));
    assert_error(&output, 56);
    assert!(!file.exists(), "no half-written destination");
    assert!(part_files(dir.path()).is_empty(), "no temp file left: {:?}", part_files(dir.path()));

    // An existing destination keeps its content.
    std::fs::write(&file, "old content").unwrap();
    let output = run(fcgi().args(["get", "/x.php", "-o"]).arg(&file).arg("--socket").arg(&server.path));
    assert_error(&output, 56);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "old content");
    assert!(part_files(dir.path()).is_empty(), "{:?}", part_files(dir.path()));
}

#[test]
fn max_time_mid_body_leaves_the_old_file() {
    // php-fpm streams 1 GB: --max-time expires while the body is being written.
    let dir = temp_dir();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, "old content").unwrap();
    let output =
        php_get(&["get", "/big.php?bytes=1000000000", "--max-time", "300ms", "-o", file.to_str().unwrap()]);
    assert_error(&output, 28);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "old content");
    assert!(part_files(dir.path()).is_empty(), "{:?}", part_files(dir.path()));
}

#[test]
fn an_http_error_still_writes_the_body() {
    // The response was complete: the file holds it, the exit code says 4.
    let dir = temp_dir();
    let file = dir.path().join("out.txt");
    let output = php_get(&["get", "/status.php?code=404", "-o", file.to_str().unwrap()]);
    assert_error(&output, 4);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "status 404");
}

#[test]
fn output_through_a_symlink_replaces_the_target_not_the_link() {
    let dir = temp_dir();
    let target = dir.path().join("target.txt");
    let link = dir.path().join("link.txt");
    std::fs::write(&target, "old").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let output = php_get(&["get", "/hello.php", "-o", link.to_str().unwrap()]);
    assert_code(&output, 0);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "Hello, world!");
    assert!(part_files(dir.path()).is_empty());
}

#[test]
fn dev_null_is_written_in_place() {
    // Renaming a temp file over /dev/null (as root) would replace the device: it must be
    // opened and written directly.
    let output = php_get(&["get", "/big.php?bytes=200000", "-o", "/dev/null"]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "");
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device(), "/dev/null is still a character device");
    assert!(part_files(std::path::Path::new("/dev")).is_empty(), "no temp file in /dev");
}

#[test]
fn a_fifo_is_written_directly() {
    let dir = temp_dir();
    let fifo = dir.path().join("pipe");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let (done, result) = std::sync::mpsc::channel();
    let reader_path = fifo.clone();
    std::thread::spawn(move || {
        let mut data = Vec::new();
        let read = std::fs::File::open(&reader_path).and_then(|mut f| f.read_to_end(&mut data));
        let _ = done.send(read.map(|_| data));
    });
    let output = php_get(&["get", "/big.php?bytes=300000", "-o", fifo.to_str().unwrap()]);
    assert_code(&output, 0);
    let data = result.recv_timeout(Duration::from_secs(20)).expect("the reader got EOF").expect("read fifo");
    assert_eq!(data.len(), 300_000);
    assert!(data.starts_with(b"0123456789ABCDEF"));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is still a FIFO");
    assert!(part_files(dir.path()).is_empty(), "{:?}", part_files(dir.path()));
}

#[test]
fn a_reader_closing_stdout_early_is_not_an_error() {
    // `fcgi get /big | head -c 16`: the reader goes away, fcgi stops quietly with 0.
    let php = php();
    let mut child = std_fcgi()
        .args(["get", "/big.php?bytes=50000000", "--socket"])
        .arg(&php.socket)
        .current_dir(&php.docroot)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fcgi");
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"0123456789ABCDEF");
    drop(out);
    let started = std::time::Instant::now();
    let status = wait_bounded(&mut child);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert_eq!(err, "", "no error message");
    assert!(started.elapsed() < Duration::from_secs(10), "it stopped instead of reading 50 MB");
}

#[test]
fn stdout_closed_early_with_include_and_json_too() {
    let php = php();
    // 20 MB: more than --json keeps by default (16 MiB), so --json raises the limit.
    for extra in [&["-i"][..], &["--json", "--max-filesize", "32M"]] {
        let mut child = std_fcgi()
            .args(["get", "/big.php?bytes=20000000", "--socket"])
            .arg(&php.socket)
            .args(extra)
            .current_dir(&php.docroot)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fcgi");
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 4];
        out.read_exact(&mut first).unwrap();
        drop(out);
        let status = wait_bounded(&mut child);
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(0), "{extra:?}: {err}");
        assert_eq!(err, "", "{extra:?}");
    }
}

/// `fcgi` started with some of descriptors 0, 1 and 2 closed (`>&-` in a shell). They are
/// reopened on /dev/null first: otherwise the first socket or file `fcgi` opens takes the closed
/// descriptor's number, and the body is written into it.
fn with_closed_descriptors(redirections: &str, args: &[&str]) -> Output {
    let php = php();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec \"$0\" \"$@\" {redirections}"))
        .arg(BIN)
        .args(args)
        .arg("--socket")
        .arg(&php.socket)
        .current_dir(&php.docroot)
        .env_remove("FCGI_ADDRESS")
        .env_remove("FCGI_DOCROOT")
        .stdout(Stdio::null());
    run_std(&mut cmd)
}

#[test]
fn a_closed_stdout_is_not_confused_with_a_socket() {
    let output = with_closed_descriptors(">&-", &["get", "/hello.php"]);
    assert_code(&output, 0);
    assert_eq!(stderr(&output), "", "the body went to /dev/null, not into a socket");
}

#[test]
fn closed_stdin_and_stdout_are_not_confused_with_sockets() {
    for args in [&["get", "/hello.php"][..], &["ping"], &["probe"]] {
        let output = with_closed_descriptors("<&- >&-", args);
        assert_code(&output, 0);
        assert_eq!(stderr(&output), "", "{args:?}");
    }
}

/// Reads the request and streams `total` bytes of body as fast as the client reads them (32 KiB
/// records), announcing `Content-Length: total` when `announce`, then ends the request.
fn streaming_server(total: usize, announce: bool) -> FakeServer {
    FakeServer::start(move |mut stream| {
        use std::io::Write;
        read_request(&mut stream);
        let head = if announce {
            format!("Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n")
        } else {
            "Content-Type: application/octet-stream\r\n\r\n".to_string()
        };
        if stream.write_all(&record(STDOUT, 1, head.as_bytes())).is_err() {
            return;
        }
        let chunk = record(STDOUT, 1, &[b'x'; 32 * 1024]);
        for _ in 0..total / (32 * 1024) {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
        let mut end = record(STDOUT, 1, b"");
        end.extend_from_slice(&end_request(1, 0, 0));
        let _ = stream.write_all(&end);
        drain(&mut stream);
    })
}

#[test]
fn json_keeps_at_most_16_mib_of_body_by_default() {
    // A server streaming STDOUT drove `--json` to 1.4 GB: the body is capped, exit 63.
    let server = streaming_server(40 << 20, false);
    let output =
        run(fcgi().args(["get", "/x.php", "--json", "--max-time", "30", "--socket"]).arg(&server.path));
    assert_code(&output, 63);
    let doc = json(&output);
    assert_eq!(doc["error"]["kind"], "max_filesize", "{doc}");
    assert_eq!(doc["error"]["exit_code"], 63, "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("--max-filesize 16 MiB"), "{message}");
    // A larger limit, given explicitly, lets it through.
    let output = run(fcgi()
        .args(["get", "/x.php", "--json", "--max-filesize", "64M", "--max-time", "30", "--socket"])
        .arg(&server.path));
    assert_code(&output, 0);
    assert_eq!(json(&output)["body_bytes"], 40 << 20);
}

#[test]
fn max_filesize_applies_to_files_and_stdout() {
    let server = streaming_server(4 << 20, false);
    let dir = temp_dir();
    let file = dir.path().join("out.bin");
    let output = run(fcgi()
        .args(["get", "/x.php", "--max-filesize", "1M", "-o"])
        .arg(&file)
        .arg("--socket")
        .arg(&server.path));
    let line = assert_error(&output, 63);
    assert!(line.contains("exceeds --max-filesize 1 MiB"), "{line}");
    assert!(!file.exists(), "no file");
    assert!(part_files(dir.path()).is_empty(), "{:?}", part_files(dir.path()));

    let output = run(fcgi().args(["get", "/x.php", "--max-filesize", "100k", "--socket"]).arg(&server.path));
    assert_error(&output, 63);
    assert!(output.stdout.len() <= 100 * 1024, "{} bytes written", output.stdout.len());

    let output = run(fcgi()
        .args(["get", "/x.php", "--max-filesize", "4M", "-o"])
        .arg(&file)
        .arg("--socket")
        .arg(&server.path));
    assert_code(&output, 0);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 4 << 20);
}

#[test]
fn an_announced_content_length_over_max_filesize_fails_before_writing() {
    let server = streaming_server(2 << 20, true);
    let output = run(fcgi().args(["get", "/x.php", "--max-filesize", "1M", "--socket"]).arg(&server.path));
    assert_error(&output, 63);
    assert!(output.stdout.is_empty(), "{} bytes written", output.stdout.len());
    let output = run(fcgi().args(["get", "/x.php", "--max-filesize", "2M", "--socket"]).arg(&server.path));
    assert_code(&output, 0);
    assert_eq!(output.stdout.len(), 2 << 20);
}
