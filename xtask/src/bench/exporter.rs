//! Bench section `exporter`: one scrape of 200 php-fpm pools by `fcgi exporter`, one of them
//! hung (a unix listener that accepts and never answers: a pool whose workers are all stuck, seen
//! from outside), concurrent and one after another, then of the live pools alone, where the
//! deadline does not matter (the sweep itself). The method is in the report's notes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::gateways::{get, measured};
use super::measure::{load_average, median, verdict, version_line};
use super::report::table;
use super::{Ctx, Report};
use crate::php_fpm;
use crate::process::{self, Group, Signal};
use crate::service::Service;

/// Pools scraped, the hung one included.
const POOLS: usize = 200;
const LIVE_POOLS: usize = POOLS - 1;
/// Timed scrapes per configuration, after one untimed.
const SCRAPES: usize = 10;
/// The target: a scrape answers within the 2 s deadline plus this.
const TARGET_SLACK_MS: f64 = 200.0;
/// The scrapes measured: row, with the hung pool (else the live ones alone, with a deadline that
/// does not matter), one after another (`--max-concurrency 1`).
const CONFIGS: [(&str, bool, bool); 4] = [
    ("200 pools, 1 hung, deadline 2 s: **concurrent** (`--max-concurrency 64`)", true, false),
    ("200 pools, 1 hung, deadline 2 s: one after another (`--max-concurrency 1`)", true, true),
    ("199 live pools: concurrent", false, false),
    ("199 live pools: one after another", false, true),
];

pub fn run(ctx: &mut Ctx) -> Result<Report> {
    let load_before = load_average();
    let fcgi = ctx.fcgi()?;
    let php_binary = php_fpm::find_or_install()?;
    let work =
        tempfile::Builder::new().prefix("fcgi-bench-exporter-").tempdir().context("creating a temp dir")?;
    let base = work.path().canonicalize()?;
    let (all, live) = (base.join("all"), base.join("live"));
    std::fs::create_dir_all(&all)?;
    std::fs::create_dir_all(&live)?;
    println!("xtask: bench exporter: starting php-fpm with {LIVE_POOLS} pools ...");
    let _php = start_php_fpm(&php_binary, &base, &all, &live)?;
    // In the middle of the sorted names: half the pools are asked after it.
    let hung = UnixListener::bind(all.join("p100-hung.sock")).context("binding the hung pool's socket")?;
    // Accepts and holds every connection, never answering.
    std::thread::spawn(move || hung.incoming().flatten().collect::<Vec<_>>());
    let (mut runs, mut rows) = (Vec::new(), Vec::new());
    for (name, hung, sequential) in CONFIGS {
        println!("xtask: bench exporter: {name} ...");
        let (dir, pools, deadline) = if hung { (&all, POOLS, "2s") } else { (&live, LIVE_POOLS, "60s") };
        let run = measure(&fcgi, dir, deadline, sequential)?;
        // One after another, the pools queued behind the hung one time out.
        if run.up != LIVE_POOLS && !(hung && sequential) {
            bail!("{name}: {} pools up, expected {LIVE_POOLS}", run.up);
        }
        rows.push(format!(
            "{name} | {:.0} ms | {:.0} ms | {} / {pools} | {:.1} ms | {:.1} MiB",
            run.median_ms, run.max_ms, run.up, run.cpu_ms, run.peak_mib
        ));
        runs.push(run);
    }
    let (concurrent, sequential, live) = (&runs[0], &runs[1], &runs[2..]);
    let head = "scrape | wall time, median | wall time, max | pools up | exporter CPU per scrape | \
                exporter peak RSS";
    let notes = format!(
        "Target: a scrape of 200 pools with one hung answers within the deadline + {TARGET_SLACK_MS} ms: \
         **{}** (max {:.0} ms). One after another, the hung pool holds the single slot until the \
         deadline and the {} pools queued behind it are reported down (`phpfpm_up 0`, kind \
         `timeout`); without a deadline (hipages/php-fpm_exporter) the scrape would not end at all. \
         The live-only rows show the sweep itself: {:.1}× faster concurrent than one after another.\n\n\
         Method: one php-fpm master ({}) with {LIVE_POOLS} pools (`pm = static`, 1 child, unix \
         sockets) and a hung pool (a listener that accepts and never answers), all in one \
         `--socket-dir`; the release build of `fcgi` ({}); {SCRAPES} timed `GET /metrics` after one \
         untimed, each with per-process series (`?full`); CPU is the exporter's utime + stime over \
         the timed scrapes divided by {SCRAPES}; peak RSS is its `VmHWM`. Load average before: \
         {load_before}, after: {}.",
        verdict(concurrent.max_ms <= 2000.0 + TARGET_SLACK_MS),
        concurrent.max_ms,
        POOLS - sequential.up - 1,
        live[1].median_ms / live[0].median_ms.max(1e-6),
        version_line(&php_binary, &["--version"]),
        ctx.fcgi_build_line(),
        load_average(),
    );
    Ok(Report {
        title: "Exporter: one scrape of 200 php-fpm pools, one hung".into(),
        command: "cargo xtask bench exporter".into(),
        table: table(head, "llllll", rows),
        notes,
    })
}

/// What one exporter configuration gave.
struct Run {
    median_ms: f64,
    max_ms: f64,
    /// Pools with `phpfpm_up 1` at the last scrape.
    up: usize,
    /// Per scrape.
    cpu_ms: f64,
    peak_mib: f64,
}

/// Starts `fcgi exporter` for the pools in `dir` on a free port, scrapes it once untimed and
/// [`SCRAPES`] times timed, and stops it.
fn measure(fcgi: &Path, dir: &Path, deadline: &str, sequential: bool) -> Result<Run> {
    let mut cmd = Command::new(fcgi);
    cmd.args(["exporter", "--listen", "127.0.0.1:0", "--scrape-timeout", deadline, "--socket-dir"]).arg(dir);
    cmd.args(["--max-concurrency", if sequential { "1" } else { "64" }]);
    let mut group =
        Group::spawn("fcgi exporter", cmd.stdout(Stdio::null()).stderr(Stdio::piped()), Signal::Term)?;
    let address = listening_address(&mut group)?;
    let scrape = || get(address, "/metrics", Duration::from_secs(120));
    scrape()?;
    let mut up = 0;
    let (times, cost) = measured(group.pid(), || {
        let mut times = Vec::new();
        for _ in 0..SCRAPES {
            process::bail_if_interrupted()?;
            let started = Instant::now();
            let body = scrape()?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            up = body.lines().filter(|line| line.starts_with("phpfpm_up{") && line.ends_with(" 1")).count();
        }
        Ok(times)
    })?;
    Ok(Run {
        median_ms: median(times.iter().copied()),
        max_ms: times.iter().copied().fold(0.0, f64::max),
        up,
        cpu_ms: cost.cpu_s * 1e3 / SCRAPES as f64,
        peak_mib: cost.peak_mib,
    })
}

/// Reads the exporter's stderr until its `listening on http://ADDR/metrics` line; the rest of
/// its stderr is drained in a thread.
fn listening_address(group: &mut Group) -> Result<SocketAddr> {
    let stderr = group.take_stderr().context("the exporter's stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if let Some(rest) = line?.strip_prefix("fcgi exporter: listening on http://") {
            let address = rest.split('/').next().unwrap_or_default().parse()?;
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(address);
        }
    }
    bail!("fcgi exporter exited without saying where it listens")
}

/// One php-fpm master with [`LIVE_POOLS`] static one-child pools, sockets `SOCKETS/pNNN.sock`,
/// each linked from `LIVE/`; waits until all accept connections.
fn start_php_fpm(binary: &Path, base: &Path, sockets: &Path, live: &Path) -> Result<Service> {
    let root = crate::apt::is_root();
    let log = base.join("php-fpm.log");
    let mut conf = format!(
        "[global]\npid = \"{}\"\nerror_log = \"{}\"\nlog_level = warning\ndaemonize = no\nprocess.max = 0\n",
        base.join("php-fpm.pid").display(),
        log.display()
    );
    let user = if root { "user = root\ngroup = root\n" } else { "" };
    let mut paths = Vec::new();
    for index in 0..LIVE_POOLS {
        let path = sockets.join(format!("p{index:03}.sock"));
        std::os::unix::fs::symlink(&path, live.join(format!("p{index:03}.sock")))?;
        conf.push_str(&format!(
            "\n[p{index:03}]\nlisten = \"{}\"\nlisten.mode = 0666\n{user}\
             pm = static\npm.max_children = 1\npm.status_path = /status\n",
            path.display()
        ));
        paths.push(path);
    }
    let config = base.join("php-fpm.conf");
    std::fs::write(&config, conf)?;
    let mut cmd = Command::new(binary);
    cmd.arg("--nodaemonize").arg("--fpm-config").arg(&config).env_remove("NOTIFY_SOCKET");
    cmd.args(root.then_some("--allow-to-run-as-root"));
    let all_accept = || paths.iter().all(|path| UnixStream::connect(path).is_ok());
    Service::start_with("php-fpm", &mut cmd, &paths[0], Some(&log), all_accept)
}
