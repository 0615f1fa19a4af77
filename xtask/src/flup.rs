//! flup (PyPI, `flup.server.fcgi.WSGIServer`) as a test backend: an independent FastCGI server
//! that really multiplexes, and, configured otherwise, one that answers `CANT_MPX_CONN`.
//!
//! Two instances of the WSGI app `tests/backends/flup_app.py` (its docstring lists the routes),
//! run by the Python of the venv that [`crate::venv`] prepares:
//!
//! | instance      | socket                   | flup                | behaviour                               |
//! |---------------|--------------------------|---------------------|-----------------------------------------|
//! | `multiplexed` | `<tempdir>/flup-mpx.sock` | `multiplexed=True`  | one thread per request, interleaves them |
//! | `single`      | `<tempdir>/flup.sock`     | `multiplexed=False` | `CANT_MPX_CONN` to a 2nd BEGIN_REQUEST   |
//!
//! Both answer FCGI_GET_VALUES with an *empty* FCGI_GET_VALUES_RESULT (flup 1.0.3 looks the
//! requested names, bytes, up in a table keyed by str). Each one's stderr also receives a copy
//! of `wsgi.errors`. SIGTERM stops them.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, ensure};

use crate::service::Service;
use crate::workspace;

/// The two running flup servers.
pub struct Flup {
    /// `multiplexed=True`.
    pub multiplexed: Service,
    /// `multiplexed=False`.
    pub single: Service,
}

impl Flup {
    /// Starts both instances with `python` (the venv's), their sockets and logs in `dir`.
    pub fn start(python: &Path, dir: &Path) -> Result<Flup> {
        let multiplexed = start_one(python, dir, "flup-mpx", "--multiplexed")?;
        Ok(Flup { multiplexed, single: start_one(python, dir, "flup", "--single")? })
    }
}

/// Starts one instance: `<python> flup_app.py --socket <dir>/<stem>.sock <mode>`.
fn start_one(python: &Path, dir: &Path, stem: &str, mode: &str) -> Result<Service> {
    let app = workspace::root().join("tests").join("backends").join("flup_app.py");
    ensure!(app.is_file(), "the flup test app {} is missing", app.display());
    let socket = dir.join(format!("{stem}.sock"));
    let mut cmd = Command::new(python);
    cmd.arg(app).arg("--socket").arg(&socket).arg(mode);
    // Log lines as they happen, and no __pycache__ written into the repository.
    cmd.env("PYTHONUNBUFFERED", "1").env("PYTHONDONTWRITEBYTECODE", "1");
    Service::start(&format!("flup ({stem})"), &mut cmd, &socket)
}
