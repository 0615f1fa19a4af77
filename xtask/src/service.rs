//! A backend server listening on a unix socket: started in its own process group with its stdout
//! and stderr in a log file beside the socket, ready once the socket accepts a connection, stopped
//! (whole group) when dropped. A backend that cannot start fails with its log.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::process::{self, Group, Signal};

/// How long a backend may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest `sun_path` Linux accepts (108 bytes including the terminating NUL).
const MAX_UNIX_PATH: usize = 107;

/// A running backend listening on a unix socket.
pub struct Service {
    name: String,
    group: Group,
    /// The unix socket it listens on.
    pub socket: PathBuf,
    /// Its stdout and stderr: the socket's path with extension `log`.
    pub log: PathBuf,
    /// A log the server writes itself (php-fpm's error log), shown with the output.
    error_log: Option<PathBuf>,
}

impl Service {
    /// Spawns `cmd` (named `name` in messages) and waits until `socket` accepts a connection.
    pub fn start(name: &str, cmd: &mut Command, socket: &Path) -> Result<Service> {
        Service::start_with(name, cmd, socket, None, || true)
    }

    /// [`Service::start`] for a server with an `error_log` of its own, ready once `socket` and
    /// `also_ready` accept connections. Fails with the logs if the process exits first or is not
    /// ready within [`READY_TIMEOUT`]; the process is stopped then.
    pub fn start_with(
        name: &str,
        cmd: &mut Command,
        socket: &Path,
        error_log: Option<&Path>,
        also_ready: impl Fn() -> bool,
    ) -> Result<Service> {
        check_socket_path(socket)?;
        let log = socket.with_extension("log");
        // Leftovers would make the readiness check meaningless (or the bind fail).
        for stale in [Some(socket), error_log].into_iter().flatten() {
            let _ = fs::remove_file(stale);
        }
        let output = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(output.try_clone().context("duplicating a log file handle")?).stderr(Stdio::from(output));
        let group = Group::spawn(name, cmd, Signal::Term)?;
        let error_log = error_log.map(Path::to_path_buf);
        let mut service =
            Service { name: name.to_owned(), group, socket: socket.to_path_buf(), log, error_log };
        service.wait_ready(also_ready).with_context(|| format!("starting {name} on {}", socket.display()))?;
        Ok(service)
    }

    /// Its name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Process id of the process xtask started (the group leader).
    pub fn pid(&self) -> u32 {
        self.group.pid()
    }

    /// Fails, with the logs, if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.group.try_wait()? {
            bail!("{} exited unexpectedly ({})\n{}", self.name, process::describe(status), self.logs());
        }
        Ok(())
    }

    /// Its logs, each headed by its path, for failure reports.
    fn logs(&self) -> String {
        let report = self.report("", usize::MAX);
        if report.is_empty() {
            format!("({} wrote nothing to {})\n", self.name, self.log.display())
        } else {
            report
        }
    }

    /// The last `lines` lines of each log that is not empty, each headed by its path.
    pub fn log_tails(&self, lines: usize) -> String {
        self.report("last lines of ", lines)
    }

    fn report(&self, heading: &str, lines: usize) -> String {
        let mut report = String::new();
        for path in self.error_log.iter().chain([&self.log]) {
            let text = fs::read_to_string(path).unwrap_or_default();
            if !text.trim().is_empty() {
                let all: Vec<&str> = text.lines().collect();
                let shown = all[all.len().saturating_sub(lines)..].join("\n");
                report.push_str(&format!("--- {heading}{} log {} ---\n{shown}\n", self.name, path.display()));
            }
        }
        report
    }

    fn wait_ready(&mut self, also_ready: impl Fn() -> bool) -> Result<()> {
        let started = Instant::now();
        loop {
            self.check_running().with_context(|| format!("{} did not start", self.name))?;
            process::bail_if_interrupted()?;
            // Connected and closed at once: the server just sees EOF on a fresh connection.
            if UnixStream::connect(&self.socket).is_ok() && also_ready() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                let (name, pid) = (&self.name, self.pid());
                bail!(
                    "{name} (pid {pid}) did not accept connections within {READY_TIMEOUT:?}\n{}",
                    self.logs()
                );
            }
            process::sleep(Duration::from_millis(50))?;
        }
    }
}

/// Fails when `socket` is too long a path for a unix socket.
fn check_socket_path(socket: &Path) -> Result<()> {
    let len = socket.as_os_str().len();
    let path = socket.display();
    ensure!(
        len <= MAX_UNIX_PATH,
        "unix socket path {path} is {len} bytes, longer than the {MAX_UNIX_PATH} Linux allows: \
         set TMPDIR to a shorter directory"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_socket_paths_are_refused() {
        assert!(check_socket_path(Path::new("/tmp/x.sock")).is_ok());
        let long = format!("/tmp/{}.sock", "x".repeat(120));
        let err = check_socket_path(Path::new(&long)).unwrap_err();
        assert!(err.to_string().contains("TMPDIR"), "{err}");
    }
}
