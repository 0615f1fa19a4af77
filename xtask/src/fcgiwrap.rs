//! fcgiwrap (Debian package `fcgiwrap`, built on libfcgi) as a test backend: the classic
//! non-multiplexing FastCGI server that runs CGI scripts.
//!
//! Started as `fcgiwrap -f -c 2 -s unix:<tempdir>/fcgiwrap.sock`: [`CHILDREN`] preforked
//! processes, each serving one connection at a time, `-f` so a script's stderr arrives on the
//! FastCGI STDERR stream. Its environment is emptied but for `PATH` (a CGI script's environment
//! is the request's FastCGI params anyway). Output goes to `<tempdir>/fcgiwrap.log`.
//!
//! The scripts are `tests/backends/cgi/`, copied to `<tempdir>/cgi` and made executable there
//! (fcgiwrap refuses scripts without the execute bit, and a checkout may have lost it). fcgiwrap
//! runs the file named by `SCRIPT_FILENAME` (or `DOCUMENT_ROOT` + `SCRIPT_NAME`).
//!
//! Which binary: `$XTASK_FCGIWRAP` if set, else `fcgiwrap` in `PATH`, `/usr/sbin`,
//! `/usr/local/sbin` or `/sbin`. If none is found and we are root with apt-get, the Debian package
//! is installed (its systemd socket unit is not started: our socket is private).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::service::Service;
use crate::{apt, backends, process, workspace};

/// Preforked fcgiwrap processes (`-c`): connections served at the same time.
pub const CHILDREN: usize = 2;

/// Environment variable naming the fcgiwrap binary to use instead of searching for one.
pub const BINARY_ENV: &str = "XTASK_FCGIWRAP";

/// A running fcgiwrap and the directory of its CGI scripts.
pub struct Fcgiwrap {
    /// The fcgiwrap process group (the parent and its preforked children).
    pub service: Service,
    /// Absolute path of the CGI script directory (holding `hello.sh`).
    pub cgi_dir: PathBuf,
}

impl Fcgiwrap {
    /// Copies the CGI scripts into `dir/cgi`, starts `binary` with its socket and log in `dir`,
    /// and waits until it accepts connections.
    pub fn start(binary: &Path, dir: &Path) -> Result<Fcgiwrap> {
        let source = workspace::root().join("tests").join("backends").join("cgi");
        let cgi_dir = dir.join("cgi");
        backends::copy_dir(&source, &cgi_dir)
            .with_context(|| format!("copying {} to {}", source.display(), cgi_dir.display()))?;
        make_executable(&cgi_dir)?;

        let socket = dir.join("fcgiwrap.sock");
        let log = dir.join("fcgiwrap.log");
        let mut cmd = Command::new(binary);
        cmd.arg("-f").arg("-c").arg(CHILDREN.to_string()).arg("-s").arg(socket_url(&socket)?);
        cmd.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
        let service = Service::start("fcgiwrap", &mut cmd, &socket, &log)?;
        Ok(Fcgiwrap { service, cgi_dir })
    }
}

/// `unix:<path>` for fcgiwrap's `-s`; the path must be UTF-8 to go into that string.
fn socket_url(socket: &Path) -> Result<String> {
    let path = socket.to_str().with_context(|| format!("socket path {} is not UTF-8", socket.display()))?;
    Ok(format!("unix:{path}"))
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

/// Finds fcgiwrap, installing the Debian package when it is missing and we are root.
pub fn find_or_install() -> Result<PathBuf> {
    if let Some(binary) = find()? {
        return Ok(binary);
    }
    if !apt::can_install() {
        bail!(
            "fcgiwrap not found (looked in PATH, /usr/sbin, /usr/local/sbin, /sbin). The tests need it: \
             install it (Debian/Ubuntu: `sudo apt-get install fcgiwrap`), or point ${BINARY_ENV} at the \
             binary, or run as root (with apt-get) to let xtask install it"
        );
    }
    apt::install(&["fcgiwrap"], "fcgiwrap not found")?;
    find()?.context("fcgiwrap still not found after `apt-get install fcgiwrap`")
}

/// Finds the fcgiwrap binary (see the module docs for the search order).
pub fn find() -> Result<Option<PathBuf>> {
    if let Some(path) = process::program_from_env(BINARY_ENV)? {
        return Ok(Some(path));
    }
    if let Some(path) = process::find_program("fcgiwrap") {
        return Ok(Some(path));
    }
    Ok(["/usr/sbin", "/usr/local/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join("fcgiwrap"))
        .find(|path| process::is_executable(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_url_is_prefixed() {
        assert_eq!(socket_url(Path::new("/tmp/x/fcgiwrap.sock")).unwrap(), "unix:/tmp/x/fcgiwrap.sock");
    }

    #[test]
    fn scripts_become_executable() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("a.sh");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
        make_executable(dir.path()).unwrap();
        assert!(process::is_executable(&script));
    }
}
