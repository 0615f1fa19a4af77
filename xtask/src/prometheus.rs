//! Prometheus (Debian package `prometheus`) for the monitoring tests: `promtool check metrics`
//! on every output format of `fcgi status`, and a real Prometheus server, which the tests start
//! themselves on loopback (they need the port of the `fcgi exporter` they start) to scrape it.
//! The package's own systemd service is not used.

use std::path::PathBuf;

use anyhow::Result;

use crate::programs::Program;

const SERVER: Program = Program::new("prometheus", "XTASK_PROMETHEUS", &["prometheus"]);
const PROMTOOL: Program = Program::new("promtool", "XTASK_PROMTOOL", &["prometheus"]);

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
    Ok(Prometheus { server: SERVER.find_or_install()?, promtool: PROMTOOL.find_or_install()? })
}
