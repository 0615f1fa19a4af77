//! Installing Debian packages for the test backends when they are missing.
//!
//! xtask installs a missing backend itself only when it runs as root and `apt-get` exists (a CI
//! machine, a container); otherwise the caller fails with instructions naming the package.
//! `apt-get update` runs at most once per xtask run, before the first install.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, ensure};

use crate::process;

static UPDATED: AtomicBool = AtomicBool::new(false);

/// Whether xtask runs with effective uid 0.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether [`install`] can work here: root, with `apt-get` in `PATH`.
pub fn can_install() -> bool {
    is_root() && process::find_program("apt-get").is_some()
}

/// Installs Debian `packages` with `apt-get install -y` (after one `apt-get update` per run).
/// `why` says what needs them, for messages.
pub fn install(packages: &[&str], why: &str) -> Result<()> {
    let list = packages.join(" ");
    ensure!(
        can_install(),
        "{why}: install the Debian package(s) {list} (as root, with apt-get, xtask would)"
    );
    println!("xtask: {why}: installing the Debian package(s) {list} ...");
    if !UPDATED.swap(true, Ordering::SeqCst) {
        process::run_ok("apt-get update", Command::new("apt-get").arg("update"))?;
    }
    let mut install = Command::new("apt-get");
    install.args(["install", "-y"]).args(packages).env("DEBIAN_FRONTEND", "noninteractive");
    process::run_ok(&format!("apt-get install {list}"), &mut install)
}
