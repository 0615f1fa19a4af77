//! php-fpm as a test backend: finding (or installing) the binary, writing a throw-away
//! configuration, starting the master and waiting until it accepts connections.
//!
//! The instance has two pools, because a pool listens on one address:
//!
//! | pool   | listens on                          |
//! |--------|-------------------------------------|
//! | `unix` | `<tempdir>/php-fpm.sock` (mode 0666) |
//! | `tcp`  | `127.0.0.1:<free port>`             |
//!
//! Five more pools on unix sockets serve the health-check and monitoring tests
//! ([`MONITOR_POOLS`]): `static`, `dynamic` and `ondemand` (each with `pm.max_children = 5`;
//! dynamic starts 1 with 1 to 2 spare, ondemand starts none and ends a
//! child idle for 10 s), `busy` (static, 1 child: a test keeps it busy to get a pool that does
//! not answer) and `backlog` (static, 1 child, `listen.backlog = 1`: a test fills its backlog
//! to see a refused connect). Socket of pool `NAME`: `<tempdir>/php-fpm-NAME.sock`.
//!
//! The first two: `pm = static` with [`WORKERS`] children, `ping.path = /ping` answering `pong`,
//! `pm.status_path = /status`, `catch_workers_output = yes`, `clear_env = yes` (so variables of
//! the caller's environment, e.g. a CI's `HTTP_PROXY`, never show up in PHP's `$_SERVER`),
//! `memory_limit = 256M`, `log_errors = on`, `display_errors = off`. PHP's `error_log` setting is
//! left unset, so `error_log()` and PHP errors go to the request's FastCGI STDERR stream.
//! The master runs in the foreground (`--nodaemonize`) with its pid file and error log in the
//! temp dir; as root, workers run as root (`user = root`, started with `-R`).
//!
//! Which binary: `$XTASK_PHP_FPM` if set, else the highest `php-fpmX.Y` (then `php-fpm`) found in
//! `PATH`, `/usr/sbin`, `/usr/local/sbin` or `/sbin`. If none is found and we are root, the Debian
//! package `php-fpm` is installed with apt-get; otherwise the run fails with instructions. System
//! services the package may start are ignored: our sockets and ports are private.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{self, Group, Signal};
use crate::{apt, service};

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

/// How long php-fpm may take to accept connections on both pools.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts to start php-fpm when the free TCP port we picked was taken in the meantime.
const START_ATTEMPTS: usize = 3;

/// Environment variable naming the php-fpm binary to use instead of searching for one.
pub const BINARY_ENV: &str = "XTASK_PHP_FPM";

/// A running php-fpm master with its two pools. Dropping it stops the master and its workers.
pub struct PhpFpm {
    group: Group,
    /// Unix socket of the `unix` pool.
    pub socket: PathBuf,
    /// Address of the `tcp` pool.
    pub tcp: SocketAddr,
    /// php-fpm's error log (`[global] error_log`).
    pub log: PathBuf,
    /// The monitoring pools' sockets, in the order of [`MONITOR_POOLS`].
    pub monitor_sockets: Vec<PathBuf>,
    /// Where php-fpm's own stdout/stderr go (errors before the log is open).
    pub output: PathBuf,
}

impl PhpFpm {
    /// Starts php-fpm with its files in `dir` and waits until both pools accept connections.
    pub fn start(binary: &Path, dir: &Path) -> Result<PhpFpm> {
        PhpFpm::start_with(binary, dir, WORKERS)
    }

    /// [`PhpFpm::start`] with `workers` children per pool instead of [`WORKERS`] (the benchmarks
    /// need more than all their clients' connections together).
    pub fn start_with(binary: &Path, dir: &Path, workers: usize) -> Result<PhpFpm> {
        let mut attempt = 1;
        loop {
            let files = Files::new(dir, workers)?;
            match start_once(binary, &files) {
                Ok(php_fpm) => return Ok(php_fpm),
                Err(err) if attempt < START_ATTEMPTS && port_was_taken(&files) => {
                    eprintln!("xtask: port {} was taken meanwhile ({err:#}), retrying", files.tcp.port());
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Process id of the master.
    pub fn pid(&self) -> u32 {
        self.group.pid()
    }

    /// The error log and any output php-fpm printed, for failure reports.
    pub fn logs(&self) -> String {
        logs(&self.log, &self.output)
    }

    /// The last `lines` lines of the error log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The monitoring pools: name and socket.
    pub fn monitor_pools(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        MONITOR_POOLS.iter().map(|(name, _)| *name).zip(self.monitor_sockets.iter().map(PathBuf::as_path))
    }

    /// Fails if the master has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.group.try_wait()? {
            bail!("php-fpm exited unexpectedly ({})\n{}", process::describe(status), self.logs());
        }
        Ok(())
    }
}

/// Paths and address of one start attempt.
struct Files {
    config: PathBuf,
    pid: PathBuf,
    log: PathBuf,
    output: PathBuf,
    socket: PathBuf,
    tcp: SocketAddr,
    workers: usize,
}

impl Files {
    fn new(dir: &Path, workers: usize) -> Result<Files> {
        let socket = dir.join("php-fpm.sock");
        service::check_socket_path(&socket)?;
        let files = Files {
            config: dir.join("php-fpm.conf"),
            pid: dir.join("php-fpm.pid"),
            log: dir.join("php-fpm.log"),
            output: dir.join("php-fpm.out"),
            socket,
            tcp: free_tcp_port()?,
            workers,
        };
        // Leftovers of a failed attempt would confuse the readiness check and the log reader.
        for stale in [&files.socket, &files.log, &files.output, &files.pid] {
            let _ = fs::remove_file(stale);
        }
        for stale in monitor_sockets(&files.socket) {
            let _ = fs::remove_file(stale);
        }
        Ok(files)
    }
}

fn start_once(binary: &Path, files: &Files) -> Result<PhpFpm> {
    let root = apt::is_root();
    fs::write(&files.config, render_config(files, root))
        .with_context(|| format!("writing php-fpm config {}", files.config.display()))?;
    let output = fs::File::create(&files.output)
        .with_context(|| format!("creating php-fpm output file {}", files.output.display()))?;
    let output_err = output.try_clone().context("duplicating php-fpm output file handle")?;

    let mut cmd = Command::new(binary);
    cmd.arg("--nodaemonize").arg("--fpm-config").arg(&files.config);
    // php-fpm is built with systemd support: keep it from notifying a service manager we run under.
    cmd.env_remove("NOTIFY_SOCKET");
    if root {
        cmd.arg("--allow-to-run-as-root");
    }
    cmd.stdout(Stdio::from(output)).stderr(Stdio::from(output_err));
    let group = Group::spawn("php-fpm", &mut cmd, Signal::Term)?;
    let mut php_fpm = PhpFpm {
        group,
        socket: files.socket.clone(),
        tcp: files.tcp,
        log: files.log.clone(),
        output: files.output.clone(),
        monitor_sockets: monitor_sockets(&files.socket),
    };
    wait_ready(&mut php_fpm)?;
    Ok(php_fpm)
}

fn wait_ready(php_fpm: &mut PhpFpm) -> Result<()> {
    let started = Instant::now();
    loop {
        php_fpm.check_running().context("php-fpm did not start")?;
        process::bail_if_interrupted()?;
        if accepts(php_fpm) {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "php-fpm (pid {}) did not accept connections on {} and {} within {READY_TIMEOUT:?}\n{}",
                php_fpm.pid(),
                php_fpm.socket.display(),
                php_fpm.tcp,
                php_fpm.logs()
            );
        }
        process::sleep(Duration::from_millis(50))?;
    }
}

/// Every pool accepts a connection (closed at once; php-fpm's worker just sees EOF).
fn accepts(php_fpm: &PhpFpm) -> bool {
    UnixStream::connect(&php_fpm.socket).is_ok()
        && TcpStream::connect_timeout(&php_fpm.tcp, Duration::from_millis(500)).is_ok()
        && php_fpm.monitor_sockets.iter().all(|socket| UnixStream::connect(socket).is_ok())
}

/// `<dir>/php-fpm-NAME.sock` for each monitoring pool, beside the `unix` pool's socket.
fn monitor_sockets(socket: &Path) -> Vec<PathBuf> {
    let dir = socket.parent().unwrap_or(Path::new("."));
    MONITOR_POOLS.iter().map(|(name, _)| dir.join(format!("php-fpm-{name}.sock"))).collect()
}

fn port_was_taken(files: &Files) -> bool {
    logs(&files.log, &files.output).contains("Address already in use")
}

fn logs(log: &Path, output: &Path) -> String {
    let mut text = String::new();
    for (what, path) in [("error log", log), ("output", output)] {
        match fs::read_to_string(path) {
            Ok(content) if !content.trim().is_empty() => {
                text.push_str(&format!("--- php-fpm {what} ({}) ---\n{}", path.display(), content));
                if !content.ends_with('\n') {
                    text.push('\n');
                }
            }
            _ => {}
        }
    }
    if text.is_empty() {
        text.push_str("(php-fpm wrote nothing to its error log or output)\n");
    }
    text
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
fn free_tcp_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")?;
    listener.local_addr().context("reading the address of a port-0 listener")
}

/// The php-fpm configuration for `files`; `root` adds `user`/`group` root lines.
fn render_config(files: &Files, root: bool) -> String {
    let mut conf = format!(
        "; php-fpm configuration written by `cargo xtask` for the fcgi integration tests.\n\
         ; Throw-away: removed with its directory when xtask exits.\n\
         [global]\n\
         pid = \"{}\"\n\
         error_log = \"{}\"\n\
         log_level = notice\n\
         daemonize = no\n",
        files.pid.display(),
        files.log.display(),
    );
    for (pool, listen) in
        [("unix", format!("\"{}\"", files.socket.display())), ("tcp", files.tcp.to_string())]
    {
        conf.push_str(&format!("\n[{pool}]\nlisten = {listen}\nlisten.mode = 0666\n"));
        if root {
            conf.push_str("user = root\ngroup = root\n");
        }
        conf.push_str(&format!(
            "pm = static\n\
             pm.max_children = {}\n\
             ping.path = /ping\n\
             ping.response = pong\n\
             pm.status_path = /status\n\
             catch_workers_output = yes\n\
             clear_env = yes\n\
             php_admin_value[memory_limit] = 256M\n\
             php_admin_flag[log_errors] = on\n\
             php_admin_flag[display_errors] = off\n\
             php_admin_flag[html_errors] = off\n",
            files.workers
        ));
    }
    for ((pool, pm), socket) in MONITOR_POOLS.iter().zip(monitor_sockets(&files.socket)) {
        conf.push_str(&format!("\n[{pool}]\nlisten = \"{}\"\nlisten.mode = 0666\n", socket.display()));
        if root {
            conf.push_str("user = root\ngroup = root\n");
        }
        conf.push_str(pm);
        conf.push_str(
            "ping.path = /ping\n\
             ping.response = pong\n\
             pm.status_path = /status\n\
             catch_workers_output = yes\n\
             clear_env = yes\n\
             php_admin_flag[display_errors] = off\n",
        );
    }
    conf
}

/// Finds php-fpm, installing the Debian package when it is missing and we are root.
pub fn find_or_install() -> Result<PathBuf> {
    if let Some(binary) = find()? {
        return Ok(binary);
    }
    if !apt::can_install() {
        bail!(
            "php-fpm not found (looked for php-fpm8.*, php-fpm in PATH, /usr/sbin, /usr/local/sbin). \
             The tests need a real php-fpm: install it (Debian/Ubuntu: `sudo apt-get install php-fpm`), \
             or point ${BINARY_ENV} at the binary, or run as root (with apt-get) to let xtask install it"
        );
    }
    apt::install(&["php-fpm"], "php-fpm not found")?;
    find()?.context("php-fpm still not found after `apt-get install php-fpm`")
}

/// Finds the php-fpm binary (see the module docs for the search order).
pub fn find() -> Result<Option<PathBuf>> {
    if let Some(path) = process::program_from_env(BINARY_ENV)? {
        return Ok(Some(path));
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(version) = name.to_str().and_then(fpm_version) else { continue };
            let path = entry.path();
            if process::is_executable(&path) && best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, path));
            }
        }
    }
    Ok(best.map(|(_, path)| path))
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
    fn config_has_both_pools() {
        let files = Files {
            config: "/t/php-fpm.conf".into(),
            pid: "/t/php-fpm.pid".into(),
            log: "/t/php-fpm.log".into(),
            output: "/t/php-fpm.out".into(),
            socket: "/t/php-fpm.sock".into(),
            tcp: "127.0.0.1:9123".parse().unwrap(),
            workers: WORKERS,
        };
        let conf = render_config(&files, true);
        assert!(conf.contains("[unix]\nlisten = \"/t/php-fpm.sock\"\n"));
        assert!(conf.contains("[tcp]\nlisten = 127.0.0.1:9123\n"));
        assert_eq!(conf.matches("pm.max_children = 8\n").count(), 2);
        assert_eq!(conf.matches("user = root\n").count(), 2 + MONITOR_POOLS.len());
        assert!(conf.contains("[ondemand]\nlisten = \"/t/php-fpm-ondemand.sock\"\n"));
        assert!(conf.contains("pm = ondemand\npm.max_children = 5\n"));
        assert!(conf.contains("[backlog]\nlisten = \"/t/php-fpm-backlog.sock\"\n"));
        assert!(!render_config(&files, false).contains("user ="));
        assert!(conf.contains("daemonize = no\n"));
    }
}
