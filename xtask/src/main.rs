//! Project automation: `cargo xtask <command>` (alias in `.cargo/config.toml`); each command's
//! module is named after it (`test` is [`test_cmd`]). [`backends`] starts the real FastCGI servers
//! the tests talk to (one module per server, [`service`] for what they share, [`programs`] and
//! [`apt`] to find or install them) and defines the `FCGI_TEST_*` contract through which the tests
//! find them; [`process`] makes sure every child is stopped again, on exit and on Ctrl-C/SIGTERM.
//!
//! Exit codes: the child's (cargo test's) exit code, 1 on an xtask error, 130 when interrupted
//! (after everything started has been stopped).

mod apt;
mod backends;
mod bench;
mod ci;
mod demo;
mod dist;
mod fcgiwrap;
mod flup;
mod fuzz;
mod peers;
mod php_fpm;
mod process;
mod programs;
mod service;
mod test_cmd;
mod venv;
mod workspace;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// fcgi project automation (run as `cargo xtask <command>`).
#[derive(Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the throw-away test backends (installing them if missing, as `test` does) and show
    /// a few requests to php-fpm, every record sent and received.
    Demo,
    /// Start the test backends (php-fpm, flup, fcgiwrap, the real-peer matrix's; installing them
    /// if missing: apt packages when root, flup into target/xtask-venv), run `cargo test
    /// --workspace` against them (they reach the tests through FCGI_TEST_* variables), stop them,
    /// exit with cargo test's exit code.
    Test {
        /// Arguments passed on to `cargo test --workspace`, after `--`
        /// (e.g. `cargo xtask test -- my_filter -- --nocapture`).
        #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
        args: Vec<String>,
    },
    /// Start the test backends, print `export FCGI_TEST_...` lines, and wait until Ctrl-C
    /// (for running single tests by hand).
    #[command(alias = "php-fpm")]
    Backends,
    /// What CI runs, minus package installs: `cargo fmt --all --check`,
    /// `cargo clippy --workspace --all-targets -- -D warnings`, `cargo xtask test`.
    Ci,
    /// Run benchmark sections and update docs/BENCHMARKS.md (sections not run keep their text).
    Bench {
        /// Sections to run (default: all); see --list.
        #[arg(value_name = "SECTION")]
        sections: Vec<String>,
        /// List the sections and exit.
        #[arg(long)]
        list: bool,
    },
    /// Build `fcgi` as it is shipped and benchmarked (profile `dist`; a static PIE on Linux
    /// with glibc) and print its path as the last line.
    Dist,
    /// Run a cargo-fuzz target of fcgi-proto/fuzz on the stable toolchain
    /// (`--sanitizer none`); exit 1 on a finding. Installs cargo-fuzz if missing.
    Fuzz {
        /// Fuzz target (a file stem in fcgi-proto/fuzz/fuzz_targets).
        #[arg(default_value = "decode")]
        target: String,
        /// How long to fuzz, in seconds.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        time: u64,
        /// Extra libFuzzer arguments, after `--` (e.g. `-- -max_len=70000 -jobs=2`).
        #[arg(last = true, value_name = "LIBFUZZER_ARGS")]
        libfuzzer_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(err) if err.is::<process::Interrupted>() => {
            eprintln!("xtask: interrupted; everything it started has been stopped");
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Cmd) -> Result<ExitCode> {
    process::install_interrupt_handler()?;
    match command {
        Cmd::Demo => demo::run(),
        Cmd::Test { args } => test_cmd::run(&args),
        Cmd::Backends => backends::serve(),
        Cmd::Ci => ci::run(),
        Cmd::Bench { sections, list } => bench::run(&sections, list),
        Cmd::Dist => dist::run(),
        Cmd::Fuzz { target, time, libfuzzer_args } => fuzz::run(&target, time, &libfuzzer_args),
    }
}
