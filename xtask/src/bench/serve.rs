//! Bench section `serve`: `fcgi serve` as an HTTP front beside nginx, HAProxy (those of
//! [`super::gateways`]) and Caddy, all in front of the same php-fpm pool, in one run: wrk on
//! hello.php through all four beside `fcgi bench` straight to php-fpm (what the FastCGI side
//! alone costs); wrk on two static files and h2load (h2c) on hello.php through `fcgi serve` and
//! nginx; one 1 GiB `big.php` download through each of those two, the response a gateway must
//! stream without holding it. php-fpm has more workers than all fronts' FastCGI connections: at
//! the most connections every front waits for php-fpm. The method is in the report's notes.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::gateways::{self, Cost, Gateway, LoadOutput, SERVER_CONNECTIONS, Stack, measured};
use super::measure::json::Number as _;
use super::measure::{
    bench_answered, gnu_time, json, load_average, median, rotate, run_json, run_timed, run_to_end, thousands,
    verdict, version_line, words,
};
use super::report::table;
use super::tools::{CURL, GNU_TIME, Tool, WRK};
use super::{Ctx, Report};

/// Caddy 2.6 (Debian 12's package).
const CADDY: Tool = Tool { program: "caddy", package: "caddy", version_args: &["version"] };
/// nghttp2's HTTP/2 load generator.
const H2LOAD: Tool = Tool { program: "h2load", package: "nghttp2-client", version_args: &["--version"] };

/// wrk's connections of each hello.php round.
const CONNECTIONS: [usize; 3] = [8, 64, 256];
/// Connections (h2load: clients) of the static-file and HTTP/2 rounds, `fcgi serve` and nginx.
const PAIR_LEVELS: [usize; 2] = [8, 64];
/// Concurrent streams per h2load client.
const H2_STREAMS: usize = 4;
/// h2load runs [`DURATION_S`] × this many requests rather than for a duration: its `-D` mode
/// counts the streams still in flight when time is up as failed.
const H2_REQUESTS_PER_S: usize = 10_000;
/// A small asset of the docroot (a copy of `tests/php/`), and an image-sized file this section
/// writes into it, with its size.
const SMALL_FILE: &str = "/app/assets/style.css";
const IMAGE: (&str, usize) = ("/image.jpg", 100 * 1024);
/// The streamed response.
const BIG_BYTES: u64 = 1 << 30;
/// `fcgi serve`'s static-file requests/s as a fraction of nginx's, at least.
const STATIC_GOAL: f64 = 0.8;
/// Measured runs of each front at each level; figures are medians.
const REPEATS: usize = 3;
/// Seconds of each measured run, and of the warm-up before them.
const DURATION_S: u32 = 5;
const WARMUP_S: u32 = 1;
/// The name of `fcgi bench`'s rows: a FastCGI client with no HTTP side.
const FCGI_BENCH: &str = "`fcgi bench` (no HTTP)";
const HELLO: &str = "Hello, world!";
/// The goals of `fcgi bench` beside wrk through a gateway at 8 connections: requests/s ≥ this ×
/// wrk → HAProxy's, its own CPU per request ≤ this many µs, and ≥ this share of its ceiling.
const BENCH_VS_HAPROXY: f64 = 1.25;
const BENCH_CPU_US: f64 = 8.0;
const BENCH_OF_CEILING: f64 = 0.8;
/// Longest one load run and one 1 GiB download may take, and how often their end is looked for.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const BIG_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(20);

/// One load run, or the medians of a front's runs at a level; CPU in µs per request.
struct Run {
    req_per_s: f64,
    /// The front's CPU (`fcgi bench`'s own, for its rows).
    gateway_us: f64,
    /// The load tool's (wrk, h2load); 0 for `fcgi bench`, its own load tool.
    load_us: f64,
    php_us: f64,
    /// NaN for h2load, which reports no percentiles.
    p50_ms: f64,
    p99_ms: f64,
    /// NaN for `fcgi bench`, which exits with its run.
    rss_mib: f64,
}

impl Run {
    fn median(runs: &[Run]) -> Run {
        let m = |f: fn(&Run) -> f64| median(runs.iter().map(f));
        Run {
            req_per_s: m(|r| r.req_per_s),
            gateway_us: m(|r| r.gateway_us),
            load_us: m(|r| r.load_us),
            php_us: m(|r| r.php_us),
            p50_ms: m(|r| r.p50_ms),
            p99_ms: m(|r| r.p99_ms),
            rss_mib: m(|r| r.rss_mib),
        }
    }

    /// Cores ÷ (php-fpm + client CPU per request): the rate if every core were busy with this.
    fn ceiling(&self, cores: usize) -> f64 {
        cores as f64 / ((self.php_us + self.gateway_us + self.load_us) * 1e-6)
    }
}

/// A run at a level (connections or clients) through a front.
struct Row {
    level: usize,
    front: &'static str,
    run: Run,
}

/// The rounds on a static file: its path, its size and their rows.
type Static = (&'static str, u64, Vec<Row>);

/// The load tools, where their output goes, php-fpm, and the runs retried after a failure.
struct Bench<'a> {
    dir: &'a Path,
    fcgi: PathBuf,
    wrk: PathBuf,
    h2load: PathBuf,
    curl: PathBuf,
    time: PathBuf,
    php_pid: u32,
    php_socket: PathBuf,
    docroot: PathBuf,
    retried: RefCell<Vec<String>>,
}

pub fn run(ctx: &mut Ctx) -> Result<Report> {
    let load_before = load_average();
    let caddy = CADDY.require()?;
    let fcgi = ctx.fcgi()?;
    let build = ctx.fcgi_build_line();
    let stack = ctx.gateways()?;
    let work =
        tempfile::Builder::new().prefix("fcgi-bench-serve-").tempdir().context("creating a temp dir")?;
    let bench = Bench {
        dir: work.path(),
        fcgi: fcgi.clone(),
        wrk: WRK.require()?,
        h2load: H2LOAD.require()?,
        curl: CURL.require()?,
        time: GNU_TIME.require()?,
        php_pid: stack.php.pid(),
        php_socket: stack.php.socket.clone(),
        docroot: stack.docroot.clone(),
        retried: Default::default(),
    };
    let image = stack.docroot.join(&IMAGE.0[1..]);
    fs::write(&image, (0..IMAGE.1).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>())
        .with_context(|| format!("writing {}", image.display()))?;
    let (mut serve, mut caddy_front) = start_fronts(&fcgi, &caddy, work.path(), stack)?;

    let all = [&serve, &stack.nginx, &stack.haproxy, &caddy_front];
    let names = [FCGI_BENCH, serve.name, stack.nginx.name, stack.haproxy.name, caddy_front.name];
    let hello = bench.rounds("hello.php", &CONNECTIONS, &names, |i, n, s| match i {
        0 => bench.fcgi_bench(n, s),
        _ => bench.load(all[i - 1], "/hello.php", false, n, s),
    })?;
    let pair = [&serve, &stack.nginx];
    let pair_names = pair.map(|front| front.name);
    let mut statics: Vec<Static> = Vec::new();
    for file in [SMALL_FILE, IMAGE.0] {
        let rows = bench
            .rounds(file, &PAIR_LEVELS, &pair_names, |i, n, s| bench.load(pair[i], file, false, n, s))?;
        statics.push((file, fs::metadata(stack.docroot.join(&file[1..])).map_or(0, |m| m.len()), rows));
    }
    let h2 = bench.rounds("h2c hello.php", &PAIR_LEVELS, &pair_names, |i, n, s| {
        bench.load(pair[i], "/hello.php", true, n, s)
    })?;
    let big = pair.map(|front| bench.big(front)).into_iter().collect::<Result<Vec<String>>>()?;
    let big =
        table("front | wall time | throughput | gateway CPU | gateway peak RSS | RSS after", "lrrrrr", big);
    serve.check_running()?;
    caddy_front.check_running()?;
    stack.check_running()?;

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut table = format!(
        "**hello.php, HTTP/1.1** (wrk; `fcgi bench` straight to php-fpm)\n\n{}\n\
         **`fcgi bench` straight to php-fpm vs wrk through a gateway, hello.php, 8 connections**\n\n{}",
        load_table("connections", &hello),
        gateway_table(&hello, cores)
    );
    for (file, bytes, rows) in &statics {
        let rows = load_table("connections", rows);
        table.push_str(&format!("\n**Static `{file}`, {} bytes** (wrk)\n\n{rows}", thousands(*bytes as f64)));
    }
    table.push_str(&format!(
        "\n**hello.php, HTTP/2 h2c, {H2_STREAMS} streams per client** (h2load)\n\n{}\n\
         **1 GiB from `big.php`** (curl)\n\n{big}",
        load_table("clients", &h2),
    ));
    let versions = [
        version_line(&fcgi, &["--version"]),
        stack.versions.join("; "),
        CADDY.version(&caddy),
        WRK.version(&bench.wrk),
        H2LOAD.version(&bench.h2load),
        CURL.version(&bench.curl),
    ];
    let mut notes = notes(&bench.retried.borrow(), &hello, &statics, &h2);
    notes.push_str(&method(&versions.join("; "), &build, [load_before, load_average()]));
    // The configs' paths are in the gateways' dir, the docroot's parent.
    let dir = stack.docroot.parent().unwrap_or(&stack.docroot).display().to_string();
    for gateway in [&stack.haproxy, &stack.nginx] {
        let config = gateway.config.as_ref().and_then(|c| fs::read_to_string(c).ok()).unwrap_or_default();
        let config = config.replace(&dir, "$DIR");
        let name = gateway.name;
        notes +=
            &format!("\n{name} configuration (`$DIR`: a temp dir):\n\n```\n{}\n```\n", config.trim_end());
    }
    Ok(Report {
        title: "fcgi serve: HTTP front vs nginx, HAProxy and Caddy on one php-fpm pool".into(),
        command: "cargo xtask bench serve".into(),
        table,
        notes,
    })
}

/// `fcgi serve` and Caddy in front of the stack's php-fpm.
fn start_fronts(fcgi: &Path, caddy: &Path, dir: &Path, stack: &Stack) -> Result<(Gateway, Gateway)> {
    let serve = gateways::start("fcgi serve", None, &dir.join("fcgi-serve.log"), |port| {
        let mut cmd = Command::new(fcgi);
        cmd.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}"));
        cmd.arg("--docroot").arg(&stack.docroot).arg("--socket").arg(&stack.php.socket);
        cmd.args(["--fcgi-connections", &SERVER_CONNECTIONS.to_string(), "--access-log", "off"]);
        Ok(cmd)
    })?;
    let config = dir.join("Caddyfile");
    let caddy = gateways::start("Caddy", Some(&config), &dir.join("caddy.log"), |port| {
        fs::write(&config, caddyfile(port, &stack.docroot, &stack.php.socket))
            .with_context(|| format!("writing {}", config.display()))?;
        let mut cmd = Command::new(caddy);
        cmd.arg("run").arg("--config").arg(&config).args(["--adapter", "caddyfile"]);
        // Caddy's own state (it writes none with this config, but wants a home).
        cmd.env("HOME", dir).env("XDG_DATA_HOME", dir).env("XDG_CONFIG_HOME", dir);
        Ok(cmd)
    })?;
    Ok((serve, caddy))
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

impl Bench<'_> {
    /// Per level: a warm-up run of `load(front, level, seconds)` per front, then [`REPEATS`]
    /// measured rounds (see [`rotate`]); one row of medians per front, in the order of `fronts`.
    /// A failed run (wrk counts a stall of the whole front as timeouts) is retried once and
    /// listed in the notes.
    fn rounds(
        &self,
        what: &str,
        levels: &[usize],
        fronts: &[&'static str],
        load: impl Fn(usize, usize, u32) -> Result<Run>,
    ) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        for &level in levels {
            println!("xtask: bench serve: {what} at {level}, {REPEATS} rounds ...");
            let runs = rotate(fronts.len(), 1, REPEATS, |i, warm_up| match warm_up {
                true => load(i, level, WARMUP_S),
                false => load(i, level, DURATION_S).or_else(|err| {
                    let why = format!("{err:#}").lines().next().unwrap_or_default().to_owned();
                    self.retried.borrow_mut().push(format!("{what} at {level}: {why}"));
                    load(i, level, DURATION_S)
                }),
            })?;
            let medians =
                fronts.iter().zip(&runs).map(|(front, runs)| Row { level, front, run: Run::median(runs) });
            rows.extend(medians);
        }
        Ok(rows)
    }

    /// wrk on `path` through `front` with `level` connections for `seconds`, or with `h2`
    /// h2load (h2c) with `level` clients and as many requests as that many seconds take; the load
    /// tool runs under GNU time, the front and php-fpm are measured, and any failed request fails.
    fn load(&self, front: &Gateway, path: &str, h2: bool, level: usize, seconds: u32) -> Result<Run> {
        let (tool, program, line) = if h2 {
            let (port, requests) =
                (front.h2c_port.unwrap_or(front.port), seconds as usize * H2_REQUESTS_PER_S);
            let line = format!("-t2 -c{level} -m{H2_STREAMS} -n{requests} http://127.0.0.1:{port}{path}");
            ("h2load", &self.h2load, line)
        } else {
            ("wrk", &self.wrk, format!("-t2 -c{level} -d{seconds}s --latency {}", front.url(path)))
        };
        let name = format!("{tool}-{}", front.name.replace(' ', "-"));
        let mut command = gnu_time(&self.time, self.dir, &name, program, &words(&line));
        let run = || measured(front.pid(), || run_timed(self.dir, &name, &mut command, RUN_TIMEOUT, POLL));
        let (((finished, usage), cost), php) = measured(self.php_pid, run)?;
        let text = &finished.stdout;
        let out = LoadOutput::parse(text).with_context(|| format!("reading {name}'s output: {text:?}"))?;
        if out.errors > 0.0 || out.requests <= 0.0 {
            bail!("{name}: {} requests, {} failed\n{text}", out.requests, out.errors);
        }
        let per_request = |seconds: f64| seconds * 1e6 / out.requests;
        Ok(Run {
            req_per_s: out.req_per_s,
            gateway_us: per_request(cost.cpu_s),
            load_us: per_request(usage.cpu_s()),
            php_us: per_request(php.cpu_s),
            p50_ms: out.p50_ms,
            p99_ms: out.p99_ms,
            rss_mib: cost.rss_mib,
        })
    }

    /// `fcgi bench /hello.php -cN` on php-fpm's socket, every response checked.
    fn fcgi_bench(&self, concurrency: usize, seconds: u32) -> Result<Run> {
        let connections = concurrency.min(SERVER_CONNECTIONS);
        let line =
            format!("bench /hello.php --json -s -c{concurrency} --connections={connections} -D{seconds}s");
        let mut args = words(&line);
        args.push(format!("--socket={}", self.php_socket.display()));
        args.push(format!("--docroot={}", self.docroot.display()));
        let run = || run_json(self.dir, "fcgi-bench", &self.fcgi, &args, RUN_TIMEOUT);
        let (result, php) = measured(self.php_pid, run)?;
        if !bench_answered(&result, HELLO) {
            bail!("fcgi bench: not every response was 200 `{HELLO}`: {result}");
        }
        let completed = result.number("completed")?;
        let latency = |p: &str| result.pointer(&format!("/latency_ms/{p}")).and_then(json::Value::as_f64);
        Ok(Run {
            req_per_s: result.number("req_per_s")?,
            gateway_us: result.number("cpu_us_per_req")?,
            load_us: 0.0,
            php_us: php.cpu_s * 1e6 / completed,
            p50_ms: latency("p50").unwrap_or(f64::NAN),
            p99_ms: latency("p99").unwrap_or(f64::NAN),
            rss_mib: f64::NAN,
        })
    }

    /// `curl -o /dev/null` of [`BIG_BYTES`] from `big.php` through `front`, all of which must
    /// arrive: its row of the table.
    fn big(&self, front: &Gateway) -> Result<String> {
        println!("xtask: bench serve: 1 GiB through {} ...", front.name);
        let mut cmd = Command::new(&self.curl);
        cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"]);
        cmd.arg(front.url(&format!("/big.php?bytes={BIG_BYTES}")));
        let name = format!("curl-{}", front.name.replace(' ', "-"));
        let run = || run_to_end(self.dir, &name, &mut cmd, BIG_TIMEOUT, POLL)?.check(&name);
        let (finished, Cost { cpu_s, peak_mib, rss_mib }) = measured(front.pid(), run)?;
        let got = finished.stdout.trim();
        if got != format!("200 {BIG_BYTES}") {
            bail!("curl through {}: status and bytes {got:?}, expected 200 {BIG_BYTES}", front.name);
        }
        let wall_s = finished.wall.as_secs_f64();
        let mib_s = BIG_BYTES as f64 / (1024.0 * 1024.0) / wall_s;
        let front = front.name;
        Ok(format!(
            "{front} | {wall_s:.2} s | {mib_s:.0} MiB/s | {cpu_s:.2} s | {peak_mib:.1} MiB | {rss_mib:.1} MiB"
        ))
    }
}

/// Load runs by level (`level` names it: connections, clients) and front.
fn load_table(level: &str, rows: &[Row]) -> String {
    let head = format!(
        "{level} | front | requests/s | gateway CPU per request | load tool CPU per request | php-fpm CPU \
         per request | p99 latency | RSS after the run"
    );
    let or_dash = |value: f64, text: String| if value.is_nan() { "—".to_owned() } else { text };
    let rows = rows.iter().map(|Row { level, front, run }| {
        let load = if *front == FCGI_BENCH { "—".to_owned() } else { format!("{:.1} µs", run.load_us) };
        let p99 = or_dash(run.p99_ms, format!("{:.2} ms", run.p99_ms));
        let rss = or_dash(run.rss_mib, format!("{:.1} MiB", run.rss_mib));
        let (rate, gateway, php) = (thousands(run.req_per_s), run.gateway_us, run.php_us);
        format!("{level} | {front} | {rate} | {gateway:.1} µs | {load} | {php:.1} µs | {p99} | {rss}")
    });
    table(&head, "rlrrrrrr", rows)
}

/// `fcgi bench` beside wrk → HAProxy and wrk → nginx at 8 connections, client CPU counting
/// the load tool and the gateway together, with the goals of [`BENCH_VS_HAPROXY`] and after.
fn gateway_table(hello: &[Row], cores: usize) -> String {
    let find = |name: &str| hello.iter().find(|r| r.level == 8 && r.front == name).map(|r| &r.run);
    let (Some(ours), Some(haproxy), Some(nginx)) = (find(FCGI_BENCH), find("HAProxy"), find("nginx")) else {
        return "(no runs at 8 connections)\n".into();
    };
    // `goal`: the target and the verdict, or none.
    let row = |what: &str, cell: &dyn Fn(&Run) -> String, goal: Option<(String, bool)>| {
        let (target, met) = goal.map_or(("—".into(), ""), |(target, met)| (target, verdict(met)));
        format!("{what} | {} | {target} | {met}", [ours, haproxy, nginx].map(cell).join(" | "))
    };
    let client = |r: &Run| r.gateway_us + r.load_us;
    let cpu = |r: &Run| match r.load_us {
        0.0 => format!("{:.2} µs", client(r)),
        _ => format!("{:.2} µs ({:.2} wrk + {:.2} gateway)", client(r), r.load_us, r.gateway_us),
    };
    let (vs_haproxy, vs_nginx) = (ours.req_per_s / haproxy.req_per_s, ours.req_per_s / nginx.req_per_s);
    let speed = format!("≥ {BENCH_VS_HAPROXY}× wrk → HAProxy: {vs_haproxy:.2}× ({vs_nginx:.2}× wrk → nginx)");
    let less =
        format!("≤ {BENCH_CPU_US} µs ({:.2}× less than wrk + HAProxy)", client(haproxy) / client(ours));
    let of_ceiling = |r: &Run| r.req_per_s / r.ceiling(cores);
    let share = format!("≥ {:.0} % (fcgi bench)", 100.0 * BENCH_OF_CEILING);
    let rows = [
        row("requests/s", &|r| thousands(r.req_per_s), Some((speed, vs_haproxy >= BENCH_VS_HAPROXY))),
        row(
            "client CPU per request (fcgi bench; wrk + gateway)",
            &cpu,
            Some((less, client(ours) <= BENCH_CPU_US)),
        ),
        row("php-fpm CPU per request", &|r| format!("{:.2} µs", r.php_us), None),
        row(
            &format!("ceiling: {cores} cores ÷ (php-fpm + client CPU per request)"),
            &|r| format!("{}/s", thousands(r.ceiling(cores))),
            None,
        ),
        row(
            "requests/s ÷ ceiling",
            &|r| format!("{:.0} %", 100.0 * of_ceiling(r)),
            Some((share, of_ceiling(ours) >= BENCH_OF_CEILING)),
        ),
        row("latency p50 / p99", &|r| format!("{:.3} / {:.3} ms", r.p50_ms, r.p99_ms), None),
    ];
    let head = "measurement | `fcgi bench` → php-fpm | wrk → HAProxy → php-fpm | wrk → nginx → php-fpm \
                | target | met";
    table(head, "lrrrlc", rows)
}

/// `fcgi serve`'s requests/s ÷ `peer`'s at `level`, and its CPU per request ÷ the peer's.
fn ratio(rows: &[Row], level: usize, peer: &str) -> Option<(f64, f64)> {
    let find = |name: &str| rows.iter().find(|r| r.level == level && r.front == name).map(|r| &r.run);
    let (ours, theirs) = (find("fcgi serve")?, find(peer)?);
    Some((ours.req_per_s / theirs.req_per_s, ours.gateway_us / theirs.gateway_us))
}

/// One sentence per level: `fcgi serve` against every other front of `rows`.
fn versus(what: &str, level_unit: &str, rows: &[Row]) -> String {
    let mut levels: Vec<usize> = rows.iter().map(|r| r.level).collect();
    levels.dedup();
    let mut out = String::new();
    for level in levels {
        let peers =
            rows.iter().filter(|r| r.level == level && !["fcgi serve", FCGI_BENCH].contains(&r.front));
        let ratios: Vec<String> = peers
            .filter_map(|peer| {
                let (speed, cpu) = ratio(rows, level, peer.front)?;
                Some(format!("{speed:.2}x {}'s requests/s at {cpu:.2}x its CPU per request", peer.front))
            })
            .collect();
        out.push_str(&format!("{what}, {level} {level_unit}: `fcgi serve` did {}.\n", ratios.join(", ")));
    }
    out
}

/// `fcgi serve` against the others, the static-file goal and the runs retried.
fn notes(retried: &[String], hello: &[Row], statics: &[Static], h2: &[Row]) -> String {
    let mut out = versus("hello.php", "connections", hello);
    for (file, _, rows) in statics {
        out.push_str(&versus(&format!("Static `{file}`"), "connections", rows));
    }
    out.push_str(&versus("HTTP/2 hello.php", "clients", h2));
    let static_ratios = statics.iter().flat_map(|(_, _, rows)| PAIR_LEVELS.map(|n| ratio(rows, n, "nginx")));
    let worst = static_ratios.map(|r| r.map_or(0.0, |(speed, _)| speed)).fold(f64::INFINITY, f64::min);
    out.push_str(&format!(
        "\nGoal for static files: `fcgi serve` ≥ {STATIC_GOAL}x nginx's requests/s at every level; \
         lowest measured {worst:.2}x: {}.\n",
        if worst >= STATIC_GOAL { "met" } else { "not met" }
    ));
    out.push_str(&match retried {
        [] => "\nNo run failed.\n".to_owned(),
        _ => format!("\nRuns that failed and were run again: {}.\n", retried.join("; ")),
    });
    out
}

/// How it was measured, on what: `load` is the load average before and after the section.
fn method(versions: &str, build: &str, load: [String; 2]) -> String {
    format!(
        "\nMethod: at each level a warm-up run per front, then \
         {REPEATS} rounds of all fronts, the order rotating; each figure is the median of its \
         {REPEATS} runs. `wrk -t2 -cN -d{DURATION_S}s --latency URL` ({WARMUP_S} s to warm up); \
         `h2load -t2 -cN -m{H2_STREAMS} -n{} URL` (a fifth as many to warm up; h2c with prior \
         knowledge: the same port for `fcgi serve`, a second `listen ... http2` port for nginx); \
         `curl -sS -o /dev/null` for the 1 GiB, one download per front, wall time from start to \
         exit. Gateway CPU: utime + stime of the front's process and its direct children from \
         `/proc`, over the run, per request; peak RSS: VmHWM, reset through `/proc/PID/clear_refs` \
         before the run; both summed over nginx's master and workers. Load tool CPU: GNU time's \
         user + system of wrk or h2load (10 ms resolution) per request; php-fpm CPU: utime + \
         stime of its master and children over the run, per request. `fcgi bench /hello.php -cN \
         --connections min(N, {SERVER_CONNECTIONS}) -D{DURATION_S}s --json` talks to php-fpm \
         directly; its CPU is its own `getrusage` (`cpu_us_per_req`), every response checked \
         (200, `{HELLO}`). `fcgi serve` runs on its \
         default one thread, nginx with `worker_processes auto` (one per core), `sendfile on` and \
         `tcp_nopush on` as Debian's nginx.conf has them. Goals on hello.php: CPU per request ≤ 0.6x \
         nginx's and ≤ 0.5x HAProxy's; requests/s ≥ 1.05x the best of the others at 8 and 64 \
         connections. The machine has {} cores shared with the load tools, php-fpm and other work \
         (load average before/after the section: {} / {}); compare the fronts of one run. \
         Versions: {versions}. fcgi built with `{build}`.\n",
        DURATION_S as usize * H2_REQUESTS_PER_S,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load[0],
        load[1],
    )
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
    fn ratios_per_level() {
        let run = |req_per_s, gateway_us| Run {
            req_per_s,
            gateway_us,
            load_us: 2.0,
            php_us: 30.0,
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
            rss_mib: 1.0,
        };
        let rows = [
            Row { level: 8, front: "fcgi serve", run: run(900.0, 10.0) },
            Row { level: 8, front: "nginx", run: run(1000.0, 20.0) },
        ];
        assert_eq!(ratio(&rows, 8, "nginx"), Some((0.9, 0.5)));
        assert_eq!(ratio(&rows, 64, "nginx"), None);
        assert!(versus("x", "clients", &rows).contains("x, 8 clients: `fcgi serve` did 0.90x nginx's"));
        let table = load_table("clients", &rows);
        assert!(
            table.contains("| 8 | nginx | 1,000 | 20.0 µs | 2.0 µs | 30.0 µs | — | 1.0 MiB |\n"),
            "{table}"
        );
        assert!(gateway_table(&rows, 2).starts_with("(no runs"));
    }
}
