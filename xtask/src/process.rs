//! Child processes and signals: everything xtask starts is stopped again.
//!
//! Rules this module owns:
//!
//! - Every long-running child (php-fpm, `cargo test`, `cargo fuzz`, `apt-get`) is spawned through
//!   [`Group::spawn`] in a process group of its own, with stdin closed. A Ctrl-C in the terminal
//!   therefore reaches only xtask; xtask's handler ([`install_interrupt_handler`], which also
//!   catches SIGTERM and SIGHUP) sets a flag, the main thread notices it in its wait loop and stops
//!   each group in order: the group's stop signal, a grace period, then SIGKILL to the whole group
//!   (so php-fpm workers cannot outlive their master).
//! - Each group also gets a *lifeline*: a tiny `sh` that blocks reading a pipe whose only writer is
//!   xtask. If xtask dies without cleaning up (SIGKILL, a CI timeout), the pipe closes and the
//!   lifeline signals the group, then SIGKILLs it after the grace period.
//! - Signals are sent with the `kill` builtin of `/bin/sh` (no `unsafe`, and no dependency on the
//!   procps package, which minimal Debian images lack).
//!
//! When interrupted, waits return the [`Interrupted`] error; `main` maps it to exit code 130 after
//! all guards have been dropped (that is, after cleanup).

use std::fmt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How often wait loops look at children and at the interrupt flag.
const POLL: Duration = Duration::from_millis(50);

/// Default time a group gets between its stop signal and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The run was interrupted by SIGINT, SIGTERM or SIGHUP; children have been (or are being) stopped.
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted by a signal")
    }
}

impl std::error::Error for Interrupted {}

/// Installs the SIGINT/SIGTERM/SIGHUP handler. It only sets a flag: cleanup happens on the main
/// thread, in the wait loops and in the [`Group`] destructors.
pub fn install_interrupt_handler() -> Result<()> {
    ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("xtask: still stopping child processes, please wait");
        } else {
            eprintln!("\nxtask: interrupted, stopping child processes ...");
        }
    })
    .context("installing the Ctrl-C/SIGTERM handler")
}

/// Whether a termination signal has arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Returns [`Interrupted`] as an error once a termination signal has arrived.
pub fn bail_if_interrupted() -> Result<()> {
    if interrupted() { Err(Interrupted.into()) } else { Ok(()) }
}

/// Sleeps for `duration`, returning early with [`Interrupted`] when a signal arrives.
pub fn sleep(duration: Duration) -> Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        bail_if_interrupted()?;
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        thread::sleep(POLL.min(deadline - now));
    }
}

/// Signals xtask sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// What a terminal's Ctrl-C sends; `cargo`, test binaries and libFuzzer stop on it.
    Int,
    /// Fast shutdown for php-fpm (the master stops its workers and exits).
    Term,
    /// Last resort, sent to the whole group after the grace period.
    Kill,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Int => "INT",
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
        }
    }
}

/// Sends `signal` to every process of process group `pgid`. Returns whether the group existed.
fn signal_group(pgid: u32, signal: Signal) -> Result<bool> {
    use nix::sys::signal::{Signal as Sig, killpg};
    let sig = match signal {
        Signal::Int => Sig::SIGINT,
        Signal::Term => Sig::SIGTERM,
        Signal::Kill => Sig::SIGKILL,
    };
    let pgid = i32::try_from(pgid).context("a process group id beyond i32")?;
    match killpg(nix::unistd::Pid::from_raw(pgid), sig) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(err) => Err(err).with_context(|| format!("sending SIG{} to group {pgid}", signal.name())),
    }
}

/// A child running in its own process group, stopped (whole group) when dropped.
pub struct Group {
    name: String,
    child: Child,
    stop_signal: Signal,
    grace: Duration,
    lifeline: Option<(Child, ChildStdin)>,
    exited: Option<ExitStatus>,
    stopped: bool,
}

impl Group {
    /// Spawns `cmd` as the leader of a new process group. `name` is used in messages;
    /// `stop_signal` is sent to the group first when stopping it.
    ///
    /// Stdin is set to `/dev/null` (a background process group must not read the terminal);
    /// set stdout/stderr on `cmd` as needed (they are inherited by default).
    pub fn spawn(name: &str, cmd: &mut Command, stop_signal: Signal) -> Result<Group> {
        cmd.stdin(Stdio::null()).process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {name}: {cmd:?}"))?;
        let mut group = Group {
            name: name.to_owned(),
            child,
            stop_signal,
            grace: DEFAULT_GRACE,
            lifeline: None,
            exited: None,
            stopped: false,
        };
        group.lifeline = Some(spawn_lifeline(group.pid(), stop_signal, group.grace)?);
        Ok(group)
    }

    /// Process id of the leader (= the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The leader's stderr, when `cmd` had `Stdio::piped()` for it (taken once).
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Returns the leader's exit status if it has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited =
                self.child.try_wait().with_context(|| format!("checking whether {} exited", self.name))?;
        }
        Ok(self.exited)
    }

    /// Waits for the leader to exit. On a termination signal, stops the group and returns
    /// [`Interrupted`].
    pub fn wait(&mut self) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if interrupted() {
                self.stop();
                return Err(Interrupted.into());
            }
            thread::sleep(POLL);
        }
    }

    /// Stops the group: stop signal, up to the grace period for the leader to exit, SIGKILL to the
    /// whole group. Leftover group members are killed even when the leader exited by itself.
    /// Errors are reported on stderr, not returned: this runs in destructors. Idempotent.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        // The lifeline goes first: once the group is gone its id may be reused.
        if let Some((mut lifeline, stdin)) = self.lifeline.take() {
            let _ = lifeline.kill();
            let _ = lifeline.wait();
            drop(stdin);
        }
        let pgid = self.pid();
        if !matches!(self.try_wait(), Ok(Some(_))) {
            if let Err(err) = signal_group(pgid, self.stop_signal) {
                eprintln!("xtask: warning: {err:#}");
            }
            let deadline = Instant::now() + self.grace;
            while Instant::now() < deadline && matches!(self.try_wait(), Ok(None)) {
                thread::sleep(POLL);
            }
            if matches!(self.try_wait(), Ok(None)) {
                eprintln!(
                    "xtask: {} (pid {pgid}) ignored SIG{} for {:?}, killing it",
                    self.name,
                    self.stop_signal.name(),
                    self.grace
                );
            }
        }
        // Whatever is left of the group (a wedged leader, orphaned workers).
        let _ = signal_group(pgid, Signal::Kill);
        if self.exited.is_none() {
            match self.child.wait() {
                Ok(status) => self.exited = Some(status),
                Err(err) => eprintln!("xtask: warning: waiting for {} (pid {pgid}): {err}", self.name),
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the watchdog that stops group `pgid` if xtask disappears without cleaning up: it blocks
/// reading a pipe only xtask writes to, and reading returns when xtask's end closes.
fn spawn_lifeline(pgid: u32, signal: Signal, grace: Duration) -> Result<(Child, ChildStdin)> {
    let script = "read -r _ignored; \
                  kill -s \"$1\" -- \"$2\" 2>/dev/null || exit 0; \
                  sleep \"$3\"; kill -s KILL -- \"$2\" 2>/dev/null; exit 0";
    let mut child = Command::new("sh")
        .args(["-c", script, "xtask-lifeline", signal.name(), &format!("-{pgid}")])
        .arg(grace.as_secs().max(1).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting the lifeline watchdog (sh)")?;
    let stdin = child.stdin.take().context("lifeline watchdog has no stdin pipe")?;
    Ok((child, stdin))
}

/// Runs `cmd` to completion in its own process group (interruptible) and returns its status.
pub fn run(name: &str, cmd: &mut Command) -> Result<ExitStatus> {
    Group::spawn(name, cmd, Signal::Int)?.wait()
}

/// Runs `cmd` to completion and fails unless it exits successfully.
pub fn run_ok(name: &str, cmd: &mut Command) -> Result<()> {
    let status = run(name, cmd)?;
    anyhow::ensure!(status.success(), "{name} failed ({})", describe(status));
    Ok(())
}

/// Human description of an exit status ("exit code 1", "killed by signal 9").
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown status".to_owned(),
    }
}

/// The exit code xtask should return for a child's status (128 + signal when killed).
pub fn exit_code(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
        (None, None) => ExitCode::FAILURE,
    }
}

/// The program named by environment variable `var`, if set; an error when it is set to
/// something that is not an executable file.
pub fn program_from_env(var: &str) -> Result<Option<std::path::PathBuf>> {
    let Some(path) = std::env::var_os(var) else { return Ok(None) };
    let path = std::path::PathBuf::from(path);
    if !is_executable(&path) {
        anyhow::bail!("${var} is {} which is not an executable file", path.display());
    }
    Ok(Some(path))
}

/// Finds `program` in `PATH` (like `command -v`), returning its path if it is an executable file.
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file with an execute bit set.
pub fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
