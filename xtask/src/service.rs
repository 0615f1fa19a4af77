//! A backend server that listens on one unix socket: started in its own process group with its
//! stdout and stderr in a log file, ready once the socket accepts a connection, stopped (whole
//! group) when dropped.
//!
//! Used by [`crate::flup`] and [`crate::fcgiwrap`]; php-fpm has its own module because it has two
//! listeners, a config file and an error log of its own.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{self, Group, Signal};

/// How long a backend may take to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest `sun_path` Linux accepts (108 bytes including the terminating NUL).
pub const MAX_UNIX_PATH: usize = 107;

/// A running backend listening on a unix socket.
pub struct Service {
    name: String,
    group: Group,
    /// The unix socket it listens on.
    pub socket: PathBuf,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Service {
    /// Spawns `cmd` (named `name` in messages) with output to `log`, then waits until `socket`
    /// accepts a connection. Fails with the log's content if the process exits first or the
    /// socket is not ready within [`READY_TIMEOUT`]; the process is stopped in that case.
    pub fn start(name: &str, cmd: &mut Command, socket: &Path, log: &Path) -> Result<Service> {
        check_socket_path(socket)?;
        // A stale file would make the readiness check meaningless (or the bind fail).
        let _ = fs::remove_file(socket);
        let output =
            fs::File::create(log).with_context(|| format!("creating {name} log {}", log.display()))?;
        let output_err = output.try_clone().with_context(|| format!("duplicating {name} log file handle"))?;
        cmd.stdout(Stdio::from(output)).stderr(Stdio::from(output_err));
        let group = Group::spawn(name, cmd, Signal::Term)?;
        let mut service =
            Service { name: name.to_owned(), group, socket: socket.to_path_buf(), log: log.to_path_buf() };
        service.wait_ready()?;
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

    /// Fails, with the log, if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.group.try_wait()? {
            bail!("{} exited unexpectedly ({})\n{}", self.name, process::describe(status), self.logs());
        }
        Ok(())
    }

    /// The whole log, headed by its path, for failure reports.
    pub fn logs(&self) -> String {
        match fs::read_to_string(&self.log) {
            Ok(text) if !text.trim().is_empty() => {
                let newline = if text.ends_with('\n') { "" } else { "\n" };
                format!("--- {} output ({}) ---\n{text}{newline}", self.name, self.log.display())
            }
            Ok(_) => format!("({} wrote nothing to {})\n", self.name, self.log.display()),
            Err(err) => format!("(cannot read {} log {}: {err})\n", self.name, self.log.display()),
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            self.check_running().with_context(|| format!("{} did not start", self.name))?;
            process::bail_if_interrupted()?;
            // Connected and closed at once: the server just sees EOF on a fresh connection.
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} (pid {}) did not accept connections on {} within {READY_TIMEOUT:?}\n{}",
                    self.name,
                    self.pid(),
                    self.socket.display(),
                    self.logs()
                );
            }
            process::sleep(Duration::from_millis(50))?;
        }
    }
}

/// Fails when `socket` is too long a path for a unix socket.
pub fn check_socket_path(socket: &Path) -> Result<()> {
    let len = socket.as_os_str().len();
    if len > MAX_UNIX_PATH {
        bail!(
            "unix socket path {} is {len} bytes, longer than the {MAX_UNIX_PATH} Linux allows: \
             set TMPDIR to a shorter directory",
            socket.display()
        );
    }
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
