//! Where the real backends started by `cargo xtask test` listen.
//!
//! `cargo xtask test` (and `cargo xtask backends`, which prints them as `export` lines for running
//! single tests by hand) starts php-fpm in a throw-away directory and passes its coordinates to
//! `cargo test` through these environment variables:
//!
//! | variable                    | value                                                      |
//! |-----------------------------|------------------------------------------------------------|
//! | `FCGI_TEST_PHP_FPM_SOCKET`  | absolute path of the unix socket of php-fpm's `unix` pool  |
//! | `FCGI_TEST_PHP_FPM_TCP`     | `127.0.0.1:PORT` of php-fpm's `tcp` pool                   |
//! | `FCGI_TEST_DOCROOT`         | absolute path of the docroot, a copy of `tests/php/`       |
//! | `FCGI_TEST_PHP_FPM_PID`     | pid of the php-fpm master                                  |
//! | `FCGI_TEST_PHP_FPM_WORKERS` | children per pool (`pm = static`)                          |
//! | `FCGI_TEST_PHP_FPM_LOG`     | path of php-fpm's error log                                |
//!
//! What the php-fpm instance looks like (configured in `xtask/src/php_fpm.rs`): two pools, one
//! per address, each with `FCGI_TEST_PHP_FPM_WORKERS` static children; `/ping` answers `pong`
//! and `/status` the pool status (php-fpm matches them on `SCRIPT_NAME` but answers 404 unless
//! `SCRIPT_FILENAME` is present, any value); `clear_env = yes`; `display_errors` off, so PHP
//! errors and `error_log()` arrive on the FastCGI STDERR stream as `PHP message: ...` (and are
//! also copied into the error log through `catch_workers_output`). The scripts in the docroot
//! are described at the top of each file in `tests/php/`.
//!
//! A test that needs a backend calls [`php_fpm()`], which panics when the variables are missing:
//! such tests fail loudly under a plain `cargo test`, they never skip silently.

use std::env;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Unix socket of php-fpm's `unix` pool.
pub const ENV_SOCKET: &str = "FCGI_TEST_PHP_FPM_SOCKET";
/// `127.0.0.1:PORT` of php-fpm's `tcp` pool.
pub const ENV_TCP: &str = "FCGI_TEST_PHP_FPM_TCP";
/// Absolute docroot path.
pub const ENV_DOCROOT: &str = "FCGI_TEST_DOCROOT";
/// Pid of the php-fpm master.
pub const ENV_PID: &str = "FCGI_TEST_PHP_FPM_PID";
/// Children per pool.
pub const ENV_WORKERS: &str = "FCGI_TEST_PHP_FPM_WORKERS";
/// php-fpm's error log.
pub const ENV_LOG: &str = "FCGI_TEST_PHP_FPM_LOG";

/// The php-fpm instance started by `cargo xtask test`.
#[derive(Debug, Clone)]
pub struct PhpFpm {
    /// Unix socket of the `unix` pool.
    pub socket: PathBuf,
    /// Address of the `tcp` pool (`127.0.0.1:PORT`).
    pub tcp: SocketAddr,
    /// Absolute docroot (a copy of `tests/php/`); `SCRIPT_FILENAME` = docroot + script name.
    pub docroot: PathBuf,
    /// Pid of the master process.
    pub master_pid: u32,
    /// Children per pool (`pm = static`): requests beyond this many wait in the listen queue.
    pub workers: usize,
    /// php-fpm's error log (worker stderr lands here too).
    pub log: PathBuf,
}

impl PhpFpm {
    /// Absolute path of script `name` in the docroot (`"hello.php"` → `<docroot>/hello.php`),
    /// the value to send as `SCRIPT_FILENAME`.
    pub fn script_path(&self, name: &str) -> PathBuf {
        self.docroot.join(name.trim_start_matches('/'))
    }
}

/// Reads the `FCGI_TEST_*` variables describing php-fpm.
///
/// # Panics
///
/// When a variable is missing or malformed, with a message saying to run the tests through
/// `cargo xtask test`: a test that needs a backend must fail loudly, never skip.
pub fn php_fpm() -> PhpFpm {
    PhpFpm {
        socket: PathBuf::from(var(ENV_SOCKET)),
        tcp: parse(ENV_TCP),
        docroot: PathBuf::from(var(ENV_DOCROOT)),
        master_pid: parse(ENV_PID),
        workers: parse(ENV_WORKERS),
        log: PathBuf::from(var(ENV_LOG)),
    }
}

fn var(name: &str) -> String {
    match env::var(name) {
        Ok(value) if !value.is_empty() => value,
        Ok(_) | Err(env::VarError::NotPresent) => panic!(
            "php-fpm backend not configured: run the tests through `cargo xtask test` \
             (or export the variables printed by `cargo xtask backends`); {name} is not set"
        ),
        Err(env::VarError::NotUnicode(value)) => {
            panic!("php-fpm backend misconfigured: {name} is not valid UTF-8: {value:?}")
        }
    }
}

fn parse<T>(name: &str) -> T
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let value = var(name);
    value.parse().unwrap_or_else(|err| {
        panic!(
            "php-fpm backend misconfigured: {name}={value:?} is not valid ({err}); \
             run the tests through `cargo xtask test`"
        )
    })
}
