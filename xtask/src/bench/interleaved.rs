//! Timing short commands in alternation, the one way the `oneshot` section times one-shots: one
//! run of each command per round, the order rotating (see [`super::measure::rotate`]), so a
//! change in the machine's load lands on every command alike (hyperfine times one command's runs
//! back to back; on a shared machine whose speed drifts within minutes, that drift would decide a
//! comparison of close commands).
//!
//! A run's wall time is from spawning it to reaping it; output goes to /dev/null. A watchdog
//! thread kills a run that outlives the limit, so a wedged server cannot hang the benchmark.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::measure::rotate;
use crate::process;

/// A command to time.
pub struct Timed {
    /// Its name in the errors.
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Runs every command once per round, `warmup` rounds untimed then `rounds` timed, each in an
/// environment of only `env`; returns each command's wall times in milliseconds, in the order
/// of `commands`. Fails on the first run that fails or outlives `limit`.
pub fn time(
    commands: &[Timed],
    env: &[(&str, &str)],
    warmup: usize,
    rounds: usize,
    limit: Duration,
) -> Result<Vec<Vec<f64>>> {
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
            let mut child = Command::new(&timed.program)
                .args(&timed.args)
                .env_clear()
                .envs(env.iter().copied())
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

    fn sh(name: &'static str, script: &str) -> Timed {
        Timed { name, program: PathBuf::from("/bin/sh"), args: vec!["-c".into(), script.into()] }
    }

    #[test]
    fn every_command_is_timed_once_per_timed_round() {
        let commands = [sh("a", "exit 0"), sh("b", "test \"$X\" = 1")];
        let times = time(&commands, &[("X", "1")], 1, 3, Duration::from_secs(10)).unwrap();
        assert_eq!((times[0].len(), times[1].len()), (3, 3));
        assert!(times[0].iter().all(|&ms| ms > 0.0));
    }

    #[test]
    fn failing_and_hung_commands_fail_the_measurement() {
        let err = time(&[sh("bad", "exit 3")], &[], 0, 1, Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("bad failed"), "{err:#}");
        let started = Instant::now();
        let err = time(&[sh("slow", "exec sleep 30")], &[], 0, 1, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("slow took longer than"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
