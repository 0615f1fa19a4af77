//! Bench section `mux`: fcgi-mux beside the `fastcgi-client` crate on php-fpm, multiplexing
//! against a tokio-fastcgi responder, and the memory of a 1 GiB response.
//!
//! fcgi-mux is driven by `fcgi bench` (the release CLI, `--json`), the same load driver a user
//! runs; its figures are those `fcgi bench` reports. The peer has no CLI, so
//! `fcgi-mux/benches/fastcgi_client_peer.rs` drives it the same way: `-c` requests in flight, a
//! measured period from the first request, client CPU from `getrusage` over that period. Both
//! send the same CGI parameters (the ones `fcgi bench -v` prints for the path).
//!
//! 1. **php-fpm `hello.php`**: 8 concurrent requests over 7 connections (php-fpm has 8 static
//!    workers and pins one to every open connection; one fewer leaves it one spare), then one
//!    at a time on one connection. The peer runs on tokio's current-thread and multi-thread
//!    runtimes (`fcgi bench` has only the first); targets are judged on its better one.
//! 2. **tokio-fastcgi responder** (`mpx_responder`): 64 concurrent requests multiplexed on one
//!    connection vs 64 connections, fcgi-mux on both sides of the ratio.
//! 3. **1 GiB from `big.php`**: peak RSS and MB/s of `fcgi get -o /dev/null` and of the peer,
//!    under GNU time.
//!
//! Server CPU (php-fpm's master and children, or the responder) is utime + stime from `/proc`
//! before and after each run ÷ the run's requests. Each configuration runs [`REPEATS`] times
//! after one untimed round, the clients taking turns; figures are medians.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
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

/// Timed runs of each configuration.
const REPEATS: usize = 5;
/// Seconds of each load run.
const SECONDS: u32 = 2;
const PHP_CONCURRENCY: usize = 8;
const PHP_CONNECTIONS: usize = 7;
const MPX_CONCURRENCY: usize = 64;
const STREAM_BYTES: u64 = 1 << 30;
/// The body of `hello.php` and of the responder.
const HELLO: &str = "Hello, world!";
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

const TARGET_CLIENT_CPU_US: f64 = 8.0;
const TARGET_THROUGHPUT_RATIO: f64 = 1.4;
const TARGET_MPX_RATIO: f64 = 0.9;
const TARGET_RSS_MIB: f64 = 32.0;

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
    let php_pid = backends.php_fpm.pid();
    let hello = bench.params("/hello.php")?;

    println!("xtask: bench mux: php-fpm, {PHP_CONCURRENCY} concurrent ...");
    let php8 = bench.rotate(
        &[
            bench.fcgi_bench(&bench.socket, "/hello.php", PHP_CONCURRENCY, PHP_CONNECTIONS, false),
            bench.peer_load(&hello, PHP_CONCURRENCY, PHP_CONNECTIONS, "current"),
            bench.peer_load(&hello, PHP_CONCURRENCY, PHP_CONNECTIONS, "multi"),
        ],
        php_pid,
        true,
    )?;
    println!("xtask: bench mux: php-fpm, 1 at a time ...");
    let php1 = bench.rotate(
        &[
            bench.fcgi_bench(&bench.socket, "/hello.php", 1, 1, false),
            bench.peer_load(&hello, 1, 1, "current"),
        ],
        php_pid,
        true,
    )?;
    println!("xtask: bench mux: tokio-fastcgi responder, {MPX_CONCURRENCY} concurrent ...");
    let mpx = bench.responder(bins.remove("mpx_responder").context("no mpx_responder")?)?;
    println!("xtask: bench mux: {STREAM_BYTES} bytes from big.php ...");
    let stream = bench.stream()?;
    let load_after = load_average();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut table = Table::new();
    table.heading(&format!(
        "php-fpm `hello.php`, {PHP_CONCURRENCY} concurrent requests, {PHP_CONNECTIONS} connections \
         (fastcgi-client: current-thread / multi-thread runtime)"
    ));
    table.php(&php8, cores, true);
    table.heading("php-fpm `hello.php`, 1 request at a time, 1 connection");
    table.php(&php1, cores, false);
    table.responder(&mpx);
    table.stream(&stream);

    let notes = format!(
        "Peers: `fastcgi-client` {} (feature `tokio`) and `tokio-fastcgi` {}, from crates.io, built \
         with `cargo {}`; fcgi-mux through `fcgi bench --json` of the release CLI ({}). Every load \
         figure is the median of {REPEATS} runs of {SECONDS} s after one untimed round, the \
         clients taking turns in a rotating order.\n\n\
         How: `fcgi bench PATH -c N --connections M -D {SECONDS}s --json` and \
         `fastcgi_client_peer --param ... load --concurrency N --connections M` keep N requests \
         in flight, each worker sending its next request once the previous response was read, \
         and check every response (status 200 and body `{HELLO}`; any error fails the section). \
         Both send the parameters `fcgi` sends for the path (read from `fcgi bench -v`). \
         **Client CPU** is each program's own `getrusage(RUSAGE_SELF)` user + system over its \
         measured period ÷ requests completed in it. `fcgi bench` encodes the parameters once \
         (`Pool::encode_params`); fastcgi-client takes a parameter map per request, cloned from \
         one built once. fastcgi-client has no pool: {PHP_CONNECTIONS} keep-alive clients are \
         shared by the workers (a free list and a semaphore), so, as in fcgi-mux's pool, a \
         request waits for the next free connection. **Server CPU** is utime + stime from \
         `/proc/<pid>/stat` (php-fpm: master and children; clock tick {} Hz) before and after \
         each run ÷ the run's requests. The **ceiling** is {cores} cores ÷ (php-fpm + client CPU \
         per request): what the pair could do with every core of this machine busy.\n\n\
         The responder (`fcgi-mux/benches/mpx_responder.rs`) is tokio-fastcgi on a \
         current-thread runtime, a task per request, reads buffered, writes gathered by one \
         writer task per connection: `fcgi bench /hello --multiplex --connections 1 -c \
         {MPX_CONCURRENCY}` against `--connections {MPX_CONCURRENCY}`. On one multiplexed \
         connection the two sides take turns, each handling a batch while the other waits; 64 \
         connections let both cores work at once.\n\n\
         Streaming: `fcgi get \"/big.php?bytes={STREAM_BYTES}\" -o /dev/null` and \
         `fastcgi_client_peer ... stream` (`execute_stream`, output dropped as it arrives) under \
         `/usr/bin/time`: peak RSS of the process, start-up included; MB/s from the wall time \
         around the process.\n\n\
         Load average (1 min) before/after the section: {load_before} / {load_after}; the machine \
         is shared, so compare the columns of one run.\n\n\
         Runs (requests/s | client µs/request | server µs/request):\n\n{}",
        locked_version("fastcgi-client"),
        locked_version("tokio-fastcgi"),
        BUILD_ARGS.join(" "),
        ctx.fcgi_build_line(),
        bench.ticks,
        [
            php8.log("php-fpm, 8 concurrent"),
            php1.log("php-fpm, 1 at a time"),
            mpx.log("responder"),
            stream.log()
        ]
        .join("\n"),
    );
    Ok(Report {
        title: "fcgi-mux: client CPU, throughput, multiplexing and memory (vs fastcgi-client)".into(),
        command: format!("cargo xtask bench mux   # peers built with: cargo {}", BUILD_ARGS.join(" ")),
        table: table.text,
        notes,
    })
}

/// A client and its arguments, as run for one configuration.
struct Client {
    name: String,
    program: PathBuf,
    args: Vec<String>,
}

/// One load run.
struct LoadRun {
    req_per_s: f64,
    client_us: f64,
    server_us: f64,
}

/// The runs of one [`Client`] and their medians.
struct Figures {
    name: String,
    runs: Vec<LoadRun>,
    req_per_s: f64,
    client_us: f64,
    server_us: f64,
}

impl Figures {
    fn new(name: String, runs: Vec<LoadRun>) -> Figures {
        Figures {
            req_per_s: median(runs.iter().map(|r| r.req_per_s)),
            client_us: median(runs.iter().map(|r| r.client_us)),
            server_us: median(runs.iter().map(|r| r.server_us)),
            name,
            runs,
        }
    }
}

/// The figures of one configuration, one per client, in the order they were given.
struct Measured(Vec<Figures>);

impl Measured {
    fn log(&self, what: &str) -> String {
        let runs = |f: &Figures| {
            let runs: Vec<String> = f
                .runs
                .iter()
                .map(|r| format!("{:.0} | {:.2} | {:.2}", r.req_per_s, r.client_us, r.server_us))
                .collect();
            format!("- {what}, {}: {}", f.name, runs.join("; "))
        };
        self.0.iter().map(runs).collect::<Vec<_>>().join("\n")
    }
}

/// Peak RSS and speed of the two clients reading [`STREAM_BYTES`].
struct Stream {
    /// fcgi get's and the peer's runs: (peak RSS bytes, MB/s).
    runs: [Vec<(f64, f64)>; 2],
}

impl Stream {
    fn rss_mib(&self, client: usize) -> f64 {
        median(self.runs[client].iter().map(|r| r.0)) / (1024.0 * 1024.0)
    }

    fn mb_per_s(&self, client: usize) -> f64 {
        median(self.runs[client].iter().map(|r| r.1))
    }

    fn log(&self) -> String {
        let runs = |client: usize| {
            let runs: Vec<String> = self.runs[client]
                .iter()
                .map(|(rss, mb)| format!("{:.1} MiB, {mb:.0} MB/s", rss / 1048576.0))
                .collect();
            runs.join("; ")
        };
        format!("- 1 GiB, fcgi get: {}\n- 1 GiB, fastcgi-client: {}", runs(0), runs(1))
    }
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
    /// The CGI parameters `fcgi` sends for `path` (`NAME=VALUE`), from one `fcgi bench -n 1 -v`
    /// run, which also checks that php-fpm answers it.
    fn params(&self, path: &str) -> Result<Vec<String>> {
        let mut cmd = Command::new(&self.fcgi);
        cmd.args([
            "bench",
            path,
            "--socket",
            &self.socket,
            "--docroot",
            &self.docroot,
            "-n",
            "1",
            "-v",
            "--json",
        ]);
        let finished =
            measure::run_to_end(&self.dir, "params", &mut cmd, RUN_TIMEOUT, Duration::from_millis(20))?
                .check(path)?;
        let params: Vec<String> =
            finished.stderr.lines().filter_map(|l| l.strip_prefix("* param ")).map(str::to_owned).collect();
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
        let mut args = ["bench", path, "--socket", socket, "--docroot", &self.docroot, "--json", "-s"]
            .map(String::from)
            .to_vec();
        args.extend([
            format!("-c{concurrency}"),
            format!("--connections={connections}"),
            format!("-D{SECONDS}s"),
        ]);
        if multiplex {
            args.push("--multiplex".into());
        }
        let setup = if multiplex { "multiplexed" } else { "one request per connection" };
        Client {
            name: format!("fcgi bench, {connections} connection(s), {setup}"),
            program: self.fcgi.clone(),
            args,
        }
    }

    /// The peer's load on php-fpm.
    fn peer_load(&self, params: &[String], concurrency: usize, connections: usize, runtime: &str) -> Client {
        let mut args = vec!["--socket".to_owned(), self.socket.clone()];
        args.extend(params.iter().map(|p| format!("--param={p}")));
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

    /// Runs every client once per round, the order rotating, one untimed round first; the
    /// server is process `server_pid`, with its children if `with_children`.
    fn rotate(&self, clients: &[Client], server_pid: u32, with_children: bool) -> Result<Measured> {
        let mut runs: Vec<Vec<LoadRun>> = clients.iter().map(|_| Vec::new()).collect();
        for round in 0..=REPEATS {
            for i in 0..clients.len() {
                let index = (i + round) % clients.len();
                let run = self.load(&clients[index], server_pid, with_children)?;
                if round > 0 {
                    runs[index].push(run);
                }
            }
        }
        let figures = clients.iter().zip(runs).map(|(c, runs)| Figures::new(c.name.clone(), runs)).collect();
        Ok(Measured(figures))
    }

    /// One load run, its responses checked.
    fn load(&self, client: &Client, server_pid: u32, with_children: bool) -> Result<LoadRun> {
        let before = cpu_ticks(server_pid, with_children)?;
        let result = measure::run_json(&self.dir, "load", &client.program, &client.args, RUN_TIMEOUT)?;
        let after = cpu_ticks(server_pid, with_children)?;
        let completed = result.number("completed")?;
        let errors = result.number("errors")?;
        if errors > 0.0 || completed <= 0.0 {
            bail!("{}: {errors} errors, {completed} completed: {result}", client.name);
        }
        // `fcgi bench` counts statuses and body bytes; the peer checks each body itself.
        if let Some(body_bytes) = result.get("body_bytes").and_then(json::Value::as_f64) {
            let ok = result.get("status").and_then(|s| s.get("200")).and_then(json::Value::as_f64);
            if ok != Some(completed) || body_bytes != completed * HELLO.len() as f64 {
                bail!("{}: not every response was 200 `{HELLO}`: {result}", client.name);
            }
        }
        Ok(LoadRun {
            req_per_s: result.number("req_per_s")?,
            client_us: result.number("cpu_us_per_req")?,
            server_us: after.saturating_sub(before) as f64 / self.ticks * 1e6 / completed,
        })
    }

    /// fcgi-mux against the tokio-fastcgi responder: 64 multiplexed on one connection, and 64
    /// connections.
    fn responder(&self, program: PathBuf) -> Result<Measured> {
        let socket = self.dir.join("mpx-responder.sock");
        let mut cmd = Command::new(program);
        cmd.arg(&socket).stdout(std::process::Stdio::null());
        let mut responder = Group::spawn("mpx_responder", &mut cmd, Signal::Term)?;
        for tries in 0.. {
            if UnixStream::connect(&socket).is_ok() {
                break;
            }
            if tries == 500 {
                bail!("mpx_responder did not listen on {} within 10 s", socket.display());
            }
            if let Some(status) = responder.try_wait()? {
                bail!("mpx_responder exited ({})", process::describe(status));
            }
            process::sleep(Duration::from_millis(20))?;
        }
        let socket = socket.display().to_string();
        let clients = [
            self.fcgi_bench(&socket, "/hello", MPX_CONCURRENCY, 1, true),
            self.fcgi_bench(&socket, "/hello", MPX_CONCURRENCY, MPX_CONCURRENCY, false),
        ];
        let figures = self.rotate(&clients, responder.pid(), false);
        responder.stop();
        figures
    }

    /// `fcgi get` and the peer reading [`STREAM_BYTES`], under GNU time.
    fn stream(&self) -> Result<Stream> {
        let path = format!("/big.php?bytes={STREAM_BYTES}");
        let fcgi_args =
            ["get", &path, "--socket", &self.socket, "--docroot", &self.docroot, "-o", "/dev/null", "-s"]
                .map(String::from)
                .to_vec();
        let mut peer_args = vec!["--socket".to_owned(), self.socket.clone()];
        peer_args.extend(self.params(&path)?.iter().map(|p| format!("--param={p}")));
        peer_args.push("stream".into());
        let clients = [(&self.fcgi, fcgi_args), (&self.peer, peer_args)];
        let mut stream = Stream { runs: [Vec::new(), Vec::new()] };
        for round in 0..=REPEATS {
            for i in 0..2 {
                let index = (i + round) % 2;
                let (program, args) = &clients[index];
                let command = UnderTime::new(&self.time, &self.dir, "stream", program, args);
                let (finished, usage) =
                    command.run(&self.dir, "stream", RUN_TIMEOUT, Duration::from_millis(1))?;
                // `fcgi get` fails on a short body; the peer reports what it read.
                if index == 1 && json::parse(&finished.stdout)?.number("bytes")? < STREAM_BYTES as f64 {
                    bail!("fastcgi_client_peer read a short response: {}", finished.stdout);
                }
                if round > 0 {
                    let mb_per_s = STREAM_BYTES as f64 / finished.wall.as_secs_f64() / 1e6;
                    stream.runs[index].push((usage.max_rss_bytes, mb_per_s));
                }
            }
        }
        Ok(stream)
    }
}

/// The markdown table, built row by row.
struct Table {
    text: String,
}

impl Table {
    fn new() -> Table {
        Table { text: "| measurement | fcgi-mux (`fcgi bench`) | fastcgi-client | target | met |\n|---|---:|---:|---|:-:|\n".into() }
    }

    fn row(&mut self, cells: [&str; 5]) {
        self.text.push_str(&format!("| {} |\n", cells.join(" | ")));
    }

    fn heading(&mut self, text: &str) {
        self.row([&format!("**{text}**"), "", "", "", ""]);
    }

    /// The php-fpm rows: `figures` holds fcgi bench first, then the peer on each runtime;
    /// `judged` adds the targets, on the peer's better runtime.
    fn php(&mut self, figures: &Measured, cores: usize, judged: bool) {
        let (mux, peers) = (&figures.0[0], &figures.0[1..]);
        let ceiling = |f: &Figures| cores as f64 / ((f.server_us + f.client_us) * 1e-6);
        let each =
            |value: &dyn Fn(&Figures) -> String| peers.iter().map(value).collect::<Vec<_>>().join(" / ");
        let best_rate = peers.iter().map(|f| f.req_per_s).fold(0.0, f64::max);
        let ratio = mux.req_per_s / best_rate;
        let (cpu_target, rate_target) = if judged {
            (
                format!("≤ {TARGET_CLIENT_CPU_US} µs"),
                format!("≥ {TARGET_THROUGHPUT_RATIO}× peer: {ratio:.2}×"),
            )
        } else {
            ("—".into(), format!("— ({ratio:.2}× peer)"))
        };
        let met = |ok: bool| if judged { verdict(ok) } else { "" };
        self.row([
            "client CPU per request",
            &format!("{:.2} µs", mux.client_us),
            &format!("{} µs", each(&|f| format!("{:.2}", f.client_us))),
            &cpu_target,
            met(mux.client_us <= TARGET_CLIENT_CPU_US),
        ]);
        self.row([
            "requests/s",
            &thousands(mux.req_per_s),
            &each(&|f| thousands(f.req_per_s)),
            &rate_target,
            met(ratio >= TARGET_THROUGHPUT_RATIO),
        ]);
        self.row([
            "php-fpm CPU per request",
            &format!("{:.2} µs", mux.server_us),
            &format!("{} µs", each(&|f| format!("{:.2}", f.server_us))),
            "—",
            "",
        ]);
        self.row([
            &format!("ceiling, {cores} cores ÷ (php-fpm + client CPU)"),
            &format!("{}/s", thousands(ceiling(mux))),
            &format!("{}/s", each(&|f| thousands(ceiling(f)))),
            "—",
            "",
        ]);
        self.row([
            "requests/s ÷ ceiling",
            &format!("{:.0} %", 100.0 * mux.req_per_s / ceiling(mux)),
            &format!("{} %", each(&|f| format!("{:.0}", 100.0 * f.req_per_s / ceiling(f)))),
            "—",
            "",
        ]);
    }

    fn responder(&mut self, figures: &Measured) {
        let (one, many) = (&figures.0[0], &figures.0[1]);
        self.heading("tokio-fastcgi responder, 64 concurrent requests (fcgi-mux on both sides of the ratio)");
        let ratio = one.req_per_s / many.req_per_s;
        self.row([
            "requests/s: 1 connection × 64 multiplexed",
            &thousands(one.req_per_s),
            "",
            &format!("≥ {TARGET_MPX_RATIO}× 64 connections: {ratio:.2}×"),
            verdict(ratio >= TARGET_MPX_RATIO),
        ]);
        self.row(["requests/s: 64 connections × 1", &thousands(many.req_per_s), "", "—", ""]);
        let pair = |a: f64, b: f64| format!("{a:.2} / {b:.2} µs");
        self.row([
            "client CPU per request: 1 conn / 64 conns",
            &pair(one.client_us, many.client_us),
            "",
            "—",
            "",
        ]);
        self.row([
            "responder CPU per request: 1 conn / 64 conns",
            &pair(one.server_us, many.server_us),
            "",
            "—",
            "",
        ]);
    }

    fn stream(&mut self, stream: &Stream) {
        self.heading("1 GiB response from php-fpm `big.php` (`fcgi get -o /dev/null`; `execute_stream`)");
        self.row([
            "peak RSS of the client",
            &format!("{:.1} MiB", stream.rss_mib(0)),
            &format!("{:.1} MiB", stream.rss_mib(1)),
            &format!("≤ {TARGET_RSS_MIB} MiB"),
            verdict(stream.rss_mib(0) <= TARGET_RSS_MIB),
        ]);
        let rate = |client: usize| format!("{:.0} MB/s", stream.mb_per_s(client));
        self.row(["throughput", &rate(0), &rate(1), "—", ""]);
    }
}

/// The version of `krate` resolved in Cargo.lock, or "?".
fn locked_version(krate: &str) -> String {
    let lock = fs::read_to_string(workspace::root().join("Cargo.lock")).unwrap_or_default();
    let entry = format!("name = \"{krate}\"\nversion = \"");
    lock.split_once(&entry).and_then(|(_, rest)| rest.split('"').next()).unwrap_or("?").to_owned()
}
