//! `cargo xtask ci`: the checks `.ci/run` performs, minus installing system packages:
//! `cargo fmt --all --check`, `cargo clippy --workspace --all-targets [--all-features] -- -D warnings`, then
//! `cargo xtask test`. Stops at the first failing step.

use std::process::ExitCode;

use anyhow::Result;

use crate::{process, test_cmd, workspace};

/// Runs the CI sequence.
pub fn run() -> Result<ExitCode> {
    let steps: [&[&str]; 3] = [
        &["fmt", "--all", "--check"],
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
        &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
    ];
    for args in steps {
        let line = workspace::display("cargo", args);
        println!("\n=== xtask ci: {line} ===");
        let status = process::run(&line, workspace::cargo().args(args))?;
        if !status.success() {
            eprintln!("xtask ci: `{line}` failed ({})", process::describe(status));
            return Ok(process::exit_code(status));
        }
    }
    println!("\n=== xtask ci: cargo xtask test ===");
    test_cmd::run(&[])
}
