//! The client programs the tests run against `fcgi serve` and `fcgi exporter` (curl, openssl,
//! h2load, Chromium), found or installed as the backends' own programs are: without them those
//! tests would fail on a fresh machine although `cargo xtask test` promises to set everything up.
//! The tests run them by name from `PATH`.

use anyhow::Result;

use crate::programs::Program;

const TOOLS: [Program; 4] = [
    Program::new("curl", "XTASK_CURL", &["curl"]),
    Program::new("openssl", "XTASK_OPENSSL", &["openssl"]),
    Program::new("h2load", "XTASK_H2LOAD", &["nghttp2-client"]),
    Program::new("chromium", "XTASK_CHROMIUM", &["chromium"]),
];

/// Makes sure every tool is there (installing what is missing, or failing with what to install).
pub fn ensure() -> Result<()> {
    TOOLS.iter().try_for_each(|tool| tool.find_or_install().map(drop))
}
