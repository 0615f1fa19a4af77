//! Perl's FCGI module (libfcgi, Debian package `libfcgi-perl`) under spawn-fcgi (package
//! `spawn-fcgi`) as a test backend of the real-peer matrix: `tests/backends/perl/peer.pl`, which
//! answers all three roles.
//!
//! Started as `spawn-fcgi -n -s <tempdir>/perl.sock -M 0666 -- perl peer.pl`: spawn-fcgi binds
//! the socket and execs Perl with it as file descriptor 0 (`-n`: in the foreground, so that
//! SIGTERM to the process group stops it); the script forks its own workers (its docstring).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::peer_install::Program;
use crate::service::Service;
use crate::workspace;

/// spawn-fcgi, and Perl's FCGI module beside it.
pub const PROGRAM: Program = Program {
    name: "spawn-fcgi",
    env: "XTASK_SPAWN_FCGI",
    dirs: &["/usr/bin", "/usr/local/bin"],
    packages: &["spawn-fcgi", "libfcgi-perl"],
    needs: "",
};

/// spawn-fcgi's path, after making sure Perl can load FCGI (installing both when root).
pub fn find_or_install() -> Result<std::path::PathBuf> {
    let binary = PROGRAM.find_or_install()?;
    if has_fcgi_module() {
        return Ok(binary);
    }
    if !crate::apt::can_install() {
        anyhow::bail!(
            "Perl cannot load FCGI: install it (Debian/Ubuntu: `sudo apt-get install libfcgi-perl`), \
             or run as root (with apt-get) to let xtask install it"
        );
    }
    crate::apt::install(&["libfcgi-perl"], "Perl's FCGI module not found")?;
    if !has_fcgi_module() {
        anyhow::bail!("Perl still cannot load FCGI after `apt-get install libfcgi-perl`");
    }
    Ok(binary)
}

/// Whether `perl -MFCGI -e 1` succeeds.
fn has_fcgi_module() -> bool {
    Command::new("/usr/bin/perl")
        .args(["-MFCGI", "-e", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Starts the Perl server under `spawn_fcgi` with its socket and log in `dir`.
pub fn start(spawn_fcgi: &Path, dir: &Path) -> Result<Service> {
    let script = workspace::root().join("tests").join("backends").join("perl").join("peer.pl");
    let socket = dir.join("perl.sock");
    let log = dir.join("perl.log");
    let mut cmd = Command::new(spawn_fcgi);
    cmd.arg("-n").arg("-s").arg(&socket).args(["-M", "0666", "--", "/usr/bin/perl"]).arg(&script);
    Service::start("perl FCGI (spawn-fcgi)", &mut cmd, &socket, &log)
        .with_context(|| format!("starting Perl FCGI on {}", socket.display()))
}
