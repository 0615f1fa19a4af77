//! Installing Debian packages for the test backends when they are missing.
//!
//! xtask installs a missing backend itself only when it runs as root and `apt-get` exists (a CI
//! machine, a container); otherwise the caller fails with instructions naming the package.
//! `apt-get update` runs at most once per xtask run, before the first install.

use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use crate::process;

static UPDATED: AtomicBool = AtomicBool::new(false);

/// Whether xtask runs with effective uid 0 (read from `/proc/self/status`).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .is_some_and(|euid| euid == "0")
    })
}

/// Whether [`install`] can work here: root, with `apt-get` in `PATH`.
pub fn can_install() -> bool {
    is_root() && process::find_program("apt-get").is_some()
}

/// Installs Debian `packages` with `apt-get install -y` (after one `apt-get update` per run).
/// `why` says what needs them, for messages. Fails if not root or without apt-get.
pub fn install(packages: &[&str], why: &str) -> Result<()> {
    let list = packages.join(" ");
    if !is_root() {
        bail!("{why}: install the Debian package(s) {list} (or run xtask as root to let it install them)");
    }
    if process::find_program("apt-get").is_none() {
        bail!("{why}: apt-get is unavailable to install {list}; install the equivalent package(s) by hand");
    }
    println!("xtask: {why}: installing the Debian package(s) {list} ...");
    if !UPDATED.swap(true, Ordering::SeqCst) {
        process::run_ok("apt-get update", Command::new("apt-get").arg("update"))?;
    }
    process::run_ok(
        &format!("apt-get install {list}"),
        Command::new("apt-get")
            .args(["install", "-y"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
