//! php-fpm as a test backend: finding (or installing) the binary, writing a throw-away
//! configuration, starting the master and waiting until every pool accepts connections.
//!
//! Two pools serve the tests, because a pool listens on one address: `unix` on
//! `<tempdir>/php-fpm.sock` and `tcp` on `127.0.0.1:<free port>`, each `pm = static` with
//! [`WORKERS`] children, `/ping` answering `pong` and `/status`. `clear_env = yes` keeps the
//! caller's environment (a CI's `HTTP_PROXY`) out of PHP's `$_SERVER`; PHP's `error_log` is left
//! unset, so `error_log()` and PHP errors go to the request's FastCGI STDERR stream.
//!
//! Five more pools serve the health-check and monitoring tests ([`MONITOR_POOLS`]), on
//! `<tempdir>/php-fpm-NAME.sock`: `static`, `dynamic` and `ondemand` (5 children at most),
//! `busy` (1 child: a test keeps it busy to get a pool that does not answer) and `backlog`
//! (1 child, `listen.backlog = 1`: a test fills its backlog to see a refused connect).
//!
//! The master runs in the foreground with its pid file and error log in the temp dir; as root,
//! workers run as root (`user = root`, started with `-R`). Which binary: `$XTASK_PHP_FPM` if set,
//! else the highest `php-fpmX.Y` (then `php-fpm`) in `PATH`, `/usr/sbin`, `/usr/local/sbin` or
//! `/sbin`; else the Debian package `php-fpm` is installed when we are root.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::service::Service;
use crate::{apt, process, programs};

/// Children per pool (`pm = static`).
pub const WORKERS: usize = 8;

/// The monitoring pools (see the module docs): name, and the pool's `pm` lines.
pub const MONITOR_POOLS: [(&str, &str); 5] = [
    ("static", "pm = static\npm.max_children = 5\n"),
    (
        "dynamic",
        "pm = dynamic\npm.max_children = 5\npm.start_servers = 1\npm.min_spare_servers = 1\npm.max_spare_servers = 2\n",
    ),
    ("ondemand", "pm = ondemand\npm.max_children = 5\npm.process_idle_timeout = 10s\n"),
    ("busy", "pm = static\npm.max_children = 1\n"),
    ("backlog", "pm = static\npm.max_children = 1\nlisten.backlog = 1\n"),
];

/// Settings of every pool.
const POOL_SETTINGS: &str = "ping.path = /ping\nping.response = pong\npm.status_path = /status\n\
                             catch_workers_output = yes\nclear_env = yes\n\
                             php_admin_flag[display_errors] = off\n";

/// Settings of the `unix` and `tcp` pools, which run the tests' scripts.
const SCRIPT_POOL_SETTINGS: &str = "php_admin_value[memory_limit] = 256M\n\
                                    php_admin_flag[log_errors] = on\nphp_admin_flag[html_errors] = off\n";

/// Attempts to start php-fpm when the free TCP port we picked was taken in the meantime.
const START_ATTEMPTS: usize = 3;

/// Environment variable naming the php-fpm binary to use instead of searching for one.
pub const BINARY_ENV: &str = "XTASK_PHP_FPM";

/// A running php-fpm master with its pools. Dropping it stops the master and its workers.
pub struct PhpFpm {
    /// The master's process, its output and error log.
    pub service: Service,
    /// Unix socket of the `unix` pool.
    pub socket: PathBuf,
    /// Address of the `tcp` pool.
    pub tcp: SocketAddr,
    /// php-fpm's error log (`[global] error_log`).
    pub log: PathBuf,
    /// The monitoring pools' sockets, in the order of [`MONITOR_POOLS`].
    pub monitor_sockets: Vec<PathBuf>,
}

impl PhpFpm {
    /// Starts php-fpm with its files in `dir` and waits until every pool accepts connections.
    pub fn start(binary: &Path, dir: &Path) -> Result<PhpFpm> {
        PhpFpm::start_with(binary, dir, WORKERS)
    }

    /// [`PhpFpm::start`] with `workers` children per pool instead of [`WORKERS`] (the benchmarks
    /// need more than all their clients' connections together).
    pub fn start_with(binary: &Path, dir: &Path, workers: usize) -> Result<PhpFpm> {
        for _ in 1..START_ATTEMPTS {
            let tcp = free_tcp_port()?;
            match start_once(binary, dir, tcp, workers) {
                Err(err) if format!("{err:#}").contains("Address already in use") => {
                    eprintln!("xtask: port {} was taken meanwhile ({err:#}), retrying", tcp.port());
                }
                result => return result,
            }
        }
        start_once(binary, dir, free_tcp_port()?, workers)
    }

    /// Process id of the master.
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }

    /// Fails, with the logs, if the master has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.service.check_running()
    }
}

fn start_once(binary: &Path, dir: &Path, tcp: SocketAddr, workers: usize) -> Result<PhpFpm> {
    let root = apt::is_root();
    let config = dir.join("php-fpm.conf");
    fs::write(&config, render_config(dir, tcp, workers, root))
        .with_context(|| format!("writing php-fpm config {}", config.display()))?;
    let mut cmd = Command::new(binary);
    cmd.arg("--nodaemonize").arg("--fpm-config").arg(&config);
    // php-fpm is built with systemd support: keep it from notifying a service manager we run under.
    cmd.env_remove("NOTIFY_SOCKET");
    if root {
        cmd.arg("--allow-to-run-as-root");
    }
    let monitor_sockets = monitor_sockets(dir);
    for stale in &monitor_sockets {
        let _ = fs::remove_file(stale);
    }
    let (socket, log) = (dir.join("php-fpm.sock"), error_log(dir));
    // Connected and closed at once; php-fpm's worker just sees EOF.
    let other_pools_accept = || {
        TcpStream::connect_timeout(&tcp, Duration::from_millis(500)).is_ok()
            && monitor_sockets.iter().all(|socket| UnixStream::connect(socket).is_ok())
    };
    let service = Service::start_with("php-fpm", &mut cmd, &socket, Some(&log), other_pools_accept)?;
    Ok(PhpFpm { service, socket, tcp, log, monitor_sockets })
}

fn error_log(dir: &Path) -> PathBuf {
    dir.join("php-fpm-error.log")
}

/// `<dir>/php-fpm-NAME.sock` for each monitoring pool.
fn monitor_sockets(dir: &Path) -> Vec<PathBuf> {
    MONITOR_POOLS.iter().map(|(name, _)| dir.join(format!("php-fpm-{name}.sock"))).collect()
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_tcp_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")?;
    listener.local_addr().context("reading the address of a port-0 listener")
}

/// The php-fpm configuration for files in `dir`; `root` adds `user`/`group` root lines.
fn render_config(dir: &Path, tcp: SocketAddr, workers: usize, root: bool) -> String {
    let mut conf = format!(
        "; php-fpm configuration written by `cargo xtask` for the fcgi integration tests.\n\
         ; Throw-away: removed with its directory when xtask exits.\n\
         [global]\npid = \"{}\"\nerror_log = \"{}\"\nlog_level = notice\ndaemonize = no\n",
        dir.join("php-fpm.pid").display(),
        error_log(dir).display(),
    );
    let script_pool = format!("pm = static\npm.max_children = {workers}\n{SCRIPT_POOL_SETTINGS}");
    let script_pools = [
        ("unix", format!("\"{}\"", dir.join("php-fpm.sock").display()), script_pool.clone()),
        ("tcp", tcp.to_string(), script_pool),
    ];
    let monitor_pools = MONITOR_POOLS
        .iter()
        .zip(monitor_sockets(dir))
        .map(|((pool, pm), socket)| (*pool, format!("\"{}\"", socket.display()), pm.to_string()));
    let user = if root { "user = root\ngroup = root\n" } else { "" };
    for (pool, listen, settings) in script_pools.into_iter().chain(monitor_pools) {
        conf.push_str(&format!(
            "\n[{pool}]\nlisten = {listen}\nlisten.mode = 0666\n{user}{settings}{POOL_SETTINGS}"
        ));
    }
    conf
}

/// Finds php-fpm, installing the Debian package when it is missing and we are root.
pub fn find_or_install() -> Result<PathBuf> {
    programs::find_or_install("php-fpm", BINARY_ENV, &["php-fpm"], find)
}

/// Finds the php-fpm binary (see the module docs for the search order).
pub fn find() -> Result<Option<PathBuf>> {
    if let Some(path) = process::program_from_env(BINARY_ENV)? {
        return Ok(Some(path));
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    let candidates = dirs.iter().filter_map(|dir| fs::read_dir(dir).ok()).flatten().flatten();
    let versioned =
        candidates.filter_map(|entry| Some((fpm_version(entry.file_name().to_str()?)?, entry.path())));
    // The highest version; of equal ones, the first found.
    Ok(versioned
        .filter(|(_, path)| process::is_executable(path))
        .min_by(|a, b| b.0.cmp(&a.0))
        .map(|(_, p)| p))
}

/// `php-fpm8.2` → `[8, 2]`; `php-fpm` → `[]` (ranks below any versioned name); others → `None`.
fn fpm_version(file_name: &str) -> Option<Vec<u32>> {
    let rest = file_name.strip_prefix("php-fpm")?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.split('.').map(|part| part.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_rank_numerically() {
        assert_eq!(fpm_version("php-fpm"), Some(vec![]));
        assert_eq!(fpm_version("php-fpm8.2"), Some(vec![8, 2]));
        assert!(fpm_version("php-fpm8.10") > fpm_version("php-fpm8.9"));
        assert!(fpm_version("php-fpm7.4") > fpm_version("php-fpm"));
        assert_eq!(fpm_version("php-fpm8.2.dpkg-old"), None);
        assert_eq!(fpm_version("php-fpm-wrapper"), None);
        assert_eq!(fpm_version("php8.2"), None);
    }

    #[test]
    fn config_has_every_pool() {
        let conf = render_config(Path::new("/t"), "127.0.0.1:9123".parse().unwrap(), WORKERS, true);
        assert!(conf.contains("[unix]\nlisten = \"/t/php-fpm.sock\"\n"));
        assert!(conf.contains("[tcp]\nlisten = 127.0.0.1:9123\n"));
        assert_eq!(conf.matches("pm.max_children = 8\n").count(), 2);
        assert_eq!(conf.matches("memory_limit").count(), 2);
        assert_eq!(conf.matches("user = root\n").count(), 2 + MONITOR_POOLS.len());
        assert!(conf.contains("[ondemand]\nlisten = \"/t/php-fpm-ondemand.sock\"\n"));
        assert!(conf.contains("pm = ondemand\npm.max_children = 5\n"));
        assert!(conf.contains("[backlog]\nlisten = \"/t/php-fpm-backlog.sock\"\n"));
        assert!(
            !render_config(Path::new("/t"), "127.0.0.1:9123".parse().unwrap(), 8, false).contains("user =")
        );
        assert!(conf.contains("daemonize = no\n"));
    }
}
