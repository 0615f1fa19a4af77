//! php-cgi in FastCGI mode (`php-cgi -b`, Debian package `php-cgi`) as a test backend of the
//! real-peer matrix: the same docroot as php-fpm (`tests/php/`), its own process manager
//! ([`CHILDREN`] children of one parent, `PHP_FCGI_CHILDREN`).
//!
//! `PHP_FCGI_MAX_REQUESTS=0`: a child serves any number of requests (the default, 500, makes
//! each child exit after that many, and a connection it held fails).

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::programs::Program;
use crate::service::Service;

/// Children serving requests (`PHP_FCGI_CHILDREN`).
pub const CHILDREN: usize = 4;

/// php-cgi.
pub const PROGRAM: Program = Program::new("php-cgi", "XTASK_PHP_CGI", &["php-cgi"]);

/// Starts php-cgi with its socket and log in `dir`.
pub fn start(binary: &Path, dir: &Path) -> Result<Service> {
    let socket = dir.join("php-cgi.sock");
    let mut cmd = Command::new(binary);
    cmd.arg("-b").arg(&socket);
    cmd.env("PHP_FCGI_CHILDREN", CHILDREN.to_string()).env("PHP_FCGI_MAX_REQUESTS", "0");
    Service::start("php-cgi", &mut cmd, &socket)
}
