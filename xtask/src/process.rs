//! Child processes and signals: everything xtask starts is stopped again.
//!
//! - Every long-running child is spawned through [`Group::spawn`] in a process group of its own,
//!   with stdin closed. A Ctrl-C in the terminal therefore reaches only xtask, whose handler (also
//!   for SIGTERM and SIGHUP) sets a flag; the main thread notices it in its wait loop and stops each
//!   group: its stop signal, a grace period, then SIGKILL to the whole group (so php-fpm workers
//!   cannot outlive their master). Waits then return [`Interrupted`], which `main` maps to exit
//!   code 130 after all guards have been dropped.
//! - Each group also gets a *lifeline*: a tiny `sh` blocked reading a pipe whose only writer is
//!   xtask. If xtask dies without cleaning up (SIGKILL, a CI timeout), the pipe closes and the
//!   lifeline signals the group, then SIGKILLs it after the grace period.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use nix::sys::signal::{Signal as NixSignal, killpg};

/// How often wait loops look at children and at the interrupt flag.
const POLL: Duration = Duration::from_millis(50);

/// Time a group gets between its stop signal and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The run was interrupted by SIGINT, SIGTERM or SIGHUP; children have been (or are being) stopped.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// Returns [`Interrupted`] as an error once a termination signal has arrived.
pub fn bail_if_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) { Err(Interrupted.into()) } else { Ok(()) }
}

/// Sleeps for `duration`, returning early with [`Interrupted`] when a signal arrives.
pub fn sleep(duration: Duration) -> Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        bail_if_interrupted()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        thread::sleep(POLL.min(left));
    }
}

/// Signals xtask sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// What a terminal's Ctrl-C sends; `cargo`, test binaries and libFuzzer stop on it.
    Int,
    /// Fast shutdown for servers (php-fpm's master stops its workers and exits).
    Term,
}

impl Signal {
    fn to_nix(self) -> NixSignal {
        match self {
            Signal::Int => NixSignal::SIGINT,
            Signal::Term => NixSignal::SIGTERM,
        }
    }

    /// The name `kill -s` takes (`TERM`).
    fn name(self) -> &'static str {
        self.to_nix().as_str().trim_start_matches("SIG")
    }
}

/// Sends `signal` to every process of process group `pgid`, if there are any.
fn signal_group(pgid: u32, signal: NixSignal) -> Result<()> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pgid).context("a process group id beyond i32")?);
    match killpg(pid, signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(err) => Err(err).with_context(|| format!("sending {signal} to group {pgid}")),
    }
}

/// A child running in its own process group, stopped (whole group) when dropped.
pub struct Group {
    name: String,
    child: Child,
    stop_signal: Signal,
    lifeline: Option<(Child, ChildStdin)>,
    stopped: bool,
}

impl Group {
    /// Spawns `cmd` as the leader of a new process group, with stdin on `/dev/null` (a background
    /// group must not read the terminal); stdout and stderr are as set on `cmd`. `name` is for
    /// messages; `stop_signal` is sent to the group first when stopping it.
    pub fn spawn(name: &str, cmd: &mut Command, stop_signal: Signal) -> Result<Group> {
        cmd.stdin(Stdio::null()).process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {name}: {cmd:?}"))?;
        let lifeline = spawn_lifeline(child.id(), stop_signal)?;
        Ok(Group { name: name.to_owned(), child, stop_signal, lifeline: Some(lifeline), stopped: false })
    }

    /// Process id of the leader (= the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The leader's stderr, when `cmd` had `Stdio::piped()` for it (taken once).
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Returns the leader's exit status if it has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child.try_wait().with_context(|| format!("checking whether {} exited", self.name))
    }

    /// Waits for the leader to exit. On a termination signal, stops the group and returns
    /// [`Interrupted`].
    pub fn wait(&mut self) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if let Err(interrupted) = sleep(POLL) {
                self.stop();
                return Err(interrupted);
            }
        }
    }

    /// Stops the group: stop signal, up to the grace period for the leader to exit, SIGKILL to the
    /// whole group (leftover members are killed even when the leader exited by itself). Errors go
    /// to stderr, not returned: this runs in destructors. Idempotent.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        // The lifeline goes first: once the group is gone its id may be reused.
        if let Some((mut lifeline, _pipe)) = self.lifeline.take() {
            let _ = lifeline.kill();
            let _ = lifeline.wait();
        }
        let pgid = self.pid();
        if self.still_running() {
            if let Err(err) = signal_group(pgid, self.stop_signal.to_nix()) {
                eprintln!("xtask: warning: {err:#}");
            }
            let deadline = Instant::now() + GRACE;
            while Instant::now() < deadline && self.still_running() {
                thread::sleep(POLL);
            }
            if self.still_running() {
                let signal = self.stop_signal.name();
                eprintln!("xtask: {} (pid {pgid}) ignored SIG{signal} for {GRACE:?}, killing it", self.name);
            }
        }
        let _ = signal_group(pgid, NixSignal::SIGKILL);
        if let Err(err) = self.child.wait() {
            eprintln!("xtask: warning: waiting for {} (pid {pgid}): {err}", self.name);
        }
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the watchdog that stops group `pgid` if xtask disappears without cleaning up: it blocks
/// reading a pipe only xtask writes to, and the read returns when xtask's end closes. The signals
/// come from the shell's `kill` builtin: no dependency on procps, which minimal images lack.
fn spawn_lifeline(pgid: u32, signal: Signal) -> Result<(Child, ChildStdin)> {
    let script = "read -r _ignored; \
                  kill -s \"$1\" -- \"$2\" 2>/dev/null || exit 0; \
                  sleep \"$3\"; kill -s KILL -- \"$2\" 2>/dev/null; exit 0";
    let mut child = Command::new("sh")
        .args(["-c", script, "xtask-lifeline", signal.name(), &format!("-{pgid}")])
        .arg(GRACE.as_secs().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting the lifeline watchdog (sh)")?;
    let pipe = child.stdin.take().context("lifeline watchdog has no stdin pipe")?;
    Ok((child, pipe))
}

/// Runs `cmd` to completion in its own process group (interruptible) and returns its status.
pub fn run(name: &str, cmd: &mut Command) -> Result<ExitStatus> {
    Group::spawn(name, cmd, Signal::Int)?.wait()
}

/// Runs `cmd` to completion and fails unless it exits successfully.
pub fn run_ok(name: &str, cmd: &mut Command) -> Result<()> {
    let status = run(name, cmd)?;
    ensure!(status.success(), "{name} failed ({})", describe(status));
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
    let code = status.code().or(status.signal().map(|signal| 128 + signal));
    code.and_then(|code| u8::try_from(code).ok()).map_or(ExitCode::FAILURE, ExitCode::from)
}

/// The program named by environment variable `var`, if set; an error when it is set to
/// something that is not an executable file.
pub fn program_from_env(var: &str) -> Result<Option<PathBuf>> {
    let Some(path) = std::env::var_os(var).map(PathBuf::from) else { return Ok(None) };
    if !is_executable(&path) {
        bail!("${var} is {} which is not an executable file", path.display());
    }
    Ok(Some(path))
}

/// Finds `program` in `PATH` (like `command -v`), returning its path if it is an executable file.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file with an execute bit set.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
