//! The backends that only the real-peer matrix uses (`fcgi-cli/tests/it/peer_matrix.rs`,
//! docs/PEERS.md), started by [`crate::backends::Backends::start`] after the others, each from
//! its Debian packages and with its socket and log in the backends' temp dir:
//!
//! | peer                       | serves                                                        |
//! |----------------------------|---------------------------------------------------------------|
//! | uWSGI `--fastcgi-socket`   | `tests/backends/uwsgi_app.py` (WSGI)                          |
//! | Go net/http/fcgi           | `tests/backends/go/` (built by xtask)                         |
//! | Perl FCGI under spawn-fcgi | `tests/backends/perl/peer.pl`, all three roles                |
//! | `php-cgi -b`               | the php-fpm docroot (`tests/php/`)                            |
//! | lighttpd (authorizer mode) | HTTP in front of fcgiwrap: the reference Authorizer reading   |

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::backends::backend_env;
use crate::programs::Program;
use crate::service::Service;
use crate::{process, workspace};

/// Installs what is missing, builds the Go server, starts every peer with its socket and log in
/// `dir` (lighttpd in front of the fcgiwrap on `fcgiwrap_socket`, running `cgi_dir`'s scripts).
/// Each comes with the variable naming its socket. Those started are stopped again (dropped) when
/// a later one fails.
pub fn start(dir: &Path, fcgiwrap_socket: &Path, cgi_dir: &Path) -> Result<Vec<(&'static str, Service)>> {
    let uwsgi = UWSGI.find_or_install()?;
    let go = GO.find_or_install()?;
    let spawn_fcgi = SPAWN_FCGI.find_or_install()?;
    let php_cgi = PHP_CGI.find_or_install()?;
    let lighttpd = LIGHTTPD.find_or_install()?;
    let go_server = build_go_server(&go)?;
    Ok(vec![
        (backend_env::UWSGI_SOCKET, start_uwsgi(&uwsgi, dir)?),
        (backend_env::GO_SOCKET, start_go_server(&go_server, dir)?),
        (backend_env::PERL_SOCKET, start_perl(&spawn_fcgi, dir)?),
        (backend_env::PHP_CGI_SOCKET, start_php_cgi(&php_cgi, dir)?),
        (backend_env::LIGHTTPD_AUTH_SOCKET, start_lighttpd(&lighttpd, dir, fcgiwrap_socket, cgi_dir)?),
    ])
}

/// Where Debian's uWSGI keeps its plugins.
const UWSGI_PLUGIN_DIR: &str = "/usr/lib/uwsgi/plugins";

/// The uWSGI binary and its Python 3 plugin.
const UWSGI: Program = Program::new("uwsgi", "XTASK_UWSGI", &["uwsgi-core", "uwsgi-plugin-python3"])
    .needing("its python3 plugin", |_| Path::new(UWSGI_PLUGIN_DIR).join("python3_plugin.so").exists());

/// uWSGI worker processes.
const UWSGI_PROCESSES: usize = 4;

/// uWSGI: a WSGI application served over FastCGI, the server that closes every connection after
/// END_REQUEST although KEEP_CONN was set. A master and [`UWSGI_PROCESSES`] workers;
/// `--die-on-term` so that SIGTERM stops it.
fn start_uwsgi(binary: &Path, dir: &Path) -> Result<Service> {
    let app = workspace::root().join("tests").join("backends").join("uwsgi_app.py");
    let socket = dir.join("uwsgi.sock");
    let mut cmd = Command::new(binary);
    cmd.args(["--plugin-dir", UWSGI_PLUGIN_DIR, "--plugin", "python3", "--fastcgi-socket"])
        .arg(&socket)
        .args(["--chmod-socket=666", "--wsgi-file"])
        .arg(&app)
        .args(["--master", "--processes", &UWSGI_PROCESSES.to_string(), "--die-on-term", "--need-app"])
        .args(["--disable-logging", "--ignore-sigpipe", "--ignore-write-errors"]);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    Service::start("uwsgi", &mut cmd, &socket)
}

const GO: Program = Program::new("go", "XTASK_GO", &["golang-go"]);

/// Builds the Go net/http/fcgi server of `tests/backends/go/` (standard library only) into
/// `target/xtask-go/`, offline: `GOPROXY=off` (there is no module to download), `GOFLAGS=-mod=mod`
/// (no vendor directory), `GOTOOLCHAIN=local`, `CGO_ENABLED=0` (no C compiler needed), `GOCACHE`
/// and `GOPATH` in `target/xtask-go/`. `go build` is incremental: a rerun is quick.
fn build_go_server(go: &Path) -> Result<PathBuf> {
    let source = workspace::root().join("tests").join("backends").join("go");
    let out = workspace::root().join("target").join("xtask-go");
    let binary = out.join("fcgi-peer-go");
    let mut cmd = Command::new(go);
    cmd.arg("build").arg("-o").arg(&binary).arg(".").current_dir(&source);
    cmd.env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", out.join("cache"))
        .env("GOPATH", out.join("gopath"));
    println!("xtask: building the Go net/http/fcgi server ({}) ...", source.display());
    process::run_ok("go build (tests/backends/go)", &mut cmd)
        .with_context(|| format!("building {} with {}", source.display(), go.display()))?;
    Ok(binary)
}

fn start_go_server(binary: &Path, dir: &Path) -> Result<Service> {
    let socket = dir.join("go.sock");
    Service::start("go net/http/fcgi", Command::new(binary).arg(&socket), &socket)
}

const PERL: &str = "/usr/bin/perl";

/// spawn-fcgi, and Perl's FCGI module (libfcgi) beside it.
const SPAWN_FCGI: Program = Program::new("spawn-fcgi", "XTASK_SPAWN_FCGI", &["spawn-fcgi", "libfcgi-perl"])
    .needing("Perl's FCGI module", |_| perl_has_fcgi());

fn perl_has_fcgi() -> bool {
    let mut check = Command::new(PERL);
    check.args(["-MFCGI", "-e", "1"]).stdout(Stdio::null()).stderr(Stdio::null());
    check.status().is_ok_and(|status| status.success())
}

/// `spawn-fcgi -n -s <dir>/perl.sock -M 0666 -- perl peer.pl`: spawn-fcgi binds the socket and
/// execs Perl with it as file descriptor 0 (`-n`: in the foreground, so that SIGTERM to the
/// process group stops it); the script forks its own workers (its docstring).
fn start_perl(spawn_fcgi: &Path, dir: &Path) -> Result<Service> {
    let script = workspace::root().join("tests").join("backends").join("perl").join("peer.pl");
    let socket = dir.join("perl.sock");
    let mut cmd = Command::new(spawn_fcgi);
    cmd.arg("-n").arg("-s").arg(&socket).args(["-M", "0666", "--", PERL]).arg(&script);
    Service::start("perl FCGI (spawn-fcgi)", &mut cmd, &socket)
}

const PHP_CGI: Program = Program::new("php-cgi", "XTASK_PHP_CGI", &["php-cgi"]);

/// php-cgi's children serving requests (`PHP_FCGI_CHILDREN`).
const PHP_CGI_CHILDREN: usize = 4;

/// `php-cgi -b` with its own process manager: [`PHP_CGI_CHILDREN`] children of one parent.
/// `PHP_FCGI_MAX_REQUESTS=0`: a child serves any number of requests (by default each child exits
/// after a few hundred, and a connection it held fails).
fn start_php_cgi(binary: &Path, dir: &Path) -> Result<Service> {
    let socket = dir.join("php-cgi.sock");
    let mut cmd = Command::new(binary);
    cmd.arg("-b").arg(&socket);
    cmd.env("PHP_FCGI_CHILDREN", PHP_CGI_CHILDREN.to_string()).env("PHP_FCGI_MAX_REQUESTS", "0");
    Service::start("php-cgi", &mut cmd, &socket)
}

/// lighttpd 1.4 (the package's own service, if it started one, is not used).
const LIGHTTPD: Program = Program::new("lighttpd", "XTASK_LIGHTTPD", &["lighttpd"]);

/// lighttpd in `"mode" => "authorizer"` in front of fcgiwrap, the reference web server for the
/// Authorizer role: `fcgi-cli/tests/it/roles.rs` asks it and `fcgi --role authorizer` the same
/// questions and compares the answers. HTTP on `<dir>/lighttpd.sock`; every path goes first to
/// fcgiwrap as an Authorizer (running the script the path names, `authorizer.sh`); an authorized
/// request is then served by mod_cgi, which runs the same script as a plain CGI program with the
/// variables lighttpd passed on. `-D`: in the foreground, SIGTERM stops it.
fn start_lighttpd(binary: &Path, dir: &Path, fcgiwrap_socket: &Path, cgi_dir: &Path) -> Result<Service> {
    let socket = dir.join("lighttpd.sock");
    let config = dir.join("lighttpd.conf");
    let errors = dir.join("lighttpd-error.log");
    let text = format!(
        "server.modules = (\"mod_fastcgi\", \"mod_cgi\")\n\
         server.document-root = {root}\n\
         server.bind = {socket}\n\
         server.errorlog = {errors}\n\
         cgi.assign = (\".sh\" => \"\")\n\
         fastcgi.server = ( \"/\" => (( \"socket\" => {fcgiwrap}, \"check-local\" => \"disable\",\n\
         \x20   \"mode\" => \"authorizer\", \"docroot\" => {root} )) )\n",
        root = lighttpd_quoted(cgi_dir)?,
        socket = lighttpd_quoted(&socket)?,
        errors = lighttpd_quoted(&errors)?,
        fcgiwrap = lighttpd_quoted(fcgiwrap_socket)?,
    );
    fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    let mut cmd = Command::new(binary);
    cmd.arg("-D").arg("-f").arg(&config);
    Service::start_with("lighttpd", &mut cmd, &socket, Some(&errors), || true)
}

/// `"path"` for lighttpd's configuration (UTF-8, no quote or backslash in it).
fn lighttpd_quoted(path: &Path) -> Result<String> {
    let text = path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))?;
    if text.contains(['"', '\\']) {
        bail!("{text} holds a quote or a backslash, which lighttpd's configuration would misread");
    }
    Ok(format!("\"{text}\""))
}
