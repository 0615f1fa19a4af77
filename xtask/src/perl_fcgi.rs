//! Perl's FCGI module (libfcgi, Debian package `libfcgi-perl`) under spawn-fcgi (package
//! `spawn-fcgi`) as a test backend of the real-peer matrix: `tests/backends/perl/peer.pl`, which
//! answers all three roles.
//!
//! Started as `spawn-fcgi -n -s <tempdir>/perl.sock -M 0666 -- perl peer.pl`: spawn-fcgi binds
//! the socket and execs Perl with it as file descriptor 0 (`-n`: in the foreground, so that
//! SIGTERM to the process group stops it); the script forks its own workers (its docstring).

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Result;

use crate::programs::Program;
use crate::service::Service;
use crate::workspace;

const PERL: &str = "/usr/bin/perl";

/// spawn-fcgi, and Perl's FCGI module beside it.
pub const PROGRAM: Program = Program::new("spawn-fcgi", "XTASK_SPAWN_FCGI", &["spawn-fcgi", "libfcgi-perl"])
    .needing("Perl's FCGI module", |_| perl_has_fcgi());

/// Whether `perl -MFCGI -e 1` succeeds.
fn perl_has_fcgi() -> bool {
    let mut check = Command::new(PERL);
    check.args(["-MFCGI", "-e", "1"]).stdout(Stdio::null()).stderr(Stdio::null());
    check.status().is_ok_and(|status| status.success())
}

/// Starts the Perl server under `spawn_fcgi` with its socket and log in `dir`.
pub fn start(spawn_fcgi: &Path, dir: &Path) -> Result<Service> {
    let script = workspace::root().join("tests").join("backends").join("perl").join("peer.pl");
    let socket = dir.join("perl.sock");
    let mut cmd = Command::new(spawn_fcgi);
    cmd.arg("-n").arg("-s").arg(&socket).args(["-M", "0666", "--", PERL]).arg(&script);
    Service::start("perl FCGI (spawn-fcgi)", &mut cmd, &socket)
}
