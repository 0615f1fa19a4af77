//! Where the real backends started by `cargo xtask test` listen.
//!
//! `cargo xtask test` (and `cargo xtask backends`) starts php-fpm, two flup servers and
//! fcgiwrap in a throw-away directory and passes their coordinates to `cargo test` through the
//! `FCGI_TEST_*` variables of [`crate::backend_env`], the one definition of that contract.
//!
//! What the php-fpm instance looks like (configured in `xtask/src/php_fpm.rs`): two pools, one
//! per address, each with `FCGI_TEST_PHP_FPM_WORKERS` static children; `/ping` answers `pong`
//! and `/status` the pool status (php-fpm matches them on `SCRIPT_NAME` but answers 404 unless
//! `SCRIPT_FILENAME` is present, any value); `clear_env = yes`; `display_errors` off, so PHP
//! errors and `error_log()` arrive on the FastCGI STDERR stream as `PHP message: ...` (and are
//! also copied into the error log through `catch_workers_output`). The scripts in the docroot
//! are described at the top of each file in `tests/php/`.
//!
//! Both flup servers (`xtask/src/flup.rs`) serve the WSGI app `tests/backends/flup_app.py`,
//! routed on `PATH_INFO`, or `SCRIPT_NAME` when that is empty: `/echo` (body
//! `query=<QUERY_STRING>\n` + the request body), `/sleep?ms=N`, `/big?bytes=N`, `/stderr?msg=M`;
//! its docstring has the details. The multiplexed one runs each request in its own thread; the
//! other answers a second BEGIN_REQUEST on a busy connection with END_REQUEST(CANT_MPX_CONN).
//! Both answer FCGI_GET_VALUES with an empty result (a flup bug, brief §3).
//!
//! fcgiwrap (`xtask/src/fcgiwrap.rs`) runs the CGI script named by `SCRIPT_FILENAME`, e.g.
//! [`Fcgiwrap::script_path`]`("hello.sh")`, which prints `Hello from CGI` and its `QUERY_STRING`;
//! the script's stderr arrives on the FastCGI STDERR stream (`fcgiwrap -f`).
//!
//! The real-peer matrix (`fcgi-cli/tests/it/peer_matrix.rs`, docs/PEERS.md) also gets uWSGI, a Go
//! net/http/fcgi server, Perl FCGI under spawn-fcgi and `php-cgi -b` ([`peers()`], started by
//! `xtask/src/peers.rs`); the flup app and fcgiwrap's `authorizer.sh` and `peer.sh` serve the
//! Authorizer and Filter roles too (their headers say how).
//!
//! A test that needs a backend calls [`php_fpm()`], [`flup()`] or [`fcgiwrap()`], which panic when
//! the variables are missing: such tests fail loudly under a plain `cargo test`, they never skip
//! silently.

use std::env;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::backend_env::{
    CGI_DIR, DOCROOT, FCGIWRAP_SOCKET, FLUP_MPX_SOCKET, FLUP_SOCKET, PHP_FPM_LOG, PHP_FPM_PID,
    PHP_FPM_SOCKET, PHP_FPM_TCP, PHP_FPM_WORKERS,
};
use crate::backend_env::{GO_SOCKET, LIGHTTPD_AUTH_SOCKET, PERL_SOCKET, PHP_CGI_SOCKET, UWSGI_SOCKET};

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
        socket: PathBuf::from(var(PHP_FPM_SOCKET)),
        tcp: parse(PHP_FPM_TCP),
        docroot: PathBuf::from(var(DOCROOT)),
        master_pid: parse(PHP_FPM_PID),
        workers: parse(PHP_FPM_WORKERS),
        log: PathBuf::from(var(PHP_FPM_LOG)),
    }
}

/// The two flup servers started by `cargo xtask test` (same WSGI app, see the module docs).
#[derive(Debug, Clone)]
pub struct Flup {
    /// Unix socket of `WSGIServer(..., multiplexed=True)`: requests interleave on one connection.
    pub multiplexed: PathBuf,
    /// Unix socket of `WSGIServer(..., multiplexed=False)`: a second concurrent request on one
    /// connection gets END_REQUEST with protocolStatus CANT_MPX_CONN.
    pub single: PathBuf,
}

/// Reads the `FCGI_TEST_*` variables describing the flup servers.
///
/// # Panics
///
/// When a variable is missing, like [`php_fpm()`].
pub fn flup() -> Flup {
    Flup { multiplexed: PathBuf::from(var(FLUP_MPX_SOCKET)), single: PathBuf::from(var(FLUP_SOCKET)) }
}

/// The fcgiwrap started by `cargo xtask test`.
#[derive(Debug, Clone)]
pub struct Fcgiwrap {
    /// Its unix socket.
    pub socket: PathBuf,
    /// Absolute path of the CGI script dir (holding the executable `hello.sh`).
    pub cgi_dir: PathBuf,
}

impl Fcgiwrap {
    /// Absolute path of CGI script `name` (`"hello.sh"` → `<cgi_dir>/hello.sh`), the value to send
    /// as `SCRIPT_FILENAME`.
    pub fn script_path(&self, name: &str) -> PathBuf {
        self.cgi_dir.join(name.trim_start_matches('/'))
    }
}

/// Reads the `FCGI_TEST_*` variables describing fcgiwrap.
///
/// # Panics
///
/// When a variable is missing, like [`php_fpm()`].
pub fn fcgiwrap() -> Fcgiwrap {
    Fcgiwrap { socket: PathBuf::from(var(FCGIWRAP_SOCKET)), cgi_dir: PathBuf::from(var(CGI_DIR)) }
}

/// The unix socket of php-fpm's monitoring pool `name` (`static`, `dynamic`, `ondemand`: 5
/// max_children each; `busy`, `backlog`: 1 child; see `xtask/src/php_fpm.rs`).
///
/// # Panics
///
/// When the variable is missing (like [`php_fpm()`]) or `name` is not such a pool.
pub fn php_fpm_pool(name: &str) -> PathBuf {
    let (_, variable) = crate::backend_env::PHP_FPM_POOLS
        .into_iter()
        .find(|(pool, _)| *pool == name)
        .unwrap_or_else(|| panic!("no php-fpm monitoring pool {name:?}"));
    PathBuf::from(var(variable))
}

/// The Prometheus binaries found (or installed) by `cargo xtask test`.
#[derive(Debug, Clone)]
pub struct Prometheus {
    /// The server.
    pub server: PathBuf,
    /// promtool.
    pub promtool: PathBuf,
}

/// Reads the variables naming the Prometheus binaries.
///
/// # Panics
///
/// When a variable is missing, like [`php_fpm()`].
pub fn prometheus() -> Prometheus {
    Prometheus {
        server: PathBuf::from(var(crate::backend_env::PROMETHEUS)),
        promtool: PathBuf::from(var(crate::backend_env::PROMTOOL)),
    }
}

/// The backends only the real-peer matrix uses (xtask/src/peers.rs; each app's routes are in
/// its own file: `tests/backends/uwsgi_app.py`, `tests/backends/go/main.go`,
/// `tests/backends/perl/peer.pl`, and for php-cgi `tests/php/peer.php`).
#[derive(Debug, Clone)]
pub struct Peers {
    /// uWSGI `--fastcgi-socket` with a WSGI application.
    pub uwsgi: PathBuf,
    /// Go's net/http/fcgi.
    pub go: PathBuf,
    /// Perl FCGI (libfcgi) under spawn-fcgi, all three roles.
    pub perl: PathBuf,
    /// `php-cgi -b`, the php-fpm docroot.
    pub php_cgi: PathBuf,
    /// HTTP (unix socket) of lighttpd in `"mode" => "authorizer"` in front of fcgiwrap: a path
    /// `/authorizer.sh?QUERY` is authorized by `tests/backends/cgi/authorizer.sh`, then served
    /// by the same script as a CGI program showing the variables lighttpd passed on.
    pub lighttpd_auth: PathBuf,
}

/// Reads the `FCGI_TEST_*` variables describing the matrix's own backends.
///
/// # Panics
///
/// When a variable is missing, like [`php_fpm()`].
pub fn peers() -> Peers {
    Peers {
        uwsgi: PathBuf::from(var(UWSGI_SOCKET)),
        go: PathBuf::from(var(GO_SOCKET)),
        perl: PathBuf::from(var(PERL_SOCKET)),
        php_cgi: PathBuf::from(var(PHP_CGI_SOCKET)),
        lighttpd_auth: PathBuf::from(var(LIGHTTPD_AUTH_SOCKET)),
    }
}

fn var(name: &str) -> String {
    match env::var(name) {
        Ok(value) if !value.is_empty() => value,
        Ok(_) | Err(env::VarError::NotPresent) => panic!(
            "test backend not configured: run the tests through `cargo xtask test` \
             (or export the variables printed by `cargo xtask backends`); {name} is not set"
        ),
        Err(env::VarError::NotUnicode(value)) => {
            panic!("test backend misconfigured: {name} is not valid UTF-8: {value:?}")
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
            "test backend misconfigured: {name}={value:?} is not valid ({err}); \
             run the tests through `cargo xtask test`"
        )
    })
}
