//! Bench section `oneshot`: one request per process, `fcgi get /ping` beside libfcgi's
//! `cgi-fcgi`, on the php-fpm of the test backends (`ping.path = /ping`, matched on SCRIPT_NAME).
//! Wall time comes from [`interleaved`] (the verdict), peak RSS and page faults from GNU time;
//! every command is run once first and its output checked. The report's notes say the rest.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::measure::{self, gnu_time, load_average, median, rotate, run_timed, run_to_end, verdict};
use super::report::table;
use super::tools::{CGI_FCGI, GNU_TIME};
use super::{Ctx, Report};
use crate::process;

/// Timed rounds of the interleaved timing, after [`WARMUP_ROUNDS`] untimed ones; GNU time runs
/// per command.
const ROUNDS: usize = 1000;
const WARMUP_ROUNDS: usize = 20;
const RSS_RUNS: usize = 5;
/// Longest one run may take (a one-shot request takes about a millisecond), and how often the
/// end of an untimed one is looked for.
const LIMIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(5);
/// `fcgi get`'s peak RSS and median wall time (× `cgi-fcgi`'s) at most.
const TARGET_RSS_MIB: f64 = 10.0;
const TARGET_VS_CGI_FCGI: f64 = 1.05;

/// The whole environment of every command measured: what `cgi-fcgi` sends to php-fpm as the
/// request's parameters (`fcgi` ignores it).
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
        let finished = run_to_end(dir, "check", &mut c.command(), LIMIT, POLL)?.check(c.name)?;
        let expect = if c.name == "fcgi --version" { "fcgi" } else { "pong" };
        if !finished.stdout.contains(expect) {
            bail!("{} printed {:?}, without {expect:?}", c.name, finished.stdout);
        }
    }

    println!("xtask: bench oneshot: {ROUNDS} interleaved rounds ...");
    let times = interleaved(&contenders, WARMUP_ROUNDS, ROUNDS, LIMIT)?;
    println!("xtask: bench oneshot: peak RSS and page faults ({RSS_RUNS} runs each) ...");
    let mut figures = Vec::new();
    for (c, wall) in contenders.iter().zip(&times) {
        let mut usages = Vec::new();
        for _ in 0..RSS_RUNS {
            let mut command = gnu_time(&time, dir, "rss", &c.program, &c.args);
            command.env_clear().envs(CGI_ENV);
            usages.push(run_timed(dir, "rss", &mut command, LIMIT, POLL)?.1);
        }
        let rss = usages.iter().map(|usage| usage.max_rss_bytes / (1024.0 * 1024.0));
        let (rss_median, rss_max) = (median(rss.clone()), rss.fold(0.0, f64::max));
        let faults = median(usages.iter().map(|usage| usage.minor_faults));
        figures.push(Figures { median_ms: median(wall.iter().copied()), rss_median, rss_max, faults });
    }
    let load_after = load_average();

    let (get, peer) = (&figures[0], &figures[2]);
    let names: Vec<String> = contenders.iter().map(|c| format!("`{}`", c.name)).collect();
    // The measurement, a cell per command, then the target and whether it is met.
    let row = |what: &str, cell: fn(&Figures) -> String, target: String| {
        format!("{what} | {} | {target}", figures.iter().map(cell).collect::<Vec<_>>().join(" | "))
    };
    let ratio = get.median_ms / peer.median_ms;
    let wall_met = verdict(ratio <= TARGET_VS_CGI_FCGI);
    let wall_target = format!("`fcgi get` ≤ {TARGET_VS_CGI_FCGI}× cgi-fcgi: {ratio:.2}× | {wall_met}");
    let rss_target =
        format!("`fcgi get` ≤ {TARGET_RSS_MIB} MiB | {}", verdict(get.rss_max <= TARGET_RSS_MIB));
    let rss = |f: &Figures| format!("{:.1} MiB (max {:.1})", f.rss_median, f.rss_max);
    let rows = [
        row("median wall time per process, interleaved", |f| format!("{:.3} ms", f.median_ms), wall_target),
        row("minor page faults per run (GNU time `%R`)", |f| format!("{:.0}", f.faults), "— | ".into()),
        row("peak RSS (GNU time `%M`)", rss, rss_target),
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

/// A command measured; `name` is its name in the table and the errors.
struct Timed {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
}

impl Timed {
    /// The command, in an environment of only [`CGI_ENV`].
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args).env_clear().envs(CGI_ENV);
        command
    }
}

/// Each command's wall times (ms) over `rounds` after `warmup` untimed ones, as the notes
/// describe. Not hyperfine, which times one command's runs back to back: on a shared machine
/// whose speed drifts within minutes, that drift would decide a comparison of close commands.
/// Fails on the first run that fails or outlives `limit` (a watchdog thread kills it, so that a
/// wedged server cannot hang the benchmark).
fn interleaved(commands: &[Timed], warmup: usize, rounds: usize, limit: Duration) -> Result<Vec<Vec<f64>>> {
    // The process being timed and when it started; whether the watchdog killed it.
    let current = Mutex::new(None::<(u32, Instant)>);
    let (killed, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let watch = |process| *current.lock().unwrap_or_else(|e| e.into_inner()) = process;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                // The timing loop clears `current` right after reaping the process; that its pid
                // is reused in between is not guarded against.
                let current = *current.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((pid, started)) = current {
                    if started.elapsed() > limit && !killed.swap(true, Ordering::Relaxed) {
                        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                    }
                }
            }
        });
        let times = rotate(commands.len(), warmup, rounds, |i, _| {
            let timed = &commands[i];
            let started = Instant::now();
            let mut child = timed
                .command()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", timed.name))?;
            watch(Some((child.id(), started)));
            let status = child.wait().with_context(|| format!("waiting for {}", timed.name));
            let wall = started.elapsed();
            watch(None);
            if killed.swap(false, Ordering::Relaxed) {
                bail!("{} took longer than {limit:?} and was killed", timed.name);
            }
            let status = status?;
            if !status.success() {
                bail!("{} failed ({})", timed.name, process::describe(status));
            }
            Ok(wall.as_secs_f64() * 1e3)
        });
        stop.store(true, Ordering::Relaxed);
        times
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortened_lines() {
        let args = ["get", "/ping", "--socket", "/tmp/x/php-fpm.sock", "--docroot", "/tmp/x/docroot"];
        let args: Vec<String> = args.map(String::from).to_vec();
        let expected = "fcgi get /ping --socket $SOCK --docroot $DOCROOT";
        assert_eq!(shorten(Path::new("/t/release/fcgi"), &args), expected);
    }

    fn sh(name: &'static str, script: &str) -> Timed {
        Timed { name, program: PathBuf::from("/bin/sh"), args: vec!["-c".into(), script.into()] }
    }

    #[test]
    fn every_command_is_timed_once_per_timed_round() {
        let commands = [sh("a", "exit 0"), sh("b", "test \"$SCRIPT_NAME\" = /ping")];
        let times = interleaved(&commands, 1, 3, Duration::from_secs(10)).unwrap();
        assert_eq!((times[0].len(), times[1].len()), (3, 3));
        assert!(times[0].iter().all(|&ms| ms > 0.0));
    }

    #[test]
    fn failing_and_hung_commands_fail_the_measurement() {
        let err = interleaved(&[sh("bad", "exit 3")], 0, 1, Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("bad failed"), "{err:#}");
        let started = Instant::now();
        let err = interleaved(&[sh("slow", "exec sleep 30")], 0, 1, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("slow took longer than"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
