//! `fcgi serve`'s production behaviour against real php-fpm: request smuggling refused,
//! slow clients cut off by the head timeout, body and head limits, many clients going away
//! mid-response leaving the pool healthy, 502/504, the application's STDERR in the log, JSON
//! access log lines, graceful shutdown on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::serve_support::{Serve, curl, curl_head, raw, responses, text};

const WAIT: Duration = Duration::from_secs(3);

#[test]
fn request_smuggling_vectors_are_refused() {
    let serve = Serve::app(&[]);
    let smuggled = "GET /hello/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let refused = [
        // Two different Content-Lengths.
        format!(
            "POST /env HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc{smuggled}"
        ),
        // A chunk size that is not hex, and one that overflows.
        format!(
            "POST /env HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST /env HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n{smuggled}"
        ),
        // obs-fold.
        format!("GET /env HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n{smuggled}"),
        // A transfer coding other than chunked last.
        format!(
            "POST /env HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n{smuggled}"
        ),
        // A signed Content-Length.
        format!("POST /env HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc{smuggled}"),
        // A space before the colon.
        format!("POST /env HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc{smuggled}"),
    ];
    for request in &refused {
        let (answer, closed) = raw(serve.addr, request.as_bytes(), WAIT);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{request:?} got {answer:?}");
        assert_eq!(responses(&answer), 1, "{request:?}: only the refusal: {answer:?}");
        assert!(closed, "{request:?}: the connection is closed after the refusal");
    }
    // Content-Length with Transfer-Encoding (both orders): the body is read as chunked and the
    // connection closed after the response (RFC 9112 §6.1), so what follows the chunked body
    // is never read as a request.
    for headers in [
        "Content-Length: 44\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 44",
    ] {
        let request = format!("POST /env HTTP/1.1\r\nHost: x\r\n{headers}\r\n\r\n0\r\n\r\n{smuggled}");
        let (answer, closed) = raw(serve.addr, request.as_bytes(), WAIT);
        assert_eq!(responses(&answer), 1, "{answer:?}");
        assert!(closed, "the connection is closed: {answer:?}");
        assert!(!answer.contains("Hello, smuggled"), "{answer:?}");
    }
    let log = serve.access_log(2);
    assert!(!log.contains("smuggled"), "no smuggled request reached the application:\n{log}");
}

#[test]
fn slow_clients_are_cut_off_by_the_head_timeout() {
    let serve = Serve::app(&["--head-timeout", "1s"]);
    let started = Instant::now();
    // A slowloris client: a head that never ends, one byte now and then.
    let mut slow = TcpStream::connect(serve.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let dripping = std::thread::spawn(move || {
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(200));
            if slow.write_all(b"X").is_err() {
                return (true, started.elapsed());
            }
            let mut buf = [0u8; 64];
            slow.set_nonblocking(true).unwrap();
            match slow.read(&mut buf) {
                Ok(0) => return (true, started.elapsed()),
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return (true, started.elapsed()),
                _ => {}
            }
            slow.set_nonblocking(false).unwrap();
        }
        (false, started.elapsed())
    });
    // Others are served meanwhile.
    assert_eq!(curl(&[&serve.url("/hello/meanwhile")]).status, 200);
    let (closed, after) = dripping.join().unwrap();
    assert!(closed, "the slow client was not cut off");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(4), "cut off after {after:?}");
    // A connection that opens and sends nothing is closed too (--idle-timeout).
    let serve = Serve::app(&["--idle-timeout", "1s"]);
    let started = Instant::now();
    let (answer, closed) = raw(serve.addr, b"", Duration::from_secs(5));
    assert!(closed && answer.is_empty(), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[test]
fn body_and_head_limits() {
    let serve = Serve::php("", &["--max-body", "64k", "--max-head-size", "16k", "--max-headers", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'a'; 100 * 1024]).unwrap();
    let small = dir.path().join("small");
    std::fs::write(&small, vec![b'b'; 60 * 1024]).unwrap();
    let big = format!("@{}", text(&big));
    let small = format!("@{}", text(&small));
    let url = serve.url("/echo.php");
    let chunked = "Transfer-Encoding: chunked";
    // Declared too large: 413 without reading it; undeclared (chunked, HTTP/2 without a
    // length): buffered up to the limit, then 413.
    assert_eq!(curl(&["--data-binary", &big, &url]).status, 413);
    assert_eq!(curl(&["-H", chunked, "--data-binary", &big, &url]).status, 413);
    // HTTP/2: the server answers 413 and resets the stream. curl 7.88 drops a response whose
    // stream is reset while it is still uploading, which happens when the 413 comes before
    // curl has sent the body: what the server answered is read from its access log.
    let strict = Serve::php("", &["--max-body", "1k"]);
    let strict_url = strict.url("/echo.php");
    let tiny = dir.path().join("two-kib");
    std::fs::write(&tiny, vec![b'c'; 2048]).unwrap();
    let tiny = format!("@{}", text(&tiny));
    for args in [vec!["--data-binary", &tiny], vec!["-H", chunked, "--data-binary", &tiny]] {
        let mut args = args.clone();
        args.extend(["--http2-prior-knowledge", &strict_url]);
        let refused = curl_head(&args);
        assert!(refused.status == 413 || refused.stderr.contains("(92)"), "{args:?}: {}", refused.stderr);
    }
    let log = strict.access_log(2);
    assert_eq!(log.matches("\"POST /echo.php HTTP/2.0\" 413 ").count(), 2, "{log}");
    // Within the limit: the body arrives whole, with its length.
    for args in [vec!["--data-binary", &small], vec!["-H", chunked, "--data-binary", &small]] {
        let mut args = args.clone();
        args.extend(["-H", "Content-Type: application/octet-stream", &url]);
        let echo = curl(&args);
        assert_eq!(echo.status, 200, "{args:?}");
        assert_eq!(echo.header("x-content-length"), Some("61440"), "{args:?}");
        assert_eq!(echo.body.len(), 61440);
    }
    // Too large a head, too many headers: 431.
    let long = format!("X-Long: {}", "l".repeat(20 * 1024));
    assert_eq!(curl(&["-H", &long, &serve.url("/hello.php")]).status, 431);
    let mut many = Vec::new();
    for i in 0..30 {
        many.push("-H".to_string());
        many.push(format!("X-H{i}: v"));
    }
    let mut args: Vec<&str> = many.iter().map(String::as_str).collect();
    let hello = serve.url("/hello.php");
    args.push(&hello);
    assert_eq!(curl(&args).status, 431);
    assert_eq!(curl(&[&serve.url("/hello.php")]).status, 200);
}

#[test]
fn clients_leaving_mid_response_leave_the_pool_healthy() {
    let serve = Serve::app(&["--fcgi-connections", "4"]);
    let clients = 400;
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let addr = serve.addr;
            std::thread::spawn(move || {
                for _ in 0..clients / 16 {
                    let mut stream = TcpStream::connect(addr).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    // 100 MiB that nobody reads to the end.
                    stream.write_all(b"GET /stream?kib=102400 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    let mut buf = [0u8; 16384];
                    let got = stream.read(&mut buf).unwrap_or(0);
                    assert!(got > 0, "no response started");
                    drop(stream);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // Every FastCGI request was cancelled: later requests are answered, quickly.
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        for _ in 0..8 {
            let started = Instant::now();
            let hello = curl(&[version, &serve.url("/hello/after")]);
            assert_eq!((hello.status, hello.text().as_str()), (200, "Hello, after!"));
            assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        }
    }
    // HTTP/2 streams reset mid-response as well.
    for _ in 0..20 {
        let output = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--http2-prior-knowledge", "--max-time", "0.3"])
            .arg(serve.url("/stream?kib=102400"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "curl was meant to give up");
    }
    assert_eq!(curl(&["--http2-prior-knowledge", &serve.url("/hello/again")]).status, 200);
}

#[test]
fn backend_failures_are_502_and_504_with_a_short_body() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.sock");
    let docroot = super::serve_support::php_fpm().docroot;
    let serve = Serve::start(&["--socket", text(&missing), "--docroot", text(&docroot)]);
    let down = curl(&[&serve.url("/hello.php")]);
    assert_eq!((down.status, down.text().as_str()), (502, "502 Bad Gateway\n"));
    let stderr = serve.wait_stderr("502 for GET /hello.php");
    assert!(stderr.contains("fcgi serve: 502 for GET /hello.php: cannot connect to unix:"), "{stderr}");

    let serve = Serve::php("", &["--fcgi-timeout", "1s"]);
    let slow = curl(&[&serve.url("/slow.php?ms=3000")]);
    assert_eq!((slow.status, slow.text().as_str()), (504, "504 Gateway Timeout\n"));
    assert_eq!(curl(&[&serve.url("/slow.php?ms=10")]).status, 200);
}

#[test]
fn application_stderr_is_logged_escaped_and_json_access_log() {
    let serve = Serve::app(&["--log-format", "json"]);
    let answer = curl(&["-g", &serve.url("/stderr?msg=bad%1b[31mthing%0Anext")]);
    assert_eq!(answer.text(), "logged");
    let stderr = serve.wait_stderr("bad\\u{1b}[31mthing");
    assert!(
        stderr.contains(
            "fcgi serve: stderr of GET /stderr?msg=bad%1b[31mthing%0Anext: PHP message: bad\\u{1b}[31mthing"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "raw escape bytes in the log: {stderr:?}");
    let log = serve.access_log(1);
    let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], 6);
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["complete"], true);
}

#[test]
fn sigterm_lets_requests_in_flight_finish() {
    let mut serve = Serve::php("", &["--shutdown-timeout", "10s"]);
    let url = serve.url("/slow.php?ms=1500");
    let in_flight = std::thread::spawn(move || curl(&[&url]));
    std::thread::sleep(Duration::from_millis(500));
    serve.signal(nix::sys::signal::Signal::SIGTERM);
    let answer = in_flight.join().unwrap();
    assert_eq!((answer.status, answer.text().as_str()), (200, "slept 1500"));
    assert_eq!(serve.wait_exit(Duration::from_secs(10)), Some(0), "{}", serve.stderr());
    let stderr = serve.stderr();
    assert!(stderr.contains("SIGTERM: shutting down") && stderr.contains("fcgi serve: stopped"), "{stderr}");
    assert!(TcpStream::connect(serve.addr).is_err(), "still accepting after shutdown");

    // A request longer than the deadline does not hold the exit.
    let mut serve = Serve::php("", &["--shutdown-timeout", "1s"]);
    let url = serve.url("/slow.php?ms=8000");
    let _stuck = std::thread::spawn(move || {
        std::process::Command::new("curl").args(["-s", "--max-time", "15", &url]).output()
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    serve.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(serve.wait_exit(Duration::from_secs(5)), Some(0), "{}", serve.stderr());
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

/// h2load (nghttp2), 4 connections: with as many streams per connection as `--h2-max-streams`
/// allows, every request (PHP and static) succeeds; with more, the streams h2load opens beyond the
/// bound before it has read the server's SETTINGS are refused (REFUSED_STREAM, which h2load
/// counts as errors and does not retry) and all the others succeed on the same connections.
#[test]
fn h2load_streams_are_bounded() {
    let serve = Serve::app(&["--h2-max-streams", "10", "--fcgi-connections", "4"]);
    let h2load = |streams: &str| -> (u64, u64, String) {
        let output = std::process::Command::new("h2load")
            .args(["-n", "2000", "-c", "4", "-m", streams])
            .arg(serve.url("/hello/h2load"))
            .arg(serve.url("/assets/style.css"))
            .output()
            .expect("run h2load (the Debian package nghttp2-client)");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "h2load: {text}{}", String::from_utf8_lossy(&output.stderr));
        let line = text.lines().find(|l| l.starts_with("requests: ")).unwrap_or_else(|| panic!("{text}"));
        let count = |word: &str| -> u64 {
            line.split(", ")
                .find_map(|part| part.trim_start_matches("requests: ").strip_suffix(word))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {word} in {line}"))
        };
        assert_eq!(count(" done"), 2000, "{text}");
        assert_eq!(count(" timeout"), 0, "{text}");
        let (succeeded, failed) = (count(" succeeded"), count(" failed"));
        assert!(text.contains(&format!("status codes: {succeeded} 2xx, 0 3xx, 0 4xx, 0 5xx")), "{text}");
        (succeeded, failed, text)
    };
    let (succeeded, _, text) = h2load("10");
    assert_eq!(succeeded, 2000, "{text}");
    let (succeeded, failed, text) = h2load("50");
    assert!(failed <= 4 * (50 - 10), "more refused than the first bursts beyond the bound: {text}");
    assert_eq!(succeeded + failed, 2000, "{text}");
    assert_eq!(curl(&["--http2-prior-knowledge", &serve.url("/hello/after")]).status, 200);
}
