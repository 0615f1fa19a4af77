//! Bench section `oneshot`: one request per process, `fcgi get /ping` beside libfcgi's
//! `cgi-fcgi`, on the php-fpm of the test backends (`ping.path = /ping`, matched on SCRIPT_NAME).
//!
//! Timed: `fcgi get /ping`, `fcgi ping`, `cgi-fcgi -bind -connect SOCK` and `fcgi --version` (no
//! connection: the process start-up part of `fcgi`'s time), each in an environment of only
//! [`CGI_ENV`] (`cgi-fcgi` sends its environment as the request's parameters; `fcgi` ignores it).
//! Wall time comes from [`super::interleaved`] (the verdict); peak RSS and page faults from GNU
//! time, [`RSS_RUNS`] runs each. Every command is run once first and its output checked.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::interleaved::{self, Timed};
use super::measure::{self, gnu_time, load_average, median, run_timed, run_to_end, verdict};
use super::report::table;
use super::tools::{CGI_FCGI, GNU_TIME};
use super::{Ctx, Report};

/// Timed rounds of the interleaved timing, after [`WARMUP_ROUNDS`] untimed ones.
const ROUNDS: usize = 1000;
const WARMUP_ROUNDS: usize = 20;
/// Longest one run may take (a one-shot request takes about a millisecond).
const LIMIT: Duration = Duration::from_secs(10);
/// GNU time runs per command for the peak RSS.
const RSS_RUNS: usize = 5;
const TARGET_RSS_MIB: f64 = 10.0;
/// `fcgi get`'s median wall time at most this many times `cgi-fcgi`'s.
const TARGET_VS_CGI_FCGI: f64 = 1.05;

/// The whole environment of every command measured: what `cgi-fcgi` sends to php-fpm.
const CGI_ENV: [(&str, &str); 3] =
    [("SCRIPT_NAME", "/ping"), ("SCRIPT_FILENAME", "/ping"), ("REQUEST_METHOD", "GET")];

/// Figures of one command: median interleaved wall time, GNU time's peak RSS (median and
/// largest) and minor faults.
struct Figures {
    median_ms: f64,
    rss_median: f64,
    rss_max: f64,
    faults: f64,
}

/// Measures; returns the report.
pub fn run(ctx: &mut Ctx) -> Result<Report> {
    let load_before = load_average();
    let cgi_fcgi = CGI_FCGI.require()?;
    let time = GNU_TIME.require()?;
    let built = ctx.fcgi()?;
    let backends = ctx.backends()?;
    let socket = backends.php_fpm.socket.display().to_string();
    let docroot = backends.docroot.display().to_string();
    let php_pid = backends.php_fpm.pid();
    let work =
        tempfile::Builder::new().prefix("fcgi-bench-oneshot-").tempdir().context("creating a temp dir")?;
    let dir = work.path();
    // Timed as installed: a copy, as `install`/`cp` writes it (the file cargo's linker wrote
    // was measured to take more page faults per start than a copy of it).
    let fcgi = dir.join("fcgi");
    std::fs::copy(built, &fcgi).context("copying fcgi")?;

    let contender = |name, program: &Path, args: &[&str]| Timed {
        name,
        program: program.to_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
    };
    let get_args = ["get", "/ping", "--socket", &socket, "--docroot", &docroot];
    let contenders = [
        contender("fcgi get /ping", &fcgi, &get_args),
        contender("fcgi ping", &fcgi, &["ping", "--socket", &socket]),
        contender("cgi-fcgi", &cgi_fcgi, &["-bind", "-connect", &socket]),
        contender("fcgi --version", &fcgi, &["--version"]),
    ];
    for c in &contenders {
        let mut cmd = Command::new(&c.program);
        cmd.env_clear().envs(CGI_ENV).args(&c.args);
        let finished = run_to_end(dir, "check", &mut cmd, LIMIT, Duration::from_millis(5))?.check(c.name)?;
        let expect = if c.name == "fcgi --version" { "fcgi" } else { "pong" };
        if !finished.stdout.contains(expect) {
            bail!("{} printed {:?}, without {expect:?}", c.name, finished.stdout);
        }
    }

    println!("xtask: bench oneshot: {ROUNDS} interleaved rounds ...");
    let times = interleaved::time(&contenders, &CGI_ENV, WARMUP_ROUNDS, ROUNDS, LIMIT)?;
    println!("xtask: bench oneshot: peak RSS and page faults ({RSS_RUNS} runs each) ...");
    let mut figures = Vec::new();
    for (c, wall) in contenders.iter().zip(&times) {
        let (mut rss, mut faults) = (Vec::new(), Vec::new());
        for _ in 0..RSS_RUNS {
            let mut command = gnu_time(&time, dir, "rss", &c.program, &c.args);
            command.env_clear().envs(CGI_ENV);
            let (_, usage) = run_timed(dir, "rss", &mut command, LIMIT, Duration::from_millis(5))?;
            rss.push(usage.max_rss_bytes / (1024.0 * 1024.0));
            faults.push(usage.minor_faults);
        }
        figures.push(Figures {
            median_ms: median(wall.iter().copied()),
            rss_median: median(rss.iter().copied()),
            rss_max: rss.iter().copied().fold(0.0, f64::max),
            faults: median(faults.into_iter()),
        });
    }
    let load_after = load_average();

    let (get, peer) = (&figures[0], &figures[2]);
    let names: Vec<String> = contenders.iter().map(|c| format!("`{}`", c.name)).collect();
    let row = |what: &str, cell: fn(&Figures) -> String, target: &str, met: &str| {
        format!("{what} | {} | {target} | {met}", figures.iter().map(cell).collect::<Vec<_>>().join(" | "))
    };
    let ratio = get.median_ms / peer.median_ms;
    let rows = [
        row(
            "median wall time per process, interleaved",
            |f| format!("{:.3} ms", f.median_ms),
            &format!("`fcgi get` ≤ {TARGET_VS_CGI_FCGI}× cgi-fcgi: {ratio:.2}×"),
            verdict(ratio <= TARGET_VS_CGI_FCGI),
        ),
        row("minor page faults per run (GNU time `%R`)", |f| format!("{:.0}", f.faults), "—", ""),
        row(
            "peak RSS (GNU time `%M`)",
            |f| format!("{:.1} MiB (max {:.1})", f.rss_median, f.rss_max),
            &format!("`fcgi get` ≤ {TARGET_RSS_MIB} MiB"),
            verdict(get.rss_max <= TARGET_RSS_MIB),
        ),
    ];
    let head = format!("measurement | {} | target | met", names.join(" | "));
    let table = table(&head, &format!("l{}lc", "r".repeat(names.len())), rows);

    let versions =
        [CGI_FCGI.version(&cgi_fcgi), GNU_TIME.version(&time), measure::version_line(&fcgi, &["--version"])];
    let lines: Vec<String> =
        contenders.iter().map(|c| format!("- `{}`: `{}`", c.name, shorten(&c.program, &c.args))).collect();
    let notes = format!(
        "Commands, as timed (`$SOCK` is php-fpm's unix socket, `$DOCROOT` the docroot of the test \
         backends: php-fpm {} workers, `ping.path = /ping`, pid {php_pid} during the run), each in \
         an environment of only `{}` (xtask and GNU time started with it):\n\n{}\n\n\
         Interleaved: xtask runs each command once per round, the order rotating, \
         {WARMUP_ROUNDS} untimed rounds then {ROUNDS} timed ones, so that a change in the \
         machine's load lands on every command alike; a run's time is from spawning it to reaping \
         it, output to /dev/null. Each of the three request commands connects, sends one request, \
         reads the answer and exits. Peak RSS and page faults: `/usr/bin/time -f \"%M %R\"`, \
         {RSS_RUNS} runs of each (median; for RSS also the largest, which the target is judged \
         on). `fcgi get` sends the full CGI parameter set of a GET (about 20 parameters) and \
         parses the response head; `cgi-fcgi` sends its environment (the three variables) and \
         copies the raw CGI output.\n\nVersions: {}.\n\nLoad average (1 min) before/after the \
         section: {load_before} / {load_after} (one-shot times are mostly process start-up and \
         scheduling, sensitive to other work on the machine). `fcgi --version` connects nowhere: \
         its time is the process start-up (exec, argument parsing) that every `fcgi` command pays \
         before its request.",
        crate::php_fpm::WORKERS,
        CGI_ENV.map(|(n, v)| format!("{n}={v}")).join(" "),
        lines.join("\n"),
        versions.join("; "),
    );
    Ok(Report {
        title: "One-shot requests: `fcgi get` vs `cgi-fcgi` (wall time, peak RSS)".into(),
        command: format!("cargo xtask bench oneshot   # fcgi built with: {}", ctx.fcgi_build_line()),
        table,
        notes,
    })
}

/// A command line with the socket and docroot as `$SOCK` and `$DOCROOT`, and the program by
/// its file name.
fn shorten(program: &Path, args: &[String]) -> String {
    let program = program.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let args = args.iter().map(|arg| match arg {
        a if a.ends_with("php-fpm.sock") => "$SOCK",
        a if a.ends_with("/docroot") => "$DOCROOT",
        a => a.as_str(),
    });
    std::iter::once(program.as_str()).chain(args).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortened_lines() {
        let args = ["get", "/ping", "--socket", "/tmp/x/php-fpm.sock", "--docroot", "/tmp/x/docroot"];
        let args: Vec<String> = args.map(String::from).to_vec();
        assert_eq!(
            shorten(Path::new("/t/release/fcgi"), &args),
            "fcgi get /ping --socket $SOCK --docroot $DOCROOT"
        );
    }
}
