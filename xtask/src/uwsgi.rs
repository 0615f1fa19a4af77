//! uWSGI (Debian packages `uwsgi-core` and `uwsgi-plugin-python3`) as a test backend of the
//! real-peer matrix: a WSGI application served over FastCGI, the server that closes every
//! connection after END_REQUEST although KEEP_CONN was set (issue #13, item 2).
//!
//! Started as `uwsgi --plugin python3 --fastcgi-socket <tempdir>/uwsgi.sock --wsgi-file
//! tests/backends/uwsgi_app.py` with a master and [`PROCESSES`] workers (the app's docstring
//! lists its routes); `--die-on-term` so that SIGTERM stops it, output in `<tempdir>/uwsgi.log`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::peer_install::Program;
use crate::service::Service;
use crate::workspace;

/// Worker processes.
pub const PROCESSES: usize = 4;

/// Where Debian's uWSGI keeps its plugins.
const PLUGIN_DIR: &str = "/usr/lib/uwsgi/plugins";

/// The uWSGI binary and its Python 3 plugin.
pub const PROGRAM: Program = Program {
    name: "uwsgi",
    env: "XTASK_UWSGI",
    dirs: &["/usr/bin", "/usr/local/bin"],
    packages: &["uwsgi-core", "uwsgi-plugin-python3"],
    needs: "/usr/lib/uwsgi/plugins/python3_plugin.so",
};

/// Starts uWSGI with its socket and log in `dir`.
pub fn start(binary: &Path, dir: &Path) -> Result<Service> {
    let app = workspace::root().join("tests").join("backends").join("uwsgi_app.py");
    let socket = dir.join("uwsgi.sock");
    let log = dir.join("uwsgi.log");
    let mut cmd = Command::new(binary);
    cmd.args(["--plugin-dir", PLUGIN_DIR, "--plugin", "python3", "--fastcgi-socket"])
        .arg(&socket)
        .args(["--chmod-socket=666", "--wsgi-file"])
        .arg(&app)
        .args(["--master", "--processes", &PROCESSES.to_string(), "--die-on-term", "--need-app"])
        .args(["--disable-logging", "--ignore-sigpipe", "--ignore-write-errors"]);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    Service::start("uwsgi", &mut cmd, &socket, &log)
        .with_context(|| format!("starting uWSGI on {}", socket.display()))
}
