//! The real-peer matrix (issue #13, item 6): every FastCGI server the harness starts, each asked
//! the same things by the `fcgi` binary, and the results compared with the table in
//! docs/PEERS.md: the table is what this run measured, cell by cell, or the test fails and
//! prints the row as it should read.
//!
//! The peers and the applications they serve (routes in each file's header):
//!
//! | peer | application | kind |
//! |---|---|---|
//! | php-fpm (unix, TCP), `php-cgi -b` | `tests/php/peer.php` | directory of scripts, `?r=ROUTE` |
//! | fcgiwrap | `tests/backends/cgi/peer.sh` | a CGI script, `?r=ROUTE` |
//! | flup (multiplexed) | `tests/backends/flup_app.py` | mounted (`--mount /`), all three roles |
//! | uWSGI | `tests/backends/uwsgi_app.py` | mounted |
//! | Go net/http/fcgi | `tests/backends/go/main.go` | mounted (routes on REQUEST_URI) |
//! | Perl FCGI under spawn-fcgi | `tests/backends/perl/peer.pl` | mounted, all three roles |
//!
//! What each column asks, and the cell it writes:
//!
//! - GET with a query: `/echo?a=1&b=two` answers `query=<QUERY_STRING>` → `ok`
//! - POST 1 MiB from a file (`--data-binary @FILE`) and from a pipe (`@-`): `/md5` answers the
//!   md5 the application computed, compared with ours → `ok`
//! - HEAD: `-I /echo` gives `200` and no body → `ok`
//! - 5 MiB: `/big?bytes=5242880` gives exactly that many bytes → `ok`
//! - probe: `fcgi probe -m 1s` → `exit 0` (answered) or `exit 10` (no answer)
//! - bench: `fcgi bench -D 3s --json` (`--multiplex` for the peers that multiplex) → `0 errors`
//! - --max-time: `/sleep?ms=2000` under `-m 500ms` → `exit 28`, within 1.5 s
//! - authorizer: `request --role authorizer` with `allow` in the query → `authorized` (exit 0
//!   and a REMOTE_USER variable), `200, no variables` (exit 0 without), or `exit N`
//! - filter: `--role filter --filter-data @FILE` to `/md5` → `data ok` (the application
//!   answered the md5 of the FCGI_DATA stream), `data not seen` (it answered as a responder),
//!   or `exit N`

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::*;

/// Where a peer listens.
enum Socket {
    Unix(PathBuf),
    Tcp(String),
}

/// How a peer finds its application.
enum Kind {
    /// A mounted application (`--mount /`, route in PATH_INFO).
    Mounted,
    /// `peer.php` in the php-fpm docroot, route in `?r=`.
    Php(PathBuf),
    /// fcgiwrap running `peer.sh`, route in `?r=`.
    Cgi(PathBuf),
}

struct Peer {
    /// The row's name in docs/PEERS.md.
    name: &'static str,
    socket: Socket,
    kind: Kind,
    /// Bench with `--multiplex`.
    multiplex: bool,
}

const PEERS_MD: &str = include_str!("../../../docs/PEERS.md");

/// The columns after the peer's name and how it is started, in the table's order.
const COLUMNS: [&str; 10] = [
    "GET ?query",
    "POST 1 MiB file",
    "POST 1 MiB pipe",
    "HEAD",
    "5 MiB",
    "probe",
    "bench 3 s",
    "--max-time",
    "authorizer",
    "filter",
];

fn peer(name: &str) -> Peer {
    let php = || fcgi_tests::backends::php_fpm();
    let peers = || fcgi_tests::backends::peers();
    let (socket, kind, multiplex) = match name {
        "php-fpm (unix)" => (Socket::Unix(php().socket), Kind::Php(php().docroot), false),
        "php-fpm (TCP)" => (Socket::Tcp(php().tcp.to_string()), Kind::Php(php().docroot), false),
        "php-cgi -b" => (Socket::Unix(peers().php_cgi), Kind::Php(php().docroot), false),
        "fcgiwrap" => {
            let wrap = fcgi_tests::backends::fcgiwrap();
            (Socket::Unix(wrap.socket.clone()), Kind::Cgi(wrap.script_path("peer.sh")), false)
        }
        "flup (multiplexed)" => (Socket::Unix(fcgi_tests::backends::flup().multiplexed), Kind::Mounted, true),
        "uWSGI" => (Socket::Unix(peers().uwsgi), Kind::Mounted, false),
        "Go net/http/fcgi" => (Socket::Unix(peers().go), Kind::Mounted, true),
        "Perl FCGI (spawn-fcgi)" => (Socket::Unix(peers().perl), Kind::Mounted, false),
        other => panic!("docs/PEERS.md names a peer the matrix does not know: {other:?}"),
    };
    let name = PEER_NAMES.iter().find(|n| **n == name).expect("a known name");
    Peer { name, socket, kind, multiplex }
}

/// Every peer, in the table's order.
const PEER_NAMES: [&str; 8] = [
    "php-fpm (unix)",
    "php-fpm (TCP)",
    "php-cgi -b",
    "fcgiwrap",
    "flup (multiplexed)",
    "uWSGI",
    "Go net/http/fcgi",
    "Perl FCGI (spawn-fcgi)",
];

impl Peer {
    /// `fcgi ARGS` with this peer's target.
    fn fcgi(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = fcgi();
        cmd.env_remove("FCGI_MOUNT").args(args);
        match &self.socket {
            Socket::Unix(path) => cmd.arg("--socket").arg(path),
            Socket::Tcp(address) => cmd.args(["--connect", address]),
        };
        cmd
    }

    /// The request path of `route` with `query`, and the flags that locate the application.
    fn request(&self, route: &str, query: &str) -> (String, Vec<String>) {
        let sep = if query.is_empty() { "" } else { "&" };
        match &self.kind {
            Kind::Mounted => {
                let q = if query.is_empty() { String::new() } else { format!("?{query}") };
                (format!("/{route}{q}"), vec!["--mount".into(), "/".into()])
            }
            Kind::Php(docroot) => (
                format!("/peer.php?r={route}{sep}{query}"),
                vec!["--docroot".into(), docroot.display().to_string()],
            ),
            Kind::Cgi(script) => (
                format!("/peer.sh?r={route}{sep}{query}"),
                vec!["--script-filename".into(), script.display().to_string()],
            ),
        }
    }

    /// `fcgi COMMAND PATH-of-route FLAGS... EXTRA...`.
    fn ask(&self, command: &str, route: &str, query: &str, extra: &[&str]) -> assert_cmd::Command {
        let (path, flags) = self.request(route, query);
        let mut cmd = self.fcgi(&[command, &path]);
        cmd.args(flags).args(extra);
        cmd
    }

    /// The QUERY_STRING the application sees for `route` and `query`.
    fn query_seen(&self, route: &str, query: &str) -> String {
        match self.kind {
            Kind::Mounted => query.to_string(),
            _ => format!("r={route}&{query}"),
        }
    }
}

fn exit_cell(output: &Output) -> String {
    format!("exit {}", code(output))
}

/// `ok` when `good`, else what happened.
fn ok_or(output: &Output, good: bool) -> String {
    if good { "ok".into() } else { format!("{}: {}", exit_cell(output), stderr(output).trim()) }
}

/// 1 MiB that is no repeating pattern, written to a file, and its md5 (by `md5sum`).
fn megabyte_file() -> (tempfile::TempDir, PathBuf, String) {
    let dir = temp_dir();
    let mut state: u32 = 0x1234_5679;
    let bytes: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let path = dir.path().join("body.bin");
    std::fs::write(&path, bytes).unwrap();
    let sum = std::process::Command::new("md5sum").arg(&path).output().expect("md5sum");
    let md5 = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().expect("an md5").to_owned();
    (dir, path, md5)
}

/// Runs every column against `peer` and returns the cells.
fn measure(peer: &Peer) -> Vec<String> {
    let mut cells = Vec::new();
    // GET with a query.
    let output = run(&mut peer.ask("get", "echo", "a=1&b=two", &[]));
    let expected = format!("query={}\n", peer.query_seen("echo", "a=1&b=two"));
    cells.push(ok_or(&output, code(&output) == 0 && stdout(&output) == expected));
    // POST 1 MiB, from a file and from a pipe.
    let (_dir, file, md5) = megabyte_file();
    let data = format!("@{}", file.display());
    let output = run(&mut peer.ask("post", "md5", "", &["--data-binary", &data]));
    cells.push(ok_or(&output, code(&output) == 0 && stdout(&output) == format!("md5={md5}\n")));
    let output = run(peer.ask("post", "md5", "", &["--data-binary", "@-"]).pipe_stdin(&file).unwrap());
    cells.push(ok_or(&output, code(&output) == 0 && stdout(&output) == format!("md5={md5}\n")));
    // HEAD.
    let output = run(&mut peer.ask("get", "echo", "", &["-I"]));
    let text = stdout(&output);
    cells.push(ok_or(
        &output,
        code(&output) == 0 && text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\n"),
    ));
    // A 5 MiB response.
    let output = run(&mut peer.ask("get", "big", "bytes=5242880", &[]));
    cells.push(ok_or(&output, code(&output) == 0 && output.stdout.len() == 5 << 20));
    // probe.
    cells.push(exit_cell(&run(&mut peer.fcgi(&["probe", "-m", "1s"]))));
    // A 3-second bench.
    let mut bench = vec!["-D", "3s", "--json", "-s"];
    if peer.multiplex {
        bench.push("--multiplex");
    }
    let output = run(&mut peer.ask("bench", "echo", "", &bench));
    let doc = json(&output);
    let errors = doc["errors"].as_u64().unwrap_or(u64::MAX);
    let completed = doc["completed"].as_u64().unwrap_or(0);
    let non_200: u64 = doc["status"]
        .as_object()
        .map(|s| s.iter().filter(|(k, _)| !k.starts_with("200")).map(|(_, v)| v.as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    cells.push(if errors == 0 && completed > 0 && non_200 == 0 {
        "0 errors".into()
    } else {
        format!("{errors} errors, {non_200} not 200 ({})", doc["errors_by_kind"])
    });
    // A slow request under --max-time.
    let started = Instant::now();
    let output = run(&mut peer.ask("get", "sleep", "ms=2000", &["-m", "500ms"]));
    let took = started.elapsed();
    cells.push(if took < Duration::from_millis(1500) {
        exit_cell(&output)
    } else {
        format!("took {took:?}")
    });
    // Authorizer.
    let (path, _) = peer.request("auth", "allow");
    let mut cmd = peer.fcgi(&["request", "--role", "authorizer", &path]);
    if let Kind::Cgi(script) = &peer.kind {
        cmd.arg("--script-filename").arg(script);
    }
    if let Kind::Php(docroot) = &peer.kind {
        cmd.arg("--docroot").arg(docroot);
    }
    let output = run(&mut cmd);
    cells.push(match code(&output) {
        0 if stdout(&output).starts_with("REMOTE_USER=") => "authorized".into(),
        0 => "200, no variables".into(),
        _ => exit_cell(&output),
    });
    // Filter: the megabyte as FCGI_DATA, no body.
    let output = run(&mut peer.ask("get", "md5", "", &["--role", "filter", "--filter-data", &data]));
    cells.push(match code(&output) {
        0 if stdout(&output).contains(&format!("data_md5={md5}\n")) => "data ok".into(),
        0 => "data not seen".into(),
        _ => exit_cell(&output),
    });
    cells
}

/// The table's rows: peer name → cells after the "started as" column.
fn table() -> Vec<(String, Vec<String>)> {
    let section = PEERS_MD.split("\n## The matrix\n").nth(1).expect("docs/PEERS.md has ## The matrix");
    let mut lines = section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    let header: Vec<String> = cells_of(lines.next().expect("a header row"));
    assert_eq!(&header[2..], COLUMNS, "docs/PEERS.md's columns");
    lines
        .skip(1) // |---|
        .map(|line| {
            let cells = cells_of(line);
            (cells[0].trim_matches('`').to_string(), cells[2..].to_vec())
        })
        .collect()
}

fn cells_of(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// Measures `name` and compares with its row in docs/PEERS.md.
fn check(name: &str) {
    let peer = peer(name);
    let measured = measure(&peer);
    let rows = table();
    let (_, documented) = rows
        .iter()
        .find(|(n, _)| n == peer.name)
        .unwrap_or_else(|| panic!("docs/PEERS.md has no row {name:?}"));
    let differing: Vec<String> = COLUMNS
        .iter()
        .zip(measured.iter().zip(documented))
        .filter(|(_, (m, d))| m != d)
        .map(|(column, (m, d))| format!("{column}: measured {m:?}, docs/PEERS.md says {d:?}"))
        .collect();
    assert!(
        differing.is_empty(),
        "{name}: the matrix differs from docs/PEERS.md:\n  {}\nthe row as measured: | {} |",
        differing.join("\n  "),
        measured.join(" | ")
    );
}

#[test]
fn the_table_lists_exactly_the_peers_the_matrix_runs() {
    let names: Vec<String> = table().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, PEER_NAMES, "docs/PEERS.md rows");
}

#[test]
fn php_fpm_unix() {
    check("php-fpm (unix)");
}

#[test]
fn php_fpm_tcp() {
    check("php-fpm (TCP)");
}

#[test]
fn php_cgi() {
    check("php-cgi -b");
}

#[test]
fn fcgiwrap() {
    check("fcgiwrap");
}

#[test]
fn flup_multiplexed() {
    check("flup (multiplexed)");
}

#[test]
fn uwsgi() {
    check("uWSGI");
}

#[test]
fn go_net_http_fcgi() {
    check("Go net/http/fcgi");
}

#[test]
fn perl_fcgi_under_spawn_fcgi() {
    check("Perl FCGI (spawn-fcgi)");
}
