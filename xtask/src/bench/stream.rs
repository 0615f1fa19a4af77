//! Bench section `stream`: one 1 GiB response from php-fpm's `big.php`, read three ways in the
//! same run:
//!
//! - `fcgi get '/big.php?bytes=N' -o /dev/null` straight to php-fpm;
//! - `curl -o /dev/null http://127.0.0.1:PORT/big.php?bytes=N` through HAProxy
//!   ([`super::gateways`], `proto fcgi`) in front of the same php-fpm;
//! - `raw_read` (fcgi-mux/benches): one blocking socket, one fixed buffer, record headers walked
//!   and everything else discarded: the pipe limit, what php-fpm and the kernel can deliver.
//!
//! Each client runs under GNU time (`/usr/bin/time -f '%U %S %M'`: CPU and peak RSS); its wall
//! time is measured around the process (start-up included, the same for all three), polled
//! every millisecond. [`REPEATS`] runs each, the order rotating; figures are medians.
//! Throughput is N ÷ wall time, in MB/s (10^6 bytes). Before the timed runs each client fetches
//! 1 MiB once and the byte count is checked.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::measure::json::Number as _;
use super::measure::{self, UnderTime, clock_ticks, cpu_ticks, json, load_average, median, verdict};
use super::tools::{CURL, GNU_TIME};
use super::{Ctx, Report};

/// Size of the response.
const BYTES: u64 = 1 << 30;
/// Size of the checking fetch.
const CHECK_BYTES: u64 = 1 << 20;
/// Runs of each client.
const REPEATS: usize = 5;
/// Longest one transfer may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The targets.
const TARGET_VS_CURL: f64 = 1.2;
const TARGET_RSS_MIB: f64 = 32.0;

const RAW_BUILD_ARGS: &[&str] = &["build", "--release", "-p", "fcgi-mux", "--bench", "raw_read"];

/// One transfer.
#[derive(Clone, Copy, Debug)]
struct Run {
    seconds: f64,
    rss_bytes: f64,
    cpu_s: f64,
    /// CPU of the gateway (HAProxy) during the transfer, seconds; 0 without one.
    gateway_cpu_s: f64,
    php_cpu_s: f64,
}

/// The three clients.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    Fcgi,
    Curl,
    Raw,
}

impl Client {
    const ALL: [Client; 3] = [Client::Fcgi, Client::Curl, Client::Raw];

    fn name(self) -> &'static str {
        match self {
            Client::Fcgi => "fcgi-get",
            Client::Curl => "curl-haproxy",
            Client::Raw => "raw-read",
        }
    }
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
        fcgi: &fcgi,
        curl: &curl,
        raw: &raw,
        socket: stack.php.socket.clone(),
        docroot: stack.docroot.clone(),
        haproxy_url: stack.haproxy.url("/big.php"),
        haproxy_pid: stack.haproxy.pid(),
        php_pid: stack.php.pid(),
        clock_ticks: clock_ticks()?,
    };

    for client in Client::ALL {
        runner.check(client)?;
    }
    let mut runs: [Vec<Run>; 3] = Default::default();
    for repeat in 0..REPEATS {
        println!("xtask: bench stream: round {} of {REPEATS} ({BYTES} bytes per client) ...", repeat + 1);
        for turn in 0..3 {
            let index = (turn + repeat) % 3;
            runs[index].push(runner.transfer(Client::ALL[index])?);
        }
        stack.check_running()?;
    }
    let load_after = load_average();

    let m = |index: usize, f: fn(&Run) -> f64| median(runs[index].iter().map(f));
    let mb_s = |index: usize| BYTES as f64 / m(index, |r| r.seconds) / 1e6;
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let (fcgi_rate, curl_rate, raw_rate) = (mb_s(0), mb_s(1), mb_s(2));
    let vs_curl = fcgi_rate / curl_rate;
    let fcgi_rss = runs[0].iter().map(|r| r.rss_bytes).fold(0.0, f64::max);

    let mut table = String::from(
        "| measurement | `fcgi get -o /dev/null` | curl → HAProxy | raw records (`raw_read`) | target | met |\n\
         |---|---:|---:|---:|---|:-:|\n",
    );
    let mut row = |cells: [&str; 6]| table.push_str(&format!("| {} |\n", cells.join(" | ")));
    row([
        "throughput, 1 GiB from `big.php`",
        &format!("{fcgi_rate:.0} MB/s"),
        &format!("{curl_rate:.0} MB/s"),
        &format!("{raw_rate:.0} MB/s"),
        &format!(
            "≥ {TARGET_VS_CURL}× curl → HAProxy: {vs_curl:.2}× ({:.0} % of raw)",
            100.0 * fcgi_rate / raw_rate
        ),
        verdict(vs_curl >= TARGET_VS_CURL),
    ]);
    row([
        "wall time",
        &format!("{:.3} s", m(0, |r| r.seconds)),
        &format!("{:.3} s", m(1, |r| r.seconds)),
        &format!("{:.3} s", m(2, |r| r.seconds)),
        "—",
        "",
    ]);
    row([
        "peak RSS of the client (median; largest)",
        &format!("{:.1} MiB; {:.1} MiB", mib(m(0, |r| r.rss_bytes)), mib(fcgi_rss)),
        &format!("{:.1} MiB", mib(m(1, |r| r.rss_bytes))),
        &format!("{:.1} MiB", mib(m(2, |r| r.rss_bytes))),
        &format!("≤ {TARGET_RSS_MIB} MiB (largest)"),
        verdict(mib(fcgi_rss) <= TARGET_RSS_MIB),
    ]);
    row([
        "client CPU, user + system",
        &format!("{:.3} s", m(0, |r| r.cpu_s)),
        &format!("{:.3} s (+ HAProxy {:.3} s)", m(1, |r| r.cpu_s), m(1, |r| r.gateway_cpu_s)),
        &format!("{:.3} s", m(2, |r| r.cpu_s)),
        "—",
        "",
    ]);
    row([
        "php-fpm CPU",
        &format!("{:.2} s", m(0, |r| r.php_cpu_s)),
        &format!("{:.2} s", m(1, |r| r.php_cpu_s)),
        &format!("{:.2} s", m(2, |r| r.php_cpu_s)),
        "—",
        "",
    ]);

    let versions = [
        stack.versions.clone(),
        vec![CURL.version(&curl), GNU_TIME.version(&time), measure::version_line(&fcgi, &["--version"])],
    ]
    .concat();
    let log = |index: usize| {
        runs[index]
            .iter()
            .map(|r| format!("{:.0} MB/s, {:.1} MiB", BYTES as f64 / r.seconds / 1e6, mib(r.rss_bytes)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let notes = format!(
        "Commands (`$SOCK`: php-fpm's unix socket; `$DOCROOT`: its docroot; HAProxy as in the \
         `gateway` section, the same php-fpm behind it; N = {BYTES}):\n\n\
         - `fcgi get \"/big.php?bytes=N\" --socket $SOCK --docroot $DOCROOT -o /dev/null -s`\n\
         - `curl -sS -o /dev/null -w '%{{http_code}} %{{size_download}}' \"http://127.0.0.1:PORT/big.php?bytes=N\"`\n\
         - `raw_read --address unix:$SOCK --script-filename $DOCROOT/big.php --bytes N` \
         (fcgi-mux/benches/raw_read.rs: blocking reads into one 256 KiB buffer, record \
         headers walked, content dropped)\n\n\
         `big.php` writes the body in 64 KiB chunks, each flushed at once. Each client runs under `/usr/bin/time -f '%U %S %M'` (CPU and peak RSS of the \
         client process); wall time is taken around the process (start-up included for all three), \
         {REPEATS} runs each with the order rotating, medians. curl's status and byte count are \
         checked on every run; `fcgi get` and `raw_read` exit non-zero on a short body, and each \
         client's byte count was checked once on a {CHECK_BYTES}-byte fetch before the timed runs. \
         HAProxy's CPU is utime + stime from `/proc/<pid>/stat`; php-fpm's likewise, master and \
         children (clock tick {} Hz).\n\nVersions: {}.\n\nLoad average (1 min) before/after the \
         section: {load_before} / {load_after} (the machine is shared; the transfers themselves \
         keep both cores busy, php-fpm on one and the client or HAProxy on the other, which lifts \
         the figure by itself).\n\n\
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
    fcgi: &'a Path,
    curl: &'a Path,
    raw: &'a Path,
    socket: PathBuf,
    docroot: PathBuf,
    haproxy_url: String,
    haproxy_pid: u32,
    php_pid: u32,
    clock_ticks: f64,
}

impl Runner<'_> {
    /// The program and arguments fetching `bytes` with `client`; `output` is where the body goes.
    fn command(&self, client: Client, bytes: u64, output: &Path) -> (PathBuf, Vec<String>) {
        let socket = self.socket.display().to_string();
        let docroot = self.docroot.display().to_string();
        let output = output.display().to_string();
        match client {
            Client::Fcgi => (
                self.fcgi.to_path_buf(),
                [
                    "get",
                    &format!("/big.php?bytes={bytes}"),
                    "--socket",
                    &socket,
                    "--docroot",
                    &docroot,
                    "-o",
                    &output,
                    "-s",
                ]
                .map(String::from)
                .to_vec(),
            ),
            Client::Curl => (
                self.curl.to_path_buf(),
                [
                    "-sS",
                    "-o",
                    &output,
                    "-w",
                    "%{http_code} %{size_download}",
                    &format!("{}?bytes={bytes}", self.haproxy_url),
                ]
                .map(String::from)
                .to_vec(),
            ),
            Client::Raw => (
                self.raw.to_path_buf(),
                [
                    "--address",
                    &format!("unix:{socket}"),
                    "--script-filename",
                    &format!("{docroot}/big.php"),
                    "--bytes",
                    &bytes.to_string(),
                ]
                .map(String::from)
                .to_vec(),
            ),
        }
    }

    /// Fetches [`CHECK_BYTES`] with `client` and checks the count.
    fn check(&self, client: Client) -> Result<()> {
        let file = self.dir.join(format!("check-{}", client.name()));
        let (program, args) = self.command(client, CHECK_BYTES, &file);
        let mut cmd = Command::new(&program);
        cmd.args(&args);
        let finished =
            measure::run_to_end(self.dir, "check", &mut cmd, RUN_TIMEOUT, Duration::from_millis(5))?
                .check(client.name())?;
        let received = match client {
            Client::Raw => {
                let value = json::parse(finished.stdout.trim()).context("raw_read printed no JSON")?;
                // STDOUT content: the CGI head, then the body.
                let stdout_bytes = value.number("stdout_bytes")?;
                if stdout_bytes < CHECK_BYTES as f64 || stdout_bytes > CHECK_BYTES as f64 + 1024.0 {
                    bail!("raw_read received {stdout_bytes} STDOUT bytes for a {CHECK_BYTES}-byte body");
                }
                CHECK_BYTES
            }
            _ => fs::metadata(&file)
                .with_context(|| format!("{} wrote no {}", client.name(), file.display()))?
                .len(),
        };
        if received != CHECK_BYTES {
            bail!("{} saved {received} bytes of a {CHECK_BYTES}-byte body", client.name());
        }
        Ok(())
    }

    /// One timed transfer of [`BYTES`] to /dev/null.
    fn transfer(&self, client: Client) -> Result<Run> {
        let (program, args) = self.command(client, BYTES, Path::new("/dev/null"));
        let command = UnderTime::new(self.time, self.dir, client.name(), &program, &args);
        let (php_before, gw_before) = (cpu_ticks(self.php_pid, true)?, cpu_ticks(self.haproxy_pid, false)?);
        let (finished, usage) =
            command.run(self.dir, client.name(), RUN_TIMEOUT, Duration::from_millis(1))?;
        let (php_after, gw_after) = (cpu_ticks(self.php_pid, true)?, cpu_ticks(self.haproxy_pid, false)?);
        if client == Client::Curl {
            let expected = format!("200 {BYTES}");
            if finished.stdout.trim() != expected {
                bail!("curl through HAProxy wrote {:?}, expected {expected:?}", finished.stdout.trim());
            }
        }
        let seconds = |ticks: u64| ticks as f64 / self.clock_ticks;
        Ok(Run {
            seconds: finished.wall.as_secs_f64(),
            rss_bytes: usage.max_rss_bytes,
            cpu_s: usage.cpu_s(),
            gateway_cpu_s: if client == Client::Curl {
                seconds(gw_after.saturating_sub(gw_before))
            } else {
                0.0
            },
            php_cpu_s: seconds(php_after.saturating_sub(php_before)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_are_file_names() {
        for client in Client::ALL {
            assert!(client.name().chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }
    }
}
