//! fcgiwrap (Debian package `fcgiwrap`, built on libfcgi) as a test backend: the classic
//! non-multiplexing FastCGI server that runs CGI scripts.
//!
//! Started as `fcgiwrap -f -c 2 -s unix:<tempdir>/fcgiwrap.sock`: [`CHILDREN`] preforked
//! processes, each serving one connection at a time, `-f` so a script's stderr arrives on the
//! FastCGI STDERR stream. Its environment is emptied but for `PATH` (a CGI script's environment
//! is the request's FastCGI params anyway). It runs the file named by `SCRIPT_FILENAME` (or
//! `DOCUMENT_ROOT` + `SCRIPT_NAME`): the scripts of `tests/backends/cgi/`, copied by
//! [`copy_scripts`] and made executable there (fcgiwrap refuses scripts without the execute bit,
//! and a checkout may have lost it).

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::programs::Program;
use crate::service::Service;
use crate::{backends, workspace};

/// Preforked fcgiwrap processes (`-c`): connections served at the same time.
pub const CHILDREN: usize = 2;

/// fcgiwrap (its systemd socket unit, if the package started one, is not used).
pub const PROGRAM: Program = Program::new("fcgiwrap", "XTASK_FCGIWRAP", &["fcgiwrap"]);

/// Copies the CGI scripts into `dir/cgi` and makes them executable; returns that directory.
pub fn copy_scripts(dir: &Path) -> Result<PathBuf> {
    let cgi_dir = dir.join("cgi");
    backends::copy_dir(&workspace::root().join("tests").join("backends").join("cgi"), &cgi_dir)?;
    make_executable(&cgi_dir)?;
    Ok(cgi_dir)
}

/// Starts `binary` with its socket and log in `dir`.
pub fn start(binary: &Path, dir: &Path) -> Result<Service> {
    let socket = dir.join("fcgiwrap.sock");
    let mut url = OsString::from("unix:");
    url.push(&socket);
    let mut cmd = Command::new(binary);
    cmd.arg("-f").arg("-c").arg(CHILDREN.to_string()).arg("-s").arg(url);
    cmd.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
    Service::start("fcgiwrap", &mut cmd, &socket)
}

/// Sets mode 0755 on every regular file directly in `dir`.
fn make_executable(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry.with_context(|| format!("reading {}", dir.display()))?.path();
        if path.is_file() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_become_executable() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("a.sh");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
        make_executable(dir.path()).unwrap();
        assert!(crate::process::is_executable(&script));
    }
}
