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
//! | `commands::*` | one module per command; `exchange` sends one request under `--max-time`; `roles` the Authorizer and Filter roles of the request commands |
//! | `filter_data` | `--filter-data`: the Filter's data file streamed as FCGI_DATA (standard input spooled) |
//! | `phpfpm` | php-fpm's status page: the JSON parser, the scrape, Prometheus/OpenMetrics text |
//! | `commands::exporter` | `fcgi exporter`: the HTTP server, shared scrapes, socket discovery |
//! | `commands::serve` | `fcgi serve`: the HTTP front (one concern per file, see its module docs) |
//! | `commands::bench` | `fcgi bench`: a load through an `fcgi_mux::Pool` (`load`), its counters (`stats`), the report (`report`), the progress bar (`progress`) |
//!
//! The CLI holds no protocol logic: requests go through `fcgi-mux`, parameters come from
//! `fcgi-cgi-env`, records are decoded by `fcgi-proto`.

mod build;
mod cli;
mod cli_monitor;
mod commands;
mod curl_compat;
mod exit;
mod filter_data;
mod manpages;
mod messages;
mod output;
mod phpfpm;
mod records;
mod target;
mod verbose;
mod write_out;

use http::Method;

use crate::cli::{Cli, Command};
use crate::exit::{Exit, classify};

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(run_main())
}

/// Everything `fcgi` does; returns the exit code.
fn run_main() -> u8 {
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(error) => {
            let code = usage_error(&error);
            return fail_exit_in_args().unwrap_or(code);
        }
    };
    let fail_exit = cli.fail_exit;
    // `serve` is a long-running server with a runtime (and signal handling) of its own.
    if let Command::Serve(cmd) = &cli.command {
        let exit = commands::serve::main(cmd);
        return match fail_exit {
            Some(code) if exit != Exit::Success => code,
            _ => exit.code(),
        };
    }
    // 256 readiness events per poll (tokio's default: 1024) keep the event buffer small: a
    // one-shot command uses one socket, and `bench` picks up the rest at the next poll. Kept for
    // its measured start-up gain (docs/BENCHMARKS.md, `oneshot`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_io_events_per_tick(256)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("fcgi: cannot start the async runtime: {err}");
            return Exit::Failure.code();
        }
    };
    let json_schema = json_schema(&cli.command);
    let exit = match runtime.block_on(run(cli.command)) {
        Ok(exit) => exit,
        Err(error) => {
            let (exit, message) = classify(&error);
            match json_schema {
                // Under --json every failure is a document on stdout (for `dump`, its last line).
                Some(schema) => {
                    let _ = output::print_json(&output::error_document(schema, &[], exit, &message));
                }
                None => eprintln!("fcgi: {message}"),
            }
            exit
        }
    };
    // Dropping a runtime waits for its blocking threads: a DNS lookup that outlived
    // --max-time (getaddrinfo cannot be cancelled) would keep `fcgi` alive past its limit.
    runtime.shutdown_background();
    match fail_exit {
        // --fail-exit: one code for every failure (Docker's HEALTHCHECK: 1 = unhealthy).
        Some(code) if exit != Exit::Success => code,
        _ => exit.code(),
    }
}

/// `--fail-exit CODE` read from a command line that did not parse, so that a typo in a
/// HEALTHCHECK still exits CODE.
fn fail_exit_in_args() -> Option<u8> {
    let args: Vec<String> = std::env::args().collect();
    let value = args.iter().enumerate().find_map(|(i, arg)| match arg.strip_prefix("--fail-exit") {
        Some("") => args.get(i + 1).cloned(),
        Some(rest) => rest.strip_prefix('=').map(str::to_string),
        None => None,
    })?;
    value.parse::<u8>().ok().filter(|code| *code != 0)
}

/// The `--json` schema of the command when `--json` was given.
fn json_schema(command: &Command) -> Option<&'static str> {
    let (name, json) = match command {
        Command::Get(cmd) => ("get", cmd.output.json),
        Command::Post(cmd) => ("post", cmd.output.json),
        Command::Request(cmd) => ("request", cmd.output.json),
        Command::Probe(cmd) => ("probe", cmd.json),
        Command::Dump(cmd) => ("dump", cmd.json),
        Command::Ping(cmd) => ("ping", cmd.json),
        Command::Status(cmd) => ("status", cmd.json),
        Command::Bench(cmd) => ("bench", cmd.json),
        Command::Completions { .. } | Command::Manpage { .. } | Command::Exporter(_) | Command::Serve(_) => {
            return None;
        }
    };
    if json { output::json_schema(name) } else { None }
}

/// The command line, parsed. clap's command tree and matches are leaked rather than dropped:
/// `fcgi` is a short-lived process and the operating system takes the memory back at exit, while
/// freeing them one by one is a measurable part of a one-shot request (docs/BENCHMARKS.md,
/// `oneshot`).
fn parse_args() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let command = Box::leak(Box::new(Cli::command()));
    let matches = Box::leak(Box::new(command.try_get_matches_from_mut(std::env::args_os())?));
    Cli::from_arg_matches_mut(matches).map_err(|error| error.format(command))
}

/// `--help` and `--version` print as clap does; a command-line error becomes one line
/// (`fcgi: unexpected argument '--bogus' found (see 'fcgi get --help')`) with exit code 2,
/// like every other error.
fn usage_error(error: &clap::Error) -> u8 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !error.use_stderr() || error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // Help, version, or `fcgi` alone (clap prints the help and exits 2).
        error.exit();
    }
    // The first paragraph is the error ("the following required arguments were not
    // provided:" continues on the next lines); tips and usage follow after a blank line.
    let text = error.to_string();
    let first: Vec<&str> = text
        .lines()
        .map(str::trim)
        .skip_while(|line| line.is_empty())
        .take_while(|line| !line.is_empty())
        .collect();
    let first = first.join(" ");
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    let usage = match error.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(usage)) => usage.to_string(),
        _ => String::new(),
    };
    // "Usage: fcgi get [OPTIONS] <PATH>" -> "fcgi get".
    let command: Vec<&str> = usage
        .trim()
        .trim_start_matches("Usage:")
        .split_whitespace()
        .take_while(|word| !word.starts_with(['[', '<', '-']))
        .collect();
    let hint =
        if command.is_empty() { String::new() } else { format!(" (see '{} --help')", command.join(" ")) };
    // clap's nearest flag, value or subcommand ("tip: a similar argument exists").
    let suggestion =
        [ContextKind::SuggestedArg, ContextKind::SuggestedValue, ContextKind::SuggestedSubcommand]
            .into_iter()
            .find_map(|kind| match error.get(kind) {
                Some(ContextValue::String(s)) => Some(s.clone()),
                Some(ContextValue::Strings(s)) => s.first().cloned(),
                _ => None,
            })
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
    let message = format!("{}{suggestion}{hint}", exit::one_line(first));
    // `--json` on a command line that did not parse: the document all the same.
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    if std::env::args().any(|arg| arg == "--json") {
        let schema = output::json_schema(&command).unwrap_or(output::ERROR_SCHEMA);
        let _ = output::print_json(&output::error_document(schema, &[], Exit::Usage, &message));
    } else {
        eprintln!("fcgi: {message}");
    }
    Exit::Usage.code()
}

async fn run(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Get(cmd) => commands::request::run(&cmd, Some(Method::GET)).await,
        Command::Post(cmd) => commands::request::run(&cmd, Some(Method::POST)).await,
        Command::Request(cmd) => commands::request::run(&cmd, None).await,
        Command::Probe(cmd) => {
            if cmd.verbose {
                verbose::enable(false);
            }
            commands::probe::run(&cmd).await
        }
        Command::Dump(cmd) => commands::dump::run(&cmd).await,
        Command::Ping(cmd) => {
            if cmd.verbose {
                verbose::enable(false);
            }
            commands::health::ping(&cmd).await
        }
        Command::Status(cmd) => {
            if cmd.verbose {
                verbose::enable(false);
            }
            commands::health::status(&cmd).await
        }
        Command::Bench(cmd) => commands::bench::run(&cmd).await,
        Command::Exporter(cmd) => commands::exporter::run(&cmd).await,
        Command::Serve(_) => unreachable!("`fcgi serve` runs on its own runtime (run_main)"),
        Command::Completions { shell } => {
            let mut command = cli::full_command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "fcgi", &mut out);
            write_stdout(&out)
        }
        Command::Manpage { dir: Some(dir) } => {
            manpages::write_all(&dir)?;
            Ok(Exit::Success)
        }
        Command::Manpage { dir: None } => {
            let pages = manpages::pages()?;
            write_stdout(&pages[0].roff)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<Exit> {
    let mut sink = output::Sink::open(None)?;
    sink.write(bytes)?;
    sink.finish()?;
    Ok(Exit::Success)
}
