//! Bench section `serve`: `wrk` through `fcgi serve`, nginx, HAProxy and Caddy (Debian
//! packages), all four in front of the same php-fpm pool, in one run, at 8, 64 and 256
//! connections.
//!
//! - **fcgi serve**: the release CLI of [`super::Ctx::fcgi`], `fcgi serve --docroot DOCROOT
//!   --socket PHP --fcgi-connections 8 --access-log off` (one thread, the default).
//! - **nginx** and **HAProxy**: [`super::gateways`]' (upstream keepalive 8 per nginx worker,
//!   `worker_processes auto`; HAProxy `maxconn 8` on the server, one thread per core).
//! - **Caddy**: `caddy run` with `root * DOCROOT` and `php_fastcgi unix/PHP`, admin endpoint and
//!   automatic HTTPS off, logs at ERROR.
//!
//! Each is given `GET /hello.php` (php-fpm answers `Hello, world!`) by `wrk -t2 -cN -d5s
//! --latency`, after a one-second warm-up; the order of the fronts rotates with N. Figures:
//! wrk's requests/s and p99; **gateway CPU per request** = the front's utime + stime (its
//! process and direct children, from `/proc`) over the run ÷ requests; **RSS** = the front's
//! VmRSS (with children) right after the run. php-fpm has [`super::gateways::PHP_WORKERS`]
//! workers, more than all fronts' FastCGI connections; at 256 connections every front waits
//! for php-fpm.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::gateways::{self, Stack};
use super::measure::{clock_ticks, cpu_ticks, load_average, run_to_end, thousands};
use super::tools::{self, Tool, WRK};
use super::{Ctx, Report};
use crate::process::{self, Group, Signal};

/// Caddy 2.6 (Debian 12's package).
const CADDY: Tool = Tool { program: "caddy", package: "caddy", version_args: &["version"] };

/// wrk's connections of each round.
const CONNECTIONS: [usize; 3] = [8, 64, 256];
/// Seconds of each measured run, and of the warm-up before it.
const DURATION_S: u32 = 5;
const WARMUP_S: u32 = 1;
/// FastCGI connections of `fcgi serve` (as nginx's keepalive and HAProxy's maxconn).
const FCGI_CONNECTIONS: usize = 8;
/// Longest one wrk run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a front may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A front measured: a name, a URL, the process whose CPU and memory are counted.
struct Front {
    name: &'static str,
    port: u16,
    pid: u32,
}

/// A process this section started (`fcgi serve`, Caddy), stopped on drop.
struct Started {
    group: Group,
    port: u16,
}

/// One wrk run.
struct Run {
    req_per_s: f64,
    gateway_us: f64,
    p99_ms: f64,
    rss_mib: f64,
}

/// Measures; returns the report.
pub fn run(ctx: &mut Ctx) -> Result<Report> {
    let load_before = load_average();
    let wrk = WRK.require()?;
    let caddy = CADDY.require()?;
    let fcgi = ctx.fcgi()?;
    let build = ctx.fcgi_build_line();
    let stack = ctx.gateways()?;
    let work =
        tempfile::Builder::new().prefix("fcgi-bench-serve-").tempdir().context("creating a temp dir")?;
    println!("xtask: bench serve: starting fcgi serve and Caddy ...");
    let serve = start_serve(&fcgi, work.path(), stack)?;
    let caddy_started = start_caddy(&caddy, work.path(), stack)?;
    let fronts = [
        Front { name: "fcgi serve", port: serve.port, pid: serve.group.pid() },
        Front { name: "nginx", port: stack.nginx.port, pid: stack.nginx.pid() },
        Front { name: "HAProxy", port: stack.haproxy.port, pid: stack.haproxy.pid() },
        Front { name: "Caddy", port: caddy_started.port, pid: caddy_started.group.pid() },
    ];
    let ticks = clock_ticks()?;
    let mut rows = Vec::new();
    for (round, &connections) in CONNECTIONS.iter().enumerate() {
        for offset in 0..fronts.len() {
            let front = &fronts[(round + offset) % fronts.len()];
            println!("xtask: bench serve: {} at {connections} connections ...", front.name);
            wrk_run(&wrk, work.path(), front, connections, WARMUP_S, ticks)?;
            let run = wrk_run(&wrk, work.path(), front, connections, DURATION_S, ticks)?;
            rows.push((connections, front.name, run));
        }
        stack.check_running()?;
    }
    let versions = [
        measure_version(&fcgi, &["--version"]),
        stack.versions.join("; "),
        tools::package_version("caddy"),
        WRK.version(&wrk),
    ];
    Ok(Report {
        title: "fcgi serve: HTTP front vs nginx, HAProxy and Caddy on one php-fpm pool".into(),
        command: "cargo xtask bench serve".into(),
        table: table(&rows),
        notes: notes(&rows, &versions, &build, &load_before),
    })
}

fn measure_version(program: &Path, args: &[&str]) -> String {
    super::measure::version_line(program, args)
}

fn start_serve(fcgi: &Path, dir: &Path, stack: &Stack) -> Result<Started> {
    let log = dir.join("fcgi-serve.log");
    start("fcgi serve", &log, |port| {
        let mut cmd = Command::new(fcgi);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--docroot")
            .arg(&stack.docroot)
            .arg("--socket")
            .arg(&stack.php.socket)
            .args(["--fcgi-connections", &FCGI_CONNECTIONS.to_string(), "--access-log", "off"]);
        Ok(cmd)
    })
}

fn start_caddy(caddy: &Path, dir: &Path, stack: &Stack) -> Result<Started> {
    let config = dir.join("Caddyfile");
    let log = dir.join("caddy.log");
    start("Caddy", &log, |port| {
        fs::write(&config, caddyfile(port, &stack.docroot, &stack.php.socket))
            .with_context(|| format!("writing {}", config.display()))?;
        let mut cmd = Command::new(caddy);
        cmd.arg("run").arg("--config").arg(&config).args(["--adapter", "caddyfile"]);
        // Caddy's own state (it writes none with this config, but wants a home).
        cmd.env("HOME", dir).env("XDG_DATA_HOME", dir).env("XDG_CONFIG_HOME", dir);
        Ok(cmd)
    })
}

/// Caddy in front of php-fpm the way its docs show, on 127.0.0.1 only.
fn caddyfile(port: u16, docroot: &Path, php_socket: &Path) -> String {
    format!(
        "# Written by `cargo xtask bench serve`; throw-away.\n\
         {{\n\
         \x20   admin off\n\
         \x20   auto_https off\n\
         \x20   log {{\n\
         \x20       level ERROR\n\
         \x20   }}\n\
         }}\n\
         http://:{port} {{\n\
         \x20   bind 127.0.0.1\n\
         \x20   root * {docroot}\n\
         \x20   php_fastcgi unix/{socket}\n\
         }}\n",
        docroot = docroot.display(),
        socket = php_socket.display(),
    )
}

/// Starts a front on a free port, ready once `GET /hello.php` answers `Hello, world!`.
fn start(name: &'static str, log: &Path, command: impl Fn(u16) -> Result<Command>) -> Result<Started> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port();
    let mut cmd = command(port)?;
    let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdout(out.try_clone()?).stderr(out);
    let mut group = Group::spawn(name, &mut cmd, Signal::Term)?;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = group.try_wait()? {
            bail!(
                "{name} exited ({}): {}",
                process::describe(status),
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        process::bail_if_interrupted()?;
        if let Ok((status, body)) = gateways::http_get(port, "/hello.php") {
            if status == 200 && body == b"Hello, world!" {
                return Ok(Started { group, port });
            }
            bail!("GET /hello.php through {name} answered {status} {:?}", String::from_utf8_lossy(&body));
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "{name} did not answer within {READY_TIMEOUT:?}: {}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        process::sleep(Duration::from_millis(50))?;
    }
}

fn wrk_run(
    wrk: &Path,
    dir: &Path,
    front: &Front,
    connections: usize,
    seconds: u32,
    ticks: f64,
) -> Result<Run> {
    let url = format!("http://127.0.0.1:{}/hello.php", front.port);
    let mut cmd = Command::new(wrk);
    cmd.args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", &url]);
    let name = format!("wrk-{}-{connections}", front.name.replace(' ', "-"));
    let before = cpu_ticks(front.pid, true)?;
    let finished = run_to_end(dir, &name, &mut cmd, RUN_TIMEOUT, Duration::from_millis(20))?.check(&name)?;
    let after = cpu_ticks(front.pid, true)?;
    let rss_mib = rss_kib(front.pid) as f64 / 1024.0;
    let out = Wrk::parse(&finished.stdout)
        .with_context(|| format!("reading wrk's output: {:?}", finished.stdout))?;
    if out.errors > 0.0 {
        bail!("wrk through {}: {} errors or non-2xx responses\n{}", front.name, out.errors, finished.stdout);
    }
    if out.requests <= 0.0 {
        bail!("wrk through {} completed no request\n{}", front.name, finished.stdout);
    }
    Ok(Run {
        req_per_s: out.req_per_s,
        gateway_us: after.saturating_sub(before) as f64 / ticks * 1e6 / out.requests,
        p99_ms: out.p99_ms,
        rss_mib,
    })
}

/// VmRSS of `pid` and its direct children, KiB.
fn rss_kib(pid: u32) -> u64 {
    let rss = |pid: u32| -> u64 {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0)
    };
    let mut total = rss(pid);
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
            if super::measure::ProcStat::parse(&stat).is_some_and(|s| s.ppid == pid) {
                total += rss(child);
            }
        }
    }
    total
}

/// What wrk printed.
#[derive(Debug, PartialEq)]
struct Wrk {
    requests: f64,
    req_per_s: f64,
    errors: f64,
    p99_ms: f64,
}

impl Wrk {
    fn parse(text: &str) -> Result<Wrk> {
        let mut out = Wrk { requests: -1.0, req_per_s: -1.0, errors: 0.0, p99_ms: f64::NAN };
        for line in text.lines().map(str::trim) {
            if let Some((count, _)) = line.split_once(" requests in ") {
                out.requests = count.trim().parse().with_context(|| format!("bad count in {line:?}"))?;
            } else if let Some(rate) = line.strip_prefix("Requests/sec:") {
                out.req_per_s = rate.trim().parse().with_context(|| format!("bad rate in {line:?}"))?;
            } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
                out.errors +=
                    count.trim().parse::<f64>().with_context(|| format!("bad count in {line:?}"))?;
            } else if let Some(errors) = line.strip_prefix("Socket errors:") {
                for part in errors.split(',') {
                    let count = part.split_whitespace().nth(1).context("bad socket errors line")?;
                    out.errors += count.parse::<f64>().with_context(|| format!("bad count in {line:?}"))?;
                }
            } else if let Some(value) = line.strip_prefix("99%") {
                out.p99_ms = duration_ms(value.trim())?;
            }
        }
        if out.requests < 0.0 || out.req_per_s < 0.0 {
            bail!("no request count or Requests/sec line");
        }
        Ok(out)
    }
}

/// `245.00us`, `1.20ms`, `2.00s`, `1.00m` → milliseconds.
fn duration_ms(text: &str) -> Result<f64> {
    let split =
        text.find(|c: char| c.is_ascii_alphabetic()).with_context(|| format!("no unit in {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().with_context(|| format!("bad number in {text:?}"))?;
    Ok(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => bail!("unknown unit in {text:?}"),
    })
}

fn table(rows: &[(usize, &str, Run)]) -> String {
    let mut out = String::from(
        "| connections | front | requests/s | gateway CPU per request | p99 latency | RSS after the run |\n\
         |---:|---|---:|---:|---:|---:|\n",
    );
    for connections in CONNECTIONS {
        let mut group: Vec<&(usize, &str, Run)> = rows.iter().filter(|(c, _, _)| *c == connections).collect();
        group.sort_by_key(|(_, name, _)| {
            ["fcgi serve", "nginx", "HAProxy", "Caddy"].iter().position(|n| n == name)
        });
        for (_, name, run) in group {
            out.push_str(&format!(
                "| {connections} | {name} | {} | {:.1} µs | {:.2} ms | {:.1} MiB |\n",
                thousands(run.req_per_s),
                run.gateway_us,
                run.p99_ms,
                run.rss_mib
            ));
        }
    }
    out
}

fn notes(rows: &[(usize, &str, Run)], versions: &[String], build: &str, load_before: &str) -> String {
    let find = |connections: usize, name: &str| {
        rows.iter().find(|(c, n, _)| *c == connections && *n == name).map(|r| &r.2)
    };
    let mut out = String::new();
    for connections in CONNECTIONS {
        let Some(ours) = find(connections, "fcgi serve") else { continue };
        let ratios: Vec<String> = ["nginx", "HAProxy", "Caddy"]
            .iter()
            .filter_map(|name| {
                find(connections, name).map(|peer| {
                    format!(
                        "{:.2}x {name}'s requests/s at {:.2}x its CPU per request",
                        ours.req_per_s / peer.req_per_s,
                        ours.gateway_us / peer.gateway_us
                    )
                })
            })
            .collect();
        out.push_str(&format!("At {connections} connections `fcgi serve` did {}.\n", ratios.join(", ")));
    }
    out.push_str(&format!(
        "\nMethod: see `xtask/src/bench/serve.rs`. One 5 s run per front and level after a 1 s warm-up \
         (`wrk -t2 -cN -d5s --latency`, GET /hello.php); no repeats, so differences of a few percent are \
         noise. Goals of the issue: CPU per request ≤ 0.6x nginx's and ≤ 0.5x HAProxy's; requests/s \
         ≥ 1.05x the best of the others at 8 and 64 connections. The machine has {} cores shared with \
         wrk, php-fpm and other work (load average before: {load_before}). Versions: {}. fcgi built with \
         `{build}`.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        versions.join("; ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caddy_config() {
        let text = caddyfile(8080, Path::new("/t/docroot"), Path::new("/t/php.sock"));
        assert!(text.contains("http://:8080 {\n"));
        assert!(text.contains("    php_fastcgi unix//t/php.sock\n"));
        assert!(text.contains("    auto_https off\n"));
    }

    #[test]
    fn wrk_output() {
        let text = "Running 5s test @ http://127.0.0.1:1/hello.php\n  Latency Distribution\n     50%  1.00ms\n     \
                    99%  2.50ms\n  1000 requests in 5.00s, 1.00MB read\nRequests/sec:    200.00\n";
        let out = Wrk::parse(text).unwrap();
        assert_eq!(out, Wrk { requests: 1000.0, req_per_s: 200.0, errors: 0.0, p99_ms: 2.5 });
        assert!(Wrk::parse("nothing").is_err());
        assert_eq!(duration_ms("245.00us").unwrap(), 0.245);
    }
}
