//! The HTTP fronts the `serve` and `mux` sections measure `fcgi` against: [`Stack::start`]
//! (through [`super::Ctx::gateways`], once per run) starts php-fpm with [`PHP_WORKERS`] static
//! children in a temp dir, and HAProxy and nginx in front of it (configs below); [`start`]
//! starts any front on a free port of 127.0.0.1, checked with one `GET /hello.php`; [`measured`]
//! says what a run cost a front; [`LoadOutput`] reads wrk and h2load.
//!
//! php-fpm gives a worker to each open connection until it closes, and both gateways keep idle
//! server connections open (HAProxy per thread, nginx per worker process): a pool sized for one
//! client would leave another waiting behind connections that are merely idle. Nothing here
//! touches the packages' system services.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use super::measure::{children, clock_ticks, cpu_ticks};
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
    pub haproxy: Gateway,
    pub nginx: Gateway,
    pub php: PhpFpm,
    /// Absolute path of the docroot (a copy of `tests/php/`), in the dir's canonical path.
    pub docroot: PathBuf,
    /// Versions of php-fpm, HAProxy and nginx, for the reports.
    pub versions: Vec<String>,
    _dir: TempDir,
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

        let dir =
            tempfile::Builder::new().prefix("fcgi-gw-").tempdir().context("creating the gateways' dir")?;
        let base =
            dir.path().canonicalize().with_context(|| format!("resolving {}", dir.path().display()))?;
        let docroot = base.join("docroot");
        backends::copy_dir(&workspace::root().join("tests").join("php"), &docroot)?;

        println!("xtask: bench: starting php-fpm with {PHP_WORKERS} workers per pool ...");
        let php = PhpFpm::start_with(&php_bin, &base, PHP_WORKERS)?;
        let haproxy = Gateway::haproxy(&haproxy_bin, &base, &docroot, &php.socket)?;
        let nginx = Gateway::nginx(&nginx_bin, &base, &docroot, &php.socket)?;
        let versions = vec![
            tools::Tool { program: "php-fpm", package: "php-fpm", version_args: &["-v"] }.version(&php_bin),
            tools::HAPROXY.version(&haproxy_bin),
            tools::NGINX.version(&nginx_bin),
        ];
        Ok(Stack { haproxy, nginx, php, docroot, versions, _dir: dir })
    }

    /// Fails, with the logs of the one that stopped, if any process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.php.check_running()?;
        self.haproxy.check_running()?;
        self.nginx.check_running()
    }
}

/// A running HTTP front on `127.0.0.1:port`: a gateway of the stack, or one a section starts
/// itself with [`start`] (`fcgi serve`, Caddy).
pub struct Gateway {
    pub name: &'static str,
    pub port: u16,
    /// A second port speaking HTTP/2 without TLS (prior knowledge), where it has one: nginx 1.22
    /// speaks either HTTP/1 or h2c on a port, never both.
    pub h2c_port: Option<u16>,
    /// Its configuration file, if it has one.
    pub config: Option<PathBuf>,
    group: Group,
    log: PathBuf,
}

impl Gateway {
    fn haproxy(binary: &Path, dir: &Path, docroot: &Path, php_socket: &Path) -> Result<Gateway> {
        let config = dir.join("haproxy.cfg");
        start("HAProxy", Some(&config), &dir.join("haproxy.log"), |port| {
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
        let h2c_port = std::cell::Cell::new(0);
        let mut nginx = start("nginx", Some(&config), &log, |port| {
            let mut h2c = php_fpm::free_tcp_port()?.port();
            // A port just released may come back.
            while h2c == port {
                h2c = php_fpm::free_tcp_port()?.port();
            }
            h2c_port.set(h2c);
            fs::write(&config, nginx_config([port, h2c], &prefix, docroot, php_socket, root))
                .with_context(|| format!("writing {}", config.display()))?;
            let mut cmd = Command::new(binary);
            // -e: the error log before the config is read (the compiled-in default is
            // /var/log/nginx/error.log).
            cmd.arg("-p").arg(&prefix).arg("-e").arg(&log).arg("-c").arg(&config).args(["-g", "daemon off;"]);
            Ok(cmd)
        })?;
        nginx.h2c_port = Some(h2c_port.get());
        Ok(nginx)
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
        let Some(status) = self.group.try_wait()? else { return Ok(()) };
        let log = read_log(&self.log);
        bail!("{} exited unexpectedly ({})\n{log}", self.name, process::describe(status))
    }
}

/// Starts a front on a port that was free a moment ago (`command` writes the config for a port
/// and returns the command line), retrying with another port if that one was taken meanwhile.
/// Ready once `GET /hello.php` through it answers `Hello, world!`.
pub fn start(
    name: &'static str,
    config: Option<&Path>,
    log: &Path,
    command: impl Fn(u16) -> Result<Command>,
) -> Result<Gateway> {
    println!("xtask: bench: starting {name} ...");
    let mut last_error = None;
    for _attempt in 0..3 {
        let port = php_fpm::free_tcp_port()?.port();
        let mut cmd = command(port)?;
        let output = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(output.try_clone().context("duplicating a log file handle")?).stderr(output);
        let group = Group::spawn(name, &mut cmd, Signal::Term)?;
        let config = config.map(Path::to_path_buf);
        let mut gateway = Gateway { name, port, h2c_port: None, config, group, log: log.to_path_buf() };
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
    while TcpStream::connect(("127.0.0.1", gateway.port)).is_err() {
        gateway.check_running().with_context(|| format!("{} did not start", gateway.name))?;
        process::bail_if_interrupted()?;
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
    let body = get(([127, 0, 0, 1], gateway.port).into(), "/hello.php", Duration::from_secs(10))
        .with_context(|| format!("GET /hello.php through {}\n{}", gateway.name, read_log(&gateway.log)))?;
    if body != "Hello, world!" {
        bail!("GET /hello.php through {} answered {body:?}\n{}", gateway.name, read_log(&gateway.log));
    }
    Ok(())
}

/// The body of a 200 answer to `GET path` over HTTP/1.0 (so that it comes unchunked), or an
/// error with what came instead.
pub fn get(address: SocketAddr, path: &str, timeout: Duration) -> Result<String> {
    let mut stream = TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(timeout)).context("setting a read timeout")?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").context("sending")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).context("reading the response")?;
    let response = String::from_utf8_lossy(&response);
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.split_whitespace().nth(1) == Some("200") => Ok(body.to_owned()),
        _ => bail!("GET {path} answered {response:?}"),
    }
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

/// nginx with an upstream keepalive cache of [`SERVER_CONNECTIONS`] per worker, HTTP/1 on
/// `ports[0]` and h2c on `ports[1]`; `sendfile` and `tcp_nopush` on for static files, as
/// Debian's own nginx.conf has them; `keepalive_requests` past any run's requests per
/// connection: nginx's default 1000 closes connections, which h2load never reopens and the
/// other fronts never close.
fn nginx_config(ports: [u16; 2], prefix: &Path, docroot: &Path, php_socket: &Path, root: bool) -> String {
    let [port, h2c] = ports;
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
         \x20   sendfile on;\n\
         \x20   tcp_nopush on;\n\
         \x20   keepalive_requests 1000000;\n\
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
         \x20       listen 127.0.0.1:{h2c} http2;\n\
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

/// What a load run cost a front: utime + stime of it and its direct children over the run
/// (from `/proc`, clock-tick resolution), and their summed peak RSS during it and RSS after.
pub struct Cost {
    pub cpu_s: f64,
    pub peak_mib: f64,
    pub rss_mib: f64,
}

/// Runs `run` (a load tool against the front `pid`) and measures what it cost the front. The
/// peak is VmHWM after resetting it through `/proc/<pid>/clear_refs`: the high-water mark of
/// this run alone, with nothing sampling while it runs.
pub fn measured<T>(pid: u32, run: impl FnOnce() -> Result<T>) -> Result<(T, Cost)> {
    for member in family(pid) {
        // Without the reset (not our process, an old kernel) the peak is the lifetime one.
        let _ = fs::write(format!("/proc/{member}/clear_refs"), "5");
    }
    let before = cpu_ticks(pid, true)?;
    let value = run()?;
    let ticks = cpu_ticks(pid, true)?.saturating_sub(before);
    let cost = Cost {
        cpu_s: ticks as f64 / clock_ticks()?,
        peak_mib: mib(pid, "VmHWM"),
        rss_mib: mib(pid, "VmRSS"),
    };
    Ok((value, cost))
}

/// `pid` and its direct children (nginx's workers).
fn family(pid: u32) -> Vec<u32> {
    std::iter::once(pid).chain(children(pid)).collect()
}

/// A kB field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`) summed over `pid`'s family, in MiB.
fn mib(pid: u32, field: &str) -> f64 {
    let kib = |member: u32| -> Option<f64> {
        let status = fs::read_to_string(format!("/proc/{member}/status")).ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
        line.split_whitespace().next()?.parse().ok()
    };
    family(pid).into_iter().filter_map(kib).sum::<f64>() / 1024.0
}

/// What a load tool printed; latencies NaN where it gives none (h2load).
#[derive(Debug, PartialEq)]
pub struct LoadOutput {
    pub requests: f64,
    pub req_per_s: f64,
    /// Failed requests: socket errors, non-2xx/3xx responses.
    pub errors: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl LoadOutput {
    /// Reads wrk's output (`--latency` for the percentiles) or h2load's: `finished in 5.00s,
    /// 24425.40 req/s, 2.03MB/s` and `requests: N total, N started, N done, N succeeded, N
    /// failed, ...` (failed counts the errored, the timed out and the non-2xx/3xx).
    pub fn parse(text: &str) -> Result<LoadOutput> {
        let mut out =
            LoadOutput { requests: -1.0, req_per_s: -1.0, errors: 0.0, p50_ms: f64::NAN, p99_ms: f64::NAN };
        let number = |text: &str| text.trim().parse::<f64>().with_context(|| format!("bad number {text:?}"));
        for line in text.lines().map(str::trim) {
            if let Some((count, _)) = line.split_once(" requests in ") {
                out.requests = number(count)?;
            } else if let Some(rate) = line.strip_prefix("Requests/sec:") {
                out.req_per_s = number(rate)?;
            } else if let Some(rest) = line.strip_prefix("finished in ") {
                let rate = rest.split(", ").nth(1).and_then(|r| r.strip_suffix(" req/s"));
                out.req_per_s = number(rate.with_context(|| format!("no req/s in {line:?}"))?)?;
            } else if let Some(counts) = line.strip_prefix("requests: ") {
                for (count, what) in counts.split(", ").filter_map(|part| part.split_once(' ')) {
                    match what {
                        "done" => out.requests = number(count)?,
                        "failed" => out.errors += number(count)?,
                        _ => {}
                    }
                }
            } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
                out.errors += number(count)?;
            } else if let Some(errors) = line.strip_prefix("Socket errors:") {
                // "connect 0, read 0, write 0, timeout 0"
                for part in errors.split(',') {
                    out.errors += number(part.split_whitespace().nth(1).context("bad socket errors line")?)?;
                }
            } else if let Some(value) = line.strip_prefix("50%") {
                out.p50_ms = wrk_duration_ms(value.trim())?;
            } else if let Some(value) = line.strip_prefix("99%") {
                out.p99_ms = wrk_duration_ms(value.trim())?;
            }
        }
        if out.requests < 0.0 || out.req_per_s < 0.0 {
            bail!("no request count or requests/s line");
        }
        Ok(out)
    }
}

/// `245.00us`, `1.20ms`, `2.00s`, `1.00m` → milliseconds.
fn wrk_duration_ms(text: &str) -> Result<f64> {
    // "us" and "ms" before "s", which ends them too.
    let units = [("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 60e3)];
    let (number, factor) = units
        .iter()
        .find_map(|(unit, factor)| Some((text.strip_suffix(unit)?, factor)))
        .with_context(|| format!("no unit in {text:?}"))?;
    Ok(number.parse::<f64>().with_context(|| format!("bad number in {text:?}"))? * factor)
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
        let p = Path::new;
        let nginx = nginx_config([8081, 8082], p("/t/nginx"), p("/t/docroot"), p("/t/s.sock"), true);
        assert!(nginx.starts_with("# Written"));
        assert!(nginx.contains("user root root;\n"));
        assert!(nginx.contains("        server unix:/t/s.sock;\n        keepalive 8;\n"));
        assert!(nginx.contains("            fastcgi_keep_conn on;\n"));
        assert!(nginx.contains("        listen 127.0.0.1:8082 http2;\n"));
        assert!(nginx.contains("    fastcgi_temp_path /t/nginx/tmp/fastcgi;\n"));
        assert!(!nginx_config([1, 2], p("/p"), p("/d"), p("/s"), false).contains("user "));
    }

    const WRK: &str = "Running 5s test @ http://127.0.0.1:8080/hello.php
  Latency Distribution
     50%  245.00us
     99%    1.18ms
  152000 requests in 5.00s, 27.26MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
Requests/sec:  30398.93
";

    #[test]
    fn load_tool_outputs() {
        let out = LoadOutput::parse(WRK).unwrap();
        assert_eq!((out.requests, out.req_per_s, out.errors), (152000.0, 30398.93, 3.0));
        assert!((out.p50_ms - 0.245).abs() < 1e-9 && (out.p99_ms - 1.18).abs() < 1e-9);
        let non2xx = WRK
            .replace("Socket errors: connect 0, read 1, write 0, timeout 2", "Non-2xx or 3xx responses: 7");
        assert_eq!(LoadOutput::parse(&non2xx).unwrap().errors, 7.0);
        assert!(LoadOutput::parse("garbage").is_err());
        let h2load = "finished in 5.00s, 24425.40 req/s, 2.03MB/s\n\
                      requests: 122127 total, 122191 started, 122127 done, 122120 succeeded, 7 \
                      failed, 7 errored, 0 timeout\nstatus codes: 122120 2xx, 0 3xx, 0 4xx, 0 5xx\n";
        let out = LoadOutput::parse(h2load).unwrap();
        assert_eq!((out.requests, out.req_per_s, out.errors), (122127.0, 24425.4, 7.0));
        assert!(out.p99_ms.is_nan());
        assert_eq!(wrk_duration_ms("2.00s").unwrap(), 2000.0);
        assert!(wrk_duration_ms("12").is_err());
    }

    #[test]
    fn measuring_a_process() {
        let (value, cost) = measured(std::process::id(), || Ok(7)).unwrap();
        assert_eq!(value, 7);
        assert!(cost.rss_mib > 0.0 && cost.peak_mib > 0.0 && cost.cpu_s >= 0.0);
    }
}
