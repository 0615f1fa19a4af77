//! The outside programs the sections measure or measure with: found in `PATH` or the sbin
//! directories (where Debian puts haproxy and nginx), installed from their Debian packages when
//! missing and xtask runs as root (see [`crate::apt`]), and their versions for the reports. A
//! tool still missing fails only the sections that need it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::measure::version_line;
use crate::{apt, process};

/// An outside program, the Debian package that ships it, and the arguments printing its version
/// on the first line.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
    pub version_args: &'static [&'static str],
}

// The HTTP → FastCGI gateways measured against (HAProxy, nginx), the HTTP load generator and
// client run through them (wrk, curl), libfcgi's one-shot client (the peer of `fcgi get`), and GNU
// time (`/usr/bin/time`: CPU and peak RSS of a child).
pub const HAPROXY: Tool = Tool { program: "haproxy", package: "haproxy", version_args: &["-v"] };
pub const NGINX: Tool = Tool { program: "nginx", package: "nginx", version_args: &["-v"] };
pub const WRK: Tool = Tool { program: "wrk", package: "wrk", version_args: &["--version"] };
pub const CURL: Tool = Tool { program: "curl", package: "curl", version_args: &["--version"] };
pub const CGI_FCGI: Tool = Tool { program: "cgi-fcgi", package: "libfcgi-bin", version_args: &[] };
pub const GNU_TIME: Tool = Tool { program: "time", package: "time", version_args: &["--version"] };

/// Directories searched besides `PATH`.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"];

impl Tool {
    /// The program's path, installing its package first when it is missing and we may.
    pub fn require(self) -> Result<PathBuf> {
        if let Some(path) = self.find() {
            return Ok(path);
        }
        let why = format!("{} not found", self.program);
        if !apt::can_install() {
            bail!(
                "{why}: the benchmark needs it; install the Debian package {} (or run xtask as root, \
                 with apt-get, to let it install it)",
                self.package
            );
        }
        apt::install(&[self.package], &why)?;
        let (program, package) = (self.program, self.package);
        self.find().with_context(|| format!("{program} still not found after `apt-get install {package}`"))
    }

    /// Where the program is, if anywhere. GNU time is only ever `/usr/bin/time` (a shell's `time`
    /// is a keyword, not this program).
    pub fn find(self) -> Option<PathBuf> {
        if self.program == "time" {
            let path = PathBuf::from("/usr/bin/time");
            return process::is_executable(&path).then_some(path);
        }
        process::find_program(self.program).or_else(|| {
            EXTRA_DIRS
                .iter()
                .map(|dir| PathBuf::from(dir).join(self.program))
                .find(|path| process::is_executable(path))
        })
    }

    /// `name version` for the report, e.g. "haproxy: HAProxy version 2.6.12-1+deb12u4 ...".
    pub fn version(self, path: &Path) -> String {
        let package = format!("(Debian package {} {})", self.package, package_version(self.package));
        if self.version_args.is_empty() {
            return format!("{} {package}", self.program);
        }
        // Debian's GNU time says "time (GNU Time) UNKNOWN": the package version is the real one.
        let line = version_line(path, self.version_args).replace(" UNKNOWN", "");
        // Keep the version, not what follows it: HAProxy's web site, PHP's build date, curl's
        // platform and library list, wrk's event loop and copyright.
        let cuts = [" - https://", " (built:", " (x86_64", " (aarch64", " [", " Copyright"];
        let line = cuts.iter().fold(line.as_str(), |line, cut| line.split(cut).next().unwrap_or(line));
        format!("{} {package}", line.trim())
    }
}

/// The installed version of a Debian package (`dpkg-query`), or "?".
fn package_version(package: &str) -> String {
    let query =
        Command::new("dpkg-query").args(["-W", "-f=${Version}", package]).stdin(Stdio::null()).output();
    let version =
        query.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    version.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).unwrap_or_else(|| "?".into())
}
