//! Bench section `gateway`: `fcgi bench` straight to php-fpm beside wrk through HAProxy and
//! through nginx, on one php-fpm pool, in the same run; and `fcgi bench --multiplex` on flup.
//!
//! 1. **hello.php, [`CONCURRENCY`] in flight**: `fcgi bench /hello.php -c 8 --connections 8`
//!    on php-fpm's unix socket, and `wrk -t1 -c8 --latency` on `http://127.0.0.1:PORT/hello.php`
//!    of each gateway of [`super::gateways`] (both in front of the same pool). One warm-up run of
//!    each, then [`REPEATS`] runs of [`DURATION_S`] s each, rotating which goes first;
//!    figures are medians.
//!    - **client CPU per request**: for `fcgi bench`, its own `getrusage` user + system over the
//!      measured run (`cpu_us_per_req` of its JSON); for wrk, GNU time's user + system of the
//!      whole wrk process plus the gateway's utime + stime from `/proc/<pid>/stat` (HAProxy's
//!      process, nginx's master and workers) before and after the run, ÷ wrk's requests.
//!    - **php-fpm CPU per request**: utime + stime of the master and its children over the run ÷
//!      the run's requests.
//!    - **ceiling** = cores ÷ (php-fpm + client CPU per request): the rate if every core of the
//!      machine were busy with nothing else; each throughput is shown as a fraction of its own.
//! 2. **flup `multiplexed=True`**: `fcgi bench /echo --multiplex --connections 1 -c 32 -n 2000`,
//!    all 2,000 must succeed.
//!
//! Meanwhile a thread counts the connections php-fpm holds (see [`watching_connections`]), to
//! show that the pool had a worker for every one of them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::gateways::{self, Gateway, LoadOutput, Stack, measured};
use super::measure::json::Number as _;
use super::measure::{
    self, UnderTime, clock_ticks, cpu_ticks, json, load_average, median, run_to_end, thousands, verdict,
};
use super::tools::{self, WRK};
use super::{Ctx, Report};
use crate::process;

/// Runs of each client; figures are medians.
const REPEATS: usize = 3;

/// Seconds of each measured run, and of the warm-up run before them.
const DURATION_S: u32 = 5;
const WARMUP_S: u32 = 1;

/// Requests in flight (wrk's connections; `fcgi bench -c` and `--connections`).
const CONCURRENCY: usize = 8;

/// The flup check.
const FLUP_REQUESTS: u64 = 2000;
const FLUP_CONCURRENCY: usize = 32;

/// Longest any one program may run, and how often its end is looked for.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// The targets.
const TARGET_CLIENT_CPU_US: f64 = 8.0;
const TARGET_VS_HAPROXY: f64 = 1.25;
const TARGET_OF_CEILING: f64 = 0.8;

/// hello.php's body.
const HELLO: &str = "Hello, world!";

/// Measures; returns the report.
pub fn run(ctx: &mut Ctx) -> Result<Report> {
    let load_before = load_average();
    let wrk = WRK.require()?;
    let time = tools::GNU_TIME.require()?;
    let fcgi = ctx.fcgi()?;
    let help = Command::new(&fcgi).args(["bench", "--help"]).output().context("running fcgi bench --help")?;
    if !help.status.success() {
        bail!("`{} bench --help` failed: this build of the CLI has no `bench` command", fcgi.display());
    }
    let flup_socket = ctx.backends()?.flup.multiplexed.socket.clone();
    let stack = ctx.gateways()?;
    let work = tempfile::Builder::new().prefix("fcgi-bench-gw-").tempdir().context("creating a temp dir")?;
    let runner = Runner {
        dir: work.path(),
        fcgi: &fcgi,
        wrk: &wrk,
        time: &time,
        clock_ticks: clock_ticks()?,
        php_pid: stack.php.pid(),
        php_socket: stack.php.socket.clone(),
        docroot: stack.docroot.clone(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let socket = runner.php_socket.clone();
    let (runs, most_connections) = watching_connections(&socket, || runner.rounds(stack))?;
    println!(
        "xtask: bench gateway: flup, {FLUP_REQUESTS} requests, {FLUP_CONCURRENCY} in flight on 1 connection ..."
    );
    let flup = runner.flup(&flup_socket)?;
    let load_after = load_average();

    let mut versions = stack.versions.clone();
    versions.extend([
        WRK.version(&wrk),
        tools::GNU_TIME.version(&time),
        measure::version_line(&fcgi, &["--version"]),
    ]);
    let notes = runner.notes(stack, &versions, most_connections, [&load_before, &load_after], &runs);
    Ok(Report {
        title: "Gateways: `fcgi bench` vs wrk through HAProxy and nginx, same php-fpm pool".into(),
        command: format!("cargo xtask bench gateway   # fcgi built with: {}", ctx.fcgi_build_line()),
        table: table(&runs.each_ref().map(|r| Run::median(r)), &flup, cores),
        notes,
    })
}

/// One measured run of one client, or the medians of a client's runs.
#[derive(Clone, Debug, Default)]
struct Run {
    req_per_s: f64,
    /// Client CPU per request, µs: `fcgi bench`'s own, or wrk's plus the gateway's.
    client_us: f64,
    /// The load generator's part of it (all of it for `fcgi bench`).
    load_us: f64,
    gateway_us: f64,
    php_us: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Run {
    fn median(runs: &[Run]) -> Run {
        let m = |f: fn(&Run) -> f64| median(runs.iter().map(f));
        Run {
            req_per_s: m(|r| r.req_per_s),
            client_us: m(|r| r.client_us),
            load_us: m(|r| r.load_us),
            gateway_us: m(|r| r.gateway_us),
            php_us: m(|r| r.php_us),
            p50_ms: m(|r| r.p50_ms),
            p99_ms: m(|r| r.p99_ms),
        }
    }

    /// Cores ÷ (php-fpm + client CPU per request): the rate if every core were busy with this.
    fn ceiling(&self, cores: usize) -> f64 {
        cores as f64 / ((self.php_us + self.client_us) * 1e-6)
    }
}

struct Runner<'a> {
    dir: &'a Path,
    fcgi: &'a Path,
    wrk: &'a Path,
    time: &'a Path,
    clock_ticks: f64,
    php_pid: u32,
    php_socket: PathBuf,
    docroot: PathBuf,
}

/// A command line's words (none of which holds a space).
fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

impl Runner<'_> {
    /// A warm-up run of each client, then [`REPEATS`] rounds of the three, the order rotating;
    /// `fcgi bench`'s runs, wrk → HAProxy's and wrk → nginx's.
    fn rounds(&self, stack: &mut Stack) -> Result<[Vec<Run>; 3]> {
        println!("xtask: bench gateway: warm-up ({WARMUP_S} s each) ...");
        self.fcgi_bench(WARMUP_S)?;
        self.wrk(&stack.haproxy, WARMUP_S)?;
        self.wrk(&stack.nginx, WARMUP_S)?;
        let mut runs: [Vec<Run>; 3] = Default::default();
        for repeat in 0..REPEATS {
            println!(
                "xtask: bench gateway: round {} of {REPEATS} ({DURATION_S} s per client) ...",
                repeat + 1
            );
            for turn in 0..3 {
                let client = (turn + repeat) % 3;
                runs[client].push(match client {
                    0 => self.fcgi_bench(DURATION_S)?,
                    1 => self.wrk(&stack.haproxy, DURATION_S)?,
                    _ => self.wrk(&stack.nginx, DURATION_S)?,
                });
            }
            stack.check_running()?;
        }
        Ok(runs)
    }

    /// php-fpm's CPU per request while `run` did `requests(&its result)` requests, µs.
    fn with_php<T>(&self, run: impl FnOnce() -> Result<T>, requests: fn(&T) -> f64) -> Result<(T, f64)> {
        let before = cpu_ticks(self.php_pid, true)?;
        let value = run()?;
        let ticks = cpu_ticks(self.php_pid, true)?.saturating_sub(before);
        let php_us = ticks as f64 / self.clock_ticks * 1e6 / requests(&value);
        Ok((value, php_us))
    }

    /// `fcgi bench /hello.php` on php-fpm for `seconds`.
    fn fcgi_bench(&self, seconds: u32) -> Result<Run> {
        let mut args = words(&format!(
            "bench /hello.php -c {CONCURRENCY} --connections {CONCURRENCY} --duration {seconds}s --json --silent"
        ));
        args.extend(["--socket".into(), self.php_socket.display().to_string()]);
        args.extend(["--docroot".into(), self.docroot.display().to_string()]);
        let run = || self.bench_json("fcgi-bench", &args);
        let (bench, php_us) = self.with_php(run, |b| b.completed)?;
        let expected = (bench.completed, bench.completed * HELLO.len() as f64);
        if bench.errors > 0.0 || bench.completed <= 0.0 || (bench.status_200, bench.body_bytes) != expected {
            bail!(
                "fcgi {}: {bench:?}; expected status 200 and {} body bytes each",
                args.join(" "),
                HELLO.len()
            );
        }
        let (req_per_s, client_us, p50_ms, p99_ms) =
            (bench.req_per_s, bench.cpu_us_per_req, bench.p50_ms, bench.p99_ms);
        Ok(Run { req_per_s, client_us, load_us: client_us, gateway_us: 0.0, php_us, p50_ms, p99_ms })
    }

    /// `wrk -t1 -c8 --latency` through `gateway` for `seconds`, under GNU time.
    fn wrk(&self, gateway: &Gateway, seconds: u32) -> Result<Run> {
        let url = gateway.url("/hello.php");
        let args = words(&format!("-t1 -c{CONCURRENCY} -d{seconds}s --latency {url}"));
        let name = format!("wrk-{}", gateway.name);
        let command = UnderTime::new(self.time, self.dir, &name, self.wrk, &args);
        let run = || {
            let ((finished, usage), cost) =
                measured(gateway.pid(), || command.run(self.dir, &name, RUN_TIMEOUT, POLL))?;
            Ok((LoadOutput::read(LoadOutput::wrk, "wrk", gateway.name, &finished.stdout)?, usage, cost))
        };
        let ((out, usage, cost), php_us) = self.with_php(run, |(out, _, _)| out.requests)?;
        let (load_us, gateway_us) = (usage.cpu_s() * 1e6 / out.requests, cost.cpu_s * 1e6 / out.requests);
        Ok(Run {
            req_per_s: out.req_per_s,
            client_us: load_us + gateway_us,
            load_us,
            gateway_us,
            php_us,
            p50_ms: out.p50_ms,
            p99_ms: out.p99_ms,
        })
    }

    /// `fcgi bench /echo --multiplex --connections 1` on flup.
    fn flup(&self, socket: &Path) -> Result<BenchJson> {
        let mut args = words(&format!(
            "bench /echo --multiplex --connections 1 -c {FLUP_CONCURRENCY} -n {FLUP_REQUESTS} --json --silent"
        ));
        args.extend(["--socket".into(), socket.display().to_string()]);
        self.bench_json("fcgi-bench-flup", &args)
    }

    /// Runs `fcgi ARGS` and reads the JSON it printed last. Not [`measure::run_json`]: a run with
    /// failed requests may exit non-zero and still print its JSON, which is what to show.
    fn bench_json(&self, name: &str, args: &[String]) -> Result<BenchJson> {
        let finished = run_to_end(self.dir, name, Command::new(self.fcgi).args(args), RUN_TIMEOUT, POLL)?;
        let line = finished.stdout.lines().rev().find(|l| l.trim_start().starts_with('{'));
        let line = line.with_context(|| {
            let status = process::describe(finished.status);
            format!("fcgi {} ({status}) printed no JSON: {}", args.join(" "), finished.stderr.trim())
        })?;
        BenchJson::read(&json::parse(line).with_context(|| format!("fcgi bench printed bad JSON: {line}"))?)
    }
}

/// The fields of `fcgi bench --json` (schema `fcgi.bench/1`) used here.
#[derive(Debug)]
struct BenchJson {
    completed: f64,
    errors: f64,
    req_per_s: f64,
    cpu_us_per_req: f64,
    body_bytes: f64,
    status_200: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl BenchJson {
    fn read(value: &json::Value) -> Result<BenchJson> {
        let schema = value.get("schema").and_then(json::Value::as_str);
        if schema != Some("fcgi.bench/1") {
            bail!("fcgi bench printed schema {schema:?}, expected \"fcgi.bench/1\"");
        }
        let latency = value.get("latency_ms").context("no `latency_ms` in fcgi bench's JSON")?;
        let status_200 =
            value.get("status").and_then(|s| s.get("200")).and_then(json::Value::as_f64).unwrap_or(0.0);
        Ok(BenchJson {
            completed: value.number("completed")?,
            errors: value.number("errors")?,
            req_per_s: value.number("req_per_s")?,
            cpu_us_per_req: value.number("cpu_us_per_req")?,
            body_bytes: value.number("body_bytes")?,
            status_200,
            p50_ms: latency.number("p50")?,
            p99_ms: latency.number("p99")?,
        })
    }
}

/// How often [`watching_connections`] looks.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// Runs `measure` while a thread counts, every [`WATCH_EVERY`], the connections php-fpm has
/// accepted on `socket` and still holds (`/proc/net/unix`), and returns the largest count with
/// its result: whether the pool had a worker for every connection the clients and gateways kept
/// open. (php-fpm's own status page cannot tell: its `active processes` counter drifts upwards
/// without bound on keep-alive connections, and its listen queue figures are not reported for
/// unix sockets.)
fn watching_connections<T>(socket: &Path, measure: impl FnOnce() -> Result<T>) -> Result<(T, usize)> {
    let path = socket.display().to_string();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut most = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(table) = fs::read_to_string("/proc/net/unix") {
                    most = most.max(accepted_connections(&table, &path));
                }
                std::thread::sleep(WATCH_EVERY);
            }
            most
        });
        let result = measure();
        stop.store(true, Ordering::Relaxed);
        Ok((result?, watcher.join().unwrap_or(0)))
    })
}

/// Connected (`St` 03) sockets bound to `path` in the text of `/proc/net/unix`: the server
/// side of each accepted connection (the listening socket is `St` 01; clients' ends have no path).
fn accepted_connections(table: &str, path: &str) -> usize {
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() >= 8 && fields[5] == "03" && fields[7] == path
        })
        .count()
}

fn table(columns: &[Run; 3], flup: &BenchJson, cores: usize) -> String {
    let [ours, haproxy, nginx] = columns;
    let mut text = String::from(
        "| measurement | `fcgi bench` → php-fpm | wrk → HAProxy → php-fpm | wrk → nginx → php-fpm | target | met |\n\
         |---|---:|---:|---:|---|:-:|\n",
    );
    let mut row = |what: &str, cell: &dyn Fn(&Run) -> String, target: &str, met: &str| {
        let cells = columns.each_ref().map(cell).join(" | ");
        text.push_str(&format!("| {what} | {cells} | {target} | {met} |\n"));
    };
    let vs_haproxy = ours.req_per_s / haproxy.req_per_s;
    row(
        &format!("requests/s, hello.php, {CONCURRENCY} in flight"),
        &|r| thousands(r.req_per_s),
        &format!(
            "≥ {TARGET_VS_HAPROXY}× wrk → HAProxy: {vs_haproxy:.2}× ({:.2}× wrk → nginx)",
            ours.req_per_s / nginx.req_per_s
        ),
        verdict(vs_haproxy >= TARGET_VS_HAPROXY),
    );
    row(
        "client CPU per request (fcgi bench; wrk + gateway)",
        &|r| match r.gateway_us {
            0.0 => format!("{:.2} µs", r.client_us),
            _ => format!("{:.2} µs ({:.2} wrk + {:.2} gateway)", r.client_us, r.load_us, r.gateway_us),
        },
        &format!(
            "≤ {TARGET_CLIENT_CPU_US} µs ({:.2}× less than wrk + HAProxy)",
            haproxy.client_us / ours.client_us
        ),
        verdict(ours.client_us <= TARGET_CLIENT_CPU_US),
    );
    row("php-fpm CPU per request", &|r| format!("{:.2} µs", r.php_us), "—", "");
    row(
        &format!("ceiling: {cores} cores ÷ (php-fpm + client CPU per request)"),
        &|r| format!("{}/s", thousands(r.ceiling(cores))),
        "—",
        "",
    );
    let of_ceiling = |r: &Run| r.req_per_s / r.ceiling(cores);
    row(
        "requests/s ÷ ceiling",
        &|r| format!("{:.0} %", 100.0 * of_ceiling(r)),
        &format!("≥ {:.0} % (fcgi bench)", 100.0 * TARGET_OF_CEILING),
        verdict(of_ceiling(ours) >= TARGET_OF_CEILING),
    );
    row("latency p50 / p99", &|r| format!("{:.3} / {:.3} ms", r.p50_ms, r.p99_ms), "—", "");
    let all_ok =
        flup.completed == FLUP_REQUESTS as f64 && flup.errors == 0.0 && flup.status_200 == flup.completed;
    text.push_str(&format!(
        "| flup `multiplexed=True`: {} × `/echo`, {FLUP_CONCURRENCY} in flight on 1 connection (`--multiplex`) \
         | {} ok, {} errors ({}/s) |  |  | all succeed | {} |\n",
        thousands(FLUP_REQUESTS as f64),
        thousands(flup.status_200),
        thousands(flup.errors),
        thousands(flup.req_per_s),
        verdict(all_ok)
    ));
    text
}

impl Runner<'_> {
    fn notes(
        &self,
        stack: &Stack,
        versions: &[String],
        most: usize,
        load: [&str; 2],
        runs: &[Vec<Run>; 3],
    ) -> String {
        let (cores, clock_ticks) =
            (std::thread::available_parallelism().map_or(1, |n| n.get()), self.clock_ticks);
        let mut notes = format!(
            "Setup: one php-fpm master, `pm = static` with {} children, serves every client on its unix \
         socket; HAProxy and nginx run in front of it all the time (their configs below), `fcgi bench` \
         talks to it directly. php-fpm keeps a worker for each open connection and both gateways keep \
         idle server connections, so the pool is larger than all clients' connections together: \
         at most {most} connections to php-fpm were open at once during the runs (counted \
         in `/proc/net/unix` every {} ms), for {} workers.\n\n\
         Clients: `fcgi bench /hello.php -c {CONCURRENCY} --connections {CONCURRENCY} --duration {DURATION_S}s \
         --json` (the request `fcgi get` sends; it checks status 200 and counts body bytes: \
         {} per response) and `wrk -t1 -c{CONCURRENCY} -d{DURATION_S}s --latency \
         http://127.0.0.1:PORT/hello.php`. One {WARMUP_S} s warm-up run of each, then {REPEATS} rounds, \
         the order rotating; each figure is the median of its {REPEATS} runs. \
         **Client CPU**: `fcgi bench`'s own `getrusage` (user + system) over its run ÷ requests \
         (`cpu_us_per_req`); wrk's user + system from GNU time (whole process, 10 ms resolution) plus \
         the gateway's utime + stime from `/proc/<pid>/stat` (HAProxy's one process with its threads; \
         nginx's master and workers) ÷ wrk's requests. **php-fpm CPU**: utime + stime of the master \
         and its children before and after each run ÷ the run's requests (clock tick {clock_ticks} Hz). \
         The **ceiling** is {cores} cores ÷ (php-fpm + client CPU per request). The flup row runs \
         `fcgi bench /echo --multiplex --connections 1 -c {FLUP_CONCURRENCY} -n {FLUP_REQUESTS} --json` \
         against flup's `WSGIServer(multiplexed=True)` (the test backend of `cargo xtask test`).\n\n",
            gateways::PHP_WORKERS,
            WATCH_EVERY.as_millis(),
            gateways::PHP_WORKERS,
            HELLO.len(),
        );
        notes.push_str("Versions: ");
        notes.push_str(&versions.join("; "));
        notes.push_str(".\n\n");
        for gateway in [&stack.haproxy, &stack.nginx] {
            let config = gateway.config.as_ref().and_then(|c| fs::read_to_string(c).ok()).unwrap_or_default();
            let config = config.replace(&stack.dir().display().to_string(), "$DIR");
            notes.push_str(&format!(
                "{} configuration (`$DIR` is the run's temp dir):\n\n```\n{}\n```\n\n",
                gateway.name,
                config.trim_end()
            ));
        }
        notes.push_str(&format!(
            "Load average (1 min) before/after the section: {} / {} (the runs themselves keep both \
         cores busy, which alone lifts the figure after to 2 or more). The machine is shared: other \
         work lowers requests/s and raises CPU per request for every client; compare the columns of \
         one run.\n\nRuns (requests/s | client µs/request | php-fpm µs/request):\n\n",
            load[0], load[1]
        ));
        for (name, runs) in ["fcgi bench", "wrk → HAProxy", "wrk → nginx"].iter().zip(runs) {
            let text: Vec<String> = runs
                .iter()
                .map(|r| format!("{:.0} | {:.2} | {:.2}", r.req_per_s, r.client_us, r.php_us))
                .collect();
            notes.push_str(&format!("- {name}: {}\n", text.join("; ")));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_unix() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path
0000000049f1f77f: 00000003 00000000 00000000 0001 03 199403
0000000076fceb78: 00000002 00000000 00010000 0001 01 152493 /t/php-fpm.sock
0000000076fceb79: 00000003 00000000 00000000 0001 03 152494 /t/php-fpm.sock
0000000076fceb7a: 00000003 00000000 00000000 0001 03 152495 /t/php-fpm.sock
0000000076fceb7b: 00000003 00000000 00000000 0001 03 152496 /t/other.sock
";
        assert_eq!(accepted_connections(table, "/t/php-fpm.sock"), 2);
        assert_eq!(accepted_connections("", "/t/php-fpm.sock"), 0);
    }

    #[test]
    fn bench_json() {
        let value = json::parse(
            r#"{"schema":"fcgi.bench/1","requests":10,"completed":10,"errors":0,"duration_s":1.0,
                "req_per_s":10.0,"latency_ms":{"min":0.1,"mean":0.2,"p50":0.2,"p90":0.3,"p99":0.4,"max":0.5},
                "status":{"200":10},"errors_by_kind":{},"body_bytes":130,"cpu_user_s":0.001,
                "cpu_sys_s":0.001,"cpu_us_per_req":200.0}"#,
        )
        .unwrap();
        let bench = BenchJson::read(&value).unwrap();
        assert_eq!((bench.completed, bench.status_200, bench.body_bytes), (10.0, 10.0, 130.0));
        assert_eq!((bench.p50_ms, bench.p99_ms), (0.2, 0.4));
        assert!(BenchJson::read(&json::parse(r#"{"schema":"other"}"#).unwrap()).is_err());
    }
}
