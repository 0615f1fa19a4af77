//! uWSGI (Debian packages `uwsgi-core` and `uwsgi-plugin-python3`) as a test backend of the
//! real-peer matrix: a WSGI application served over FastCGI, the server that closes every
//! connection after END_REQUEST although KEEP_CONN was set.
//!
//! Started as `uwsgi --plugin python3 --fastcgi-socket <tempdir>/uwsgi.sock --wsgi-file
//! tests/backends/uwsgi_app.py` with a master and [`PROCESSES`] workers (the app's docstring
//! lists its routes); `--die-on-term` so that SIGTERM stops it.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::programs::Program;
use crate::service::Service;
use crate::workspace;

/// Worker processes.
pub const PROCESSES: usize = 4;

/// Where Debian's uWSGI keeps its plugins.
const PLUGIN_DIR: &str = "/usr/lib/uwsgi/plugins";

/// The uWSGI binary and its Python 3 plugin.
pub const PROGRAM: Program = Program::new("uwsgi", "XTASK_UWSGI", &["uwsgi-core", "uwsgi-plugin-python3"])
    .needing("its python3 plugin", |_| Path::new(PLUGIN_DIR).join("python3_plugin.so").exists());

/// Starts uWSGI with its socket and log in `dir`.
pub fn start(binary: &Path, dir: &Path) -> Result<Service> {
    let app = workspace::root().join("tests").join("backends").join("uwsgi_app.py");
    let socket = dir.join("uwsgi.sock");
    let mut cmd = Command::new(binary);
    cmd.args(["--plugin-dir", PLUGIN_DIR, "--plugin", "python3", "--fastcgi-socket"])
        .arg(&socket)
        .args(["--chmod-socket=666", "--wsgi-file"])
        .arg(&app)
        .args(["--master", "--processes", &PROCESSES.to_string(), "--die-on-term", "--need-app"])
        .args(["--disable-logging", "--ignore-sigpipe", "--ignore-write-errors"]);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    Service::start("uwsgi", &mut cmd, &socket)
}
