//! Helpers shared by the bench sections: building the benchmark programs, running a program
//! with a time limit (and reading its JSON line or GNU `time`'s figures), CPU time of other
//! processes from `/proc`, medians and number formatting.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{self, Group, Signal};
use crate::workspace;

/// Runs cargo with the words of `args` (`build --release ...`) and `env`, and returns the
/// executables built for the target names in `names`. They are read from cargo's JSON messages,
/// so any target dir works (the default, `CARGO_TARGET_DIR`, a config's `build.target-dir`).
pub fn build_bins(
    what: &str,
    args: &str,
    env: &[(&str, &str)],
    names: &[&str],
) -> Result<BTreeMap<String, PathBuf>> {
    println!("xtask: cargo {args}");
    let (subcommand, rest) = args.split_once(' ').unwrap_or((args, ""));
    let output = workspace::cargo()
        .arg(subcommand)
        // Before the rest: anything after a `--` in it goes to rustc.
        .arg("--message-format=json-render-diagnostics")
        .args(rest.split_whitespace())
        .envs(env.iter().copied())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo build for {what}"))?;
    process::bail_if_interrupted()?;
    if !output.status.success() {
        bail!("building {what} failed ({})", process::describe(output.status));
    }
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines().filter(|l| l.starts_with('{')) {
        let message = json::parse(line).with_context(|| format!("cargo printed bad JSON: {line}"))?;
        let name = message.pointer("/target/name").and_then(json::Value::as_str);
        let executable = message.get("executable").and_then(json::Value::as_str);
        if let (Some(name), Some(path)) = (name, executable) {
            if names.contains(&name) {
                found.insert(name.to_owned(), PathBuf::from(path));
            }
        }
    }
    if let Some(missing) = names.iter().find(|name| !found.contains_key(**name)) {
        bail!("cargo built no `{missing}` executable for {what}");
    }
    Ok(found)
}

/// What a finished program left behind; `wall` is from spawning it to noticing its exit.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
}

impl Finished {
    /// Fails, with its stderr, unless the program exited successfully; `what` names it.
    pub fn check(self, what: &str) -> Result<Finished> {
        if !self.status.success() {
            bail!("{what} failed ({}): {}", process::describe(self.status), self.stderr.trim());
        }
        Ok(self)
    }
}

/// Runs `cmd` in a process group of its own, stdout and stderr to files `dir/<name>.out|.err`,
/// stopping it after `timeout`. Its exit is looked for every `poll`: the resolution of
/// [`Finished::wall`], and a cost in xtask's own CPU when short. Does not judge the exit status.
pub fn run_to_end(
    dir: &Path,
    name: &str,
    cmd: &mut Command,
    timeout: Duration,
    poll: Duration,
) -> Result<Finished> {
    let stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let (out_path, err_path) = (dir.join(format!("{stem}.out")), dir.join(format!("{stem}.err")));
    let create = |path: &Path| fs::File::create(path).with_context(|| format!("creating {}", path.display()));
    cmd.stdout(create(&out_path)?).stderr(create(&err_path)?);
    let started = Instant::now();
    let mut group = Group::spawn(name, cmd, Signal::Int)?;
    let status = loop {
        if let Some(status) = group.try_wait()? {
            break status;
        }
        if started.elapsed() > timeout {
            group.stop();
            bail!("{name} did not finish within {timeout:?}: {cmd:?}");
        }
        process::bail_if_interrupted()?;
        std::thread::sleep(poll);
    };
    let wall = started.elapsed();
    // Whatever the program left running in its group goes now.
    group.stop();
    let stdout = fs::read_to_string(&out_path).with_context(|| format!("reading {}", out_path.display()))?;
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    Ok(Finished { status, stdout, stderr, wall })
}

/// Runs a program (see [`run_to_end`]) that prints one JSON object as its last `{`-line, fails
/// unless it exits successfully, and returns that object.
pub fn run_json(
    dir: &Path,
    name: &str,
    bin: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<json::Value> {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    let what = format!("{name} {}", args.join(" "));
    let finished = run_to_end(dir, name, &mut cmd, timeout, Duration::from_millis(20))?.check(&what)?;
    let line = finished.stdout.lines().rev().find(|l| l.trim_start().starts_with('{'));
    let line = line.with_context(|| format!("{what} printed no JSON line: {}", finished.stderr.trim()))?;
    json::parse(line).with_context(|| format!("{name} printed bad JSON: {line}"))
}

/// Whether the JSON of `fcgi bench --json` counts at least one completed request, no errors,
/// and every completed request answered 200 with `body`.
pub fn bench_answered(result: &json::Value, body: &str) -> bool {
    let number = |pointer: &str| result.pointer(pointer).and_then(json::Value::as_f64);
    let completed = number("/completed").unwrap_or(0.0);
    completed > 0.0
        && number("/errors") == Some(0.0)
        && number("/status/200") == Some(completed)
        && number("/body_bytes") == Some(completed * body.len() as f64)
}

/// What GNU `time` reports of a program: user and system CPU seconds (10 ms resolution), peak
/// RSS, minor page faults (pages mapped on first touch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub user_s: f64,
    pub sys_s: f64,
    pub max_rss_bytes: f64,
    pub minor_faults: f64,
}

impl Usage {
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    /// Reads the line of [`gnu_time`]'s format (after a "Command exited with non-zero status N"
    /// line, if any).
    pub fn parse(text: &str) -> Option<Usage> {
        let line = text.lines().rev().find_map(|l| l.trim().strip_prefix("xtask-usage "))?;
        let fields: Vec<f64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
        let [user_s, sys_s, max_rss_kib, minor_faults] = fields[..] else { return None };
        Some(Usage { user_s, sys_s, max_rss_bytes: max_rss_kib * 1024.0, minor_faults })
    }
}

/// `program args` under GNU time (`time`, i.e. `/usr/bin/time`), its figures written to
/// `dir/<name>.time` for [`run_timed`].
pub fn gnu_time(time: &Path, dir: &Path, name: &str, program: &Path, args: &[String]) -> Command {
    let mut command = Command::new(time);
    command.args(["-f", "xtask-usage %U %S %M %R", "-o"]).arg(dir.join(format!("{name}.time")));
    command.arg(program).args(args);
    command
}

/// Runs a [`gnu_time`] command to the end (see [`run_to_end`]); fails unless it succeeds.
pub fn run_timed(
    dir: &Path,
    name: &str,
    cmd: &mut Command,
    timeout: Duration,
    poll: Duration,
) -> Result<(Finished, Usage)> {
    let what = format!("{cmd:?}");
    let finished = run_to_end(dir, name, cmd, timeout, poll)?.check(&what)?;
    let path = dir.join(format!("{name}.time"));
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let usage = Usage::parse(&text).with_context(|| format!("GNU time wrote {text:?} for {what}"))?;
    Ok((finished, usage))
}

/// Runs `run(i, warm_up)` for each of `count` items once per round, the order rotating:
/// `warmup` rounds whose results are dropped, then `rounds` kept, so that a change in the
/// machine's load lands on every item alike. Returns each item's kept results.
pub fn rotate<T>(
    count: usize,
    warmup: usize,
    rounds: usize,
    mut run: impl FnMut(usize, bool) -> Result<T>,
) -> Result<Vec<Vec<T>>> {
    let mut results: Vec<Vec<T>> = (0..count).map(|_| Vec::new()).collect();
    for round in 0..warmup + rounds {
        process::bail_if_interrupted()?;
        for offset in 0..count {
            let i = (offset + round) % count;
            let result = run(i, round < warmup)?;
            if round >= warmup {
                results[i].push(result);
            }
        }
    }
    Ok(results)
}

/// The words of `line` as arguments.
pub fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// The first line a program prints for `args` (e.g. `--version`), stdout or else stderr, or "?".
pub fn version_line(program: &Path, args: &[&str]) -> String {
    let Ok(output) = Command::new(program).args(args).stdin(Stdio::null()).output() else {
        return "?".into();
    };
    let text =
        if output.stdout.iter().any(|b| !b.is_ascii_whitespace()) { output.stdout } else { output.stderr };
    String::from_utf8_lossy(&text).lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("?").to_owned()
}

/// `yes`, or a bold `no`, for a table's "met" column.
pub fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

/// `61234.5` → `61,235`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    digits.as_bytes().rchunks(3).rev().map(String::from_utf8_lossy).collect::<Vec<_>>().join(",")
}

/// The median (NaN when empty).
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// utime + stime (clock ticks) of process `pid`, plus those of its direct children if
/// `with_children` (php-fpm's workers; children that exited are not counted, and php-fpm's
/// static workers do not exit).
pub fn cpu_ticks(pid: u32, with_children: bool) -> Result<u64> {
    let (_, own) = proc_stat(pid).with_context(|| format!("process {pid} is gone (no /proc/{pid}/stat)"))?;
    let children = if with_children { children(pid) } else { Vec::new() };
    // Processes come and go while we look: a vanished child is skipped.
    Ok(own + children.into_iter().filter_map(proc_stat).map(|(_, ticks)| ticks).sum::<u64>())
}

/// The direct children of `pid` (nginx's and php-fpm's workers).
pub fn children(pid: u32) -> Vec<u32> {
    let entries = fs::read_dir("/proc").into_iter().flatten().flatten();
    let pids = entries.filter_map(|entry| entry.file_name().to_str()?.parse().ok());
    pids.filter(|&child| proc_stat(child).is_some_and(|(ppid, _)| ppid == pid)).collect()
}

fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The parent's pid (field 4) and utime + stime (fields 14 and 15, clock ticks) of a
/// `/proc/<pid>/stat`, `pid (comm) state ppid ...`: `comm` may hold spaces and parentheses, so
/// fields are counted after its last `)`.
fn parse_stat(text: &str) -> Option<(u32, u64)> {
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state).
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((u32::try_from(field(1)?).ok()?, field(11)? + field(12)?))
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ), from `getconf CLK_TCK`.
pub fn clock_ticks() -> Result<f64> {
    let output = Command::new("getconf").arg("CLK_TCK").output().context("running `getconf CLK_TCK`")?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.trim().parse::<f64>() {
        Ok(ticks) if output.status.success() && ticks > 0.0 => Ok(ticks),
        _ => bail!("`getconf CLK_TCK` printed {:?}", text.trim()),
    }
}

/// The 1-minute load average, or "?".
pub fn load_average() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_owned()
}

/// JSON through serde_json, with the one accessor the sections need.
pub mod json {
    use anyhow::{Context, Result};

    pub use serde_json::Value;

    /// Parses one JSON document.
    pub fn parse(text: &str) -> Result<Value> {
        Ok(serde_json::from_str(text)?)
    }

    /// The number `key` of an object, or an error naming it.
    pub trait Number {
        fn number(&self, key: &str) -> Result<f64>;
    }

    impl Number for Value {
        fn number(&self, key: &str) -> Result<f64> {
            self.get(key).and_then(Value::as_f64).with_context(|| format!("no number `{key}` in {self}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields() {
        let stat = "1234 (php-fpm: pool (x) y) S 77 1234 1234 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0";
        assert_eq!(parse_stat(stat), Some((77, 281)));
        assert!(parse_stat("garbage").is_none());
        assert!(cpu_ticks(std::process::id(), true).is_ok());
    }

    #[test]
    fn formatting_and_medians() {
        assert_eq!([61234.6, 999.0, 1e6].map(thousands), ["61,235", "999", "1,000,000"]);
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert!(median(std::iter::empty()).is_nan());
    }

    #[test]
    fn bench_json_answers() {
        let doc = |text: &str| json::parse(text).unwrap();
        let ok = r#"{"completed":2,"errors":0,"status":{"200":2},"body_bytes":26}"#;
        assert!(bench_answered(&doc(ok), "Hello, world!"));
        assert!(!bench_answered(&doc(ok), "other"));
        for bad in [
            r#"{"completed":2,"errors":1,"status":{"200":2},"body_bytes":26}"#,
            r#"{"completed":2,"errors":0,"status":{"200":1,"500":1},"body_bytes":26}"#,
            r#"{"completed":0,"errors":0,"status":{},"body_bytes":0}"#,
        ] {
            assert!(!bench_answered(&doc(bad), "Hello, world!"), "{bad}");
        }
    }

    #[test]
    fn gnu_time_output() {
        let usage = Usage::parse("xtask-usage 0.52 0.10 5120 64\n").unwrap();
        let expected =
            Usage { user_s: 0.52, sys_s: 0.10, max_rss_bytes: 5120.0 * 1024.0, minor_faults: 64.0 };
        assert_eq!(usage, expected);
        assert!((usage.cpu_s() - 0.62).abs() < 1e-9);
        let failed = "Command exited with non-zero status 3\nxtask-usage 0.00 0.00 1800 90\n";
        assert_eq!(Usage::parse(failed).unwrap().max_rss_bytes, 1800.0 * 1024.0);
        for bad in ["0.5 0.1 100 1", "xtask-usage 0.5 x 100 1", "xtask-usage 0.5 0.1 100"] {
            assert!(Usage::parse(bad).is_none(), "{bad}");
        }
    }
}
