//! lighttpd 1.4 (Debian package `lighttpd`) in `"mode" => "authorizer"` in front of fcgiwrap,
//! the reference web server for the Authorizer role: the test `fcgi-cli/tests/it/roles.rs` asks
//! it and `fcgi --role authorizer` the same questions and compares the answers.
//!
//! Configuration (`<tempdir>/lighttpd.conf`): HTTP on the unix socket `<tempdir>/lighttpd.sock`;
//! every path goes first to fcgiwrap as an Authorizer (fcgiwrap runs the script the path
//! names, `tests/backends/cgi/authorizer.sh`); an authorized request is then served by mod_cgi,
//! which runs the same script as a plain CGI program with the variables lighttpd passed on.
//! Started as `lighttpd -D -f <config>` (foreground; SIGTERM stops it). The package's own
//! service, if it started one, is not used.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::programs::Program;
use crate::service::Service;

/// lighttpd.
pub const PROGRAM: Program = Program::new("lighttpd", "XTASK_LIGHTTPD", &["lighttpd"]);

/// Starts lighttpd in front of the fcgiwrap at `fcgiwrap_socket` serving `cgi_dir`, its files in
/// `dir`.
pub fn start(binary: &Path, dir: &Path, fcgiwrap_socket: &Path, cgi_dir: &Path) -> Result<Service> {
    let socket = dir.join("lighttpd.sock");
    let config = dir.join("lighttpd.conf");
    let errors = dir.join("lighttpd-error.log");
    let text = format!(
        "server.modules = (\"mod_fastcgi\", \"mod_cgi\")\n\
         server.document-root = {root}\n\
         server.bind = {socket}\n\
         server.errorlog = {errors}\n\
         cgi.assign = (\".sh\" => \"\")\n\
         fastcgi.server = ( \"/\" => (( \"socket\" => {fcgiwrap}, \"check-local\" => \"disable\",\n\
         \x20   \"mode\" => \"authorizer\", \"docroot\" => {root} )) )\n",
        root = quoted(cgi_dir)?,
        socket = quoted(&socket)?,
        errors = quoted(&errors)?,
        fcgiwrap = quoted(fcgiwrap_socket)?,
    );
    fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    let mut cmd = Command::new(binary);
    cmd.arg("-D").arg("-f").arg(&config);
    Service::start_with("lighttpd", &mut cmd, &socket, Some(&errors), || true)
}

/// `"path"` for lighttpd's configuration (UTF-8, no quote or backslash in it).
fn quoted(path: &Path) -> Result<String> {
    let text = path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))?;
    if text.contains(['"', '\\']) {
        bail!("{text} holds a quote or a backslash, which lighttpd's configuration would misread");
    }
    Ok(format!("\"{text}\""))
}
