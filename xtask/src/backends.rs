//! The real backends integration tests talk to, started together in one throw-away directory, and
//! the environment-variable contract through which test code finds them.
//!
//! [`Backends::start`] is shared by `cargo xtask test`, `cargo xtask backends`, `demo` and `bench`.
//! It first makes sure everything is installed (php-fpm and fcgiwrap from Debian packages when
//! root, flup from PyPI into the venv `target/xtask-venv`, see [`crate::venv`]), then starts, each
//! waited for until its sockets accept connections:
//!
//! | backend  | module              | what it is for                                             |
//! |----------|---------------------|------------------------------------------------------------|
//! | php-fpm  | [`crate::php_fpm`]  | the main peer: unix and TCP pools, PHP scripts             |
//! | flup ×2  | [`crate::flup`]     | a real multiplexing server, and one answering CANT_MPX_CONN |
//! | fcgiwrap | [`crate::fcgiwrap`] | libfcgi: CGI scripts, one request per connection            |
//! | uWSGI, Go, Perl FCGI, php-cgi | [`crate::peers`] | the real-peer matrix's other peers    |
//!
//! Prometheus and promtool ([`crate::prometheus`]) are only found (or installed): the monitoring
//! tests start their Prometheus server themselves. When they cannot be had, the run goes on
//! with a warning and without their variables, so those tests fail and nothing else does.
//!
//! Everything lives in a fresh temp dir (`$TMPDIR/fcgi-xtask-*`): config files, logs, unix
//! sockets, the docroot (a copy of `tests/php/`) and the CGI dir (a copy of
//! `tests/backends/cgi/`). A backend that fails to start fails the run with its log. Dropping
//! [`Backends`] stops the processes (on success, failure and Ctrl-C), then removes the directory.
//!
//! # Environment contract
//!
//! [`Backends::env`] sets the `FCGI_TEST_*` variables for `cargo test`, and `cargo xtask
//! backends` prints them. Their names are defined once, in [`backend_env`]
//! (`tests/src/backend_env.rs`, compiled in here as well as in the test crate, which reads them
//! in `tests/src/backends.rs`); that file's table says what each holds.
//!
//! Both php-fpm pools answer `/ping` with `pong` and `/status` (php-fpm needs `SCRIPT_FILENAME`
//! present, any value, for those). PHP errors and `error_log()` go to the FastCGI STDERR stream.
//! Both flup servers serve `tests/backends/flup_app.py` (routes in its docstring: `/echo`,
//! `/sleep?ms=N`, `/big?bytes=N`, `/stderr`). fcgiwrap runs `SCRIPT_FILENAME`, e.g.
//! `$FCGI_TEST_CGI_DIR/hello.sh`, with the script's stderr on the FastCGI STDERR stream.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::fcgiwrap::{self, Fcgiwrap};
use crate::flup::Flup;
use crate::peers::Peers;
use crate::php_fpm::{self, PhpFpm};
use crate::prometheus::{self, Prometheus};
use crate::{process, venv, workspace};

// The names of the `FCGI_TEST_*` variables: the same file the tests read them with.
#[path = "../../tests/src/backend_env.rs"]
pub mod backend_env;

/// Lines of each backend log shown when tests fail.
const LOG_TAIL_LINES: usize = 30;

/// Running backends and their directory. Fields drop in order: processes first, then the dir.
pub struct Backends {
    /// The php-fpm master with its `unix` and `tcp` pools.
    pub php_fpm: PhpFpm,
    /// The two flup servers (multiplexed and not).
    pub flup: Flup,
    /// fcgiwrap and its CGI dir.
    pub fcgiwrap: Fcgiwrap,
    /// The real-peer matrix's own backends (uWSGI, Go, Perl FCGI, php-cgi).
    pub peers: Peers,
    /// Absolute path of the docroot copy.
    pub docroot: PathBuf,
    /// The Prometheus and promtool binaries, when found or installed.
    pub prometheus: Option<Prometheus>,
    dir: TempDir,
}

impl Backends {
    /// Installs what is missing (see the module docs), prepares the temp dir, docroot and CGI dir,
    /// starts every backend and waits until each accepts connections. If one fails, those already
    /// started are stopped again and the error carries the failed one's log.
    pub fn start() -> Result<Backends> {
        let php_fpm_binary = php_fpm::find_or_install()?;
        let fcgiwrap_binary = fcgiwrap::find_or_install()?;
        let venv = venv::ensure().context("preparing the Python venv for flup")?;
        // Only the monitoring tests need it: without it they fail (their variables are
        // missing), while `demo` and the other benchmarks still run.
        let prometheus = prometheus::find_or_install()
            .inspect_err(|err| eprintln!("xtask: warning: {err:#}; the monitoring tests will fail"))
            .ok();

        let dir = tempfile::Builder::new()
            .prefix("fcgi-xtask-")
            .tempdir()
            .context("creating a temp dir for the test backends")?;
        // Canonical, so SCRIPT_FILENAMEs built from it match what PHP reports.
        let base =
            dir.path().canonicalize().with_context(|| format!("resolving {}", dir.path().display()))?;
        let docroot = base.join("docroot");
        let source = workspace::root().join("tests").join("php");
        copy_dir(&source, &docroot)
            .with_context(|| format!("copying {} to {}", source.display(), docroot.display()))?;

        println!("xtask: starting php-fpm ({}) ...", php_fpm_binary.display());
        let php_fpm = PhpFpm::start(&php_fpm_binary, &base)?;
        println!(
            "xtask: php-fpm ready (pid {}, unix: {}, tcp: {})",
            php_fpm.pid(),
            php_fpm.socket.display(),
            php_fpm.tcp
        );

        println!("xtask: starting flup ({}) ...", venv.python().display());
        let flup = Flup::start(&venv.python(), &base)?;
        println!(
            "xtask: flup ready (multiplexed: pid {}, {}; single: pid {}, {})",
            flup.multiplexed.pid(),
            flup.multiplexed.socket.display(),
            flup.single.pid(),
            flup.single.socket.display()
        );

        println!("xtask: starting fcgiwrap ({}) ...", fcgiwrap_binary.display());
        let fcgiwrap = Fcgiwrap::start(&fcgiwrap_binary, &base).context("starting fcgiwrap")?;
        println!(
            "xtask: fcgiwrap ready (pid {}, {}, scripts in {})",
            fcgiwrap.service.pid(),
            fcgiwrap.service.socket.display(),
            fcgiwrap.cgi_dir.display()
        );
        let peers = Peers::start(&base, &fcgiwrap).context("starting the real-peer matrix's backends")?;
        Ok(Backends { php_fpm, flup, fcgiwrap, peers, docroot, prometheus, dir })
    }

    /// The environment contract (see the module docs) as name/value pairs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (backend_env::PHP_FPM_SOCKET, self.php_fpm.socket.display().to_string()),
            (backend_env::PHP_FPM_TCP, self.php_fpm.tcp.to_string()),
            (backend_env::DOCROOT, self.docroot.display().to_string()),
            (backend_env::PHP_FPM_PID, self.php_fpm.pid().to_string()),
            (backend_env::PHP_FPM_WORKERS, php_fpm::WORKERS.to_string()),
            (backend_env::PHP_FPM_LOG, self.php_fpm.log.display().to_string()),
            (backend_env::FLUP_MPX_SOCKET, self.flup.multiplexed.socket.display().to_string()),
            (backend_env::FLUP_SOCKET, self.flup.single.socket.display().to_string()),
            (backend_env::FCGIWRAP_SOCKET, self.fcgiwrap.service.socket.display().to_string()),
            (backend_env::CGI_DIR, self.fcgiwrap.cgi_dir.display().to_string()),
        ]
        .into_iter()
        .chain(self.prometheus.iter().flat_map(|found| {
            [
                (backend_env::PROMETHEUS, found.server.display().to_string()),
                (backend_env::PROMTOOL, found.promtool.display().to_string()),
            ]
        }))
        .chain(self.php_fpm.monitor_pools().map(|(pool, socket)| {
            let (_, name) = backend_env::PHP_FPM_POOLS
                .into_iter()
                .find(|(known, _)| *known == pool)
                .expect("every monitoring pool has a variable in backend_env::PHP_FPM_POOLS");
            (name, socket.display().to_string())
        }))
        .chain(self.peers.env())
        .collect()
    }

    /// Fails, with the logs of the one that stopped, if any backend has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.php_fpm.check_running()?;
        self.flup.check_running()?;
        self.peers.check_running()?;
        self.fcgiwrap.service.check_running()
    }

    /// The last lines of every backend's log (those that wrote anything), for failure reports.
    pub fn log_tails(&self) -> String {
        let mut services = vec![&self.flup.multiplexed, &self.flup.single, &self.fcgiwrap.service];
        services.extend(self.peers.services());
        let mut logs =
            vec![("php-fpm error log", self.php_fpm.log.clone(), self.php_fpm.log_tail(LOG_TAIL_LINES))];
        logs.extend(services.iter().map(|s| ("output", s.log.clone(), s.log_tail(LOG_TAIL_LINES))));
        let mut report = String::new();
        for (what, path, tail) in logs {
            if !tail.trim().is_empty() {
                report.push_str(&format!("--- last lines of {what} {} ---\n{tail}\n", path.display()));
            }
        }
        report
    }

    /// The temp dir holding everything.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `cargo xtask backends`: start the backends, print `export` lines, wait for Ctrl-C.
pub fn serve() -> Result<ExitCode> {
    let mut backends = Backends::start()?;
    println!("xtask: backends running in {}; paste into another shell:\n", backends.dir().display());
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
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type().with_context(|| format!("inspecting {}", entry.path().display()))?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {} to {}", entry.path().display(), target.display()))?;
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
