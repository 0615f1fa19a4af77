//! `cargo xtask demo`: the README's first command. Starts the throw-away test backends
//! (installing them when missing and allowed, like `test`) and shows requests to php-fpm, record
//! by record.
//!
//! Until the `fcgi` command-line tool lands, the requests are made by
//! `tests/examples/demo.rs` through the codec and the synchronous test client.

use std::process::ExitCode;

use anyhow::Result;

use crate::backends::Backends;
use crate::process::{self, Group, Signal};
use crate::workspace;

/// Starts the backends, runs the demo against them, stops them.
pub fn run() -> Result<ExitCode> {
    let backends = Backends::start()?;
    let args = ["run", "--quiet", "-p", "fcgi-tests", "--example", "demo"];
    println!("xtask: running {}\n", workspace::display("cargo", &args));
    let mut cmd = workspace::cargo();
    cmd.args(args).envs(backends.env());
    let status = Group::spawn("demo", &mut cmd, Signal::Int)?.wait()?;
    drop(backends);
    if !status.success() {
        eprintln!("xtask: demo failed ({})", process::describe(status));
    }
    Ok(process::exit_code(status))
}
