//! `fcgi`: curl for FastCGI.
//!
//! # Layout
//!
//! | module | concern |
//! |---|---|
//! | `cli` | the clap definitions (flags, defaults, help) |
//! | `exit` | the exit-code table and error classification |
//! | `target` | which server: `--socket`, `--connect`, `$FCGI_ADDRESS` |
//! | `build` | flags → HTTP request → CGI params (through `fcgi-cgi-env`) |
//! | `output` | stdout / atomic file / device output, progress bar |
//! | `records` | how records are shown by `dump` and `-v` (secrets masked) |
//! | `commands::*` | one module per command; `exchange` sends one request under `--max-time` |
//!
//! The CLI holds no protocol logic: requests go through `fcgi-mux`, parameters come from
//! `fcgi-cgi-env`, records are decoded by `fcgi-proto`.

mod build;
mod cli;
mod commands;
mod exit;
mod output;
mod records;
mod target;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use http::Method;

use crate::cli::{Cli, Command};
use crate::exit::{Exit, classify};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("fcgi: cannot start the async runtime: {err}");
            return ExitCode::from(Exit::Failure.code());
        }
    };
    let exit = match runtime.block_on(run(cli.command)) {
        Ok(exit) => exit,
        Err(error) => {
            let (exit, message) = classify(&error);
            eprintln!("fcgi: {message}");
            exit
        }
    };
    ExitCode::from(exit.code())
}

async fn run(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Get(cmd) => commands::request::run(&cmd, Some(Method::GET)).await,
        Command::Post(cmd) => commands::request::run(&cmd, Some(Method::POST)).await,
        Command::Request(cmd) => commands::request::run(&cmd, None).await,
        Command::Probe(cmd) => commands::probe::run(&cmd).await,
        Command::Dump(cmd) => commands::dump::run(&cmd).await,
        Command::Ping(cmd) => commands::health::ping(&cmd).await,
        Command::Status(cmd) => commands::health::status(&cmd).await,
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "fcgi", &mut out);
            write_stdout(&out)
        }
        Command::Manpage => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            write_stdout(&out)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<Exit> {
    let mut sink = output::Sink::open(None)?;
    sink.write(bytes)?;
    sink.finish()?;
    Ok(Exit::Success)
}
