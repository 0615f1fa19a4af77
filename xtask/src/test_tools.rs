//! The client programs the tests run against `fcgi serve` and `fcgi exporter` (curl, openssl,
//! h2load, Chromium): found in `PATH`, or installed from Debian packages when missing and we are
//! root, as the backends' own programs are ([`crate::peer_install`]). Without them those tests
//! would fail on a fresh machine although `cargo xtask test` promises to set everything up. The
//! tests run them by name from `PATH`.

use anyhow::Result;

use crate::peer_install::Program;

const TOOLS: &[Program] = &[
    Program { name: "curl", env: "XTASK_CURL", dirs: &["/usr/bin"], packages: &["curl"], needs: "" },
    Program { name: "openssl", env: "XTASK_OPENSSL", dirs: &["/usr/bin"], packages: &["openssl"], needs: "" },
    Program {
        name: "h2load",
        env: "XTASK_H2LOAD",
        dirs: &["/usr/bin"],
        packages: &["nghttp2-client"],
        needs: "",
    },
    Program {
        name: "chromium",
        env: "XTASK_CHROMIUM",
        dirs: &["/usr/bin"],
        packages: &["chromium"],
        needs: "",
    },
];

/// Makes sure every tool is there (installing what is missing, or failing with what to install).
pub fn ensure() -> Result<()> {
    for tool in TOOLS {
        tool.find_or_install()?;
    }
    Ok(())
}
