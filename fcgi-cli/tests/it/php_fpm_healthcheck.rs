//! Coming from php-fpm-healthcheck: its environment names, the migration table of docs/CLI.md
//! run row by row against the harness php-fpm, and `--fail-exit` for Docker's HEALTHCHECK.

use crate::common::*;

/// The `| php-fpm-healthcheck option | fails when | fcgi status |` rows of docs/CLI.md whose
/// first cell is an option taking n: the option and the first code span of the last cell.
fn migration_rows() -> Vec<(String, String)> {
    let manual = include_str!("../../../docs/CLI.md");
    let section = manual.split("\n## Coming from php-fpm-healthcheck\n").nth(1).expect("the section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let option = cells[0].trim_start_matches("| ").trim_matches('`').to_string();
            let mapped = cells[2].split('`').nth(1).expect("a code span").to_string();
            (option, mapped)
        })
        .collect()
}

/// Every option of php-fpm-healthcheck 0.5 that takes a threshold.
const OPTIONS: &[&str] = &[
    "accepted-conn",
    "listen-queue",
    "max-listen-queue",
    "listen-queue-len",
    "idle-processes",
    "active-processes",
    "total-processes",
    "max-active-processes",
    "max-children-reached",
    "slow-requests",
];

/// `fcgi status ARGS --json` against the harness php-fpm.
fn status(args: &[String]) -> (i32, serde_json::Value) {
    let php = php();
    let output = run(fcgi().arg("status").args(args).arg("--json").arg("--socket").arg(&php.socket));
    let doc = json(&output);
    (code(&output), doc)
}

#[test]
fn the_migration_table_covers_every_option_and_each_row_checks_that_field() {
    let rows = migration_rows();
    let listed: Vec<&str> =
        rows.iter().map(|(option, _)| option.trim_start_matches("--").trim_end_matches("=n")).collect();
    assert_eq!(listed, OPTIONS, "one row per php-fpm-healthcheck option, in its order");
    for (option, mapped) in &rows {
        // php-fpm-healthcheck: fail when the value is greater than n.
        let field = option.trim_start_matches("--").trim_end_matches("=n").replace('-', " ");
        let with = |n: u64| -> Vec<String> {
            mapped
                .replace("=n", &format!("={n}"))
                .replace(" n", &format!(" {n}"))
                .split(' ')
                .map(String::from)
                .collect()
        };
        let (exit, doc) = status(&with(1_000_000_000));
        assert_eq!(exit, 0, "{option} -> {mapped} with a large n passes: {doc}");
        let (exit, doc) = status(&with(0));
        // The checks see the counted figures where there are some (the check's own worker
        // counted as idle), php-fpm's own otherwise.
        let value = doc["counted"][&field]
            .as_u64()
            .or_else(|| doc["status"][&field].as_u64())
            .unwrap_or_else(|| panic!("{field} in {doc}"));
        let expected = if value > 0 { 12 } else { 0 };
        assert_eq!(exit, expected, "{option} -> {mapped} with n = 0 and {field} = {value}: {doc}");
        let check = &doc["checks"][0];
        assert_eq!(check["value"], value, "{mapped} checks {field}: {doc}");
        assert_eq!(check["op"], "<=", "{mapped}: 'greater than n' fails: {doc}");
        if expected == 12 {
            assert!(doc["message"].as_str().unwrap().contains(&field), "the message names {field}: {doc}");
        }
    }
}

#[test]
fn fcgi_connect_and_fcgi_status_path_are_honoured() {
    let php = php();
    // A socket path, as cgi-fcgi takes it, and host:port.
    for address in [php.socket.to_str().unwrap().to_string(), php.tcp.to_string()] {
        let output = run(fcgi().args(["status", "-s"]).env("FCGI_CONNECT", &address));
        assert_code(&output, 0);
        let output = run(fcgi().args(["ping", "-s"]).env("FCGI_CONNECT", &address));
        assert_code(&output, 0);
    }
    // FCGI_ADDRESS wins over FCGI_CONNECT, and a flag over both.
    let output = run(fcgi()
        .args(["ping", "-s"])
        .env("FCGI_ADDRESS", &php.socket)
        .env("FCGI_CONNECT", "/nonexistent/php.sock"));
    assert_code(&output, 0);
    let output = run(fcgi()
        .args(["ping", "-s", "--socket"])
        .arg(&php.socket)
        .env("FCGI_CONNECT", "/nonexistent/x.sock"));
    assert_code(&output, 0);
    let line = assert_error(&run(fcgi().args(["ping"]).env("FCGI_CONNECT", "/nonexistent/php.sock")), 7);
    assert!(line.contains("/nonexistent/php.sock"), "{line}");
    // FCGI_STATUS_PATH is the default --path of status; --path wins.
    let env = |path: &str| {
        let mut cmd = fcgi();
        cmd.args(["status", "-s", "--socket"]).arg(&php.socket).env("FCGI_STATUS_PATH", path);
        cmd
    };
    assert_code(&run(&mut env("/status")), 0);
    let line = assert_error(&run(&mut env("/not-the-status-page")), 4);
    assert!(line.contains("/not-the-status-page"), "{line}");
    assert_code(&run(env("/not-the-status-page").args(["--path", "/status"])), 0);
    // --help says so.
    let help = stdout(&run(fcgi().args(["status", "--help"])));
    assert!(help.contains("FCGI_STATUS_PATH"), "{help}");
    let help = stdout(&run(fcgi().arg("--help")));
    assert!(help.contains("FCGI_CONNECT") && help.contains("FCGI_STATUS_PATH"), "{help}");
}

#[test]
fn fail_exit_maps_every_failure_to_one_code_for_docker() {
    let php = php();
    let socket = php.socket.to_str().unwrap();
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["ping", "--socket", "/nonexistent/php.sock"], 7),
        (vec!["status", "--socket", socket, "--max", "total-processes=0"], 12),
        (vec!["get", "/missing.php", "--socket", socket], 4),
        (vec!["status", "--socket", socket, "--path", "/nope"], 4),
        (vec!["ping", "--socket", socket, "--max-time", "soon"], 2),
        (vec!["ping", "--socket", socket, "--bogus"], 2),
    ];
    for (args, own) in cases {
        let output = run(fcgi().args(&args).current_dir(&php.docroot));
        assert_code(&output, own);
        let output = run(fcgi().args(&args).args(["--fail-exit", "1"]).current_dir(&php.docroot));
        assert_code(&output, 1);
        // The reason is still on stderr (docker inspect's health log), its last line.
        let err = stderr(&output);
        assert_no_panic(&err);
        assert!(err.lines().last().is_some_and(|line| line.starts_with("fcgi: ")), "{args:?}: {err}");
        let output = run(fcgi().args(&args).arg("--fail-exit=3").current_dir(&php.docroot));
        assert_code(&output, 3);
    }
    // Success stays 0; --json documents keep the real code.
    let output = run(fcgi().args(["ping", "--fail-exit", "1", "-s", "--socket", socket]));
    assert_code(&output, 0);
    let output =
        run(fcgi().args(["ping", "--json", "--fail-exit", "1", "--socket", "/nonexistent/php.sock"]));
    assert_code(&output, 1);
    assert_eq!(json(&output)["exit_code"], 7);
    // 0 is not a failure code.
    assert_error(&run(fcgi().args(["ping", "--fail-exit", "0", "--socket", socket])), 2);
}
