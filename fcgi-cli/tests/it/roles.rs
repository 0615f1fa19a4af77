//! `--role authorizer` and `--role filter` (FastCGI specification §6.3, §6.4) against the peers
//! that really serve those roles: flup (`tests/backends/flup_app.py`, all three roles) and
//! libfcgi under fcgiwrap (`tests/backends/cgi/authorizer.sh`, which sends no `Status:` line
//! when it authorizes), and against php-fpm, which runs every role as a Responder and ignores
//! FCGI_DATA. The Authorizer's answers are read as lighttpd 1.4 reads them, compared with
//! lighttpd itself (started by the harness in authorizer mode in front of the same fcgiwrap).

use std::path::PathBuf;
use std::process::Output;

use crate::common::*;

/// The multiplexed flup server (all three roles).
fn flup() -> PathBuf {
    fcgi_tests::backends::flup().multiplexed
}

/// `fcgi request --role authorizer PATH` to flup.
fn flup_authorize(path: &str, extra: &[&str]) -> Output {
    run(fcgi().args(["request", "--role", "authorizer", path]).args(extra).arg("--socket").arg(flup()))
}

/// `fcgi request --role authorizer PATH` to fcgiwrap running authorizer.sh.
fn libfcgi_authorize(path: &str, extra: &[&str]) -> Output {
    let wrap = fcgi_tests::backends::fcgiwrap();
    run(fcgi()
        .args(["request", "--role", "authorizer", path])
        .args(extra)
        .arg("--script-filename")
        .arg(wrap.script_path("authorizer.sh"))
        .arg("--socket")
        .arg(&wrap.socket))
}

/// `NAME=VALUE` lines of a body.
fn lines(output: &Output) -> Vec<String> {
    stdout(output).lines().map(str::to_owned).collect()
}

#[test]
fn an_authorizer_that_answers_200_authorizes_and_its_variables_are_printed() {
    let output = flup_authorize("/private/report?allow", &[]);
    assert_code(&output, 0);
    // Names keep their case (a web server passes REMOTE_USER on, not remote_user); the
    // parameters §6.3 leaves out were not sent although the request is for a script path; the
    // body ("dropped") is dropped as lighttpd drops it.
    assert_eq!(lines(&output), ["REMOTE_USER=alice", "X-Mixed-Case=Kept", "LEFT-OUT=none"]);
    assert_eq!(stderr(&output), "");

    let output = flup_authorize("/private/report?allow", &["--json"]);
    assert_code(&output, 0);
    let doc = json(&output);
    assert_eq!(doc["role"], "authorizer");
    assert_eq!(doc["authorized"], true);
    assert_eq!(doc["status"], 200);
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(
        doc["variables"],
        serde_json::json!([["REMOTE_USER", "alice"], ["X-Mixed-Case", "Kept"], ["LEFT-OUT", "none"]])
    );
}

#[test]
fn an_authorizer_that_denies_gives_its_answer_and_the_exit_code_of_its_status() {
    let output = flup_authorize("/private?nobody", &[]);
    assert_code(&output, 4);
    assert_eq!(stdout(&output), "denied\n", "the body the web server would send");
    assert!(stderr(&output).contains("access denied: HTTP 403 Forbidden"), "{}", stderr(&output));

    let output = flup_authorize("/private?nobody", &["--json"]);
    assert_code(&output, 4);
    let doc = json(&output);
    assert_eq!((doc["authorized"].clone(), doc["status"].clone()), (false.into(), 403.into()));
    assert_eq!(doc["body"], "denied\n");
    assert_eq!(doc["variables"], serde_json::json!([]));

    // A redirect to a login page is a denial too, below 400: exit 3.
    let output = flup_authorize("/private?redirect", &["-i"]);
    assert_code(&output, 3);
    let text = stdout(&output);
    assert!(text.starts_with("HTTP/1.1 302 Found\r\n") && text.contains("location: /login\r\n"), "{text}");

    // --no-fail: the answer, exit 0.
    assert_code(&flup_authorize("/private?nobody", &["--no-fail"]), 0);
}

#[test]
fn libfcgi_authorizer_without_a_status_line_authorizes_as_lighttpd_reads_it() {
    let output = libfcgi_authorize("/private?allow", &[]);
    assert_code(&output, 0);
    assert_eq!(lines(&output), ["REMOTE_USER=bob", "ROLE=AUTHORIZER", "LEFT-OUT=none"]);

    // A Location alone (no Status) would be a 302 from a Responder; lighttpd authorizes.
    let output = libfcgi_authorize("/private?location", &[]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "", "authorized, no variables");
    let doc = json(&libfcgi_authorize("/private?location", &["--json"]));
    assert_eq!((doc["authorized"].clone(), doc["status"].clone()), (true.into(), 200.into()));
    assert_eq!(doc["variables"], serde_json::json!([]));

    let output = libfcgi_authorize("/private?redirect", &[]);
    assert_code(&output, 3);
    assert!(stderr(&output).contains("access denied: HTTP 302 Found"), "{}", stderr(&output));

    let output = libfcgi_authorize("/private?other", &[]);
    assert_code(&output, 4);
    assert_eq!(stdout(&output), "denied\n");
}

#[test]
fn php_fpm_runs_an_authorizer_as_a_responder() {
    let php = php();
    let output = run(fcgi()
        .args(["request", "--role", "authorizer", "/env.php", "--json", "--socket"])
        .arg(&php.socket)
        .current_dir(&php.docroot));
    assert_code(&output, 0);
    let doc = json(&output);
    assert_eq!(doc["authorized"], true, "the script answered 200");
    let env: serde_json::Value = serde_json::from_str(doc["body"].as_str().unwrap()).unwrap();
    assert_eq!(env["FCGI_ROLE"], "AUTHORIZER", "php-fpm only sets FCGI_ROLE");
    assert!(env.get("CONTENT_LENGTH").is_none_or(|v| v == ""), "no CONTENT_LENGTH sent: {env}");
}

#[test]
fn an_application_that_serves_only_responders_says_so() {
    let go = fcgi_tests::backends::peers().go;
    for (role, name) in [("authorizer", "Authorizer"), ("filter", "Filter")] {
        let mut cmd = fcgi();
        cmd.args(["get", "/echo", "--mount", "/", "--role", role]);
        if role == "filter" {
            cmd.args(["--filter-data", "@/etc/hostname"]);
        }
        let output = run(cmd.arg("--socket").arg(&go));
        let line = assert_error(&output, 9);
        assert!(line.contains("FCGI_UNKNOWN_ROLE"), "{line}");
        assert!(line.contains(&format!("(the application does not serve the {name} role)")), "{line}");
    }
}

#[test]
fn an_authorizer_request_has_no_body() {
    let output =
        run(fcgi().args(["request", "--role", "authorizer", "/x", "-d", "a=1", "--socket", "/nonexistent"]));
    let line = assert_error(&output, 2);
    assert!(line.contains("an Authorizer request has no body"), "{line}");
}

/// `NAME=VALUE` lines of flup's Filter answer, as a map.
fn filter_report(output: &Output) -> std::collections::BTreeMap<String, String> {
    assert_code(output, 0);
    stdout(output).lines().filter_map(|l| l.split_once('=')).map(|(n, v)| (n.into(), v.into())).collect()
}

/// A body of `len` bytes that is not a repeating pattern, and its md5 (computed by md5sum).
fn data_file(dir: &std::path::Path, name: &str, len: usize) -> (PathBuf, String) {
    let mut state: u32 = 0x2545_f491;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    let md5 = std::process::Command::new("md5sum").arg(&path).output().expect("md5sum");
    let md5 = String::from_utf8_lossy(&md5.stdout).split_whitespace().next().unwrap().to_owned();
    (path, md5)
}

fn mtime(path: &std::path::Path) -> u64 {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    modified.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn a_filter_gets_the_file_as_fcgi_data_after_the_body() {
    let dir = temp_dir();
    // 3 MiB + 1: many FCGI_DATA records, more than any buffer of the client.
    let (file, md5) = data_file(dir.path(), "data.bin", 3 * (1 << 20) + 1);
    let output = run(fcgi()
        .args(["post", "/filter", "--role", "filter", "-d", "abc", "--filter-data"])
        .arg(format!("@{}", file.display()))
        .arg("--socket")
        .arg(flup()));
    let report = filter_report(&output);
    assert_eq!(report["FCGI_DATA_LENGTH"], (3 * (1 << 20) + 1).to_string());
    assert_eq!(report["data_bytes"], report["FCGI_DATA_LENGTH"]);
    assert_eq!(report["data_md5"], md5);
    assert_eq!(report["FCGI_DATA_LAST_MOD"], mtime(&file).to_string(), "the file's mtime, in seconds");
    assert_eq!(report["stdin_md5"], "900150983cd24fb0d6963f7d28e17f72", "md5 of the body abc");
}

#[test]
fn a_filter_reads_its_data_from_a_pipe_or_a_redirected_file() {
    let dir = temp_dir();
    let (file, md5) = data_file(dir.path(), "data.bin", 1 << 20);
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // A pipe: spooled, then sent; FCGI_DATA_LAST_MOD is the time the spool ended.
    let output = run(fcgi()
        .args(["get", "/filter", "--role", "filter", "--filter-data", "@-", "--socket"])
        .arg(flup())
        .pipe_stdin(&file)
        .unwrap());
    let report = filter_report(&output);
    assert_eq!((report["data_bytes"].as_str(), report["data_md5"].as_str()), ("1048576", md5.as_str()));
    let last_mod: u64 = report["FCGI_DATA_LAST_MOD"].parse().unwrap();
    assert!(last_mod >= before && last_mod <= before + 60, "{last_mod} vs {before}");

    // Standard input redirected from a regular file: used in place, its own mtime.
    let mut cmd = std_fcgi();
    cmd.args(["get", "/filter", "--role", "filter", "--filter-data", "@-", "--socket"])
        .arg(flup())
        .stdin(std::fs::File::open(&file).unwrap());
    let output = cmd.output().unwrap();
    let report = filter_report(&output);
    assert_eq!(report["data_md5"], md5);
    assert_eq!(report["FCGI_DATA_LAST_MOD"], mtime(&file).to_string());

    // An empty file: FCGI_DATA_LENGTH=0 and the empty FCGI_DATA record.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let output = run(fcgi()
        .args(["get", "/filter", "--role", "filter", "--filter-data"])
        .arg(format!("@{}", empty.display()))
        .arg("--socket")
        .arg(flup()));
    let report = filter_report(&output);
    assert_eq!((report["FCGI_DATA_LENGTH"].as_str(), report["data_bytes"].as_str()), ("0", "0"));
}

#[test]
fn verbose_says_what_the_role_changes() {
    let output = libfcgi_authorize("/private?allow", &["-v"]);
    assert_code(&output, 0);
    let text = stderr(&output);
    assert!(
        text.contains(
            "* role AUTHORIZER: CONTENT_LENGTH, PATH_INFO, PATH_TRANSLATED and SCRIPT_NAME are not sent"
        ),
        "{text}"
    );
    assert!(text.contains("role=AUTHORIZER"), "the BEGIN_REQUEST line: {text}");

    let dir = temp_dir();
    let (file, _) = data_file(dir.path(), "data.bin", 100_000);
    let output = run(fcgi()
        .args(["get", "/filter", "--role", "filter", "-v", "--filter-data"])
        .arg(format!("@{}", file.display()))
        .arg("--socket")
        .arg(flup()));
    assert_code(&output, 0);
    let text = stderr(&output);
    assert!(
        text.contains("* role FILTER: FCGI_DATA from filter data file") && text.contains("100000 bytes"),
        "{text}"
    );
    assert!(text.contains("FCGI_DATA "), "FCGI_DATA records are shown: {text}");
}

#[test]
fn php_fpm_ignores_fcgi_data() {
    let php = php();
    let dir = temp_dir();
    let (file, _) = data_file(dir.path(), "data.bin", 1 << 20);
    let output = run(fcgi()
        .args(["post", "/echo.php", "--role", "filter", "-d", "abc", "-i", "--filter-data"])
        .arg(format!("@{}", file.display()))
        .arg("--socket")
        .arg(&php.socket)
        .current_dir(&php.docroot));
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("x-body-length: 3\r\n") && text.ends_with("\r\n\r\nabc"), "only the body: {text}");
}

#[test]
fn filter_flags_are_checked_before_anything_is_sent() {
    let socket = ["--socket", "/nonexistent/fcgi.sock"];
    for (args, exit, why) in [
        (&["get", "/f", "--filter-data", "@/etc/hostname"][..], 2, "--filter-data needs --role filter"),
        (&["get", "/f", "--role", "filter"][..], 2, "--role filter needs --filter-data"),
        (
            &["post", "/f", "--role", "filter", "--filter-data", "@-", "-d", "@-"][..],
            2,
            "standard input cannot be both",
        ),
        (&["get", "/f", "--role", "filter", "--filter-data", "data"][..], 2, "takes @FILE or @-"),
        (
            &["get", "/f", "--role", "filter", "--filter-data", "@/nonexistent/data"][..],
            26,
            "cannot read filter data file",
        ),
        (&["get", "/f", "--role", "filter", "--filter-data", "@/tmp"][..], 26, "not a regular file"),
        (&["get", "/f", "--role", "bogus"][..], 2, "bogus"),
    ] {
        let output = run(fcgi().args(args).args(socket));
        let line = assert_error(&output, exit);
        assert!(line.contains(why), "{args:?}: {line}");
    }
}

/// Names in `dir`.
fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn a_spooled_standard_input_leaves_nothing_behind_on_any_exit() {
    let dir = temp_dir();
    let (file, md5) = data_file(dir.path(), "data.bin", 300_000);
    let silent = FakeServer::silent();
    let cases: [(&std::path::Path, &[&str], i32); 3] = [
        (&flup(), &[], 0),
        (&silent.path, &["-m", "1s"], 28),
        (std::path::Path::new("/nonexistent/fcgi.sock"), &[], 7),
    ];
    for (socket, extra, exit) in cases {
        let spool_dir = temp_dir();
        let output = run(fcgi()
            .env("TMPDIR", spool_dir.path())
            .args(["get", "/filter", "--role", "filter", "--filter-data", "@-"])
            .args(extra)
            .arg("--socket")
            .arg(socket)
            .pipe_stdin(&file)
            .unwrap());
        assert_code(&output, exit);
        if exit == 0 {
            assert!(stdout(&output).contains(&format!("data_md5={md5}\n")), "{}", stdout(&output));
        }
        assert_eq!(entries(spool_dir.path()), Vec::<String>::new(), "exit {exit}: nothing left in TMPDIR");
    }

    // Killed while the request waits on the server: the unnamed spool has no name to leave.
    let spool_dir = temp_dir();
    let mut child = std_fcgi()
        .env("TMPDIR", spool_dir.path())
        .args(["get", "/filter", "--role", "filter", "--filter-data", "@-", "--socket"])
        .arg(&silent.path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&std::fs::read(&file).unwrap()).unwrap();
    } // closed: the spool is complete and the request goes out
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(entries(spool_dir.path()), Vec::<String>::new(), "no named file while it runs");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(entries(spool_dir.path()), Vec::<String>::new(), "nothing after SIGKILL");
}

/// `GET /authorizer.sh?QUERY` through lighttpd (authorizer mode, in front of the same
/// fcgiwrap): the status and the body it sends the client.
fn through_lighttpd(query: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let socket = fcgi_tests::backends::peers().lighttpd_auth;
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect to lighttpd");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(stream, "GET /authorizer.sh?{query} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("lighttpd's answer");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("an HTTP answer: {text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    (status, body.to_string())
}

#[test]
fn the_authorizer_answers_are_read_as_lighttpd_reads_them() {
    let mut statuses = Vec::new();
    for query in ["allow", "location", "redirect", "other"] {
        let (status, body) = through_lighttpd(query);
        statuses.push(status);
        if query == "allow" {
            assert!(
                body.contains("REMOTE_USER=bob\nROLE=AUTHORIZER\nLEFT_OUT=none\n"),
                "lighttpd passed: {body:?}"
            );
        }
        let output = libfcgi_authorize(&format!("/authorizer.sh?{query}"), &[]);
        if status == 200 {
            // Authorized by lighttpd: it then ran the script as a CGI program, which printed
            // the variables lighttpd passed on (REMOTE_USER, ROLE, LEFT_OUT: lighttpd too left
            // out the four parameters, or LEFT_OUT would name them).
            assert_code(&output, 0);
            let ours: std::collections::BTreeMap<String, String> = stdout(&output)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(n, v)| (n.replace('-', "_"), v.to_string()))
                .collect();
            for line in body.lines() {
                let (name, value) = line.split_once('=').unwrap();
                let mine = ours.get(name).map(String::as_str).unwrap_or("");
                assert_eq!(
                    mine, value,
                    "{query}: variable {name}: lighttpd passed {value:?}, fcgi printed {mine:?}"
                );
            }
        } else {
            let expected = if status < 400 { 3 } else { i32::from(status / 100) };
            assert_code(&output, expected);
            assert!(
                stderr(&output).contains(&format!("access denied: HTTP {status}")),
                "{query}: {}",
                stderr(&output)
            );
            assert_eq!(stdout(&output), body, "{query}: the body lighttpd sent the client");
        }
    }
    assert_eq!(statuses, [200, 200, 302, 403], "what lighttpd made of the four answers");
}
