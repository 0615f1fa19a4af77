//! Timing short commands in alternation, the one way the `oneshot` section times one-shots: one
//! run of each command per round, the order rotating, so a change in the machine's load lands
//! on every command alike (hyperfine times one command's runs back to back; on a shared machine
//! whose speed drifts within minutes, that drift would decide a comparison of close commands).
//!
//! A run's wall time is from spawning it to reaping it; output goes to /dev/null. A watchdog
//! thread kills a run that outlives the limit, so a wedged server cannot hang the benchmark.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::process;

/// A command to time.
pub struct Timed {
    /// Its name in the results.
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Runs every command once per round, `warmup` rounds untimed then `rounds` timed, each in an
/// environment of only `env`; returns each command's wall times in milliseconds. Fails on the
/// first run that fails or outlives `limit`.
pub fn time(
    commands: &[Timed],
    env: &[(&str, &str)],
    warmup: usize,
    rounds: usize,
    limit: Duration,
) -> Result<BTreeMap<&'static str, Vec<f64>>> {
    let watchdog = Watchdog::start(limit);
    let mut times: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for round in 0..warmup + rounds {
        process::bail_if_interrupted()?;
        for i in 0..commands.len() {
            let timed = &commands[(i + round) % commands.len()];
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
            watchdog.watch(Some((child.id(), started)));
            let status = child.wait().with_context(|| format!("waiting for {}", timed.name));
            let wall = started.elapsed();
            watchdog.watch(None);
            if watchdog.state.killed.swap(false, Ordering::Relaxed) {
                bail!("{} took longer than {limit:?} and was killed", timed.name);
            }
            let status = status?;
            if !status.success() {
                bail!("{} failed ({})", timed.name, process::describe(status));
            }
            if round >= warmup {
                times.entry(timed.name).or_default().push(wall.as_secs_f64() * 1e3);
            }
        }
    }
    Ok(times)
}

/// Kills the watched process once it has run longer than the limit; stops with its owner.
struct Watchdog {
    state: Arc<WatchState>,
}

#[derive(Default)]
struct WatchState {
    /// The process being timed and when it started.
    current: Mutex<Option<(u32, Instant)>>,
    killed: AtomicBool,
    stop: AtomicBool,
}

impl Watchdog {
    fn start(limit: Duration) -> Watchdog {
        let state = Arc::new(WatchState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                let current = shared.current.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((pid, started)) = *current {
                    // The timing loop clears `current` right after reaping the process; that
                    // its pid is reused in between is not guarded against.
                    if started.elapsed() > limit && !shared.killed.swap(true, Ordering::Relaxed) {
                        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                    }
                }
            }
        });
        Watchdog { state }
    }

    fn watch(&self, process: Option<(u32, Instant)>) {
        *self.state.current.lock().unwrap_or_else(PoisonError::into_inner) = process;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
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
        assert_eq!((times["a"].len(), times["b"].len()), (3, 3));
        assert!(times["a"].iter().all(|&ms| ms > 0.0));
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
