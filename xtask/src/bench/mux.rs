//! Bench section `mux`: fcgi-mux against php-fpm and a multiplexing responder, beside the
//! `fastcgi-client` crate, in the same run.
//!
//! Builds the benchmark programs of `fcgi-mux/benches/` in release and runs them (their docs say what each
//! measures and how):
//!
//! 1. **php-fpm, `hello.php`**, 8 concurrent requests over 7 connections (php-fpm has 8 static
//!    workers per pool and pins one to every open connection; staying below leaves it one), then 1
//!    concurrent request over 1 connection: `mux_load` (an `fcgi_mux::Pool`) and
//!    `fastcgi_client_load` (keep-alive `fastcgi_client::Client`s, the same number of
//!    connections), and `mux_load --mode pool-encoded` (the parameters encoded once, as `fcgi
//!    bench` sends them), taking turns; at 8 concurrent both on tokio's current-thread and multi-thread
//!    runtimes, the targets judged on each side's better one. Client CPU comes from the load generator itself
//!    (`getrusage(RUSAGE_SELF)` over its steady-state period); php-fpm's CPU from
//!    `/proc/<pid>/stat` (utime + stime) of the master and its children before and after each
//!    run, divided by every request of that run. The ceiling is `cores ÷ (php-fpm CPU + client
//!    CPU per request)`: the rate at which the two would use every core of this machine.
//! 2. **tokio-fastcgi responder** (`mpx_responder`, a task per request): 64 concurrent requests
//!    through a pool of one connection multiplexing them, through one bare `Connection`, and
//!    through a pool of 64 connections, one request each.
//! 3. **1 GiB response** from php-fpm's `big.php`: peak RSS (`VmHWM`) and MB/s of `stream_1g`,
//!    fcgi-mux and `fastcgi-client`.
//!
//! Each figure is the median of [`REPEATS`] runs; the runs alternate between the clients so a
//! slow moment of the machine does not land on one side only.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::measure::json::Number as _;
use super::measure::{self, clock_ticks, cpu_ticks, json, load_average, median, thousands, verdict};
use super::{Ctx, Report};
use crate::process::{self, Group, Signal};
use crate::workspace;

/// Runs of each configuration; figures are medians.
const REPEATS: usize = 5;

/// Seconds of load before each measured period.
const WARMUP_S: &str = "0.5";

/// Seconds of each measured period.
const DURATION_S: &str = "2";

/// The tokio runtimes the clients are measured on against php-fpm (`--runtime` of the load
/// generators); the first is used for everything else.
const RUNTIMES: [&str; 2] = ["current", "multi"];

/// Concurrent requests and connections of the php-fpm comparison (php-fpm has 8 workers).
const PHP_CONCURRENCY: usize = 8;
const PHP_CONNECTIONS: usize = 7;

/// Concurrent requests against the multiplexing responder.
const MPX_CONCURRENCY: usize = 64;

/// Size of the streamed response.
const STREAM_BYTES: u64 = 1 << 30;

/// Longest a single benchmark program may run before it is stopped as hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The peer crates (fcgi-mux/Cargo.toml's dev-dependencies); their versions are read from Cargo.lock.
const PEER_CRATES: &[&str] = &["fastcgi-client", "tokio-fastcgi"];

/// The targets.
const TARGET_CLIENT_CPU_US: f64 = 8.0;
const TARGET_THROUGHPUT_RATIO: f64 = 1.4;
const TARGET_MPX_RATIO: f64 = 0.9;
const TARGET_RSS_MIB: f64 = 32.0;

const BUILD_ARGS: &[&str] = &[
    "build",
    "--release",
    "-p",
    "fcgi-mux",
    "--bench",
    "mux_load",
    "--bench",
    "fastcgi_client_load",
    "--bench",
    "mpx_responder",
    "--bench",
    "stream_1g",
];

/// Measures; returns the report.
pub fn run(ctx: &mut Ctx) -> Result<Report> {
    let load_before = load_average();
    let bins = Bins::build()?;
    let work = tempfile::Builder::new().prefix("fcgi-bench-").tempdir().context("creating a temp dir")?;
    let clock_ticks = clock_ticks()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peers = peer_versions();

    let backends = ctx.backends()?;
    let php = PhpFpm {
        address: format!("unix:{}", backends.php_fpm.socket.display()),
        docroot: backends.docroot.clone(),
        pid: backends.php_fpm.pid(),
    };
    let runner = Runner { bins: &bins, dir: work.path(), clock_ticks };

    let mut php8 = Vec::new();
    for runtime in RUNTIMES {
        println!(
            "xtask: bench mux: php-fpm, hello.php, {PHP_CONCURRENCY} concurrent, {runtime}-thread runtime ..."
        );
        php8.push(runner.php_pair(&php, PHP_CONCURRENCY, PHP_CONNECTIONS, runtime)?);
    }
    println!("xtask: bench mux: php-fpm, hello.php, 1 concurrent ...");
    let php1 = runner.php_pair(&php, 1, 1, RUNTIMES[0])?;
    println!("xtask: bench mux: tokio-fastcgi responder, {MPX_CONCURRENCY} concurrent ...");
    let mpx = runner.responder()?;
    println!("xtask: bench mux: streaming {STREAM_BYTES} bytes from big.php ...");
    let stream = runner.stream(&php)?;
    let load_after = load_average();

    let mut table = Table::default();
    table.php_targets(&php8);
    for pair in &php8 {
        table.php_rows(pair, cores);
    }
    table.heading("php-fpm `hello.php`, 1 request at a time, 1 connection");
    table.php_rows(&php1, cores);
    table.mpx_rows(&mpx);
    table.stream_rows(&stream);

    let version = |name: &str| peers.get(name).cloned().unwrap_or_else(|| "?".into());
    let mut notes = format!(
        "Peers: `fastcgi-client` {} (crates.io, feature `tokio`), `tokio-fastcgi` {} (crates.io), \
         both release builds in `fcgi-mux/benches/` like fcgi-mux's own programs. Every figure is the median of \
         {REPEATS} runs of {DURATION_S} s measured after {WARMUP_S} s of warm-up; the clients \
         alternate run by run. The 8-concurrent comparison runs both clients on tokio's \
         current-thread and multi-thread ({cores} workers) runtimes, and judges the targets on \
         each side's better one (which runtime wins against php-fpm varies from run to run). \
         Everything else runs on the current-thread runtime: against the responder, which keeps \
         one core busy, the multi-thread runtime cost about twice the client CPU per request in \
         trial runs.\n\n\
         How: the load generators (`fcgi-mux/benches/`) keep N requests in flight, each \
         worker task sending its next request once the previous body was read to the end, and \
         check every response (status 200 and body `Hello, world!`; any error fails the section). \
         **Client CPU** is `getrusage(RUSAGE_SELF)` user + system of the load generator over its \
         measured period ÷ requests completed in it. **php-fpm CPU** is utime + stime from \
         `/proc/<pid>/stat` of the master and its children (clock tick {clock_ticks} Hz, \
         `getconf CLK_TCK`), before and after each run ÷ all requests of the run. The \
         **ceiling** is {cores} cores ÷ (php-fpm CPU + client CPU per request): what the pair \
         could do with every core of this machine busy. Both clients send the same 15 CGI \
         parameters and an empty body; fastcgi-client's parameter map is built once and cloned \
         per request, fcgi-mux's list likewise. A third client, fcgi-mux with the parameters \
         encoded once (`Pool::encode_params`, `request_encoded`: what `fcgi bench` does, and any \
         load generator repeating one request can), takes its turn in the same rotation; \
         fastcgi-client has no such API. fastcgi-client has no pool: {PHP_CONNECTIONS} \
         keep-alive clients are shared by the {PHP_CONCURRENCY} workers (a free list and a \
         semaphore), so, as in fcgi-mux's pool, one request always waits for the next free \
         connection. Why php-fpm's own CPU differs by client (counted by hand with `strace -c`): \
         fcgi-mux sends a request in one `sendto` and reads its response with one `recvfrom`; \
         fastcgi-client makes 8 and 5, and every partial write wakes a php-fpm worker.\n\n\
         The responder (`mpx_responder`) is tokio-fastcgi {} on a current-thread runtime (required: \
         it panics when two threads write one connection at once), a task per request, reads \
         buffered, writes gathered by one writer task per connection. Its CPU per request is from \
         `/proc/<pid>/stat` like php-fpm's. On one multiplexed connection the two sides run in \
         lockstep (by hand, `strace -c`: 64 requests per `sendto`): each handles a batch of 64 \
         while the other waits, so the rate is about 1 ÷ (client + responder CPU per request), \
         while 64 connections let both cores work at once. Streaming: one GET of `big.php?bytes={STREAM_BYTES}` \
         (64 KiB chunks, each flushed by PHP), body read and dropped; RSS is the client process's \
         `VmHWM` (peak, start-up included), fastcgi-client's through `execute_stream`.",
        version("fastcgi-client"),
        version("tokio-fastcgi"),
        version("tokio-fastcgi"),
    );
    notes.push_str(&format!(
        "\n\nLoad average (1 min) before/after the section: {load_before} / {load_after}. \
         Other work on the machine lowers requests/s and raises CPU per request (caches, \
         preemption) on both sides; compare the two sides of one run, and rerun on an idle \
         machine for absolute figures.\n\nRuns (requests/s | client µs/request | server µs/request):\n\n{}",
        runner_log(&php8.iter().chain([&php1]).collect::<Vec<_>>(), &mpx, &stream)
    ));
    Ok(Report {
        title: "fcgi-mux: client CPU, throughput, multiplexing and memory (vs fastcgi-client)".into(),
        command: format!("cargo xtask bench mux   # builds with: cargo {}", BUILD_ARGS.join(" ")),
        table: table.text,
        notes,
    })
}

/// The built benchmark programs.
struct Bins {
    mux_load: PathBuf,
    fastcgi_client_load: PathBuf,
    mpx_responder: PathBuf,
    stream_1g: PathBuf,
}

impl Bins {
    /// [`BUILD_ARGS`] (see [`measure::build_bins`]).
    fn build() -> Result<Bins> {
        let names = ["mux_load", "fastcgi_client_load", "mpx_responder", "stream_1g"];
        let mut found = measure::build_bins("the benchmark programs", BUILD_ARGS, &[], &names)?;
        let mut take = |name: &str| found.remove(name).context("build_bins returned too few programs");
        Ok(Bins {
            mux_load: take("mux_load")?,
            fastcgi_client_load: take("fastcgi_client_load")?,
            mpx_responder: take("mpx_responder")?,
            stream_1g: take("stream_1g")?,
        })
    }
}

/// Where php-fpm is.
struct PhpFpm {
    address: String,
    docroot: PathBuf,
    pid: u32,
}

impl PhpFpm {
    fn script(&self, name: &str) -> String {
        self.docroot.join(name).display().to_string()
    }
}

/// One run of a load generator, with the server's CPU over it.
#[derive(Clone, Debug)]
struct LoadRun {
    req_per_s: f64,
    client_us: f64,
    server_us: f64,
}

/// Medians of several [`LoadRun`]s.
#[derive(Clone, Debug)]
struct LoadFigures {
    runs: Vec<LoadRun>,
    req_per_s: f64,
    client_us: f64,
    server_us: f64,
}

impl LoadFigures {
    fn new(runs: Vec<LoadRun>) -> LoadFigures {
        LoadFigures {
            req_per_s: median(runs.iter().map(|r| r.req_per_s)),
            client_us: median(runs.iter().map(|r| r.client_us)),
            server_us: median(runs.iter().map(|r| r.server_us)),
            runs,
        }
    }

    fn log(&self) -> String {
        self.runs
            .iter()
            .map(|r| format!("{:.0} | {:.2} | {:.2}", r.req_per_s, r.client_us, r.server_us))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// fcgi-mux and fastcgi-client at one concurrency and runtime against php-fpm.
struct PhpPair {
    runtime: &'static str,
    concurrency: usize,
    /// fcgi-mux's pool, a parameter list per request (as the peer).
    mux: LoadFigures,
    peer: LoadFigures,
    /// fcgi-mux's pool, the parameters encoded once (`EncodedParams`, as `fcgi bench`).
    encoded: LoadFigures,
}

/// The multiplexing responder figures.
struct MpxFigures {
    pool_one: LoadFigures,
    connection: LoadFigures,
    many: LoadFigures,
}

/// One streaming run.
#[derive(Clone, Debug)]
struct StreamRun {
    peak_rss: f64,
    mb_per_s: f64,
}

struct StreamFigures {
    mux: Vec<StreamRun>,
    peer: Vec<StreamRun>,
}

impl StreamFigures {
    fn rss_mib(runs: &[StreamRun]) -> f64 {
        median(runs.iter().map(|r| r.peak_rss)) / (1024.0 * 1024.0)
    }

    fn mb_per_s(runs: &[StreamRun]) -> f64 {
        median(runs.iter().map(|r| r.mb_per_s))
    }
}

/// Runs the programs.
struct Runner<'a> {
    bins: &'a Bins,
    dir: &'a Path,
    clock_ticks: f64,
}

impl Runner<'_> {
    /// fcgi-mux and fastcgi-client, alternating, against php-fpm's hello.php.
    fn php_pair(
        &self,
        php: &PhpFpm,
        concurrency: usize,
        connections: usize,
        runtime: &'static str,
    ) -> Result<PhpPair> {
        let common = load_args(&php.address, &php.script("hello.php"), concurrency, connections, runtime);
        let mut encoded_args = common.clone();
        encoded_args.extend(["--mode", "pool-encoded"].map(String::from));
        let (mut mux, mut peer, mut encoded) = (Vec::new(), Vec::new(), Vec::new());
        for repeat in 0..REPEATS {
            // The three clients take turns, the order rotating run by run.
            for turn in 0..3 {
                match (turn + repeat) % 3 {
                    0 => mux.push(self.load(&self.bins.mux_load, &common, php.pid, true)?),
                    1 => peer.push(self.load(&self.bins.fastcgi_client_load, &common, php.pid, true)?),
                    _ => encoded.push(self.load(&self.bins.mux_load, &encoded_args, php.pid, true)?),
                }
            }
        }
        Ok(PhpPair {
            runtime,
            concurrency,
            mux: LoadFigures::new(mux),
            peer: LoadFigures::new(peer),
            encoded: LoadFigures::new(encoded),
        })
    }

    /// fcgi-mux against the tokio-fastcgi responder: multiplexed on one connection, and one
    /// request per connection.
    fn responder(&self) -> Result<MpxFigures> {
        let socket = self.dir.join("mpx-responder.sock");
        let log = self.dir.join("mpx-responder.log");
        let mut cmd = Command::new(&self.bins.mpx_responder);
        cmd.arg(&socket);
        let output = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(output.try_clone().context("duplicating a file handle")?).stderr(output);
        let mut group = Group::spawn("mpx_responder", &mut cmd, Signal::Term)?;
        let started = Instant::now();
        while UnixStream::connect(&socket).is_err() {
            if let Some(status) = group.try_wait()? {
                bail!(
                    "mpx_responder exited ({}): {}",
                    process::describe(status),
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("mpx_responder did not listen on {} within 10 s", socket.display());
            }
            process::sleep(Duration::from_millis(20))?;
        }
        let address = format!("unix:{}", socket.display());
        let script = "/srv/hello";
        let mut base = load_args(&address, script, MPX_CONCURRENCY, 1, RUNTIMES[0]);
        base.extend(["--multiplexing", "force", "--max-concurrent-requests", "64"].map(String::from));
        let mut connection_args = base.clone();
        connection_args.extend(["--mode", "connection"].map(String::from));
        let many_args = load_args(&address, script, MPX_CONCURRENCY, MPX_CONCURRENCY, RUNTIMES[0]);
        let (mut pool_one, mut connection, mut many) = (Vec::new(), Vec::new(), Vec::new());
        let pid = group.pid();
        for repeat in 0..REPEATS {
            let order: [u8; 3] = if repeat % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
            for which in order {
                match which {
                    0 => pool_one.push(self.load(&self.bins.mux_load, &base, pid, false)?),
                    1 => connection.push(self.load(&self.bins.mux_load, &connection_args, pid, false)?),
                    _ => many.push(self.load(&self.bins.mux_load, &many_args, pid, false)?),
                }
            }
            if let Some(status) = group.try_wait()? {
                bail!(
                    "mpx_responder exited during the runs ({}): {}",
                    process::describe(status),
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        group.stop();
        Ok(MpxFigures {
            pool_one: LoadFigures::new(pool_one),
            connection: LoadFigures::new(connection),
            many: LoadFigures::new(many),
        })
    }

    /// `stream_1g` with both clients, alternating.
    fn stream(&self, php: &PhpFpm) -> Result<StreamFigures> {
        let (mut mux, mut peer) = (Vec::new(), Vec::new());
        for repeat in 0..REPEATS {
            for client in
                if repeat % 2 == 0 { ["fcgi-mux", "fastcgi-client"] } else { ["fastcgi-client", "fcgi-mux"] }
            {
                let args: Vec<String> = [
                    "--address",
                    &php.address,
                    "--script-filename",
                    &php.script("big.php"),
                    "--script-name",
                    "/big.php",
                    "--bytes",
                    &STREAM_BYTES.to_string(),
                    "--client",
                    client,
                ]
                .map(String::from)
                .to_vec();
                let result = self.run_json("stream_1g", &self.bins.stream_1g, &args)?;
                let run = StreamRun {
                    peak_rss: result.number("peak_rss_bytes")?,
                    mb_per_s: result.number("mb_per_s")?,
                };
                if client == "fcgi-mux" { mux.push(run) } else { peer.push(run) }
            }
        }
        Ok(StreamFigures { mux, peer })
    }

    /// One load run; the server's CPU (process `server_pid`, with its children if `with_children`)
    /// over the whole run, divided by every request of the run.
    fn load(&self, bin: &Path, args: &[String], server_pid: u32, with_children: bool) -> Result<LoadRun> {
        let before = cpu_ticks(server_pid, with_children)?;
        let name = bin.file_name().and_then(|n| n.to_str()).unwrap_or("load generator");
        let result = self.run_json(name, bin, args)?;
        let after = cpu_ticks(server_pid, with_children)?;
        let errors = result.number("total_errors")?;
        if errors > 0.0 {
            bail!(
                "{name} {}: {errors} failed requests, first: {}",
                args.join(" "),
                result.get("first_error").and_then(json::Value::as_str).unwrap_or("?")
            );
        }
        let total = result.number("total_requests")?;
        if total <= 0.0 {
            bail!("{name} {} completed no request", args.join(" "));
        }
        Ok(LoadRun {
            req_per_s: result.number("req_per_s")?,
            client_us: result.number("cpu_us_per_req")?,
            server_us: after.saturating_sub(before) as f64 / self.clock_ticks * 1e6 / total,
        })
    }

    /// Runs a program (see [`measure::run_json`]); returns the JSON object it printed.
    fn run_json(&self, name: &str, bin: &Path, args: &[String]) -> Result<json::Value> {
        measure::run_json(self.dir, name, bin, args, RUN_TIMEOUT)
    }
}

/// Arguments common to `mux_load` and `fastcgi_client_load`.
fn load_args(
    address: &str,
    script_filename: &str,
    concurrency: usize,
    connections: usize,
    runtime: &str,
) -> Vec<String> {
    [
        "--address",
        address,
        "--script-filename",
        script_filename,
        "--script-name",
        "/hello.php",
        "--expect-body",
        "Hello, world!",
        "--concurrency",
        &concurrency.to_string(),
        "--connections",
        &connections.to_string(),
        "--warmup",
        WARMUP_S,
        "--duration",
        DURATION_S,
        "--runtime",
        runtime,
    ]
    .map(String::from)
    .to_vec()
}

/// The markdown table, built row by row.
#[derive(Default)]
struct Table {
    text: String,
}

impl Table {
    fn row(&mut self, cells: [&str; 5]) {
        if self.text.is_empty() {
            self.text.push_str("| measurement | fcgi-mux | peer | target | met |\n|---|---:|---:|---|:-:|\n");
        }
        self.text.push_str(&format!("| {} |\n", cells.join(" | ")));
    }

    fn heading(&mut self, text: &str) {
        self.row([&format!("**{text}**"), "", "", "", ""]);
    }

    /// The heading of the 8-concurrent comparison and its two targets, each side on its
    /// better runtime.
    fn php_targets(&mut self, pairs: &[PhpPair]) {
        self.heading(&format!(
            "php-fpm `hello.php`, {PHP_CONCURRENCY} concurrent requests, {PHP_CONNECTIONS} connections"
        ));
        let best = |pick: fn(&PhpPair) -> &LoadFigures, key: fn(&LoadFigures) -> f64, lowest: bool| {
            pairs
                .iter()
                .map(|pair| (key(pick(pair)), pair.runtime))
                .reduce(|a, b| if (b.0 < a.0) == lowest { b } else { a })
                .unwrap_or((f64::NAN, "?"))
        };
        let (mux_cpu, mux_cpu_rt) = best(|p| &p.mux, |f| f.client_us, true);
        let (peer_cpu, peer_cpu_rt) = best(|p| &p.peer, |f| f.client_us, true);
        self.row([
            "client CPU per request, a parameter list per request (better runtime of each)",
            &format!("{mux_cpu:.2} µs ({mux_cpu_rt})"),
            &format!("{peer_cpu:.2} µs ({peer_cpu_rt})"),
            &format!("≤ {TARGET_CLIENT_CPU_US} µs"),
            verdict(mux_cpu <= TARGET_CLIENT_CPU_US),
        ]);
        let (encoded_cpu, encoded_cpu_rt) = best(|p| &p.encoded, |f| f.client_us, true);
        self.row([
            "client CPU per request, parameters encoded once (`EncodedParams`, as `fcgi bench`)",
            &format!("{encoded_cpu:.2} µs ({encoded_cpu_rt})"),
            "—",
            &format!("≤ {TARGET_CLIENT_CPU_US} µs"),
            verdict(encoded_cpu <= TARGET_CLIENT_CPU_US),
        ]);
        let (mux_rate, mux_rate_rt) = best(|p| &p.mux, |f| f.req_per_s, false);
        let (peer_rate, peer_rate_rt) = best(|p| &p.peer, |f| f.req_per_s, false);
        let ratio = mux_rate / peer_rate;
        self.row([
            "requests/s (better runtime of each)",
            &format!("{} ({mux_rate_rt})", thousands(mux_rate)),
            &format!("{} ({peer_rate_rt})", thousands(peer_rate)),
            &format!("≥ {TARGET_THROUGHPUT_RATIO}× peer: {ratio:.2}×"),
            verdict(ratio >= TARGET_THROUGHPUT_RATIO),
        ]);
    }

    /// Client CPU, requests/s, php-fpm CPU and the ceiling of one [`PhpPair`].
    fn php_rows(&mut self, pair: &PhpPair, cores: usize) {
        let (mux, peer) = (&pair.mux, &pair.peer);
        let setup = format!("{}-thread runtime, {} concurrent", pair.runtime, pair.concurrency);
        self.row([
            &format!("client CPU per request ({setup})"),
            &format!("{:.2} µs", mux.client_us),
            &format!("{:.2} µs", peer.client_us),
            "—",
            "",
        ]);
        self.row([
            &format!("client CPU per request, parameters encoded once ({setup})"),
            &format!("{:.2} µs", pair.encoded.client_us),
            "—",
            "—",
            "",
        ]);
        self.row([
            &format!("requests/s ({setup})"),
            &thousands(mux.req_per_s),
            &thousands(peer.req_per_s),
            &format!("— ({:.2}× peer)", mux.req_per_s / peer.req_per_s),
            "",
        ]);
        self.row([
            &format!("php-fpm CPU per request ({setup})"),
            &format!("{:.2} µs", mux.server_us),
            &format!("{:.2} µs", peer.server_us),
            "—",
            "",
        ]);
        let ceiling = |f: &LoadFigures| cores as f64 / ((f.server_us + f.client_us) * 1e-6);
        self.row([
            &format!("ceiling, {cores} cores ÷ (php-fpm + client CPU) ({setup})"),
            &format!("{}/s", thousands(ceiling(mux))),
            &format!("{}/s", thousands(ceiling(peer))),
            "—",
            "",
        ]);
        self.row([
            &format!("requests/s ÷ ceiling ({setup})"),
            &format!("{:.0} %", 100.0 * mux.req_per_s / ceiling(mux)),
            &format!("{:.0} %", 100.0 * peer.req_per_s / ceiling(peer)),
            "—",
            "",
        ]);
    }

    fn mpx_rows(&mut self, mpx: &MpxFigures) {
        self.heading("tokio-fastcgi responder, 64 concurrent requests (fcgi-mux on both sides of the ratio)");
        let ratio = mpx.pool_one.req_per_s / mpx.many.req_per_s;
        self.row([
            "requests/s: pool of 1 connection × 64 multiplexed",
            &thousands(mpx.pool_one.req_per_s),
            "",
            &format!("≥ {TARGET_MPX_RATIO}× 64 connections: {ratio:.2}×"),
            verdict(ratio >= TARGET_MPX_RATIO),
        ]);
        self.row([
            "requests/s: one bare `Connection` × 64 multiplexed",
            &thousands(mpx.connection.req_per_s),
            "",
            &format!("— ({:.2}×)", mpx.connection.req_per_s / mpx.many.req_per_s),
            "",
        ]);
        self.row(["requests/s: pool of 64 connections × 1", &thousands(mpx.many.req_per_s), "", "—", ""]);
        self.row([
            "client CPU per request: 1 conn (pool / bare) / 64 conns",
            &format!(
                "{:.2} / {:.2} / {:.2} µs",
                mpx.pool_one.client_us, mpx.connection.client_us, mpx.many.client_us
            ),
            "",
            "—",
            "",
        ]);
        self.row([
            "responder CPU per request: 1 conn (pool / bare) / 64 conns",
            &format!(
                "{:.2} / {:.2} / {:.2} µs",
                mpx.pool_one.server_us, mpx.connection.server_us, mpx.many.server_us
            ),
            "",
            "—",
            "",
        ]);
    }

    fn stream_rows(&mut self, stream: &StreamFigures) {
        self.heading("1 GiB response from php-fpm `big.php`");
        let rss = StreamFigures::rss_mib(&stream.mux);
        self.row([
            "peak RSS of the client",
            &format!("{rss:.1} MiB"),
            &format!("{:.1} MiB", StreamFigures::rss_mib(&stream.peer)),
            &format!("≤ {TARGET_RSS_MIB} MiB"),
            verdict(rss <= TARGET_RSS_MIB),
        ]);
        self.row([
            "throughput",
            &format!("{:.0} MB/s", StreamFigures::mb_per_s(&stream.mux)),
            &format!("{:.0} MB/s", StreamFigures::mb_per_s(&stream.peer)),
            "—",
            "",
        ]);
    }
}

/// The per-run figures, for the notes.
fn runner_log(php: &[&PhpPair], mpx: &MpxFigures, stream: &StreamFigures) -> String {
    let streams = |runs: &[StreamRun]| {
        runs.iter()
            .map(|r| format!("{:.1} MiB, {:.0} MB/s", r.peak_rss / (1024.0 * 1024.0), r.mb_per_s))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut lines = Vec::new();
    for pair in php {
        let setup = format!("php-fpm, {} concurrent, {}-thread runtime", pair.concurrency, pair.runtime);
        lines.push(format!("- {setup}, fcgi-mux: {}", pair.mux.log()));
        lines.push(format!("- {setup}, fastcgi-client: {}", pair.peer.log()));
        lines.push(format!("- {setup}, fcgi-mux, parameters encoded once: {}", pair.encoded.log()));
    }
    lines.extend([
        format!("- responder, pool of 1 connection × 64: {}", mpx.pool_one.log()),
        format!("- responder, bare Connection × 64: {}", mpx.connection.log()),
        format!("- responder, pool of 64 connections: {}", mpx.many.log()),
        format!("- 1 GiB, fcgi-mux: {}", streams(&stream.mux)),
        format!("- 1 GiB, fastcgi-client: {}", streams(&stream.peer)),
    ]);
    lines.join("\n")
}

/// Versions of [`PEER_CRATES`] resolved in Cargo.lock.
fn peer_versions() -> BTreeMap<String, String> {
    let lock = fs::read_to_string(workspace::root().join("Cargo.lock")).unwrap_or_default();
    let mut versions = BTreeMap::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("name = \"").and_then(|n| n.strip_suffix('"')) else { continue };
        if !PEER_CRATES.contains(&name) {
            continue;
        }
        if let Some(version) =
            lines.next().and_then(|l| l.strip_prefix("version = \"")).and_then(|v| v.strip_suffix('"'))
        {
            versions.insert(name.to_owned(), version.to_owned());
        }
    }
    versions
}
