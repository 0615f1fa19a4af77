//! `fcgi status` as a health check against real php-fpm pools in each pm mode (the harness's
//! monitoring pools: `static`, `dynamic`, `ondemand` with pm.max_children 5, `busy` and
//! `backlog` with one child): the own worker counted as idle, `--min-available`, `--full` with
//! per-process thresholds, the listen backlog, `--format prometheus|openmetrics` checked by
//! promtool, and every status recipe of docs/CLI.md.
//!
//! Tests that read a pool's counts hold that pool's lock ([`pool`]), so that another test's
//! request in the same pool does not change what they see.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::common::*;

/// `pm.max_children` of the static, dynamic and ondemand pools.
const MAX_CHILDREN: u64 = 5;

static LOCKS: [Mutex<()>; 5] =
    [Mutex::new(()), Mutex::new(()), Mutex::new(()), Mutex::new(()), Mutex::new(())];
const NAMES: [&str; 5] = ["static", "dynamic", "ondemand", "busy", "backlog"];

/// The socket of monitoring pool `name`, with its lock held.
pub(crate) fn pool(name: &str) -> (PathBuf, MutexGuard<'static, ()>) {
    let index = NAMES.iter().position(|n| *n == name).expect("a monitoring pool");
    let guard = LOCKS[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    (fcgi_tests::backends::php_fpm_pool(name), guard)
}

fn status_on(socket: &PathBuf, args: &[&str]) -> std::process::Output {
    run(fcgi().arg("status").args(args).arg("--socket").arg(socket))
}

/// A request to `slow.php?ms=MS` on `socket`, running in the background; dropping it waits for
/// its end (php-fpm would go on running the script if the client went away: the worker would
/// stay busy into the next test).
pub(crate) struct Slow(Child);

impl Slow {
    pub(crate) fn start(socket: &PathBuf, ms: u64) -> Slow {
        let php = php();
        let child = std_fcgi()
            .args(["get", &format!("/slow.php?ms={ms}"), "--docroot"])
            .arg(&php.docroot)
            .arg("--socket")
            .arg(socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fcgi get");
        // Long enough for php-fpm to hand the request to a worker (a pool with more workers
        // can be asked: see `wait_active`).
        std::thread::sleep(Duration::from_millis(700));
        Slow(child)
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        wait_bounded(&mut self.0);
    }
}

#[test]
fn the_check_s_own_worker_counts_as_idle_in_every_pm_mode() {
    for name in ["static", "dynamic", "ondemand"] {
        let (socket, _lock) = pool(name);
        let output = status_on(&socket, &["--json"]);
        assert_code(&output, 0);
        let doc = json(&output);
        // php-fpm counts the status request as active ...
        assert!(doc["status"]["active processes"].as_u64().unwrap() >= 1, "{name}: {doc}");
        // ... fcgi counts it as idle: an idle pool has no active process.
        assert_eq!(doc["counted"]["active processes"], 0, "{name}: {doc}");
        let idle = doc["counted"]["idle processes"].as_u64().unwrap();
        assert_eq!(idle, doc["status"]["idle processes"].as_u64().unwrap() + 1, "{name}: {doc}");
        assert_eq!(doc["status"]["process manager"], name, "{doc}");
        // --min-idle 1 passes at rest in every mode (ondemand has no idle child at rest).
        assert_code(&status_on(&socket, &["--min-idle", "1"]), 0);
    }
}

#[test]
fn min_available_works_in_every_pm_mode() {
    let (socket, _lock) = pool("static");
    let text = stdout(&status_on(&socket, &["--min-available", "5"]));
    assert!(text.contains(" 5 available,"), "static: max_children is total processes: {text}");
    let line = assert_error(&status_on(&socket, &["--min-available", "6"]), 12);
    assert!(line.contains("available workers are 5") && line.contains("below the minimum 6"), "{line}");
    for name in ["dynamic", "ondemand"] {
        let (socket, _lock) = pool(name);
        let output = status_on(&socket, &["--min-available", "5", "--max-children", "5"]);
        assert_code(&output, 0);
        let line = assert_error(&status_on(&socket, &["--min-available", "6", "--max-children", "5"]), 12);
        assert!(line.contains("available workers are 5"), "{name}: {line}");
        // The page does not give pm.max_children for these modes: say what to add (exit 2).
        let line = assert_error(&status_on(&socket, &["--min-available", "1"]), 2);
        assert!(line.contains(&format!("pm = {name}")) && line.contains("--max-children N"), "{line}");
    }
}

/// `fcgi status ARGS` on `socket`, asked again (for at most 5 s) until `settled` holds for its
/// output; the last output either way. php-fpm marks a worker idle only after it has sent its
/// answer, so for a moment the worker of the check before may still count as active.
fn status_when(
    socket: &PathBuf,
    args: &[&str],
    settled: impl Fn(&std::process::Output) -> bool,
) -> std::process::Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let output = status_on(socket, args);
        if settled(&output) || std::time::Instant::now() > deadline {
            return output;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (at most 5 s) until the pool counts `n` active processes, the check's own excluded.
fn wait_active(socket: &PathBuf, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let doc = json(&status_on(socket, &["--json"]));
        if doc["counted"]["active processes"] == n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never {n} active: {doc}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_busy_worker_lowers_availability_and_shows_in_full() {
    let (socket, _lock) = pool("static");
    let _slow = Slow::start(&socket, 3000);
    wait_active(&socket, 1);
    let one_active = |output: &std::process::Output| {
        serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .is_ok_and(|doc| doc["counted"]["active processes"] == 1)
    };
    let output = status_when(&socket, &["--json", "--min-available", "4"], one_active);
    assert_code(&output, 0);
    let doc = json(&output);
    assert_eq!(doc["counted"]["active processes"], 1, "only the slow request: {doc}");
    assert_eq!(doc["counted"]["available"], MAX_CHILDREN - 1, "{doc}");
    assert_error(&status_on(&socket, &["--min-available", "5"]), 12);
    std::thread::sleep(Duration::from_millis(800));
    // Per process: the slow request has run > 1 s; the check's own worker is not counted.
    let line = assert_error(&status_on(&socket, &["--max-request-duration", "1s"]), 12);
    assert!(
        line.starts_with("fcgi: status: 1 process busy longer than 1 s (--max-request-duration): pid "),
        "{line}"
    );
    assert!(line.contains("Running for ") && line.contains("on GET /slow.php?ms=3000"), "{line}");
    assert_code(&status_on(&socket, &["--max-request-duration", "30s"]), 0);
    // Busy ratio: 1 of 5.
    let one_busy = |output: &std::process::Output| stderr(output).contains("(1 of pm.max_children 5 busy)");
    let line = assert_error(&status_when(&socket, &["--max-busy-ratio", "0.1"], one_busy), 12);
    assert!(
        line.contains("busy ratio is 0.20 (1 of pm.max_children 5 busy), above the maximum 0.1"),
        "{line}"
    );
    assert_code(&status_on(&socket, &["--max-busy-ratio", "50%"]), 0);
}

#[test]
fn full_puts_the_query_in_query_string() {
    let (socket, _lock) = pool("dynamic");
    for args in [&["--full", "--json"][..], &["--path", "/status?full", "--json"]] {
        let output = status_on(&socket, args);
        assert_code(&output, 0);
        let doc = json(&output);
        let processes = doc["status"]["processes"].as_array().unwrap_or_else(|| panic!("{args:?}: {doc}"));
        // The worker serving the check shows the URI it was asked with: SCRIPT_NAME /status
        // (else php-fpm would not have served its page), QUERY_STRING json&full.
        assert!(
            processes.iter().any(|p| p["request uri"] == "/status?json&full" && p["state"] == "Running"),
            "{args:?}: {doc}"
        );
    }
    let doc = json(&status_on(&socket, &["--json"]));
    assert!(doc["status"].get("processes").is_none(), "no ?full unless asked: {doc}");
}

#[test]
fn a_pool_whose_workers_are_all_busy_times_out() {
    let (socket, _lock) = pool("busy");
    let _slow = Slow::start(&socket, 4000);
    // connect() succeeds, the request waits in the backlog: only the deadline ends it.
    let started = std::time::Instant::now();
    let line = assert_error(&status_on(&socket, &["--max-time", "1s"]), 28);
    assert!(started.elapsed() < Duration::from_secs(3), "{line}");
}

#[test]
fn a_full_listen_backlog_is_a_refused_connect_exit_7() {
    let (socket, _lock) = pool("backlog");
    let _slow = Slow::start(&socket, 4000);
    // The one worker is busy; listen.backlog = 1 lets two more connections wait.
    let _waiting: Vec<UnixStream> =
        (0..2).map(|_| UnixStream::connect(&socket).expect("room in the backlog")).collect();
    for command in ["status", "ping"] {
        let output = run(fcgi().arg(command).arg("--socket").arg(&socket));
        let line = assert_error(&output, 7);
        assert!(line.contains("listen queue full") && line.contains("backlog is full"), "{command}: {line}");
    }
    // php-fpm's own counter says nothing on a unix socket (why the docs point to exit 7).
    drop(_waiting);
}

#[test]
fn metrics_formats_name_each_failed_pool_and_take_no_thresholds() {
    let hung = FakeServer::silent();
    let missing = temp_dir();
    let gone = missing.path().join("gone.sock");
    let output = run(fcgi()
        .args(["status", "--format", "prometheus", "--max-time", "500ms", "--socket"])
        .arg(&hung.path)
        .arg("--socket")
        .arg(&gone));
    assert_code(&output, 28);
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("unix:{}", hung.path.display())) && l.contains("--max-time")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.contains("gone.sock")), "{text}");
    let output =
        run(fcgi().args(["status", "--format", "openmetrics", "--min-idle", "1", "--socket"]).arg(&gone));
    let line = assert_error(&output, 2);
    assert!(line.contains("thresholds are for --format text or json"), "{line}");
}

#[test]
fn several_pools_need_a_metrics_format() {
    let socket = fcgi_tests::backends::php_fpm_pool("static");
    let output = run(fcgi().args(["status", "--socket"]).arg(&socket).arg("--socket").arg(&socket));
    let line = assert_error(&output, 2);
    assert!(line.contains("--format prometheus or openmetrics"), "{line}");
}

#[test]
fn prometheus_and_openmetrics_output_pass_promtool() {
    let dead = temp_dir();
    let dead_socket = dead.path().join("gone.sock");
    let mut args: Vec<String> = Vec::new();
    let mut locks = Vec::new();
    for name in ["static", "dynamic", "ondemand"] {
        let (socket, lock) = pool(name);
        locks.push(lock);
        args.extend(["--socket".into(), socket.display().to_string()]);
    }
    args.extend([
        "--connect".into(),
        php().tcp.to_string(),
        "--socket".into(),
        dead_socket.display().to_string(),
    ]);
    for format in ["prometheus", "openmetrics"] {
        let output = run(fcgi().args(["status", "--format", format]).args(&args));
        // The dead pool: exit 7 and its error line; the metrics are printed for all five.
        let line = assert_error(&output, 7);
        assert!(line.contains("gone.sock"), "{line}");
        let text = stdout(&output);
        for name in ["static", "dynamic", "ondemand", "tcp"] {
            assert!(
                text.contains(&format!("phpfpm_up{{pool=\"{name}\",scrape_uri=")),
                "{format}: {name}: {text}"
            );
        }
        let dead_up = format!("phpfpm_up{{pool=\"\",scrape_uri=\"unix:{}\"}} 0\n", dead_socket.display());
        assert!(text.contains(&dead_up), "{format}: {text}");
        for name in [
            "phpfpm_process_state",
            "phpfpm_process_requests",
            "phpfpm_listen_queue_length",
            "phpfpm_max_children_reached",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{format}: {name}");
        }
        let (code, report) = promtool(&text);
        // Exit 3 is promtool's "lint problems" (1 would be a parse error): the only problems
        // are the documented ones.
        assert_eq!(code, 3, "{format}: {report:?}\n{text}");
        for problem in &report {
            match format {
                // hipages' counter names have no _total (compatibility, documented).
                "prometheus" => {
                    assert!(problem.ends_with("counter metrics should have \"_total\" suffix"), "{problem}")
                }
                // promtool reads the 0.0.4 text format: OpenMetrics' _total samples, whose
                // family (and HELP) has no suffix, look HELP-less to it.
                _ => assert!(
                    problem.contains("_total no help text")
                        || problem.ends_with("counter metrics should have \"_total\" suffix"),
                    "{problem}"
                ),
            }
        }
        assert!(!report.is_empty(), "{format}");
        if format == "openmetrics" {
            assert!(text.ends_with("# EOF\n"), "{text}");
            assert!(text.contains("\nphpfpm_accepted_connections_total{"), "{text}");
        } else {
            assert!(text.contains("\nphpfpm_accepted_connections{"), "{text}");
        }
    }
    // Without per-process series: promtool has only the counter names to say.
    let output = run(fcgi()
        .args(["status", "--format", "prometheus", "--no-process-metrics", "--socket"])
        .arg(fcgi_tests::backends::php_fpm_pool("static")));
    assert_code(&output, 0);
    assert!(!stdout(&output).contains("phpfpm_process_"), "{}", stdout(&output));
}

/// Every `fcgi status` command of docs/CLI.md's "## Health-check recipes" section, as its
/// arguments: shell lines (continuations joined; the command ends at a pipe, a redirection or
/// a closing parenthesis) and exec-probe arrays (`["fcgi", "status", ...]`).
fn recipes(command: &str) -> Vec<Vec<String>> {
    let manual = include_str!("../../../docs/CLI.md");
    let section =
        manual.split("\n## Health-check recipes\n").nth(1).expect("docs/CLI.md has ## Health-check recipes");
    let section = section.split("\n## ").next().unwrap().replace("\\\n", " ");
    let mut out = Vec::new();
    for line in section.lines() {
        if let Some(at) = line.find(&format!("[\"fcgi\", \"{command}\"")) {
            let array = &line[at..=at + line[at..].find(']').expect("the array ends on its line")];
            let words: Vec<String> = serde_json::from_str(array).expect("a JSON array");
            out.push(words[2..].to_vec());
        }
        let prefix = format!("fcgi {command} ");
        for (at, _) in line.match_indices(&prefix) {
            let mut words = Vec::new();
            for word in line[at + prefix.len()..].split_whitespace() {
                if ["|", "||", "&&", "2>&1"].contains(&word)
                    || word.starts_with('>')
                    || word.starts_with("2>")
                {
                    break;
                }
                let closed = word.ends_with(')');
                words.push(word.trim_end_matches(')').trim_matches('\'').to_string());
                if closed {
                    break;
                }
            }
            out.push(words);
        }
    }
    out
}

#[test]
fn every_status_and_ping_recipe_in_the_manual_passes_on_idle_pools_in_every_pm_mode() {
    let status = recipes("status");
    assert!(status.len() >= 9, "{status:?}");
    let ping = recipes("ping");
    assert!(ping.len() >= 2, "the Kubernetes and Docker recipes: {ping:?}");
    let tcp = php().tcp.to_string();
    let all = status.iter().map(|r| ("status", r)).chain(ping.iter().map(|r| ("ping", r)));
    for (command, recipe) in all {
        // A recipe for a unix socket runs against the static, dynamic and ondemand pools; one
        // for TCP (127.0.0.1:9000) against the harness's TCP pool.
        let pools: Vec<(String, Option<MutexGuard<'static, ()>>)> =
            if recipe.iter().any(|a| a == "127.0.0.1:9000") {
                vec![(tcp.clone(), None)]
            } else {
                assert!(
                    recipe.iter().any(|a| a == "/run/php/php-fpm.sock"),
                    "a recipe names its pool: {recipe:?}"
                );
                ["static", "dynamic", "ondemand"]
                    .into_iter()
                    .map(|name| {
                        let (socket, lock) = pool(name);
                        (socket.display().to_string(), Some(lock))
                    })
                    .collect()
            };
        for (address, lock) in pools {
            let args: Vec<String> = recipe
                .iter()
                .map(|arg| match arg.as_str() {
                    "/run/php/php-fpm.sock" | "127.0.0.1:9000" => address.clone(),
                    _ => arg.clone(),
                })
                .collect();
            let output = run(fcgi().arg(command).args(&args));
            assert_code(&output, 0);
            drop(lock);
        }
    }
}

#[test]
fn the_readiness_recipe_fails_when_the_pool_is_full() {
    // The manual's readiness recipe (--min-available 1) against a pool whose only worker is busy:
    // the check cannot be answered in time (28), or the backlog is full (7): never 0.
    let (socket, _lock) = pool("busy");
    let _slow = Slow::start(&socket, 3000);
    let output = status_on(&socket, &["--min-available", "1", "--max-time", "1s"]);
    assert_error(&output, 28);
}
