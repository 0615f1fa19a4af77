//! `--mount PREFIX` (and `$FCGI_MOUNT`): requests to a mounted application, here the harness's
//! flup WSGI app, which routes on PATH_INFO like any WSGI, PSGI, Rack or Go application. Without
//! `--mount`, `fcgi` sends a directory-of-scripts environment (SCRIPT_NAME=/raw, no PATH_INFO)
//! and such an application answers from its root handler: issue #13's "wrong page, exit 0".

use std::path::PathBuf;

use crate::common::*;

/// The non-multiplexed flup server's socket.
fn flup() -> PathBuf {
    fcgi_tests::backends::flup().single
}

/// `fcgi` without a `$FCGI_MOUNT` from the caller's environment.
fn cmd() -> assert_cmd::Command {
    let mut cmd = fcgi();
    cmd.env_remove("FCGI_MOUNT");
    cmd
}

/// 1 MiB of bytes that are not a repeating pattern (every byte value, CR, LF and NUL included).
fn megabyte() -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// `NAME=VALUE` lines of flup's /environ route.
fn environ(output: &std::process::Output) -> std::collections::BTreeMap<String, String> {
    assert_code(output, 0);
    stdout(output)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn a_megabyte_post_reaches_raw_when_mounted_at_root() {
    let dir = temp_dir();
    let file = dir.path().join("body.bin");
    let body = megabyte();
    std::fs::write(&file, &body).unwrap();
    let data = format!("@{}", file.display());

    let output =
        run(cmd().args(["post", "/raw", "--mount", "/", "--data-binary", &data, "--socket"]).arg(flup()));
    assert_code(&output, 0);
    assert_eq!(output.stdout.len(), body.len());
    assert!(output.stdout == body, "the body came back from /raw byte for byte");

    // The default is still a directory of scripts: SCRIPT_NAME=/raw and no PATH_INFO, which a
    // mounted application reads as its root. This is what the flag is for.
    let output = run(cmd().args(["post", "/raw", "--data-binary", &data, "--socket"]).arg(flup()));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "root\n");
}

#[test]
fn the_prefix_is_script_name_and_the_rest_path_info() {
    let output = run(cmd().args(["get", "/app/environ?x=%20y", "--mount", "/app", "--socket"]).arg(flup()));
    let env = environ(&output);
    assert_eq!(env["SCRIPT_NAME"], "/app");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["REQUEST_URI"], "/app/environ?x=%20y", "REQUEST_URI as sent");
    assert_eq!(env["QUERY_STRING"], "x=%20y");
    assert_eq!(env["SCRIPT_FILENAME"], "<absent>");

    // Mounted at `/`: SCRIPT_NAME is empty, PATH_INFO the whole (decoded) path.
    let env = environ(&run(cmd().args(["get", "/environ", "--mount", "/", "--socket"]).arg(flup())));
    assert_eq!((env["SCRIPT_NAME"].as_str(), env["PATH_INFO"].as_str()), ("", "/environ"));

    // A trailing slash on the prefix changes nothing; the prefix alone is the app's root.
    let output = run(cmd().args(["get", "/app", "--mount", "/app/", "--socket"]).arg(flup()));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "root\n");

    // SCRIPT_FILENAME only when given.
    let output = run(cmd()
        .args(["get", "/environ", "--mount", "/", "--script-filename", "/srv/app.py", "--socket"])
        .arg(flup()));
    assert_eq!(environ(&output)["SCRIPT_FILENAME"], "/srv/app.py");
}

#[test]
fn fcgi_mount_is_the_default_and_docroot_overrides_it() {
    let env =
        environ(&run(cmd().env("FCGI_MOUNT", "/app").args(["get", "/app/environ", "--socket"]).arg(flup())));
    assert_eq!((env["SCRIPT_NAME"].as_str(), env["PATH_INFO"].as_str()), ("/app", "/environ"));

    let dir = temp_dir();
    let output = run(cmd()
        .env("FCGI_MOUNT", "/app")
        .args(["get", "/app/environ", "--docroot"])
        .arg(dir.path())
        .arg("--socket")
        .arg(flup()));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "root\n", "--docroot: a directory of scripts again");
}

#[test]
fn a_path_outside_the_prefix_is_refused_naming_it() {
    let dir = temp_dir();
    let socket = dir.path().join("nothing-listens.sock");
    for (path, prefix) in
        [("/appx", "/app"), ("/", "/app"), ("/app/../etc/passwd", "/app"), ("/api2/x", "/api/")]
    {
        let output = run(cmd().args(["get", path, "--mount", prefix, "--socket"]).arg(&socket));
        let line = assert_error(&output, 2);
        assert!(
            line.contains(&format!("--mount {prefix}")) && line.contains("not under the mount prefix"),
            "{line}"
        );
    }
    let output = run(cmd().args(["get", "/x", "--mount", "app", "--socket"]).arg(&socket));
    let line = assert_error(&output, 2);
    assert!(line.contains("invalid mount prefix \"app\""), "{line}");
    // With FCGI_MOUNT too.
    let output = run(cmd().env("FCGI_MOUNT", "/app").args(["get", "/other", "--socket"]).arg(&socket));
    assert!(assert_error(&output, 2).contains("/app"));
}

#[test]
fn mount_contradicts_docroot_and_index() {
    for extra in [["--docroot", "/srv"], ["--index", "index.py"]] {
        let output =
            run(cmd().args(["get", "/x", "--mount", "/", "--socket", "/nonexistent.sock"]).args(extra));
        assert_code(&output, 2);
        assert!(stderr(&output).contains("cannot be used with"), "{}", stderr(&output));
    }
}

#[test]
fn dump_and_bench_take_mount_too() {
    let output = run(cmd().args(["dump", "/app/x", "--mount", "/app", "--socket"]).arg(flup()));
    assert_code(&output, 0);
    let text = stdout(&output);
    let params = text.lines().find(|l| l.starts_with("-> FCGI_PARAMS") && l.contains("SCRIPT_NAME")).unwrap();
    assert!(params.contains("SCRIPT_NAME=/app") && params.contains("PATH_INFO=/x"), "{params}");
    assert!(!params.contains("SCRIPT_FILENAME"), "{params}");

    let output = run(cmd()
        .args(["bench", "/raw", "--mount", "/", "-n", "20", "-s", "-d", "abc", "--socket"])
        .arg(flup()));
    assert_code(&output, 0);
    let output =
        run(cmd().args(["bench", "/elsewhere", "--mount", "/app", "-n", "5", "-s", "--socket"]).arg(flup()));
    assert!(assert_error(&output, 2).contains("--mount /app"));
}
