//! The HTTP → FastCGI gateways the `gateway` and `stream` sections measure `fcgi` against:
//! HAProxy and nginx (Debian packages) in front of one dedicated php-fpm pool.
//!
//! [`Stack::start`] (through [`super::Ctx::gateways`], once per run) installs what is missing
//! (see [`super::tools`]), and starts in a fresh temp dir (`$TMPDIR/fcgi-gw-*`):
//!
//! - **php-fpm** with [`PHP_WORKERS`] static children per pool, more than all clients'
//!   connections together: php-fpm gives a worker to each open connection until it closes, and
//!   both gateways keep idle server connections open (HAProxy's per-thread idle pools, nginx's
//!   `keepalive` cache per worker process), so a pool sized for one client would leave another
//!   waiting in the listen queue behind connections that are merely idle.
//! - **HAProxy** (`haproxy -db -f haproxy.cfg`: foreground, no master process): an `fcgi-app`
//!   with `option keep-conn`, `use-fcgi-app` in the backend, one `server ... proto fcgi maxconn 8`
//!   on php-fpm's unix socket, default threads (one per core).
//! - **nginx** (`nginx -p DIR -e ... -c nginx.conf -g 'daemon off;'`): `worker_processes auto`,
//!   an upstream with `keepalive 8`, `fastcgi_keep_conn on`, Debian's `fastcgi_params` plus
//!   `SCRIPT_FILENAME`, access log off, every temp path and the pid file in the temp dir.
//!
//! Each listens on its own free port of 127.0.0.1 and is checked with one `GET /hello.php`
//! before use. Nothing here touches system services the packages may have set up (policy-rc.d
//! keeps them from starting on this machine; ours use their own configs, ports and files
//! anyway). Dropping the [`Stack`] stops the gateways, then php-fpm, then removes the dir.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use super::tools;
use crate::php_fpm::{self, PhpFpm};
use crate::process::{self, Group, Signal};
use crate::{apt, backends, workspace};

/// php-fpm children per pool of the gateway stack: above HAProxy's server connections (≤ 8
/// busy, plus idle ones per thread) + nginx's (≤ 8 per worker) + `fcgi bench`'s 8.
pub const PHP_WORKERS: usize = 40;

/// HAProxy's `maxconn` on its php-fpm server, and nginx's upstream `keepalive`.
pub const SERVER_CONNECTIONS: usize = 8;

/// How long a gateway may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Debian's FastCGI parameter list for nginx.
const NGINX_FASTCGI_PARAMS: &str = "/etc/nginx/fastcgi_params";

/// php-fpm, HAProxy and nginx, running. Fields drop in order: gateways, php-fpm, the dir.
pub struct Stack {
    /// HAProxy in front of [`Stack::php`].
    pub haproxy: Gateway,
    /// nginx in front of [`Stack::php`].
    pub nginx: Gateway,
    /// The dedicated php-fpm ([`PHP_WORKERS`] children per pool).
    pub php: PhpFpm,
    /// Absolute path of the docroot (a copy of `tests/php/`).
    pub docroot: PathBuf,
    /// Versions of php-fpm, HAProxy and nginx, for the reports.
    pub versions: Vec<String>,
    dir: TempDir,
}

impl Stack {
    /// Installs what is missing and starts everything (see the module docs).
    pub fn start() -> Result<Stack> {
        let haproxy_bin = tools::HAPROXY.require()?;
        let nginx_bin = tools::NGINX.require()?;
        if !Path::new(NGINX_FASTCGI_PARAMS).is_file() {
            bail!("{NGINX_FASTCGI_PARAMS} is missing (it comes with Debian's nginx-common package)");
        }
        let php_bin = php_fpm::find_or_install()?;

        let dir = tempfile::Builder::new()
            .prefix("fcgi-gw-")
            .tempdir()
            .context("creating a temp dir for the gateways")?;
        let base =
            dir.path().canonicalize().with_context(|| format!("resolving {}", dir.path().display()))?;
        let docroot = base.join("docroot");
        let source = workspace::root().join("tests").join("php");
        backends::copy_dir(&source, &docroot)
            .with_context(|| format!("copying {} to {}", source.display(), docroot.display()))?;

        println!("xtask: bench: starting php-fpm with {PHP_WORKERS} workers per pool ...");
        let php = PhpFpm::start_with(&php_bin, &base, PHP_WORKERS)?;
        println!("xtask: bench: starting HAProxy ...");
        let haproxy = Gateway::haproxy(&haproxy_bin, &base, &docroot, &php.socket)?;
        println!("xtask: bench: starting nginx ...");
        let nginx = Gateway::nginx(&nginx_bin, &base, &docroot, &php.socket)?;
        println!(
            "xtask: bench: gateways ready (php-fpm pid {}, HAProxy http://127.0.0.1:{}, nginx http://127.0.0.1:{})",
            php.pid(),
            haproxy.port,
            nginx.port
        );
        let versions = vec![
            tools::Tool { program: "php-fpm", package: "php-fpm", version_args: &["-v"] }.version(&php_bin),
            tools::HAPROXY.version(&haproxy_bin),
            tools::NGINX.version(&nginx_bin),
        ];
        Ok(Stack { haproxy, nginx, php, docroot, versions, dir })
    }

    /// Fails, with the logs of the one that stopped, if any process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.php.check_running()?;
        self.haproxy.check_running()?;
        self.nginx.check_running()
    }

    /// The temp dir (configs and logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A running HTTP gateway on `127.0.0.1:port`.
pub struct Gateway {
    /// "HAProxy" or "nginx".
    pub name: &'static str,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its configuration file.
    pub config: PathBuf,
    group: Group,
    log: PathBuf,
}

impl Gateway {
    fn haproxy(binary: &Path, dir: &Path, docroot: &Path, php_socket: &Path) -> Result<Gateway> {
        let config = dir.join("haproxy.cfg");
        let log = dir.join("haproxy.log");
        start_with_free_port("HAProxy", &config, &log, |port| {
            fs::write(&config, haproxy_config(port, docroot, php_socket))
                .with_context(|| format!("writing {}", config.display()))?;
            let mut cmd = Command::new(binary);
            cmd.arg("-db").arg("-f").arg(&config);
            Ok(cmd)
        })
    }

    fn nginx(binary: &Path, dir: &Path, docroot: &Path, php_socket: &Path) -> Result<Gateway> {
        let prefix = dir.join("nginx");
        for sub in ["", "tmp", "logs"] {
            let path = prefix.join(sub);
            fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        }
        let config = prefix.join("nginx.conf");
        let log = prefix.join("logs").join("error.log");
        let root = apt::is_root();
        start_with_free_port("nginx", &config, &log, |port| {
            fs::write(&config, nginx_config(port, &prefix, docroot, php_socket, root))
                .with_context(|| format!("writing {}", config.display()))?;
            let mut cmd = Command::new(binary);
            // -e: the error log before the config is read (the compiled-in default is
            // /var/log/nginx/error.log).
            cmd.arg("-p").arg(&prefix).arg("-e").arg(&log).arg("-c").arg(&config).args(["-g", "daemon off;"]);
            Ok(cmd)
        })
    }

    /// The master's (HAProxy's only) process id; nginx's workers are its children.
    pub fn pid(&self) -> u32 {
        self.group.pid()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Fails, with its log, if it has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.group.try_wait()? {
            bail!(
                "{} exited unexpectedly ({})\n{}",
                self.name,
                process::describe(status),
                read_log(&self.log)
            );
        }
        Ok(())
    }
}

/// Starts a gateway on a port that was free a moment ago (`command` writes the config for a port
/// and returns the command line), retrying with another port if that one was taken meanwhile.
/// Ready once `GET /hello.php` through it answers `Hello, world!`.
fn start_with_free_port(
    name: &'static str,
    config: &Path,
    log: &Path,
    command: impl Fn(u16) -> Result<Command>,
) -> Result<Gateway> {
    let mut last_error = None;
    for _attempt in 0..3 {
        let port = free_port()?;
        let mut cmd = command(port)?;
        let output = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let output_err = output.try_clone().context("duplicating a log file handle")?;
        cmd.stdout(output).stderr(output_err);
        let group = Group::spawn(name, &mut cmd, Signal::Term)?;
        let mut gateway = Gateway { name, port, config: config.to_path_buf(), group, log: log.to_path_buf() };
        match wait_ready(&mut gateway) {
            Ok(()) => return Ok(gateway),
            Err(err) if read_log(log).contains("Address already in use") => last_error = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("{name} did not start")))
}

fn wait_ready(gateway: &mut Gateway) -> Result<()> {
    let started = Instant::now();
    loop {
        gateway.check_running().with_context(|| format!("{} did not start", gateway.name))?;
        process::bail_if_interrupted()?;
        if TcpStream::connect(("127.0.0.1", gateway.port)).is_ok() {
            let (status, body) = http_get(gateway.port, "/hello.php").with_context(|| {
                format!("GET /hello.php through {} (config {})", gateway.name, gateway.config.display())
            })?;
            if status != 200 || body != b"Hello, world!" {
                bail!(
                    "GET /hello.php through {} answered status {status} with {:?} (config {})\n{}",
                    gateway.name,
                    String::from_utf8_lossy(&body),
                    gateway.config.display(),
                    read_log(&gateway.log)
                );
            }
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "{} did not accept connections on 127.0.0.1:{} within {READY_TIMEOUT:?}\n{}",
                gateway.name,
                gateway.port,
                read_log(&gateway.log)
            );
        }
        process::sleep(Duration::from_millis(50))?;
    }
}

/// One HTTP/1.0 GET (so that the body comes unchunked, until the connection closes); returns
/// the status and the body.
pub fn http_get(port: u16, path: &str) -> Result<(u16, Vec<u8>)> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("connecting to port {port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).context("setting a read timeout")?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").context("sending")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).context("reading the response")?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("no end of head in {:?}", String::from_utf8_lossy(&response)))?;
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        bail!("chunked response to an HTTP/1.0 request for {path}: {head:?}");
    }
    Ok((status, response[head_end + 4..].to_vec()))
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr().context("reading a port-0 listener's address")?.port())
}

fn read_log(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => format!("--- {} ---\n{}", path.display(), text.trim_end()),
        _ => format!("({} is empty)", path.display()),
    }
}

/// HAProxy: `proto fcgi`, keep-conn, `maxconn 8`.
fn haproxy_config(port: u16, docroot: &Path, php_socket: &Path) -> String {
    format!(
        "# Written by `cargo xtask bench`; throw-away.\n\
         global\n\
         \x20   maxconn 4096\n\
         \n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \n\
         fcgi-app php\n\
         \x20   docroot {docroot}\n\
         \x20   index index.php\n\
         \x20   path-info ^(/.+\\.php)(/.*)?$\n\
         \x20   option keep-conn\n\
         \n\
         frontend http\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend php\n\
         \n\
         backend php\n\
         \x20   use-fcgi-app php\n\
         \x20   server fpm unix@{socket} proto fcgi maxconn {SERVER_CONNECTIONS}\n",
        docroot = docroot.display(),
        socket = php_socket.display(),
    )
}

/// nginx with an upstream keepalive cache of [`SERVER_CONNECTIONS`] per worker.
fn nginx_config(port: u16, prefix: &Path, docroot: &Path, php_socket: &Path, root: bool) -> String {
    let tmp = prefix.join("tmp");
    let tmp = tmp.display();
    format!(
        "# Written by `cargo xtask bench`; throw-away. Run with -p {prefix} -g 'daemon off;'.\n\
         {user}\
         worker_processes auto;\n\
         pid {prefix}/nginx.pid;\n\
         error_log {prefix}/logs/error.log warn;\n\
         \n\
         events {{\n\
         \x20   worker_connections 1024;\n\
         }}\n\
         \n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {tmp}/body;\n\
         \x20   fastcgi_temp_path {tmp}/fastcgi;\n\
         \x20   proxy_temp_path {tmp}/proxy;\n\
         \x20   uwsgi_temp_path {tmp}/uwsgi;\n\
         \x20   scgi_temp_path {tmp}/scgi;\n\
         \n\
         \x20   upstream php {{\n\
         \x20       server unix:{socket};\n\
         \x20       keepalive {SERVER_CONNECTIONS};\n\
         \x20   }}\n\
         \n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       root {docroot};\n\
         \x20       location ~ \\.php$ {{\n\
         \x20           include {NGINX_FASTCGI_PARAMS};\n\
         \x20           fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n\
         \x20           fastcgi_pass php;\n\
         \x20           fastcgi_keep_conn on;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        user = if root { "user root root;\n" } else { "" },
        prefix = prefix.display(),
        socket = php_socket.display(),
        docroot = docroot.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs() {
        let haproxy = haproxy_config(8080, Path::new("/t/docroot"), Path::new("/t/php-fpm.sock"));
        assert!(haproxy.contains("    server fpm unix@/t/php-fpm.sock proto fcgi maxconn 8\n"));
        assert!(haproxy.contains("    option keep-conn\n"));
        assert!(haproxy.contains("    use-fcgi-app php\n"));
        assert!(haproxy.contains("    bind 127.0.0.1:8080\n"));
        let nginx =
            nginx_config(8081, Path::new("/t/nginx"), Path::new("/t/docroot"), Path::new("/t/s.sock"), true);
        assert!(nginx.starts_with("# Written"));
        assert!(nginx.contains("user root root;\n"));
        assert!(nginx.contains("        server unix:/t/s.sock;\n        keepalive 8;\n"));
        assert!(nginx.contains("            fastcgi_keep_conn on;\n"));
        assert!(nginx.contains("    fastcgi_temp_path /t/nginx/tmp/fastcgi;\n"));
        assert!(!nginx_config(1, Path::new("/p"), Path::new("/d"), Path::new("/s"), false).contains("user "));
    }
}
