//! The real backends integration tests talk to, started together in one throw-away directory, and
//! the environment-variable contract through which test code finds them.
//!
//! [`Backends::start`] is shared by `cargo xtask test`, `cargo xtask backends` and later commands
//! (demo, bench). Everything lives in a fresh temp dir (`$TMPDIR/fcgi-xtask-*`): the php-fpm
//! config, pid file, error log, unix socket, and the docroot, a copy of `tests/php/`. Dropping
//! [`Backends`] stops the processes, then removes the directory.
//!
//! # Environment contract
//!
//! Set for `cargo test` by `cargo xtask test`, printed by `cargo xtask backends`, read by
//! `tests/src/backends.rs` (`fcgi_tests::backends::php_fpm()`):
//!
//! | variable                    | value                                                      |
//! |-----------------------------|------------------------------------------------------------|
//! | `FCGI_TEST_PHP_FPM_SOCKET`  | absolute path of the unix socket of php-fpm's `unix` pool  |
//! | `FCGI_TEST_PHP_FPM_TCP`     | `127.0.0.1:PORT` of php-fpm's `tcp` pool                   |
//! | `FCGI_TEST_DOCROOT`         | absolute path of the docroot (a copy of `tests/php/`)      |
//! | `FCGI_TEST_PHP_FPM_PID`     | pid of the php-fpm master                                  |
//! | `FCGI_TEST_PHP_FPM_WORKERS` | children per pool (`pm = static`), currently 8            |
//! | `FCGI_TEST_PHP_FPM_LOG`     | path of php-fpm's error log                                |
//!
//! Both pools answer `/ping` with `pong` and `/status` (php-fpm needs `SCRIPT_FILENAME` present,
//! any value, for those). PHP errors and `error_log()` go to the FastCGI STDERR stream.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::php_fpm::{self, PhpFpm};
use crate::{process, workspace};

/// Unix socket path of the php-fpm `unix` pool.
pub const ENV_SOCKET: &str = "FCGI_TEST_PHP_FPM_SOCKET";
/// `127.0.0.1:PORT` of the php-fpm `tcp` pool.
pub const ENV_TCP: &str = "FCGI_TEST_PHP_FPM_TCP";
/// Absolute docroot path (copy of `tests/php/`).
pub const ENV_DOCROOT: &str = "FCGI_TEST_DOCROOT";
/// Pid of the php-fpm master.
pub const ENV_PID: &str = "FCGI_TEST_PHP_FPM_PID";
/// Children per php-fpm pool.
pub const ENV_WORKERS: &str = "FCGI_TEST_PHP_FPM_WORKERS";
/// Path of php-fpm's error log.
pub const ENV_LOG: &str = "FCGI_TEST_PHP_FPM_LOG";

/// Running backends and their directory. Fields drop in order: processes first, then the dir.
pub struct Backends {
    /// The php-fpm master with its `unix` and `tcp` pools.
    pub php_fpm: PhpFpm,
    /// Absolute path of the docroot copy.
    pub docroot: PathBuf,
    dir: TempDir,
}

impl Backends {
    /// Installs php-fpm if needed, prepares the temp dir and docroot, starts php-fpm and waits until
    /// it accepts connections.
    pub fn start() -> Result<Backends> {
        let binary = php_fpm::find_or_install()?;
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

        println!("xtask: starting php-fpm ({}) ...", binary.display());
        let php_fpm = PhpFpm::start(&binary, &base)?;
        println!(
            "xtask: php-fpm ready (pid {}, unix: {}, tcp: {})",
            php_fpm.pid(),
            php_fpm.socket.display(),
            php_fpm.tcp
        );
        Ok(Backends { php_fpm, docroot, dir })
    }

    /// The environment contract (see the module docs) as name/value pairs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (ENV_SOCKET, self.php_fpm.socket.display().to_string()),
            (ENV_TCP, self.php_fpm.tcp.to_string()),
            (ENV_DOCROOT, self.docroot.display().to_string()),
            (ENV_PID, self.php_fpm.pid().to_string()),
            (ENV_WORKERS, php_fpm::WORKERS.to_string()),
            (ENV_LOG, self.php_fpm.log.display().to_string()),
        ]
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
        backends.php_fpm.check_running()?;
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
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
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
