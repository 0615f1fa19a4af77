//! `cargo xtask test`: start the real backends ([`crate::backends`]), run `cargo test --workspace
//! --all-features` against them, stop them again, exit with cargo test's exit code. Extra
//! arguments (after `--`) go to `cargo test` verbatim: `cargo xtask test -- php_fpm` (a test-name
//! filter) or `cargo xtask test -- -- --nocapture`.
//!
//! The client programs the tests run against `fcgi serve` and `fcgi exporter` ([`TOOLS`], run by
//! name from `PATH`) are found or installed first, as the backends' own programs are: without
//! them those tests would fail on a fresh machine.

use std::process::ExitCode;

use anyhow::Result;

use crate::backends::Backends;
use crate::programs::Program;
use crate::{process, workspace};

/// The client programs the tests run.
const TOOLS: [Program; 4] = [
    Program::new("curl", "XTASK_CURL", &["curl"]),
    Program::new("openssl", "XTASK_OPENSSL", &["openssl"]),
    Program::new("h2load", "XTASK_H2LOAD", &["nghttp2-client"]),
    Program::new("chromium", "XTASK_CHROMIUM", &["chromium"]),
];

/// Runs the workspace tests with backends; returns cargo test's exit code.
pub fn run(extra: &[String]) -> Result<ExitCode> {
    for tool in &TOOLS {
        tool.find_or_install()?;
    }
    let backends = Backends::start()?;
    let mut args = vec!["test".to_owned(), "--workspace".to_owned(), "--all-features".to_owned()];
    args.extend(extra.iter().cloned());
    println!("xtask: running {}", workspace::display("cargo", &args));
    let mut cmd = workspace::cargo();
    cmd.args(&args).envs(backends.env());
    let status = process::run("cargo test", &mut cmd)?;
    let tails = if status.success() { String::new() } else { backends.log_tails() };
    if !tails.is_empty() {
        eprintln!("xtask: backend logs:\n{tails}");
    }
    println!("xtask: stopping the backends");
    drop(backends);
    if status.success() {
        println!("xtask: tests passed");
    } else {
        eprintln!("xtask: cargo test failed ({})", process::describe(status));
    }
    Ok(process::exit_code(status))
}
