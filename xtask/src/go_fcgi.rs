//! Go's net/http/fcgi (Debian package `golang-go`) as a test backend of the real-peer matrix:
//! the server in `tests/backends/go/` (standard library only), built by xtask and started as
//! `fcgi-peer-go <tempdir>/go.sock`.
//!
//! The build is offline and stays inside `target/`: `GOPROXY=off` (there is no module to
//! download), `GOFLAGS=-mod=mod` (no vendor directory), `GOTOOLCHAIN=local`, `CGO_ENABLED=0` (no C
//! compiler needed), `GOCACHE` and `GOPATH` in `target/xtask-go/`, the binary
//! `target/xtask-go/fcgi-peer-go`. `go build` is incremental: a rerun is quick.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::programs::Program;
use crate::service::Service;
use crate::{process, workspace};

/// The Go toolchain.
pub const PROGRAM: Program = Program::new("go", "XTASK_GO", &["golang-go"]);

/// Builds the server with `go` (see the module docs); returns the binary.
pub fn build(go: &Path) -> Result<PathBuf> {
    let source = workspace::root().join("tests").join("backends").join("go");
    let out = workspace::root().join("target").join("xtask-go");
    let binary = out.join("fcgi-peer-go");
    let mut cmd = Command::new(go);
    cmd.arg("build").arg("-o").arg(&binary).arg(".").current_dir(&source);
    cmd.env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", out.join("cache"))
        .env("GOPATH", out.join("gopath"));
    println!("xtask: building the Go net/http/fcgi server ({}) ...", source.display());
    process::run_ok("go build (tests/backends/go)", &mut cmd)
        .with_context(|| format!("building {} with {}", source.display(), go.display()))?;
    Ok(binary)
}

/// Starts the built server with its socket and log in `dir`.
pub fn start(binary: &Path, dir: &Path) -> Result<Service> {
    let socket = dir.join("go.sock");
    Service::start("go net/http/fcgi", Command::new(binary).arg(&socket), &socket)
}
