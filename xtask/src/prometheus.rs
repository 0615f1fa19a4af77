//! Prometheus (Debian package `prometheus`) for the monitoring tests: `promtool check metrics`
//! on every output format of `fcgi status`, and a real Prometheus server, which the tests start
//! themselves on loopback (they need the port of the `fcgi exporter` they start) to scrape it.
//!
//! Which binaries: `$XTASK_PROMETHEUS` / `$XTASK_PROMTOOL` if set, else `prometheus` and
//! `promtool` in `PATH` or `/usr/bin`. If missing and we are root with apt-get, the Debian package
//! is installed (its systemd service is not used: the tests' servers are private).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::{apt, process};

/// Environment variables naming the binaries to use instead of searching for them.
pub const PROMETHEUS_ENV: &str = "XTASK_PROMETHEUS";
/// See [`PROMETHEUS_ENV`].
pub const PROMTOOL_ENV: &str = "XTASK_PROMTOOL";

/// The two binaries.
#[derive(Clone, Debug)]
pub struct Prometheus {
    /// The server.
    pub server: PathBuf,
    /// promtool.
    pub promtool: PathBuf,
}

/// Finds both binaries, installing the Debian package when one is missing and we are root.
pub fn find_or_install() -> Result<Prometheus> {
    if let Some(found) = find()? {
        return Ok(found);
    }
    if !apt::can_install() {
        bail!(
            "prometheus/promtool not found. The monitoring tests need them: install them (Debian/Ubuntu: \
             `sudo apt-get install prometheus`), point ${PROMETHEUS_ENV} and ${PROMTOOL_ENV} at the \
             binaries, or run as root (with apt-get) to let xtask install them"
        );
    }
    apt::install(&["prometheus"], "prometheus not found")?;
    find()?.context("prometheus still not found after `apt-get install prometheus`")
}

fn find() -> Result<Option<Prometheus>> {
    let server = find_one(PROMETHEUS_ENV, "prometheus")?;
    let promtool = find_one(PROMTOOL_ENV, "promtool")?;
    Ok(server.zip(promtool).map(|(server, promtool)| Prometheus { server, promtool }))
}

fn find_one(env: &str, name: &str) -> Result<Option<PathBuf>> {
    if let Some(path) = process::program_from_env(env)? {
        return Ok(Some(path));
    }
    if let Some(path) = process::find_program(name) {
        return Ok(Some(path));
    }
    let fallback = PathBuf::from("/usr/bin").join(name);
    Ok(process::is_executable(&fallback).then_some(fallback))
}
