//! The environment-variable contract between `cargo xtask test` and the tests: the one
//! definition of the `FCGI_TEST_*` names.
//!
//! `cargo xtask test` starts php-fpm, two flup servers and fcgiwrap in a throw-away directory
//! and passes their coordinates to `cargo test` through these variables (`cargo xtask backends`
//! prints them as `export` lines, for running single tests by hand):
//!
//! | variable                     | constant                | value                                                         |
//! |------------------------------|-------------------------|---------------------------------------------------------------|
//! | `FCGI_TEST_PHP_FPM_SOCKET`   | [`PHP_FPM_SOCKET`]      | absolute path of the unix socket of php-fpm's `unix` pool     |
//! | `FCGI_TEST_PHP_FPM_TCP`      | [`PHP_FPM_TCP`]         | `127.0.0.1:PORT` of php-fpm's `tcp` pool                      |
//! | `FCGI_TEST_DOCROOT`          | [`DOCROOT`]             | absolute path of the docroot, a copy of `tests/php/`          |
//! | `FCGI_TEST_PHP_FPM_PID`      | [`PHP_FPM_PID`]         | pid of the php-fpm master                                     |
//! | `FCGI_TEST_PHP_FPM_WORKERS`  | [`PHP_FPM_WORKERS`]     | children per pool (`pm = static`)                             |
//! | `FCGI_TEST_PHP_FPM_LOG`      | [`PHP_FPM_LOG`]         | path of php-fpm's error log                                   |
//! | `FCGI_TEST_FLUP_MPX_SOCKET`  | [`FLUP_MPX_SOCKET`]     | unix socket of flup 1.0.3 with `multiplexed=True`             |
//! | `FCGI_TEST_FLUP_SOCKET`      | [`FLUP_SOCKET`]         | unix socket of flup 1.0.3 with `multiplexed=False`            |
//! | `FCGI_TEST_FCGIWRAP_SOCKET`  | [`FCGIWRAP_SOCKET`]     | unix socket of fcgiwrap (libfcgi, 2 preforked processes)      |
//! | `FCGI_TEST_CGI_DIR`          | [`CGI_DIR`]             | absolute path of the CGI dir, a copy of `tests/backends/cgi/` |
//! | `FCGI_TEST_PHP_FPM_POOL_<NAME>` | [`PHP_FPM_POOLS`] | unix socket of php-fpm's monitoring pool NAME: `STATIC`, `DYNAMIC`, `ONDEMAND` (max_children 5), `BUSY`, `BACKLOG` (1 child) |
//! | `FCGI_TEST_PROMETHEUS`       | [`PROMETHEUS`]          | the Prometheus server binary (Debian package `prometheus`)    |
//! | `FCGI_TEST_PROMTOOL`         | [`PROMTOOL`]            | its promtool                                                  |
//! | `FCGI_TEST_UWSGI_SOCKET`     | [`UWSGI_SOCKET`]        | unix socket of uWSGI (`--fastcgi-socket`, WSGI app)           |
//! | `FCGI_TEST_GO_SOCKET`        | [`GO_SOCKET`]           | unix socket of the Go net/http/fcgi server                    |
//! | `FCGI_TEST_PERL_SOCKET`      | [`PERL_SOCKET`]         | unix socket of Perl FCGI under spawn-fcgi (all three roles)   |
//! | `FCGI_TEST_PHP_CGI_SOCKET`   | [`PHP_CGI_SOCKET`]      | unix socket of `php-cgi -b` (the php-fpm docroot)             |
//! | `FCGI_TEST_LIGHTTPD_AUTH_SOCKET` | [`LIGHTTPD_AUTH_SOCKET`] | HTTP unix socket of lighttpd, authorizing with fcgiwrap   |
//!
//! The setting side is `xtask/src/backends.rs` (`Backends::env`), the reading side
//! `tests/src/backends.rs` (`fcgi_tests::backends::{php_fpm, flup, fcgiwrap}()`), which also
//! describes what each backend serves. A test that needs a backend fails loudly when its
//! variables are missing: it never skips.
//!
//! This file has no dependencies: xtask, which must not depend on the test crate, compiles it
//! in with `#[path]`.

/// Absolute path of the unix socket of php-fpm's `unix` pool.
pub const PHP_FPM_SOCKET: &str = "FCGI_TEST_PHP_FPM_SOCKET";
/// `127.0.0.1:PORT` of php-fpm's `tcp` pool.
pub const PHP_FPM_TCP: &str = "FCGI_TEST_PHP_FPM_TCP";
/// Absolute path of the docroot, a copy of `tests/php/`.
pub const DOCROOT: &str = "FCGI_TEST_DOCROOT";
/// Pid of the php-fpm master.
pub const PHP_FPM_PID: &str = "FCGI_TEST_PHP_FPM_PID";
/// Children per php-fpm pool (`pm = static`).
pub const PHP_FPM_WORKERS: &str = "FCGI_TEST_PHP_FPM_WORKERS";
/// Path of php-fpm's error log.
pub const PHP_FPM_LOG: &str = "FCGI_TEST_PHP_FPM_LOG";
/// Unix socket of flup with `multiplexed=True`.
pub const FLUP_MPX_SOCKET: &str = "FCGI_TEST_FLUP_MPX_SOCKET";
/// Unix socket of flup with `multiplexed=False` (a second request on a busy connection gets
/// CANT_MPX_CONN).
pub const FLUP_SOCKET: &str = "FCGI_TEST_FLUP_SOCKET";
/// Unix socket of fcgiwrap.
pub const FCGIWRAP_SOCKET: &str = "FCGI_TEST_FCGIWRAP_SOCKET";
/// Absolute path of the CGI script dir, a copy of `tests/backends/cgi/`.
pub const CGI_DIR: &str = "FCGI_TEST_CGI_DIR";
/// php-fpm's monitoring pools (their php-fpm pool name) and the variable naming each one's unix
/// socket.
pub const PHP_FPM_POOLS: [(&str, &str); 5] = [
    ("static", "FCGI_TEST_PHP_FPM_POOL_STATIC"),
    ("dynamic", "FCGI_TEST_PHP_FPM_POOL_DYNAMIC"),
    ("ondemand", "FCGI_TEST_PHP_FPM_POOL_ONDEMAND"),
    ("busy", "FCGI_TEST_PHP_FPM_POOL_BUSY"),
    ("backlog", "FCGI_TEST_PHP_FPM_POOL_BACKLOG"),
];
/// The Prometheus server binary.
pub const PROMETHEUS: &str = "FCGI_TEST_PROMETHEUS";
/// The promtool binary.
pub const PROMTOOL: &str = "FCGI_TEST_PROMTOOL";
/// Unix socket of uWSGI (`--fastcgi-socket`) serving `tests/backends/uwsgi_app.py`.
pub const UWSGI_SOCKET: &str = "FCGI_TEST_UWSGI_SOCKET";
/// Unix socket of the Go net/http/fcgi server of `tests/backends/go/`.
pub const GO_SOCKET: &str = "FCGI_TEST_GO_SOCKET";
/// Unix socket of Perl FCGI under spawn-fcgi (`tests/backends/perl/peer.pl`).
pub const PERL_SOCKET: &str = "FCGI_TEST_PERL_SOCKET";
/// Unix socket of `php-cgi -b`, serving the php-fpm docroot.
pub const PHP_CGI_SOCKET: &str = "FCGI_TEST_PHP_CGI_SOCKET";
/// HTTP unix socket of lighttpd in authorizer mode in front of fcgiwrap (xtask/src/peers.rs).
pub const LIGHTTPD_AUTH_SOCKET: &str = "FCGI_TEST_LIGHTTPD_AUTH_SOCKET";
