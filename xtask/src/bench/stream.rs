//! Bench section `stream`: one 1 GiB response from php-fpm's `big.php`, read three ways in the
//! same run:
//!
//! - `fcgi get '/big.php?bytes=N' -o /dev/null` straight to php-fpm;
//! - `curl -o /dev/null http://127.0.0.1:PORT/big.php?bytes=N` through HAProxy
//!   ([`super::gateways`], `proto fcgi`) in front of the same php-fpm;
//! - `raw_read` (fcgi-mux/benches): one blocking socket, one fixed buffer, record headers walked
//!   and everything else discarded: the pipe limit, what php-fpm and the kernel can deliver.
//!
//! Each client runs under GNU time (CPU and peak RSS); its wall time is measured around the
//! process, polled every millisecond. [`REPEATS`] runs each, the order rotating; figures are
//! medians. Before the timed runs each client fetches 1 MiB once and the byte count is checked.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::measure::json::Number as _;
use super::measure::{self, UnderTime, clock_ticks, cpu_ticks, json, load_average, median, verdict};
use super::tools::{CURL, GNU_TIME};
use super::{Ctx, Report};

const BYTES: u64 = 1 << 30;
/// Size of the checking fetch.
const CHECK_BYTES: u64 = 1 << 20;
const REPEATS: usize = 5;
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const TARGET_VS_CURL: f64 = 1.2;
const TARGET_RSS_MIB: f64 = 32.0;
const RAW_BUILD_ARGS: &[&str] = &["build", "--release", "-p", "fcgi-mux", "--bench", "raw_read"];

/// The clients, in table order.
const CLIENTS: [&str; 3] = ["fcgi-get", "curl-haproxy", "raw-read"];

/// One transfer.
#[derive(Clone, Copy, Debug)]
struct Run {
    seconds: f64,
    rss_bytes: f64,
    cpu_s: f64,
    /// CPU of HAProxy during the transfer (0 for the clients without it).
    gateway_cpu_s: f64,
    php_cpu_s: f64,
}

/// Measures; returns the report.
pub fn run(ctx: &mut Ctx) -> Result<Report> {
    let load_before = load_average();
    let curl = CURL.require()?;
    let time = GNU_TIME.require()?;
    let fcgi = ctx.fcgi()?;
    let raw = measure::build_bins("raw_read", RAW_BUILD_ARGS, &[], &["raw_read"])?
        .remove("raw_read")
        .context("build_bins returned no raw_read")?;
    let stack = ctx.gateways()?;
    let work =
        tempfile::Builder::new().prefix("fcgi-bench-stream-").tempdir().context("creating a temp dir")?;
    let runner = Runner {
        dir: work.path(),
        time: &time,
        programs: [fcgi.clone(), curl.clone(), raw],
        socket: stack.php.socket.display().to_string(),
        docroot: stack.docroot.display().to_string(),
        script: stack.docroot.join("big.php").display().to_string(),
        haproxy_url: stack.haproxy.url("/big.php"),
        haproxy_pid: stack.haproxy.pid(),
        php_pid: stack.php.pid(),
        clock_ticks: clock_ticks()?,
    };
    for client in 0..3 {
        runner.check(client)?;
    }
    let mut runs: [Vec<Run>; 3] = Default::default();
    for repeat in 0..REPEATS {
        println!("xtask: bench stream: round {} of {REPEATS} ({BYTES} bytes per client) ...", repeat + 1);
        for turn in 0..3 {
            let client = (turn + repeat) % 3;
            runs[client].push(runner.transfer(client)?);
        }
        stack.check_running()?;
    }
    let load_after = load_average();

    let m = |client: usize, f: fn(&Run) -> f64| median(runs[client].iter().map(f));
    let mb_s = |client: usize| BYTES as f64 / m(client, |r| r.seconds) / 1e6;
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let vs_curl = mb_s(0) / mb_s(1);
    let fcgi_rss_max = runs[0].iter().map(|r| r.rss_bytes).fold(0.0, f64::max);
    let mut table = String::from(
        "| measurement | `fcgi get -o /dev/null` | curl → HAProxy | raw records (`raw_read`) | target | met |\n\
         |---|---:|---:|---:|---|:-:|\n",
    );
    let mut row = |what: &str, cells: [String; 3], target: &str, met: &str| {
        table.push_str(&format!("| {what} | {} | {target} | {met} |\n", cells.join(" | ")));
    };
    row(
        "throughput, 1 GiB from `big.php`",
        [0, 1, 2].map(|c| format!("{:.0} MB/s", mb_s(c))),
        &format!(
            "≥ {TARGET_VS_CURL}× curl → HAProxy: {vs_curl:.2}× ({:.0} % of raw)",
            100.0 * mb_s(0) / mb_s(2)
        ),
        verdict(vs_curl >= TARGET_VS_CURL),
    );
    row("wall time", [0, 1, 2].map(|c| format!("{:.3} s", m(c, |r| r.seconds))), "—", "");
    let rss = [0, 1, 2].map(|c| format!("{:.1} MiB", mib(m(c, |r| r.rss_bytes))));
    row(
        "peak RSS of the client (median; largest)",
        [format!("{}; {:.1} MiB", rss[0], mib(fcgi_rss_max)), rss[1].clone(), rss[2].clone()],
        &format!("≤ {TARGET_RSS_MIB} MiB (largest)"),
        verdict(mib(fcgi_rss_max) <= TARGET_RSS_MIB),
    );
    let mut cpu = [0, 1, 2].map(|c| format!("{:.3} s", m(c, |r| r.cpu_s)));
    cpu[1].push_str(&format!(" (+ HAProxy {:.3} s)", m(1, |r| r.gateway_cpu_s)));
    row("client CPU, user + system", cpu, "—", "");
    row("php-fpm CPU", [0, 1, 2].map(|c| format!("{:.2} s", m(c, |r| r.php_cpu_s))), "—", "");

    let versions = [
        stack.versions.clone(),
        vec![CURL.version(&curl), GNU_TIME.version(&time), measure::version_line(&fcgi, &["--version"])],
    ]
    .concat();
    let log = |client: usize| {
        let runs: Vec<String> = runs[client]
            .iter()
            .map(|r| format!("{:.0} MB/s, {:.1} MiB", BYTES as f64 / r.seconds / 1e6, mib(r.rss_bytes)))
            .collect();
        runs.join("; ")
    };
    let notes = format!(
        "Commands (`$SOCK`: php-fpm's unix socket; `$DOCROOT`: its docroot; HAProxy as in the \
         `gateway` section, the same php-fpm behind it; N = {BYTES}):\n\n\
         - `fcgi get \"/big.php?bytes=N\" --socket $SOCK --docroot $DOCROOT -o /dev/null -s`\n\
         - `curl -sS -o /dev/null -w '%{{http_code}} %{{size_download}}' \"http://127.0.0.1:PORT/big.php?bytes=N\"`\n\
         - `raw_read --socket $SOCK --script-filename $DOCROOT/big.php --bytes N` \
         (fcgi-mux/benches/raw_read.rs: blocking reads into one 256 KiB buffer, record \
         headers walked, content dropped)\n\n\
         `big.php` writes the body in 64 KiB chunks, each flushed at once. Each client runs under \
         `/usr/bin/time -f '%U %S %M'` (CPU and peak RSS of the client process); wall time is \
         taken around the process (start-up included for all three), {REPEATS} runs each with \
         the order rotating, medians. curl's status and byte count are checked on every run; \
         `fcgi get` and `raw_read` exit non-zero on a short body, and each client's byte count \
         was checked once on a {CHECK_BYTES}-byte fetch before the timed runs. HAProxy's CPU is \
         utime + stime from `/proc/<pid>/stat`; php-fpm's likewise, master and children (clock \
         tick {} Hz).\n\nVersions: {}.\n\nLoad average (1 min) before/after the section: \
         {load_before} / {load_after} (the machine is shared; the transfers themselves keep both \
         cores busy, php-fpm on one and the client or HAProxy on the other, which lifts the \
         figure by itself).\n\n\
         Runs:\n\n- fcgi get: {}\n- curl → HAProxy: {}\n- raw_read: {}",
        runner.clock_ticks,
        versions.join("; "),
        log(0),
        log(1),
        log(2),
    );
    Ok(Report {
        title: "Streaming 1 GiB: `fcgi get` vs curl through HAProxy vs the pipe limit".into(),
        command: format!(
            "cargo xtask bench stream   # fcgi built with: {}; cargo {}",
            ctx.fcgi_build_line(),
            RAW_BUILD_ARGS.join(" ")
        ),
        table,
        notes,
    })
}

struct Runner<'a> {
    dir: &'a Path,
    time: &'a Path,
    /// fcgi, curl and raw_read, as in [`CLIENTS`].
    programs: [PathBuf; 3],
    socket: String,
    docroot: String,
    /// `big.php`'s path, for raw_read.
    script: String,
    haproxy_url: String,
    haproxy_pid: u32,
    php_pid: u32,
    clock_ticks: f64,
}

impl Runner<'_> {
    /// The arguments fetching `bytes` with `client`; `output` is where the body goes.
    fn args(&self, client: usize, bytes: u64, output: &Path) -> Vec<String> {
        let output = output.display().to_string();
        let (path, url) = (format!("/big.php?bytes={bytes}"), format!("{}?bytes={bytes}", self.haproxy_url));
        let bytes = bytes.to_string();
        let args = match client {
            0 => {
                vec!["get", &path, "--socket", &self.socket, "--docroot", &self.docroot, "-o", &output, "-s"]
            }
            1 => vec!["-sS", "-o", &output, "-w", "%{http_code} %{size_download}", &url],
            _ => vec!["--socket", &self.socket, "--script-filename", &self.script, "--bytes", &bytes],
        };
        args.into_iter().map(String::from).collect()
    }

    /// Fetches [`CHECK_BYTES`] with `client` and checks the count.
    fn check(&self, client: usize) -> Result<()> {
        let file = self.dir.join(format!("check-{}", CLIENTS[client]));
        let mut cmd = Command::new(&self.programs[client]);
        cmd.args(self.args(client, CHECK_BYTES, &file));
        let finished =
            measure::run_to_end(self.dir, "check", &mut cmd, RUN_TIMEOUT, Duration::from_millis(5))?
                .check(CLIENTS[client])?;
        if client == 2 {
            // raw_read counts STDOUT content: the CGI head, then the body.
            let stdout_bytes = json::parse(finished.stdout.trim())?.number("stdout_bytes")? as u64;
            if !(CHECK_BYTES..=CHECK_BYTES + 1024).contains(&stdout_bytes) {
                bail!("raw_read received {stdout_bytes} STDOUT bytes for a {CHECK_BYTES}-byte body");
            }
            return Ok(());
        }
        let received = fs::metadata(&file)
            .with_context(|| format!("{} wrote no {}", CLIENTS[client], file.display()))?
            .len();
        if received != CHECK_BYTES {
            bail!("{} saved {received} bytes of a {CHECK_BYTES}-byte body", CLIENTS[client]);
        }
        Ok(())
    }

    /// One timed transfer of [`BYTES`] to /dev/null.
    fn transfer(&self, client: usize) -> Result<Run> {
        let args = self.args(client, BYTES, Path::new("/dev/null"));
        let command = UnderTime::new(self.time, self.dir, CLIENTS[client], &self.programs[client], &args);
        let ticks = || -> Result<(u64, u64)> {
            Ok((cpu_ticks(self.php_pid, true)?, cpu_ticks(self.haproxy_pid, false)?))
        };
        let (php_before, gw_before) = ticks()?;
        let (finished, usage) =
            command.run(self.dir, CLIENTS[client], RUN_TIMEOUT, Duration::from_millis(1))?;
        let (php_after, gw_after) = ticks()?;
        if client == 1 && finished.stdout.trim() != format!("200 {BYTES}") {
            bail!("curl through HAProxy wrote {:?}, expected \"200 {BYTES}\"", finished.stdout.trim());
        }
        let seconds = |ticks: u64| ticks as f64 / self.clock_ticks;
        Ok(Run {
            seconds: finished.wall.as_secs_f64(),
            rss_bytes: usage.max_rss_bytes,
            cpu_s: usage.cpu_s(),
            gateway_cpu_s: if client == 1 { seconds(gw_after.saturating_sub(gw_before)) } else { 0.0 },
            php_cpu_s: seconds(php_after.saturating_sub(php_before)),
        })
    }
}
