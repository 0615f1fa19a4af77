//! curl's habits (`-f`, `--fail-with-body`, `-sS`, `-w`, `-D`, `-G`, `--data-raw`,
//! `--data-urlencode`, `-u`, `-A`, `-e`, `-b`, `--retry`, `--unix-socket`, "did you mean")
//! against the harness php-fpm: what reaches PHP, what is printed, the exit codes.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

/// `$_SERVER` (and `_GET`, `_COOKIE`) as env.php saw it.
fn env_php(args: &[&str]) -> serde_json::Value {
    let output = php_get(&[&["get", "/env.php"], args].concat());
    assert_code(&output, 0);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", stdout(&output)))
}

#[test]
fn user_agent_defaults_to_fcgi_version_and_a_sets_or_removes_it() {
    let vars = env_php(&[]);
    assert_eq!(vars["HTTP_USER_AGENT"], format!("fcgi/{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(env_php(&["-A", "probe/1"])["HTTP_USER_AGENT"], "probe/1");
    assert_eq!(env_php(&["--user-agent", "x y"])["HTTP_USER_AGENT"], "x y");
    assert!(env_php(&["-A", ""]).get("HTTP_USER_AGENT").is_none(), "-A '' sends no User-Agent");
    // An explicit -H wins, as in curl.
    assert_eq!(env_php(&["-A", "a", "-H", "User-Agent: b"])["HTTP_USER_AGENT"], "b");
}

#[test]
fn user_becomes_basic_authorization_that_php_reads_as_php_auth_user() {
    let vars = env_php(&["-u", "alice:s3cr:et"]);
    assert_eq!(vars["PHP_AUTH_USER"], "alice");
    assert_eq!(vars["PHP_AUTH_PW"], "s3cr:et", "only the first ':' separates");
    assert_eq!(vars["HTTP_AUTHORIZATION"], "Basic YWxpY2U6czNjcjpldA==");
    // An empty password (PHP then sets no PHP_AUTH_PW).
    let vars = env_php(&["--user", "bob:"]);
    assert_eq!(vars["PHP_AUTH_USER"], "bob");
    assert_eq!(vars["HTTP_AUTHORIZATION"], "Basic Ym9iOg==");
    // No password: fcgi does not prompt; a usage error before anything is sent.
    let line = assert_error(&php_get(&["get", "/env.php", "-u", "alice"]), 2);
    assert!(line.contains("USER:PASSWORD"), "{line}");
}

#[test]
fn user_is_masked_under_verbose() {
    let output = php_get(&["get", "/hello.php", "-v", "-u", "alice:s3cret"]);
    assert_code(&output, 0);
    let err = stderr(&output);
    assert!(err.contains("HTTP_AUTHORIZATION=<masked"), "{err}");
    assert!(!err.contains("YWxpY2U6czNjcmV0"), "the credentials are not shown: {err}");
}

#[test]
fn referer_and_cookies() {
    let vars = env_php(&["-e", "http://shop.test/cart", "-b", "a=1", "--cookie", "b=2; c=3"]);
    assert_eq!(vars["HTTP_REFERER"], "http://shop.test/cart");
    assert_eq!(vars["HTTP_COOKIE"], "a=1; b=2; c=3");
    assert_eq!(vars["_COOKIE"], serde_json::json!({"a": "1", "b": "2", "c": "3"}));
    // curl reads a cookie file when there is no '='; fcgi says it does not.
    let line = assert_error(&php_get(&["get", "/env.php", "-b", "cookies.txt"]), 2);
    assert!(line.contains("NAME=VALUE"), "{line}");
}

#[test]
fn get_flag_moves_the_data_into_the_query_string() {
    let vars = env_php(&["-G", "-d", "a=1", "--data-urlencode", "q=a b&c=é", "--data-raw", "@raw"]);
    assert_eq!(vars["REQUEST_METHOD"], "GET");
    assert_eq!(vars["QUERY_STRING"], "a=1&@raw&q=a%20b%26c%3D%C3%A9");
    assert_eq!(vars["_GET"]["q"], "a b&c=é");
    assert!(vars.get("CONTENT_TYPE").is_none(), "no body, no form Content-Type: {vars}");
    // Appended to an existing query string with '&'.
    let output = php_get(&["get", "/env.php?x=2", "--get", "-d", "a=1"]);
    let vars: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(vars["QUERY_STRING"], "x=2&a=1");
    // `post -G` sends GET, as curl -G does without -X.
    let output = php_get(&["post", "/echo.php", "-G", "-d", "a=1", "-i"]);
    assert_code(&output, 0);
    assert!(stdout(&output).contains("x-method: GET"), "{}", stdout(&output));
}

#[test]
fn data_raw_and_data_urlencode_are_body_parts_like_d() {
    let dir = temp_dir();
    let file = dir.path().join("value.txt");
    std::fs::write(&file, "x y\n").unwrap();
    let from_file = format!("f@{}", file.display());
    let output = php_get(&[
        "post",
        "/echo.php",
        "-i",
        "-d",
        "a=1",
        "--data-raw",
        "@not-a-file",
        "--data-urlencode",
        "n=1+1 ",
        "--data-urlencode",
        &from_file,
    ]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("x-content-type: application/x-www-form-urlencoded"), "{text}");
    // The file's bytes are encoded whole, newline included (curl does the same).
    assert!(text.ends_with("\r\n\r\na=1&@not-a-file&n=1%2B1%20&f=x%20y%0A"), "{text}");
    let missing = php_get(&["post", "/echo.php", "--data-urlencode", "@/nonexistent/file"]);
    let line = assert_error(&missing, 26);
    assert!(line.contains("/nonexistent/file"), "{line}");
}

#[test]
fn fail_writes_no_body_and_no_file_but_keeps_the_exit_code() {
    let php = php();
    let dir = temp_dir();
    let out = dir.path().join("page.html");
    let output = php_get(&["get", "/missing.php", "-f", "-o", out.to_str().unwrap()]);
    let line = assert_error(&output, 4);
    assert!(line.starts_with("fcgi: HTTP 404 "), "{line}");
    assert!(!out.exists(), "-f creates no file on HTTP 404");
    assert!(part_files(dir.path()).is_empty());
    let output = php_get(&["get", "/missing.php", "--fail"]);
    assert_code(&output, 4);
    assert_eq!(stdout(&output), "", "-f writes no body");
    // --fail-with-body (the default): the body is written.
    for args in [&["get", "/missing.php", "--fail-with-body"][..], &["get", "/missing.php"][..]] {
        let output = php_get(args);
        assert_code(&output, 4);
        assert!(stdout(&output).contains("File not found"), "{args:?}: {}", stdout(&output));
    }
    // -f on a success changes nothing.
    let output = php_get(&["get", "/hello.php", "-f"]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "Hello, world!");
    // -f and --no-fail contradict each other.
    assert_error(&php_get(&["get", "/hello.php", "-f", "--no-fail"]), 2);
    drop(php);
}

#[test]
fn silent_hides_the_http_error_line_and_show_error_brings_it_back() {
    let output = php_get(&["get", "/missing.php", "-s"]);
    assert_code(&output, 4);
    assert_eq!(stderr(&output), "");
    for flags in [&["-sS"][..], &["-s", "-S"], &["-s", "--show-error"], &["-fsS"]] {
        let output = php_get(&[&["get", "/missing.php"], flags].concat());
        let line = assert_error(&output, 4);
        assert!(line.starts_with("fcgi: HTTP 404"), "{flags:?}: {line}");
    }
    // Connection errors are printed even with -s alone.
    let mut cmd = fcgi();
    cmd.args(["get", "/x", "-s", "--socket", "/nonexistent/php.sock"]);
    assert_error(&run(&mut cmd), 7);
}

#[test]
fn write_out_prints_curl_variables_after_the_transfer() {
    let output = php_get(&[
        "get",
        "/hello.php",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{response_code} %{size_download} %{exitcode} [%{errormsg}] %{content_type}\\n",
    ]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "200 200 13 0 [] text/plain;charset=UTF-8\n");
    let output =
        php_get(&["get", "/hello.php", "-s", "-w", "\\n%{time_connect} %{time_starttransfer} %{time_total}"]);
    let text = stdout(&output);
    let times: Vec<f64> =
        text.trim_start_matches("Hello, world!\n").split(' ').map(|t| t.parse().unwrap()).collect();
    assert_eq!(times.len(), 3, "{text}");
    assert!(times[0] <= times[1] && times[1] <= times[2] && times[2] < 60.0, "{times:?}");
    for time in text.trim_start_matches("Hello, world!\n").split(' ') {
        assert_eq!(time.split('.').nth(1).map(str::len), Some(6), "six decimals as curl: {time}");
    }
}

#[test]
fn write_out_reports_failures_too() {
    let output = php_get(&[
        "get",
        "/missing.php",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}:%{exitcode}:%{errormsg}",
    ]);
    assert_code(&output, 4);
    let text = stdout(&output);
    assert!(text.starts_with("404:4:HTTP 404 Not Found from unix:"), "{text}");
    let mut cmd = fcgi();
    cmd.args([
        "get",
        "/x",
        "--socket",
        "/nonexistent/php.sock",
        "-w",
        "%{http_code} %{exitcode} %{onerror}failed: %{errormsg}",
    ]);
    let output = run(&mut cmd);
    assert_code(&output, 7);
    let text = stdout(&output);
    assert!(text.starts_with("000 7 failed: cannot connect to unix:/nonexistent/php.sock"), "{text}");
    // %{onerror}: the rest only when the transfer failed.
    let output = php_get(&["get", "/hello.php", "-o", "/dev/null", "-w", "ok%{onerror} failed"]);
    assert_eq!(stdout(&output), "ok");
}

#[test]
fn write_out_json_stderr_headers_and_files() {
    let output = php_get(&["get", "/headers.php", "-o", "/dev/null", "-w", "%{json}"]);
    assert_code(&output, 0);
    let doc = json(&output);
    assert_eq!(doc["http_code"], 200);
    assert_eq!(doc["exitcode"], 0);
    assert_eq!(doc["size_download"], 7);
    assert_eq!(doc["errormsg"], serde_json::Value::Null);
    assert!(doc["time_total"].as_f64().unwrap() > 0.0, "{doc}");
    let output = php_get(&[
        "get",
        "/headers.php",
        "-w",
        "%{stderr}%{http_code} %header{set-cookie}%{stdout}|%{header_json}",
    ]);
    assert_eq!(stderr(&output), "200 a=1; path=/, b=2; path=/");
    let headers: serde_json::Value =
        serde_json::from_str(stdout(&output).trim_start_matches("headers|")).unwrap();
    assert_eq!(headers["set-cookie"], serde_json::json!(["a=1; path=/", "b=2; path=/"]));
    // @FILE holds the format.
    let dir = temp_dir();
    let format = dir.path().join("format.txt");
    std::fs::write(&format, "code=%{http_code}\n").unwrap();
    let arg = format!("@{}", format.display());
    let output = php_get(&["get", "/hello.php", "-o", "/dev/null", "-w", &arg]);
    assert_eq!(stdout(&output), "code=200\n");
}

#[test]
fn write_out_mistakes_are_usage_errors_before_anything_is_sent() {
    // No server needed: the format is checked first.
    let mut cmd = fcgi();
    cmd.args(["get", "/x", "--socket", "/nonexistent/php.sock", "-w", "%{htpp_code}"]);
    let line = assert_error(&run(&mut cmd), 2);
    assert!(line.contains("%{htpp_code}") && line.contains("did you mean %{http_code}?"), "{line}");
    let mut cmd = fcgi();
    cmd.args(["get", "/x", "--socket", "/nonexistent/php.sock", "-w", "%{http_code"]);
    assert_error(&run(&mut cmd), 2);
    let mut cmd = fcgi();
    cmd.args(["get", "/x", "--socket", "/nonexistent/php.sock", "-w", "@/nonexistent/format"]);
    assert_error(&run(&mut cmd), 26);
}

#[test]
fn dump_header_to_stdout_or_a_file() {
    let output = php_get(&["get", "/headers.php", "-D", "-"]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("x-test: 1\r\ncache-control: no-store\r\n\r\nheaders"), "{text}");
    let dir = temp_dir();
    let file = dir.path().join("head.txt");
    let output = php_get(&["get", "/headers.php", "--dump-header", file.to_str().unwrap()]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "headers");
    let head = std::fs::read_to_string(&file).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("set-cookie: b=2; path=/\r\n"),
        "{head}"
    );
    let output = php_get(&["get", "/headers.php", "-D", "/nonexistent/dir/head.txt"]);
    assert_error(&output, 23);
    // Not with --json, whose document has the headers (-D - would break its one line).
    let output = php_get(&["get", "/headers.php", "-D", "-", "--json"]);
    assert_code(&output, 2);
    assert_eq!(json(&output)["error"]["kind"], "usage");
}

#[test]
fn unix_socket_is_another_name_for_socket() {
    let php = php();
    let mut cmd = fcgi();
    cmd.args(["get", "/hello.php", "--unix-socket"]).arg(&php.socket).current_dir(&php.docroot);
    let output = run(&mut cmd);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "Hello, world!");
}

#[test]
fn unknown_flags_and_commands_name_the_nearest_one() {
    for (args, nearest) in [
        (&["get", "/x", "--hedaer", "a: b"][..], "'--header'"),
        (&["get", "/x", "--user-agnet", "a"], "'--user-agent'"),
        (&["stauts"], "'status'"),
        (&["ping", "--paht", "/ping"], "'--path'"),
    ] {
        let line = assert_error(&run(fcgi().args(args)), 2);
        assert!(line.contains(&format!("did you mean {nearest}?")), "{args:?}: {line}");
    }
}

/// A unix socket at `path` that appears after `delay` and forwards every connection to
/// php-fpm: a backend that is still starting.
fn late_proxy(path: &Path, delay: Duration, php: &Path) -> std::thread::JoinHandle<()> {
    let (path, php) = (path.to_path_buf(), php.to_path_buf());
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let listener = UnixListener::bind(&path).expect("bind the late socket");
        let (client, _) = listener.accept().expect("accept");
        let server = UnixStream::connect(&php).expect("connect php-fpm");
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut s2);
            let _ = s2.shutdown(std::net::Shutdown::Write);
        });
        let (mut client, mut server) = (client, server);
        let _ = std::io::copy(&mut server, &mut client);
        let _ = client.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    })
}

#[test]
fn retry_waits_for_a_backend_that_is_starting() {
    let php = php();
    let dir = temp_dir();
    let socket = dir.path().join("late.sock");
    let proxy = late_proxy(&socket, Duration::from_millis(700), &php.socket);
    let mut cmd = fcgi();
    cmd.args([
        "get",
        "/hello.php",
        "--retry",
        "10",
        "--retry-delay",
        "200ms",
        "-w",
        "|%{num_retries}",
        "--socket",
    ])
    .arg(&socket)
    .current_dir(&php.docroot);
    let output = run(&mut cmd);
    assert_code(&output, 0);
    let text = stdout(&output);
    let retries: u32 = text.strip_prefix("Hello, world!|").expect("body then -w").parse().unwrap();
    assert!((2..=6).contains(&retries), "about 700 ms / 200 ms tries: {retries}");
    let err = stderr(&output);
    assert!(
        err.contains("fcgi: warning: cannot connect to unix:") && err.contains("trying again in 200 ms"),
        "{err}"
    );
    proxy.join().unwrap();
}

#[test]
fn retry_stops_at_the_count_and_at_retry_max_time() {
    let mut cmd = fcgi();
    cmd.args([
        "get",
        "/x",
        "--socket",
        "/nonexistent/php.sock",
        "--retry",
        "2",
        "--retry-delay",
        "100ms",
        "-s",
    ])
    .args(["-w", "%{num_retries}"]);
    let output = run(&mut cmd);
    assert_code(&output, 7);
    assert_eq!(stdout(&output), "2");
    assert_eq!(
        stderr(&output).lines().count(),
        1,
        "-s: no retry warnings, the error line: {}",
        stderr(&output)
    );
    let started = Instant::now();
    let mut cmd = fcgi();
    cmd.args(["get", "/x", "--socket", "/nonexistent/php.sock", "--retry", "100", "--retry-delay", "300ms"])
        .args(["--retry-max-time", "1s", "-w", "%{num_retries}"]);
    let output = run(&mut cmd);
    assert_code(&output, 7);
    // Tries at 0, 0.3, 0.6 and 0.9 s; 1.2 s is past 1 s. On a loaded machine each try takes
    // longer and fewer fit: what matters is that the delay is kept and the budget stops it.
    let retries: u32 = stdout(&output).parse().unwrap();
    assert!((1..=3).contains(&retries), "{retries} retries within --retry-max-time 1s at 300 ms apart");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn retry_never_repeats_a_request_the_application_saw() {
    // The script ran (and is still sleeping) when --max-time expired: no second try.
    let started = Instant::now();
    let output =
        php_get(&["get", "/slow.php?ms=3000", "-m", "500ms", "--retry", "3", "--retry-delay", "100ms"]);
    let line = assert_error(&output, 28);
    assert!(!line.contains("trying again"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(3), "one try only: {:?}", started.elapsed());
    // An HTTP error is an answer, not a failure to deliver.
    let output = php_get(&["get", "/missing.php", "--retry", "3", "-w", "%{num_retries}", "-o", "/dev/null"]);
    assert_code(&output, 4);
    assert_eq!(stdout(&output), "0");
}
