//! Bench section `mux`: fcgi-mux beside the `fastcgi-client` crate on php-fpm, multiplexing
//! against a tokio-fastcgi responder and flup, and one 1 GiB response. fcgi-mux is driven by
//! `fcgi bench --json` of the release CLI, the one load driver for users and for this benchmark;
//! the peer, which has no CLI, by `fcgi-mux/benches/fastcgi_client_peer.rs` the same way, with
//! the parameters `fcgi` sends for the same path. The report's notes say the rest.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::gateways::Stack;
use super::measure::json::Number as _;
use super::measure::{
    self, clock_ticks, cpu_ticks, gnu_time, json, load_average, median, rotate, run_timed, thousands,
    verdict, words,
};
use super::report::table;
use super::tools::{CURL, GNU_TIME};
use super::{Ctx, Report};
use crate::service::Service;
use crate::workspace;

/// Timed runs of each configuration, after one untimed round, and the seconds of a load run.
const REPEATS: usize = 5;
const SECONDS: u32 = 2;
/// php-fpm has 8 static workers and pins one to every open connection; 7 leave it one spare.
const PHP_CONCURRENCY: usize = 8;
const PHP_CONNECTIONS: usize = 7;
const MPX_CONCURRENCY: usize = 64;
/// `fcgi bench --multiplex` on flup's `WSGIServer(multiplexed=True)`: all must succeed.
const FLUP_REQUESTS: usize = 2000;
const FLUP_CONCURRENCY: usize = 32;
const STREAM_BYTES: u64 = 1 << 30;
/// The readers of the 1 GiB response, in the order [`Bench::stream`] runs them.
const STREAMERS: [&str; 4] = ["fcgi get", "fastcgi-client", "curl → HAProxy", "raw_read"];
/// The body of `hello.php` and of the responder.
const HELLO: &str = "Hello, world!";
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The core's targets, as the table states them (the peer's on its better runtime).
const TARGET_CLIENT_CPU_RATIO: f64 = 0.35;
const TARGET_SERIAL_RATIO: f64 = 1.1;
const TARGET_MPX_RATIO: f64 = 1.2;
const TARGET_RSS_MIB: f64 = 8.0;
const TARGET_VS_CURL: f64 = 1.2;

const BUILD: &str =
    "build --release -p fcgi-mux --bench fastcgi_client_peer --bench mpx_responder --bench raw_read";

/// Measures; returns the report.
pub fn run(ctx: &mut Ctx) -> Result<Report> {
    let load_before = load_average();
    let fcgi = ctx.fcgi()?;
    let names = ["fastcgi_client_peer", "mpx_responder", "raw_read"];
    let bins = measure::build_bins("the peers", BUILD, &[], &names)?;
    let work = tempfile::Builder::new().prefix("fcgi-bench-mux-").tempdir().context("creating a temp dir")?;
    let backends = ctx.backends()?;
    let bench = Bench {
        dir: work.path().to_owned(),
        fcgi,
        peer: bins["fastcgi_client_peer"].clone(),
        time: GNU_TIME.require()?,
        socket: backends.php_fpm.socket.display().to_string(),
        docroot: backends.docroot.display().to_string(),
        php: backends.php_fpm.pid(),
        ticks: clock_ticks()?,
    };
    let hello = bench.params(&bench.socket, &bench.docroot, "/hello.php")?;
    let (c8, n7) = (PHP_CONCURRENCY, PHP_CONNECTIONS);
    println!("xtask: bench mux: php-fpm, {c8} concurrent ...");
    let php8 = bench.php(&hello, (c8, n7), &["current", "multi"])?;
    println!("xtask: bench mux: php-fpm, 1 at a time ...");
    let php1 = bench.php(&hello, (1, 1), &["current"])?;
    println!("xtask: bench mux: tokio-fastcgi responder, {MPX_CONCURRENCY} concurrent ...");
    let mpx = bench.responder(&bins["mpx_responder"])?;
    println!("xtask: bench mux: flup, {FLUP_REQUESTS} requests, {FLUP_CONCURRENCY} on 1 connection ...");
    let flup_row = bench.flup(&backends.flup.multiplexed.socket.display().to_string())?;
    println!("xtask: bench mux: {STREAM_BYTES} bytes from big.php ...");
    let stack = ctx.gateways()?;
    let stream = bench.stream(stack, &CURL.require()?, &bins["raw_read"])?;
    let stack_versions = stack.versions.join("; ");
    let load_after = load_average();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let php8_heading = format!(
        "php-fpm `hello.php`, {c8} concurrent requests, {n7} connections (fastcgi-client: current-thread / \
         multi-thread runtime)"
    );
    let rows = [
        php_rows(&php8_heading, &php8, cores, true),
        php_rows("php-fpm `hello.php`, 1 request at a time, 1 connection", &php1, cores, false),
        responder_rows(&mpx[0], &mpx[1]),
        vec![flup_row],
        stream_rows(&stream),
    ];
    let head = "measurement | fcgi-mux (`fcgi bench`) | fastcgi-client | target | met";
    let table = table(head, "lrrlc", rows.concat());

    let configurations =
        [("php-fpm, 8 concurrent", &php8), ("php-fpm, 1 at a time", &php1), ("responder", &mpx)];
    let load_run = |[rate, client, server]: &[f64; 3]| format!("{rate:.0} | {client:.2} | {server:.2}");
    let load_logs = configurations.iter().flat_map(|(what, figures)| {
        figures.iter().map(move |f| log(&format!("{what}, {}", f.name), f.runs.iter().map(load_run)))
    });
    let transfer = |t: &Transfer| format!("{:.1} MiB, {:.0} MB/s", t.rss_mib, t.mb_s);
    let stream_logs = STREAMERS
        .iter()
        .zip(&stream)
        .map(|(name, runs)| log(&format!("1 GiB, {name}"), runs.iter().map(transfer)));
    let logs: Vec<String> = load_logs.chain(stream_logs).collect();
    let notes = format!(
        "Peers: `fastcgi-client` {} (feature `tokio`) and `tokio-fastcgi` {} from crates.io, driven by \
         `fcgi-mux/benches/` (`cargo {BUILD}`); fcgi-mux by `fcgi bench --json` of the release CLI ({}). \
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
         once. flup: `fcgi bench /echo --multiplex --connections 1 -c {FLUP_CONCURRENCY} -n \
         {FLUP_REQUESTS}` against flup's `WSGIServer(multiplexed=True)` (a backend of `cargo xtask \
         test`).\n\n\
         Streaming, from the php-fpm that HAProxy fronts ({stack_versions}): `fcgi get \
         \"/big.php?bytes={STREAM_BYTES}\" -o /dev/null`, `fastcgi_client_peer ... stream` \
         (`execute_stream`), `curl -o /dev/null` through HAProxy (`proto fcgi`, as in the `serve` \
         section) and `raw_read` (one blocking socket, one 256 KiB buffer, record headers walked, \
         content dropped), each under `/usr/bin/time`: peak RSS and CPU of the process; MB/s from \
         the wall time around it; every byte count checked. `big.php` writes 64 KiB chunks, each \
         flushed.\n\n\
         Load average (1 min) before/after: {load_before} / {load_after}; the machine is shared, so \
         compare the columns of one run.\n\n\
         Runs (requests/s | client µs/request | server µs/request):\n\n{}",
        locked_version("fastcgi-client"),
        locked_version("tokio-fastcgi"),
        ctx.fcgi_build_line(),
        bench.ticks,
        logs.join("\n"),
    );
    Ok(Report {
        title: "fcgi-mux: client CPU, throughput, multiplexing and memory (vs fastcgi-client)".into(),
        command: format!("cargo xtask bench mux   # peers built with: cargo {BUILD}"),
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

/// What the runs need.
struct Bench {
    dir: PathBuf,
    fcgi: PathBuf,
    peer: PathBuf,
    time: PathBuf,
    /// php-fpm's socket, docroot and pid.
    socket: String,
    docroot: String,
    php: u32,
    ticks: f64,
}

impl Bench {
    /// The CGI parameters `fcgi` sends for `path`, as the peer's `--param=NAME=VALUE`
    /// arguments, from one `fcgi bench -n1 -v` run, which also checks that php-fpm answers it.
    fn params(&self, socket: &str, docroot: &str, path: &str) -> Result<Vec<String>> {
        let mut cmd = Command::new(&self.fcgi);
        cmd.args(["bench", path, "--socket", socket, "--docroot", docroot, "-n1", "-v", "--json"]);
        let poll = Duration::from_millis(20);
        let finished = measure::run_to_end(&self.dir, "params", &mut cmd, RUN_TIMEOUT, poll)?.check(path)?;
        let params = finished.stderr.lines().filter_map(|l| l.strip_prefix("* param "));
        let params: Vec<String> = params.map(|p| format!("--param={p}")).collect();
        if params.is_empty() {
            bail!("fcgi bench -v printed no parameters: {}", finished.stderr);
        }
        Ok(params)
    }

    /// `fcgi bench PATH` on `socket`, `load` (concurrency, connections).
    fn fcgi_bench(&self, socket: &str, path: &str, load: (usize, usize), mpx: bool) -> Client {
        let (concurrency, connections) = load;
        let line = format!("bench {path} --json -s -c{concurrency} --connections={connections} -D{SECONDS}s");
        let mut args = words(&line);
        args.extend([format!("--socket={socket}"), format!("--docroot={}", self.docroot)]);
        if mpx {
            args.push("--multiplex".into());
        }
        let name =
            format!("fcgi bench, {connections} connection(s){}", if mpx { ", multiplexed" } else { "" });
        Client { name, program: self.fcgi.clone(), args }
    }

    /// `fcgi bench` and then the peer on each of `runtimes` on php-fpm's `hello.php`, whose
    /// parameters `hello` are as [`Bench::params`] returns them; `load` as for [`Bench::fcgi_bench`].
    fn php(&self, hello: &[String], load: (usize, usize), runtimes: &[&str]) -> Result<Vec<Figures>> {
        let (concurrency, connections) = load;
        let mut clients = vec![self.fcgi_bench(&self.socket, "/hello.php", load, false)];
        for runtime in runtimes {
            let line = format!(
                "load --concurrency={concurrency} --connections={connections} --duration={SECONDS} \
                 --runtime={runtime}"
            );
            let (socket, expect) = (format!("--socket={}", self.socket), format!("--expect-body={HELLO}"));
            let args = [vec![socket], hello.to_vec(), words(&line), vec![expect]].concat();
            let name = format!("fastcgi-client, {runtime}-thread runtime");
            clients.push(Client { name, program: self.peer.clone(), args });
        }
        self.loads(&clients, self.php, true)
    }

    /// The load runs of `clients`, one untimed round then [`REPEATS`] (see [`rotate`]); the
    /// server is process `server`, with its children if `with_children`.
    fn loads(&self, clients: &[Client], server: u32, with_children: bool) -> Result<Vec<Figures>> {
        let runs = rotate(clients.len(), 1, REPEATS, |i, _| self.load(&clients[i], server, with_children))?;
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
        if result.get("body_bytes").is_some() && !measure::bench_answered(&result, HELLO) {
            bail!("{}: not every response was 200 `{HELLO}`: {result}", client.name);
        }
        Ok([result.number("req_per_s")?, result.number("cpu_us_per_req")?, server_s * 1e6 / completed])
    }

    /// fcgi-mux against the tokio-fastcgi responder: 64 multiplexed on one connection, and 64
    /// connections.
    fn responder(&self, program: &Path) -> Result<Vec<Figures>> {
        let socket = self.dir.join("mpx-responder.sock");
        // Its log, beside the socket, has a line for each connection a client drops (`fcgi bench
        // -D` drops its connections).
        let responder = Service::start("mpx_responder", Command::new(program).arg(&socket), &socket)?;
        let socket = socket.display().to_string();
        let clients = [
            self.fcgi_bench(&socket, "/hello", (MPX_CONCURRENCY, 1), true),
            self.fcgi_bench(&socket, "/hello", (MPX_CONCURRENCY, MPX_CONCURRENCY), false),
        ];
        self.loads(&clients, responder.pid(), false)
    }

    /// `fcgi bench --multiplex` on flup, every request answered 200 (or the section fails):
    /// flup's row.
    fn flup(&self, socket: &str) -> Result<String> {
        let line = format!(
            "bench /echo --multiplex --connections=1 --json -s -c{FLUP_CONCURRENCY} -n{FLUP_REQUESTS}"
        );
        let mut args = words(&line);
        args.push(format!("--socket={socket}"));
        let result = measure::run_json(&self.dir, "flup", &self.fcgi, &args, RUN_TIMEOUT)?;
        let number = |pointer: &str| result.pointer(pointer).and_then(json::Value::as_f64);
        if result.number("errors")? > 0.0 || number("/status/200") != Some(FLUP_REQUESTS as f64) {
            bail!("fcgi {}: not all {FLUP_REQUESTS} requests answered 200: {result}", args.join(" "));
        }
        let requests = thousands(FLUP_REQUESTS as f64);
        Ok(format!(
            "flup `multiplexed=True`: {requests} × `/echo`, {FLUP_CONCURRENCY} in flight on 1 connection \
             | {requests} ok ({}/s) |  | all succeed | yes",
            thousands(number("/req_per_s").unwrap_or(0.0)),
        ))
    }

    /// The [`STREAMERS`] reading [`STREAM_BYTES`] from `stack`'s php-fpm, under GNU time.
    fn stream(&self, stack: &Stack, curl: &Path, raw: &Path) -> Result<Vec<Vec<Transfer>>> {
        let (socket, docroot) = (stack.php.socket.display().to_string(), stack.docroot.display().to_string());
        let path = format!("/big.php?bytes={STREAM_BYTES}");
        let at = [format!("--socket={socket}")];
        let get =
            [words(&format!("get {path} -o /dev/null -s")), vec![format!("--docroot={docroot}")]].concat();
        let raw_args = [format!("--script-filename={docroot}/big.php"), format!("--bytes={STREAM_BYTES}")];
        let clients: [(&Path, Vec<String>); 4] = [
            (&self.fcgi, [&get[..], &at].concat()),
            (&self.peer, [&at[..], &self.params(&socket, &docroot, &path)?, &words("stream")].concat()),
            (curl, words(&format!("-sS -o /dev/null -w %{{size_download}} {}", stack.haproxy.url(&path)))),
            (raw, [&at[..], &raw_args].concat()),
        ];
        let (php, haproxy) = (stack.php.pid(), stack.haproxy.pid());
        rotate(clients.len(), 1, REPEATS, |c, _| {
            let (program, args) = &clients[c];
            let mut command = gnu_time(&self.time, &self.dir, "stream", program, args);
            let ticks = || -> Result<[u64; 2]> { Ok([cpu_ticks(php, true)?, cpu_ticks(haproxy, false)?]) };
            let before = ticks()?;
            let (finished, usage) =
                run_timed(&self.dir, "stream", &mut command, RUN_TIMEOUT, Duration::from_millis(1))?;
            let after = ticks()?;
            // `fcgi get` and raw_read fail on a short body; the peer reports what it read (the CGI
            // head too), curl the body's bytes.
            let out = &finished.stdout;
            let read = match c {
                1 => json::parse(out)?.number("bytes")?,
                2 => out.trim().parse().with_context(|| format!("curl wrote {out:?}"))?,
                _ => STREAM_BYTES as f64,
            };
            if !(STREAM_BYTES as f64..STREAM_BYTES as f64 + 1024.0).contains(&read) {
                bail!("{} read {read} bytes of {STREAM_BYTES}: {out}", STREAMERS[c]);
            }
            let seconds = |i: usize| after[i].saturating_sub(before[i]) as f64 / self.ticks;
            let (rss_mib, cpu_s) = (usage.max_rss_bytes / 1048576.0, usage.cpu_s());
            let mb_s = STREAM_BYTES as f64 / finished.wall.as_secs_f64() / 1e6;
            let haproxy_s = if c == 2 { seconds(1) } else { 0.0 };
            Ok(Transfer { rss_mib, mb_s, cpu_s, haproxy_s, php_s: seconds(0) })
        })
    }
}

/// One 1 GiB transfer: the reader's peak RSS, rate and CPU seconds, HAProxy's (curl's reads
/// only) and php-fpm's; or the medians of a reader's transfers.
struct Transfer {
    rss_mib: f64,
    mb_s: f64,
    cpu_s: f64,
    haproxy_s: f64,
    php_s: f64,
}

/// The 1 GiB rows: fcgi get and the peer in their columns, curl and raw_read in rows of their own.
fn stream_rows(runs: &[Vec<Transfer>]) -> Vec<String> {
    let medians = runs.iter().map(|runs| {
        let m = |f: fn(&Transfer) -> f64| median(runs.iter().map(f));
        let (rss_mib, mb_s, cpu_s) = (m(|t| t.rss_mib), m(|t| t.mb_s), m(|t| t.cpu_s));
        Transfer { rss_mib, mb_s, cpu_s, haproxy_s: m(|t| t.haproxy_s), php_s: m(|t| t.php_s) }
    });
    let [get, peer, curl, raw] = &medians.collect::<Vec<_>>()[..] else { panic!("one run per streamer") };
    let (vs_curl, of_raw) = (get.mb_s / curl.mb_s, 100.0 * get.mb_s / raw.mb_s);
    let both = |f: fn(&Transfer) -> f64, unit: &str| format!("{:.1}{unit} | {:.1}{unit}", f(get), f(peer));
    let other = |t: &Transfer| format!("{:.0} MB/s, {:.1} MiB, {:.2} s", t.mb_s, t.rss_mib, t.cpu_s);
    let (rss_met, rate_met) = (verdict(get.rss_mib <= TARGET_RSS_MIB), verdict(vs_curl >= TARGET_VS_CURL));
    let rate_target =
        format!("≥ {TARGET_VS_CURL}× curl → HAProxy: {vs_curl:.2}× ({of_raw:.0} % of raw_read)");
    let curl = format!("{} + HAProxy {:.2} s", other(curl), curl.haproxy_s);
    vec![
        "**1 GiB response from php-fpm `big.php` (`fcgi get -o /dev/null`; `execute_stream`)** |  |  |  |"
            .into(),
        format!(
            "peak RSS of the client | {} | ≤ {TARGET_RSS_MIB} MiB | {rss_met}",
            both(|t| t.rss_mib, " MiB")
        ),
        format!("throughput | {} | {rate_target} | {rate_met}", both(|t| t.mb_s, " MB/s")),
        format!("client CPU, user + system | {} | — | ", both(|t| t.cpu_s, " s")),
        format!("php-fpm CPU | {} | — | ", both(|t| t.php_s, " s")),
        format!("curl → HAProxy: throughput, peak RSS, CPU | {curl} |  | — | "),
        format!("`raw_read`, the pipe limit: throughput, peak RSS, CPU | {} |  | — | ", other(raw)),
    ]
}

/// A heading row and the php-fpm rows: `figures` holds fcgi bench first, then the peer on each
/// runtime; the targets are judged on the peer's better runtime.
fn php_rows(heading: &str, figures: &[Figures], cores: usize, concurrent: bool) -> Vec<String> {
    let (mux, peers) = (&figures[0], &figures[1..]);
    let ceiling = |f: &Figures| cores as f64 / ((f.server_us + f.client_us) * 1e-6);
    // fcgi bench's cell, then the peer's figures on each runtime, each with its unit.
    let cells = |value: &dyn Fn(&Figures) -> String, unit: &str| {
        let peer: Vec<String> = peers.iter().map(|f| value(f) + unit).collect();
        format!("{}{unit} | {}", value(mux), peer.join(" / "))
    };
    let ratio = mux.req_per_s / peers.iter().map(|f| f.req_per_s).fold(0.0, f64::max);
    let cpu_ratio = mux.client_us / peers.iter().map(|f| f.client_us).fold(f64::INFINITY, f64::min);
    // 8 in flight are judged on client CPU, one at a time on requests/s; the other ratio is shown.
    let shown = |ratio: f64| format!("— ({ratio:.2}× peer) | ");
    let (cpu, rate) = if concurrent {
        let met = verdict(cpu_ratio <= TARGET_CLIENT_CPU_RATIO);
        (format!("≤ {TARGET_CLIENT_CPU_RATIO}× peer: {cpu_ratio:.2}× | {met}"), shown(ratio))
    } else {
        let met = verdict(ratio >= TARGET_SERIAL_RATIO);
        (shown(cpu_ratio), format!("≥ {TARGET_SERIAL_RATIO}× peer: {ratio:.2}× | {met}"))
    };
    let us = |value: fn(&Figures) -> f64| cells(&|f| format!("{:.2}", value(f)), " µs");
    let ceilings = cells(&|f| thousands(ceiling(f)), "/s");
    let of_ceiling = cells(&|f| format!("{:.0}", 100.0 * f.req_per_s / ceiling(f)), " %");
    vec![
        format!("**{heading}** |  |  |  |"),
        format!("client CPU per request | {} | {cpu}", us(|f| f.client_us)),
        format!("requests/s | {} | {rate}", cells(&|f| thousands(f.req_per_s), "")),
        format!("php-fpm CPU per request | {} | — | ", us(|f| f.server_us)),
        format!("ceiling, {cores} cores ÷ (php-fpm + client CPU) | {ceilings} | — | "),
        format!("requests/s ÷ ceiling | {of_ceiling} | — | "),
    ]
}

/// The responder rows: multiplexed on one connection, and 64 connections.
fn responder_rows(one: &Figures, many: &Figures) -> Vec<String> {
    let ratio = one.req_per_s / many.req_per_s;
    let pair = |a: f64, b: f64| format!("{a:.2} / {b:.2} µs");
    let (rate, met) = (thousands(one.req_per_s), verdict(ratio >= TARGET_MPX_RATIO));
    vec![
        "**tokio-fastcgi responder, 64 concurrent requests (fcgi-mux on both sides of the ratio)** |  |  |  |".into(),
        format!("requests/s: 1 connection × 64 multiplexed | {rate} |  | ≥ {TARGET_MPX_RATIO}× 64 connections: {ratio:.2}× | {met}"),
        format!("requests/s: 64 connections × 1 | {} |  | — | ", thousands(many.req_per_s)),
        format!("client CPU per request: 1 conn / 64 conns | {} |  | — | ", pair(one.client_us, many.client_us)),
        format!("responder CPU per request: 1 conn / 64 conns | {} |  | — | ", pair(one.server_us, many.server_us)),
    ]
}

/// A line of the notes: `what`, then its `runs`.
fn log(what: &str, runs: impl Iterator<Item = String>) -> String {
    format!("- {what}: {}", runs.collect::<Vec<_>>().join("; "))
}

/// The version of `krate` resolved in Cargo.lock, or "?".
fn locked_version(krate: &str) -> String {
    let lock = fs::read_to_string(workspace::root().join("Cargo.lock")).unwrap_or_default();
    let entry = format!("name = \"{krate}\"\nversion = \"");
    lock.split_once(&entry).and_then(|(_, rest)| rest.split('"').next()).unwrap_or("?").to_owned()
}
