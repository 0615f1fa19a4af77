//! Bench section `exporter`: one scrape of 200 php-fpm pools by `fcgi exporter`, one of them
//! hung, beside the same pools asked one after another.
//!
//! One php-fpm master runs [`LIVE_POOLS`] pools (`pm = static`, one child, status page
//! `/status`, a unix socket each); the hung pool is a unix listener that accepts and never
//! answers (a pool whose workers are all stuck, seen from outside). All sockets are in one
//! `--socket-dir`. The release `fcgi exporter` is scraped [`SCRAPES`] times per configuration:
//! concurrent (the default) and one after another (`--max-concurrency 1`), with the 2 s deadline
//! and then on the live pools only, without a deadline that matters (the sweep itself).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::measure::{clock_ticks, cpu_ticks, load_average, median, verdict, version_line};
use super::{Ctx, Report};
use crate::php_fpm;
use crate::process::{self, Group, Signal};

/// Pools scraped, the hung one included.
const POOLS: usize = 200;
const LIVE_POOLS: usize = POOLS - 1;
/// Timed scrapes per configuration, after one untimed.
const SCRAPES: usize = 10;
/// The target: a scrape answers within the 2 s deadline plus this.
const TARGET_SLACK: Duration = Duration::from_millis(200);

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
    let _php = start_php_fpm(&php_binary, &base, &all)?;
    for index in 0..LIVE_POOLS {
        let name = format!("p{index:03}.sock");
        std::os::unix::fs::symlink(all.join(&name), live.join(&name))?;
    }
    // In the middle of the sorted names: half the pools are asked after it.
    let hung = UnixListener::bind(all.join("p100-hung.sock")).context("binding the hung pool's socket")?;
    std::thread::spawn(move || {
        // Accept and hold every connection, never answering.
        let mut held = Vec::new();
        for stream in hung.incoming().flatten() {
            held.push(stream);
        }
    });
    let ticks = clock_ticks()?;
    let scrape_runs = |dir: &Path, timeout: &str, sequential: bool| {
        let mut args = vec![
            "--socket-dir".to_owned(),
            dir.display().to_string(),
            "--scrape-timeout".into(),
            timeout.into(),
        ];
        if sequential {
            args.extend(["--max-concurrency".into(), "1".into()]);
        }
        measure(&fcgi, &args, ticks)
    };
    let concurrent = scrape_runs(&all, "2s", false)?;
    let sequential = scrape_runs(&all, "2s", true)?;
    let live_concurrent = scrape_runs(&live, "60s", false)?;
    let live_sequential = scrape_runs(&live, "60s", true)?;
    if [&concurrent, &live_concurrent, &live_sequential].iter().any(|run| run.up != LIVE_POOLS) {
        bail!(
            "pools up: concurrent {}, live concurrent {}, live sequential {} (expected {LIVE_POOLS} each)",
            concurrent.up,
            live_concurrent.up,
            live_sequential.up
        );
    }
    let met = concurrent.max <= Duration::from_secs(2) + TARGET_SLACK;
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    let mut table = String::from(
        "| scrape | wall time, median | wall time, max | pools up | exporter CPU per scrape | exporter peak RSS |\n\
         |---|---|---|---|---|---|\n",
    );
    let rows = [
        ("200 pools, 1 hung, deadline 2 s: **concurrent** (`--max-concurrency 64`)", &concurrent, POOLS),
        ("200 pools, 1 hung, deadline 2 s: one after another (`--max-concurrency 1`)", &sequential, POOLS),
        ("199 live pools: concurrent", &live_concurrent, LIVE_POOLS),
        ("199 live pools: one after another", &live_sequential, LIVE_POOLS),
    ];
    for (name, run, pools) in rows {
        table.push_str(&format!(
            "| {name} | {} | {} | {} / {pools} | {:.1} ms | {:.1} MiB |\n",
            ms(run.median),
            ms(run.max),
            run.up,
            run.cpu_per_scrape.as_secs_f64() * 1e3,
            run.peak_rss_kib as f64 / 1024.0
        ));
    }
    let notes = format!(
        "Target: a scrape of 200 pools with one hung answers within the deadline + {} ms: **{}** \
         (max {}). One after another, the hung pool holds the single slot until the deadline and \
         the {} pools queued behind it are reported down (`phpfpm_up 0`, kind `timeout`); without \
         a deadline (hipages/php-fpm_exporter) the scrape would not end at all. The live-only rows \
         show the sweep itself: {:.1}× faster concurrent than one after another.\n\n\
         Method: one php-fpm master ({}) with {LIVE_POOLS} pools (`pm = static`, 1 child, unix \
         sockets) and a hung pool (a listener that accepts and never answers), all in one \
         `--socket-dir`; the release build of `fcgi` ({}); {SCRAPES} timed `GET /metrics` after one \
         untimed, each with per-process series (`?full`); CPU is the exporter's utime + stime over \
         the timed scrapes divided by {SCRAPES}; peak RSS is its `VmHWM`. Load average before: \
         {load_before}, after: {}.",
        TARGET_SLACK.as_millis(),
        verdict(met),
        ms(concurrent.max),
        POOLS - sequential.up - 1,
        live_sequential.median.as_secs_f64() / live_concurrent.median.as_secs_f64().max(1e-9),
        version_line(&php_binary, &["--version"]),
        ctx.fcgi_build_line(),
        load_average(),
    );
    Ok(Report {
        title: "Exporter: one scrape of 200 php-fpm pools, one hung".into(),
        command: "cargo xtask bench exporter".into(),
        table,
        notes,
    })
}

/// What one exporter configuration gave.
struct Run {
    median: Duration,
    max: Duration,
    /// Pools with `phpfpm_up 1` at the last scrape.
    up: usize,
    cpu_per_scrape: Duration,
    peak_rss_kib: u64,
}

/// Starts `fcgi exporter ARGS` on a free port, scrapes it once untimed and [`SCRAPES`] times
/// timed, and stops it.
fn measure(fcgi: &Path, args: &[String], ticks_per_second: f64) -> Result<Run> {
    println!("xtask: bench exporter: fcgi exporter {} ...", args.join(" "));
    let mut cmd = Command::new(fcgi);
    cmd.args(["exporter", "--listen", "127.0.0.1:0"]).args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut group = Group::spawn("fcgi exporter", &mut cmd, Signal::Term)?;
    let address = listening_address(&mut group)?;
    let pid = group.pid();
    scrape(address)?;
    let before = cpu_ticks(pid, false)?;
    let mut times = Vec::new();
    let mut up = 0;
    for _ in 0..SCRAPES {
        process::bail_if_interrupted()?;
        let started = Instant::now();
        let body = scrape(address)?;
        times.push(started.elapsed().as_secs_f64());
        up = body.lines().filter(|line| line.starts_with("phpfpm_up{") && line.ends_with(" 1")).count();
    }
    let cpu_s = cpu_ticks(pid, false)?.saturating_sub(before) as f64 / ticks_per_second;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let peak_rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:")?.split_whitespace().next()?.parse().ok())
        .context("no VmHWM in the exporter's /proc/PID/status")?;
    group.stop();
    Ok(Run {
        median: Duration::from_secs_f64(median(times.iter().copied())),
        max: Duration::from_secs_f64(times.iter().copied().fold(0.0, f64::max)),
        up,
        cpu_per_scrape: Duration::from_secs_f64(cpu_s / SCRAPES as f64),
        peak_rss_kib,
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

/// `GET /metrics`, the body.
fn scrape(address: SocketAddr) -> Result<String> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if !response.starts_with("HTTP/1.1 200") {
        bail!("/metrics answered {:?}", response.lines().next());
    }
    Ok(response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}

/// One php-fpm master with [`LIVE_POOLS`] static one-child pools, sockets `DIR/pNNN.sock`;
/// waits until all accept connections.
fn start_php_fpm(binary: &Path, base: &Path, sockets: &Path) -> Result<Group> {
    let root = crate::apt::is_root();
    let log = base.join("php-fpm.log");
    let mut conf = format!(
        "[global]\npid = \"{}\"\nerror_log = \"{}\"\nlog_level = warning\ndaemonize = no\nprocess.max = 0\n",
        base.join("php-fpm.pid").display(),
        log.display()
    );
    let paths: Vec<PathBuf> = (0..LIVE_POOLS).map(|i| sockets.join(format!("p{i:03}.sock"))).collect();
    for (index, path) in paths.iter().enumerate() {
        conf.push_str(&format!("\n[p{index:03}]\nlisten = \"{}\"\nlisten.mode = 0666\n", path.display()));
        if root {
            conf.push_str("user = root\ngroup = root\n");
        }
        conf.push_str("pm = static\npm.max_children = 1\npm.status_path = /status\n");
    }
    let config = base.join("php-fpm.conf");
    std::fs::write(&config, conf)?;
    let mut cmd = Command::new(binary);
    cmd.arg("--nodaemonize").arg("--fpm-config").arg(&config).env_remove("NOTIFY_SOCKET");
    if root {
        cmd.arg("--allow-to-run-as-root");
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut group = Group::spawn("php-fpm", &mut cmd, Signal::Term)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !paths.iter().all(|path| UnixStream::connect(path).is_ok()) {
        if let Some(status) = group.try_wait()? {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("php-fpm exited ({}): {log}", process::describe(status));
        }
        if Instant::now() > deadline {
            bail!("php-fpm's {LIVE_POOLS} pools did not all accept connections within 60 s");
        }
        process::sleep(Duration::from_millis(200))?;
    }
    Ok(group)
}
