//! Bench section `oneshot`: one request per process, `fcgi get /ping` beside libfcgi's
//! `cgi-fcgi`, on the same php-fpm in the same run.
//!
//! Timed: `fcgi get /ping`, `fcgi ping` and `cgi-fcgi -bind -connect SOCK` against the php-fpm of
//! the test backends ([`super::Ctx::backends`]), whose `ping.path` is `/ping`, matched on
//! SCRIPT_NAME, and `fcgi --version` (no connection, no runtime: the process start-up part of
//! `fcgi`'s time). Everything runs in an environment of only [`CGI_ENV`]: `cgi-fcgi` sends its
//! environment as the request's parameters (the usual `env -i ... cgi-fcgi` without the extra
//! `env` process), `fcgi` ignores it.
//!
//! - **Wall time, interleaved** (the verdict): [`super::interleaved`] runs the commands in turn,
//!   [`INTERLEAVED_ROUNDS`] rounds, so that the machine's drift lands on all of them alike.
//! - **Peak RSS** of one request: GNU time's maximum resident set size (`%M`) of each command,
//!   [`RSS_RUNS`] runs, the median and the largest.
//!
//! Every command is run once first and its output checked (`pong`; `fcgi` for `--version`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::interleaved::{self, Timed};
use super::measure::{self, UnderTime, load_average, median, run_to_end, verdict};
use super::tools::{CGI_FCGI, GNU_TIME};
use super::{Ctx, Report};

/// Rounds of the interleaved timing (one run of every command each), after
/// [`INTERLEAVED_WARMUP`] untimed ones.
const INTERLEAVED_ROUNDS: usize = 1000;
const INTERLEAVED_WARMUP: usize = 20;
/// Longest one interleaved run may take (a one-shot request takes about a millisecond).
const INTERLEAVED_LIMIT: Duration = Duration::from_secs(10);
/// GNU time runs per command for the peak RSS.
const RSS_RUNS: usize = 5;

/// The target.
const TARGET_RSS_MIB: f64 = 10.0;

/// The whole environment of every command measured: what `cgi-fcgi` sends to php-fpm.
const CGI_ENV: [(&str, &str); 3] =
    [("SCRIPT_NAME", "/ping"), ("SCRIPT_FILENAME", "/ping"), ("REQUEST_METHOD", "GET")];

/// Gives `cmd` an environment of only [`CGI_ENV`].
fn cgi_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear().envs(CGI_ENV)
}

/// A command compared.
struct Contender {
    /// Name in the table.
    name: &'static str,
    /// What its output must contain.
    expect: &'static str,
    program: PathBuf,
    args: Vec<String>,
}

impl Contender {
    /// The command line.
    fn line(&self) -> String {
        let mut line = self.program.display().to_string();
        for arg in &self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }
}

/// Figures of one command.
struct Figures {
    /// Interleaved wall times.
    interleaved: Spread,
    rss_median: f64,
    rss_max: f64,
    /// Minor page faults of one run (GNU time `%R`, median).
    faults: f64,
}

/// Median, mean and standard deviation of wall times.
struct Spread {
    median_ms: f64,
    mean_ms: f64,
    stddev_ms: f64,
}

impl Spread {
    fn of(times: &[f64]) -> Spread {
        let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
        let variance =
            times.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (times.len().max(2) - 1) as f64;
        Spread { median_ms: median(times.iter().copied()), mean_ms: mean, stddev_ms: variance.sqrt() }
    }
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

    let mut contenders = vec![
        Contender {
            name: "fcgi get /ping",
            expect: "pong",
            program: fcgi.clone(),
            args: ["get", "/ping", "--socket", &socket, "--docroot", &docroot].map(String::from).to_vec(),
        },
        Contender {
            name: "fcgi ping",
            expect: "pong",
            program: fcgi.clone(),
            args: ["ping", "--socket", &socket].map(String::from).to_vec(),
        },
        Contender {
            name: "cgi-fcgi",
            expect: "pong",
            program: cgi_fcgi.clone(),
            args: ["-bind", "-connect", &socket].map(String::from).to_vec(),
        },
        Contender {
            name: "fcgi --version",
            expect: "fcgi",
            program: fcgi.clone(),
            args: vec!["--version".to_owned()],
        },
    ];
    // Another build of `fcgi` timed in the same rounds (a start-up change measured against this
    // build): `FCGI_BENCH_ONESHOT_OTHER=/path/to/fcgi`.
    let other = std::env::var_os("FCGI_BENCH_ONESHOT_OTHER");
    if let Some(other) = other.clone() {
        let args = contenders[0].args.clone();
        contenders.push(Contender {
            name: "other fcgi get /ping",
            expect: "pong",
            program: other.into(),
            args,
        });
    }
    for contender in &contenders {
        let mut cmd = Command::new(&contender.program);
        cgi_env(&mut cmd).args(&contender.args);
        let finished = run_to_end(dir, "check", &mut cmd, Duration::from_secs(10), Duration::from_millis(5))?
            .check(&contender.line())?;
        if !finished.stdout.contains(contender.expect) {
            bail!("{} printed {:?}, without {:?}", contender.line(), finished.stdout, contender.expect);
        }
    }

    println!("xtask: bench oneshot: {INTERLEAVED_ROUNDS} interleaved rounds ...");
    let timed: Vec<Timed> = contenders
        .iter()
        .map(|c| Timed { name: c.name, program: c.program.clone(), args: c.args.clone() })
        .collect();
    let alternating =
        interleaved::time(&timed, &CGI_ENV, INTERLEAVED_WARMUP, INTERLEAVED_ROUNDS, INTERLEAVED_LIMIT)?;

    println!("xtask: bench oneshot: peak RSS and page faults ({RSS_RUNS} runs each) ...");
    let mut figures = BTreeMap::new();
    for contender in &contenders {
        let mut rss = Vec::new();
        let mut faults = Vec::new();
        for _ in 0..RSS_RUNS {
            let mut command = UnderTime::new(&time, dir, "rss", &contender.program, &contender.args);
            cgi_env(&mut command.command);
            let (_, usage) = command.run(dir, "rss", Duration::from_secs(10), Duration::from_millis(5))?;
            rss.push(usage.max_rss_bytes);
            faults.push(usage.minor_faults);
        }
        let a =
            alternating.get(contender.name).with_context(|| format!("no times for {}", contender.name))?;
        figures.insert(
            contender.name,
            Figures {
                interleaved: Spread::of(a),
                rss_median: median(rss.iter().copied()),
                rss_max: rss.iter().copied().fold(0.0, f64::max),
                faults: median(faults.iter().copied()),
            },
        );
    }
    let load_after = load_average();

    let get = &figures["fcgi get /ping"];
    let peer = &figures["cgi-fcgi"];
    let columns: Vec<&Figures> = contenders.iter().map(|c| &figures[c.name]).collect();
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let mut table = String::from("| measurement |");
    for contender in &contenders {
        table.push_str(&format!(" `{}` |", contender.name));
    }
    table.push_str(" target | met |\n|---|");
    table.push_str(&"---:|".repeat(contenders.len()));
    table.push_str("---|:-:|\n");
    let mut row = |what: &str, cell: &dyn Fn(&Figures) -> String, target: &str, met: &str| {
        let cells: Vec<String> = columns.iter().map(|f| cell(f)).collect();
        table.push_str(&format!("| {what} | {} | {target} | {met} |\n", cells.join(" | ")));
    };
    let (ours, theirs) = (&get.interleaved, &peer.interleaved);
    row(
        "median wall time per process, interleaved",
        &|f| format!("{:.3} ms", f.interleaved.median_ms),
        &format!("`fcgi get` ≤ 1.05× cgi-fcgi: {:.2}×", ours.median_ms / theirs.median_ms),
        verdict(ours.median_ms <= 1.05 * theirs.median_ms),
    );
    row(
        "mean ± σ, interleaved",
        &|f| format!("{:.3} ± {:.3} ms", f.interleaved.mean_ms, f.interleaved.stddev_ms),
        "—",
        "",
    );
    row("minor page faults per run (GNU time `%R`)", &|f| format!("{:.0}", f.faults), "—", "");
    row(
        "peak RSS (GNU time `%M`)",
        &|f| format!("{:.1} MiB (max {:.1})", mib(f.rss_median), mib(f.rss_max)),
        &format!("`fcgi get` ≤ {TARGET_RSS_MIB} MiB"),
        verdict(mib(get.rss_max) <= TARGET_RSS_MIB),
    );

    let versions =
        [CGI_FCGI.version(&cgi_fcgi), GNU_TIME.version(&time), measure::version_line(&fcgi, &["--version"])];
    let mut lines: Vec<String> =
        contenders.iter().map(|c| format!("- `{}`: `{}`", c.name, shorten(&c.line()))).collect();
    if other.is_some() {
        lines.push("  (`other`: the build named by `FCGI_BENCH_ONESHOT_OTHER`, in the same rounds)".into());
    }
    let notes = format!(
        "Commands, as timed (`$SOCK` is php-fpm's unix socket, `$DOCROOT` the docroot of the test \
         backends: php-fpm {} workers, `ping.path = /ping`, pid {php_pid} during the run), each in \
         an environment of only `{}` (xtask and GNU time started with it):\n\n{}\n\n\
         Interleaved: xtask runs each command once per round, the order rotating, \
         {INTERLEAVED_WARMUP} untimed rounds then {INTERLEAVED_ROUNDS} timed ones, so that a \
         change in the machine's load lands on every command alike; a run's time is from spawning \
         it to reaping it, output to /dev/null. Each of the three request commands connects, sends \
         one request, reads the answer and exits. Peak RSS and page faults: \
         `/usr/bin/time -f \"%M %R\"`, {RSS_RUNS} runs of each (median; for RSS also the largest, \
         which the target is judged on). `fcgi get` sends the full CGI parameter set of a GET (about 20 parameters) and \
         parses the response head; `cgi-fcgi` sends its environment (the three variables) and copies \
         the raw CGI output.\n\nVersions: {}.\n\nLoad average (1 min) before/after the section: \
         {load_before} / {load_after} (the machine is shared with other builds; one-shot times are \
         mostly process start-up and scheduling, sensitive to that load). `fcgi --version` connects \
         nowhere: its time is the process start-up (exec, argument parsing) that \
         every `fcgi` command pays before its request.",
        crate::php_fpm::WORKERS,
        CGI_ENV.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" "),
        lines.join("\n"),
        versions.join("; "),
    );
    let other = other.is_some();
    Ok(Report {
        title: "One-shot requests: `fcgi get` vs `cgi-fcgi` (wall time, peak RSS)".into(),
        command: format!(
            "{}cargo xtask bench oneshot   # fcgi built with: {}",
            if other { "FCGI_BENCH_ONESHOT_OTHER=<other fcgi> " } else { "" },
            ctx.fcgi_build_line()
        ),
        table,
        notes,
    })
}

/// A command line with the socket and docroot as `$SOCK` and `$DOCROOT`, and programs by their
/// file names.
fn shorten(line: &str) -> String {
    line.split(' ')
        .map(|word| {
            if word.ends_with("php-fpm.sock") {
                "$SOCK".to_owned()
            } else if word.ends_with("/docroot") {
                "$DOCROOT".to_owned()
            } else if word.starts_with('/') && word.matches('/').count() > 1 {
                Path::new(word).file_name().map_or(word.to_owned(), |n| n.to_string_lossy().into_owned())
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortened_lines() {
        assert_eq!(
            shorten("/t/release/fcgi get /ping --socket /tmp/x/php-fpm.sock --docroot /tmp/x/docroot"),
            "fcgi get /ping --socket $SOCK --docroot $DOCROOT"
        );
        assert_eq!(
            shorten("/usr/bin/cgi-fcgi -bind -connect /t/php-fpm.sock"),
            "cgi-fcgi -bind -connect $SOCK"
        );
    }
}
