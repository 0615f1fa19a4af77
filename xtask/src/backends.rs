//! The real backends integration tests talk to, started together in one throw-away directory, and
//! the environment-variable contract through which test code finds them.
//!
//! [`Backends::start`] is shared by `cargo xtask test`, `cargo xtask backends` and `bench`. It
//! first makes sure everything is installed (Debian packages when root, flup from PyPI into the
//! venv `target/xtask-venv`, see [`crate::venv`]), then starts [`crate::php_fpm`] (the main peer),
//! [`crate::flup`] (a multiplexing server and one answering CANT_MPX_CONN), [`crate::fcgiwrap`]
//! (libfcgi: CGI scripts) and the real-peer matrix's [`crate::peers`], each waited for until its
//! sockets accept connections. Prometheus is only found (or installed): the monitoring tests
//! start their Prometheus server themselves.
//!
//! Everything lives in a fresh temp dir (`$TMPDIR/fcgi-xtask-*`): config files, logs, unix
//! sockets, the docroot (a copy of `tests/php/`) and the CGI dir (a copy of
//! `tests/backends/cgi/`). A backend that fails to start fails the run with its log. Dropping
//! [`Backends`] stops the processes (on success, failure and Ctrl-C), then removes the directory.
//!
//! [`Backends::env`] sets the `FCGI_TEST_*` variables for `cargo test`, and `cargo xtask
//! backends` prints them. Their names are defined once, in [`backend_env`]
//! (`tests/src/backend_env.rs`, compiled in here as well as in the test crate), whose table says
//! what each holds; `tests/src/backends.rs` describes what each backend serves.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::flup::Flup;
use crate::php_fpm::{self, PhpFpm};
use crate::programs::Program;
use crate::service::Service;
use crate::{fcgiwrap, peers, process, venv, workspace};

// The names of the `FCGI_TEST_*` variables: the same file the tests read them with.
#[path = "../../tests/src/backend_env.rs"]
pub mod backend_env;

/// Lines of each backend log shown when tests fail.
const LOG_TAIL_LINES: usize = 30;

/// The Prometheus server and its promtool, with their variables: the monitoring tests run
/// `promtool check metrics` on every output format of `fcgi status`, and a server they start
/// themselves on loopback (they need the port of the `fcgi exporter` they start) to scrape it.
fn find_or_install_prometheus() -> Result<Vec<(&'static str, PathBuf)>> {
    let server = Program::new("prometheus", "XTASK_PROMETHEUS", &["prometheus"]).find_or_install()?;
    let promtool = Program::new("promtool", "XTASK_PROMTOOL", &["prometheus"]).find_or_install()?;
    Ok(vec![(backend_env::PROMETHEUS, server), (backend_env::PROMTOOL, promtool)])
}

/// Running backends and their directory. Fields drop in order: processes first, then the dir.
pub struct Backends {
    /// The php-fpm master with its pools.
    pub php_fpm: PhpFpm,
    /// The two flup servers (multiplexed and not).
    pub flup: Flup,
    /// The other servers, each with the variable naming its socket.
    pub others: Vec<(&'static str, Service)>,
    /// Absolute path of the docroot copy.
    pub docroot: PathBuf,
    /// Absolute path of the CGI script directory (holding `hello.sh`).
    pub cgi_dir: PathBuf,
    /// The Prometheus and promtool binaries with their variables, when found or installed.
    pub prometheus: Vec<(&'static str, PathBuf)>,
    dir: TempDir,
}

impl Backends {
    /// Installs what is missing (see the module docs), prepares the temp dir, docroot and CGI dir,
    /// starts every backend and waits until each accepts connections. If one fails, those already
    /// started are stopped again and the error carries the failed one's log.
    pub fn start() -> Result<Backends> {
        let php_fpm_binary = php_fpm::find_or_install()?;
        let fcgiwrap_binary = fcgiwrap::PROGRAM.find_or_install()?;
        let python = venv::ensure().context("preparing the Python venv for flup")?;
        // Without it the monitoring tests fail (their variables are missing), and only they.
        let prometheus = find_or_install_prometheus()
            .inspect_err(|err| eprintln!("xtask: warning: {err:#}; the monitoring tests will fail"))
            .unwrap_or_default();

        let dir = tempfile::Builder::new()
            .prefix("fcgi-xtask-")
            .tempdir()
            .context("creating a temp dir for the test backends")?;
        // Canonical, so SCRIPT_FILENAMEs built from it match what PHP reports.
        let base =
            dir.path().canonicalize().with_context(|| format!("resolving {}", dir.path().display()))?;
        let docroot = base.join("docroot");
        copy_dir(&workspace::root().join("tests").join("php"), &docroot)?;
        let cgi_dir = fcgiwrap::copy_scripts(&base)?;

        println!("xtask: starting php-fpm ({}) ...", php_fpm_binary.display());
        let php_fpm = PhpFpm::start(&php_fpm_binary, &base)?;
        println!(
            "xtask: php-fpm ready (pid {}, unix: {}, tcp: {})",
            php_fpm.pid(),
            php_fpm.socket.display(),
            php_fpm.tcp
        );
        println!("xtask: starting flup, fcgiwrap and the real-peer matrix's backends ...");
        let flup = Flup::start(&python, &base)?;
        let fcgiwrap = fcgiwrap::start(&fcgiwrap_binary, &base)?;
        let peers = peers::start(&base, &fcgiwrap.socket, &cgi_dir)?;
        let others = [(backend_env::FCGIWRAP_SOCKET, fcgiwrap)].into_iter().chain(peers).collect();
        let backends = Backends { php_fpm, flup, others, docroot, cgi_dir, prometheus, dir };
        for (_, server) in backends.servers() {
            println!("xtask: {} ready (pid {}, {})", server.name(), server.pid(), server.socket.display());
        }
        Ok(backends)
    }

    /// The servers other than php-fpm, each with the variable naming its socket.
    fn servers(&self) -> impl Iterator<Item = (&'static str, &Service)> {
        let flup = [
            (backend_env::FLUP_MPX_SOCKET, &self.flup.multiplexed),
            (backend_env::FLUP_SOCKET, &self.flup.single),
        ];
        flup.into_iter().chain(self.others.iter().map(|(name, server)| (*name, server)))
    }

    /// The environment contract (see the module docs) as name/value pairs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let php_fpm = &self.php_fpm;
        let mut env = vec![
            (backend_env::PHP_FPM_SOCKET, php_fpm.socket.display().to_string()),
            (backend_env::PHP_FPM_TCP, php_fpm.tcp.to_string()),
            (backend_env::DOCROOT, self.docroot.display().to_string()),
            (backend_env::PHP_FPM_PID, php_fpm.pid().to_string()),
            (backend_env::PHP_FPM_WORKERS, php_fpm::WORKERS.to_string()),
            (backend_env::PHP_FPM_LOG, php_fpm.log.display().to_string()),
            (backend_env::CGI_DIR, self.cgi_dir.display().to_string()),
        ];
        env.extend(self.prometheus.iter().map(|(name, binary)| (*name, binary.display().to_string())));
        for ((pool, _), socket) in php_fpm::MONITOR_POOLS.iter().zip(&php_fpm.monitor_sockets) {
            let (_, name) = backend_env::PHP_FPM_POOLS
                .into_iter()
                .find(|(known, _)| known == pool)
                .expect("every monitoring pool has a variable in backend_env::PHP_FPM_POOLS");
            env.push((name, socket.display().to_string()));
        }
        env.extend(self.servers().map(|(name, server)| (name, server.socket.display().to_string())));
        env
    }

    /// Fails, with the logs of the one that stopped, if any backend has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.php_fpm.check_running()?;
        self.flup.multiplexed.check_running()?;
        self.flup.single.check_running()?;
        self.others.iter_mut().try_for_each(|(_, server)| server.check_running())
    }

    /// The last lines of every backend's log (those that wrote anything), for failure reports.
    pub fn log_tails(&self) -> String {
        let servers = self.servers().map(|(_, server)| server);
        [&self.php_fpm.service].into_iter().chain(servers).map(|s| s.log_tails(LOG_TAIL_LINES)).collect()
    }
}

/// `cargo xtask backends`: start the backends, print `export` lines, wait for Ctrl-C.
pub fn serve() -> Result<ExitCode> {
    let mut backends = Backends::start()?;
    println!("xtask: backends running in {}; paste into another shell:\n", backends.dir.path().display());
    for (name, value) in backends.env() {
        println!("export {name}={}", shell_quote(&value));
    }
    println!("\nxtask: press Ctrl-C to stop them");
    loop {
        backends.check_running()?;
        match process::sleep(Duration::from_millis(200)) {
            Ok(()) => {}
            Err(err) if err.is::<process::Interrupted>() => break,
            Err(err) => return Err(err),
        }
    }
    drop(backends);
    println!("xtask: backends stopped");
    Ok(ExitCode::SUCCESS)
}

/// Single-quotes `value` for POSIX shells.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Copies the directory tree `from` into the new directory `to` (files and subdirectories).
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let context = || format!("copying {} to {}", from.display(), to.display());
    fs::create_dir_all(to).with_context(context)?;
    for entry in fs::read_dir(from).with_context(context)? {
        let entry = entry.with_context(context)?;
        let target = to.join(entry.file_name());
        if entry.file_type().with_context(context)?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).with_context(context)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
