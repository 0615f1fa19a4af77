//! Bench section `mux`: fcgi-mux beside the `fastcgi-client` crate on php-fpm, multiplexing
//! against a tokio-fastcgi responder, and the memory of a 1 GiB response.
//!
//! fcgi-mux is driven by `fcgi bench --json` (the release CLI): one load driver for users and
//! for this benchmark. The peer has no CLI; `fcgi-mux/benches/fastcgi_client_peer.rs` drives it
//! the same way (requests in flight, a measured period from the first request, client CPU from
//! its own `getrusage`), with the parameters `fcgi` sends for the same path. The 1 GiB response
//! is read by `fcgi get` and by the peer under GNU time. The notes of the report say the rest.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::measure::json::Number as _;
use super::measure::{
    self, UnderTime, clock_ticks, cpu_ticks, json, load_average, median, thousands, verdict,
};
use super::tools::GNU_TIME;
use super::{Ctx, Report};
use crate::process::{self, Group, Signal};
use crate::workspace;

/// Timed runs of each configuration, after one untimed round.
const REPEATS: usize = 5;
/// Seconds of each load run.
const SECONDS: u32 = 2;
/// php-fpm has 8 static workers and pins one to every open connection; 7 leave it one spare.
const PHP_CONCURRENCY: usize = 8;
const PHP_CONNECTIONS: usize = 7;
const MPX_CONCURRENCY: usize = 64;
const STREAM_BYTES: u64 = 1 << 30;
/// The body of `hello.php` and of the responder.
const HELLO: &str = "Hello, world!";
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The core's targets: client CPU at 8 concurrent ≤ this × the peer's (its better runtime)...
const TARGET_CLIENT_CPU_RATIO: f64 = 0.35;
/// ...one request at a time, requests/s ≥ this × the peer's...
const TARGET_SERIAL_RATIO: f64 = 1.1;
/// ...64 multiplexed on one connection ≥ this × 64 connections; 1 GiB within this RSS.
const TARGET_MPX_RATIO: f64 = 1.2;
const TARGET_RSS_MIB: f64 = 8.0;

const BUILD_ARGS: &[&str] =
    &["build", "--release", "-p", "fcgi-mux", "--bench", "fastcgi_client_peer", "--bench", "mpx_responder"];

/// Measures; returns the report.
pub fn run(ctx: &mut Ctx) -> Result<Report> {
    let load_before = load_average();
    let fcgi = ctx.fcgi()?;
    let mut bins =
        measure::build_bins("the peers", BUILD_ARGS, &[], &["fastcgi_client_peer", "mpx_responder"])?;
    let time = GNU_TIME.require()?;
    let work = tempfile::Builder::new().prefix("fcgi-bench-mux-").tempdir().context("creating a temp dir")?;
    let backends = ctx.backends()?;
    let bench = Bench {
        dir: work.path().to_owned(),
        fcgi,
        peer: bins.remove("fastcgi_client_peer").context("no fastcgi_client_peer")?,
        time,
        socket: backends.php_fpm.socket.display().to_string(),
        docroot: backends.docroot.display().to_string(),
        ticks: clock_ticks()?,
    };
    let php = backends.php_fpm.pid();
    let hello = bench.params("/hello.php")?;
    let (c8, n7) = (PHP_CONCURRENCY, PHP_CONNECTIONS);
    println!("xtask: bench mux: php-fpm, {c8} concurrent ...");
    let php8 = [bench.fcgi_bench(&bench.socket, "/hello.php", c8, n7, false)]
        .into_iter()
        .chain(["current", "multi"].map(|runtime| bench.peer_load(&hello, c8, n7, runtime)));
    let php8 = bench.loads(&php8.collect::<Vec<_>>(), php, true)?;
    println!("xtask: bench mux: php-fpm, 1 at a time ...");
    let php1 = [
        bench.fcgi_bench(&bench.socket, "/hello.php", 1, 1, false),
        bench.peer_load(&hello, 1, 1, "current"),
    ];
    let php1 = bench.loads(&php1, php, true)?;
    println!("xtask: bench mux: tokio-fastcgi responder, {MPX_CONCURRENCY} concurrent ...");
    let mpx = bench.responder(bins.remove("mpx_responder").context("no mpx_responder")?)?;
    println!("xtask: bench mux: {STREAM_BYTES} bytes from big.php ...");
    let stream = bench.stream()?;
    let load_after = load_average();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut table =
        String::from("| measurement | fcgi-mux (`fcgi bench`) | fastcgi-client | target | met |\n");
    table.push_str("|---|---:|---:|---|:-:|\n");
    let heading = |text: &str| format!("| **{text}** |  |  |  |  |\n");
    table += &heading(&format!(
        "php-fpm `hello.php`, {c8} concurrent requests, {n7} connections (fastcgi-client: \
         current-thread / multi-thread runtime)"
    ));
    table += &php_rows(&php8, cores, true);
    table += &heading("php-fpm `hello.php`, 1 request at a time, 1 connection");
    table += &php_rows(&php1, cores, false);
    table +=
        &heading("tokio-fastcgi responder, 64 concurrent requests (fcgi-mux on both sides of the ratio)");
    table += &responder_rows(&mpx[0], &mpx[1]);
    table += &heading("1 GiB response from php-fpm `big.php` (`fcgi get -o /dev/null`; `execute_stream`)");
    let rss = |c: usize| median(stream[c].iter().map(|r| r.0)) / 1048576.0;
    let mb_s = |c: usize| median(stream[c].iter().map(|r| r.1));
    table += &format!(
        "| peak RSS of the client | {:.1} MiB | {:.1} MiB | ≤ {TARGET_RSS_MIB} MiB | {} |\n",
        rss(0),
        rss(1),
        verdict(rss(0) <= TARGET_RSS_MIB)
    );
    table += &format!("| throughput | {:.0} MB/s | {:.0} MB/s | — |  |\n", mb_s(0), mb_s(1));

    let stream_log = |c: usize| {
        let runs: Vec<String> =
            stream[c].iter().map(|(rss, mb)| format!("{:.1} MiB, {mb:.0} MB/s", rss / 1048576.0)).collect();
        runs.join("; ")
    };
    let log =
        [log("php-fpm, 8 concurrent", &php8), log("php-fpm, 1 at a time", &php1), log("responder", &mpx)];
    let notes = format!(
        "Peers: `fastcgi-client` {} (feature `tokio`) and `tokio-fastcgi` {} from crates.io, driven by \
         `fcgi-mux/benches/` (`cargo {}`); fcgi-mux by `fcgi bench --json` of the release CLI ({}). \
         Each figure is the median of {REPEATS} runs of {SECONDS} s after an untimed round, the \
         clients taking turns in a rotating order.\n\n\
         How: `fcgi bench PATH -c N --connections M -D {SECONDS}s` and `fastcgi_client_peer \
         --param ... load --concurrency N --connections M` keep N requests in flight, each worker \
         sending its next request once the previous response was read, with the parameters `fcgi` \
         sends for the path (as `fcgi bench -v` prints them); every response is checked (200, \
         `{HELLO}`). **Client CPU** is each program's own `getrusage(RUSAGE_SELF)` over its \
         measured period ÷ requests completed in it. `fcgi bench` encodes the parameters once and \
         runs on tokio's current-thread runtime; fastcgi-client clones a parameter map per request \
         and runs on both runtimes, the targets judged on its better one; having no pool, it \
         shares {n7} keep-alive clients among the workers, so that, as in fcgi-mux's pool, a \
         request waits for the next free connection. **Server CPU** is utime + stime from \
         `/proc/<pid>/stat` (php-fpm: master and children; {} Hz) over each run ÷ its requests. \
         The **ceiling** is {cores} cores ÷ (php-fpm + client CPU per request).\n\n\
         The responder (`mpx_responder`) is tokio-fastcgi on a current-thread runtime, a task per \
         request, writes gathered per connection. On one multiplexed connection the two sides take \
         turns, each handling a batch while the other waits; 64 connections let both cores work at \
         once. Streaming: `fcgi get \"/big.php?bytes={STREAM_BYTES}\" -o /dev/null` and \
         `fastcgi_client_peer ... stream` (`execute_stream`) under `/usr/bin/time`: peak RSS of the \
         process; MB/s from the wall time around it.\n\n\
         Load average (1 min) before/after: {load_before} / {load_after}; the machine is shared, so \
         compare the columns of one run.\n\n\
         Runs (requests/s | client µs/request | server µs/request):\n\n{}\n\
         - 1 GiB, fcgi get: {}\n- 1 GiB, fastcgi-client: {}",
        locked_version("fastcgi-client"),
        locked_version("tokio-fastcgi"),
        BUILD_ARGS.join(" "),
        ctx.fcgi_build_line(),
        bench.ticks,
        log.join("\n"),
        stream_log(0),
        stream_log(1),
    );
    Ok(Report {
        title: "fcgi-mux: client CPU, throughput, multiplexing and memory (vs fastcgi-client)".into(),
        command: format!("cargo xtask bench mux   # peers built with: cargo {}", BUILD_ARGS.join(" ")),
        table,
        notes,
    })
}

/// A client and its arguments, as run for one configuration.
struct Client {
    name: String,
    program: PathBuf,
    args: Vec<String>,
}

/// The runs of one [`Client`] (requests/s, client and server µs per request) and their medians.
struct Figures {
    name: String,
    runs: Vec<[f64; 3]>,
    req_per_s: f64,
    client_us: f64,
    server_us: f64,
}

/// Runs `run(i)` for each of `count` clients once per round, the order rotating, one untimed
/// round first; returns each client's timed results.
fn rotate<T>(count: usize, mut run: impl FnMut(usize) -> Result<T>) -> Result<Vec<Vec<T>>> {
    let mut results: Vec<Vec<T>> = (0..count).map(|_| Vec::new()).collect();
    for round in 0..=REPEATS {
        for i in 0..count {
            let client = (i + round) % count;
            let result = run(client)?;
            if round > 0 {
                results[client].push(result);
            }
        }
    }
    Ok(results)
}

/// What the runs need.
struct Bench {
    dir: PathBuf,
    fcgi: PathBuf,
    peer: PathBuf,
    time: PathBuf,
    /// php-fpm's socket and docroot.
    socket: String,
    docroot: String,
    ticks: f64,
}

impl Bench {
    /// The CGI parameters `fcgi` sends for `path`, as the peer's `--param=NAME=VALUE`
    /// arguments, from one `fcgi bench -n1 -v` run, which also checks that php-fpm answers it.
    fn params(&self, path: &str) -> Result<Vec<String>> {
        let mut cmd = Command::new(&self.fcgi);
        cmd.args(["bench", path, "--socket", &self.socket, "--docroot", &self.docroot]);
        cmd.args(["-n1", "-v", "--json"]);
        let finished =
            measure::run_to_end(&self.dir, "params", &mut cmd, RUN_TIMEOUT, Duration::from_millis(20))?
                .check(path)?;
        let params: Vec<String> = finished
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix("* param "))
            .map(|p| format!("--param={p}"))
            .collect();
        if params.is_empty() {
            bail!("fcgi bench -v printed no parameters: {}", finished.stderr);
        }
        Ok(params)
    }

    /// `fcgi bench PATH` on `socket`.
    fn fcgi_bench(
        &self,
        socket: &str,
        path: &str,
        concurrency: usize,
        connections: usize,
        multiplex: bool,
    ) -> Client {
        let mut args: Vec<String> =
            ["bench", path, "--socket", socket, "--json", "-s"].map(String::from).into();
        args.extend([format!("--docroot={}", self.docroot), format!("-c{concurrency}")]);
        args.extend([format!("--connections={connections}"), format!("-D{SECONDS}s")]);
        if multiplex {
            args.push("--multiplex".into());
        }
        let name = format!(
            "fcgi bench, {connections} connection(s){}",
            if multiplex { ", multiplexed" } else { "" }
        );
        Client { name, program: self.fcgi.clone(), args }
    }

    /// The peer's load on php-fpm; `params` as [`Bench::params`] returns them.
    fn peer_load(&self, params: &[String], concurrency: usize, connections: usize, runtime: &str) -> Client {
        let mut args = [["--socket".to_owned(), self.socket.clone()].as_slice(), params].concat();
        args.extend([
            "load".into(),
            format!("--concurrency={concurrency}"),
            format!("--connections={connections}"),
        ]);
        args.extend([
            format!("--duration={SECONDS}"),
            format!("--runtime={runtime}"),
            format!("--expect-body={HELLO}"),
        ]);
        Client { name: format!("fastcgi-client, {runtime}-thread runtime"), program: self.peer.clone(), args }
    }

    /// The load runs of `clients` (see [`rotate`]); the server is process `server`, with its
    /// children if `with_children`.
    fn loads(&self, clients: &[Client], server: u32, with_children: bool) -> Result<Vec<Figures>> {
        let runs = rotate(clients.len(), |i| self.load(&clients[i], server, with_children))?;
        let figures = clients.iter().zip(runs).map(|(client, runs)| {
            let m = |i: usize| median(runs.iter().map(|r| r[i]));
            Figures { name: client.name.clone(), req_per_s: m(0), client_us: m(1), server_us: m(2), runs }
        });
        Ok(figures.collect())
    }

    /// One load run, its responses checked: requests/s, client and server µs per request.
    fn load(&self, client: &Client, server: u32, with_children: bool) -> Result<[f64; 3]> {
        let before = cpu_ticks(server, with_children)?;
        let result = measure::run_json(&self.dir, "load", &client.program, &client.args, RUN_TIMEOUT)?;
        let server_s = cpu_ticks(server, with_children)?.saturating_sub(before) as f64 / self.ticks;
        let completed = result.number("completed")?;
        if result.number("errors")? > 0.0 || completed <= 0.0 {
            bail!("{}: failed requests, or none completed: {result}", client.name);
        }
        // `fcgi bench` counts statuses and body bytes; the peer checks each body itself.
        if let Some(body_bytes) = result.get("body_bytes").and_then(json::Value::as_f64) {
            let ok = result.pointer("/status/200").and_then(json::Value::as_f64);
            if ok != Some(completed) || body_bytes != completed * HELLO.len() as f64 {
                bail!("{}: not every response was 200 `{HELLO}`: {result}", client.name);
            }
        }
        Ok([result.number("req_per_s")?, result.number("cpu_us_per_req")?, server_s * 1e6 / completed])
    }

    /// fcgi-mux against the tokio-fastcgi responder: 64 multiplexed on one connection, and 64
    /// connections.
    fn responder(&self, program: PathBuf) -> Result<Vec<Figures>> {
        let socket = self.dir.join("mpx-responder.sock");
        let mut cmd = Command::new(program);
        // It reports each connection a client drops; `fcgi bench -D` drops its connections.
        let log = fs::File::create(self.dir.join("mpx_responder.log")).context("creating its log")?;
        cmd.arg(&socket).stdout(Stdio::null()).stderr(log);
        let mut responder = Group::spawn("mpx_responder", &mut cmd, Signal::Term)?;
        for tries in 0.. {
            if let Some(status) = responder.try_wait()? {
                bail!("mpx_responder exited ({})", process::describe(status));
            }
            match UnixStream::connect(&socket) {
                Ok(_) => break,
                Err(_) if tries == 500 => bail!("mpx_responder did not listen within 10 s"),
                Err(_) => process::sleep(Duration::from_millis(20))?,
            }
        }
        let socket = socket.display().to_string();
        let clients = [
            self.fcgi_bench(&socket, "/hello", MPX_CONCURRENCY, 1, true),
            self.fcgi_bench(&socket, "/hello", MPX_CONCURRENCY, MPX_CONCURRENCY, false),
        ];
        self.loads(&clients, responder.pid(), false)
    }

    /// `fcgi get` and the peer reading [`STREAM_BYTES`] under GNU time: (peak RSS bytes, MB/s).
    fn stream(&self) -> Result<Vec<Vec<(f64, f64)>>> {
        let path = format!("/big.php?bytes={STREAM_BYTES}");
        let fcgi_args =
            ["get", &path, "--socket", &self.socket, "--docroot", &self.docroot, "-o", "/dev/null", "-s"];
        let peer_args =
            [vec!["--socket".to_owned(), self.socket.clone()], self.params(&path)?, vec!["stream".into()]];
        let clients = [(&self.fcgi, fcgi_args.map(String::from).into()), (&self.peer, peer_args.concat())];
        rotate(2, |client| {
            let (program, args): &(&PathBuf, Vec<String>) = &clients[client];
            let command = UnderTime::new(&self.time, &self.dir, "stream", program, args);
            let (finished, usage) =
                command.run(&self.dir, "stream", RUN_TIMEOUT, Duration::from_millis(1))?;
            // `fcgi get` fails on a short body; the peer reports what it read.
            if client == 1 && json::parse(&finished.stdout)?.number("bytes")? < STREAM_BYTES as f64 {
                bail!("fastcgi_client_peer read a short response: {}", finished.stdout);
            }
            Ok((usage.max_rss_bytes, STREAM_BYTES as f64 / finished.wall.as_secs_f64() / 1e6))
        })
    }
}

/// The php-fpm rows: `figures` holds fcgi bench first, then the peer on each runtime; the
/// targets are judged on the peer's better runtime.
fn php_rows(figures: &[Figures], cores: usize, concurrent: bool) -> String {
    let (mux, peers) = (&figures[0], &figures[1..]);
    let ceiling = |f: &Figures| cores as f64 / ((f.server_us + f.client_us) * 1e-6);
    // fcgi bench's cell, then the peer's figures on each runtime, each with its unit.
    let cells = |value: &dyn Fn(&Figures) -> String, unit: &str| {
        let peer: Vec<String> = peers.iter().map(|f| value(f) + unit).collect();
        format!("{}{unit} | {}", value(mux), peer.join(" / "))
    };
    let ratio = mux.req_per_s / peers.iter().map(|f| f.req_per_s).fold(0.0, f64::max);
    let cpu_ratio = mux.client_us / peers.iter().map(|f| f.client_us).fold(f64::INFINITY, f64::min);
    // `concurrent` (8 in flight) is judged on client CPU, one at a time on requests/s.
    let (cpu_target, cpu_met, rate_target, rate_met) = if concurrent {
        let target = format!("≤ {TARGET_CLIENT_CPU_RATIO}× peer: {cpu_ratio:.2}×");
        (target, verdict(cpu_ratio <= TARGET_CLIENT_CPU_RATIO), format!("— ({ratio:.2}× peer)"), "")
    } else {
        let target = format!("≥ {TARGET_SERIAL_RATIO}× peer: {ratio:.2}×");
        (format!("— ({cpu_ratio:.2}× peer)"), "", target, verdict(ratio >= TARGET_SERIAL_RATIO))
    };
    [
        format!(
            "client CPU per request | {} | {cpu_target} | {cpu_met}",
            cells(&|f| format!("{:.2}", f.client_us), " µs"),
        ),
        format!("requests/s | {} | {rate_target} | {rate_met}", cells(&|f| thousands(f.req_per_s), "")),
        format!("php-fpm CPU per request | {} | — | ", cells(&|f| format!("{:.2}", f.server_us), " µs")),
        format!(
            "ceiling, {cores} cores ÷ (php-fpm + client CPU) | {} | — | ",
            cells(&|f| thousands(ceiling(f)), "/s")
        ),
        format!(
            "requests/s ÷ ceiling | {} | — | ",
            cells(&|f| format!("{:.0}", 100.0 * f.req_per_s / ceiling(f)), " %")
        ),
    ]
    .map(|row| format!("| {row} |\n"))
    .concat()
}

/// The responder rows: multiplexed on one connection, and 64 connections.
fn responder_rows(one: &Figures, many: &Figures) -> String {
    let ratio = one.req_per_s / many.req_per_s;
    let target =
        format!("≥ {TARGET_MPX_RATIO}× 64 connections: {ratio:.2}× | {}", verdict(ratio >= TARGET_MPX_RATIO));
    let pair = |a: f64, b: f64| format!("{a:.2} / {b:.2} µs");
    [
        format!("requests/s: 1 connection × 64 multiplexed | {} |  | {target}", thousands(one.req_per_s)),
        format!("requests/s: 64 connections × 1 | {} |  | — | ", thousands(many.req_per_s)),
        format!(
            "client CPU per request: 1 conn / 64 conns | {} |  | — | ",
            pair(one.client_us, many.client_us)
        ),
        format!(
            "responder CPU per request: 1 conn / 64 conns | {} |  | — | ",
            pair(one.server_us, many.server_us)
        ),
    ]
    .map(|row| format!("| {row} |\n"))
    .concat()
}

/// The per-run figures of one configuration, for the notes.
fn log(what: &str, figures: &[Figures]) -> String {
    let line = |f: &Figures| {
        let runs: Vec<String> = f
            .runs
            .iter()
            .map(|[rate, client, server]| format!("{rate:.0} | {client:.2} | {server:.2}"))
            .collect();
        format!("- {what}, {}: {}", f.name, runs.join("; "))
    };
    figures.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// The version of `krate` resolved in Cargo.lock, or "?".
fn locked_version(krate: &str) -> String {
    let lock = fs::read_to_string(workspace::root().join("Cargo.lock")).unwrap_or_default();
    let entry = format!("name = \"{krate}\"\nversion = \"");
    lock.split_once(&entry).and_then(|(_, rest)| rest.split('"').next()).unwrap_or("?").to_owned()
}
