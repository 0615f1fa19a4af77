//! The command line, as clap definitions. `docs/CLI.md` is the full manual; `fcgi manpage`
//! and `fcgi completions SHELL` are generated from these definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::exit;

/// Default `--max-time` of the request commands (get, post, request, dump).
pub const REQUEST_MAX_TIME: Duration = Duration::from_secs(30);
/// Default `--max-time` of the health commands (ping, status, probe).
pub const CHECK_MAX_TIME: Duration = Duration::from_secs(5);

/// curl for FastCGI: query php-fpm and other FastCGI servers directly.
#[derive(Debug, Parser)]
#[command(name = "fcgi", version, long_about = None, after_long_help = AFTER_LONG_HELP)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
    /// Exit with CODE on every failure instead of its own code (1 for Docker's HEALTHCHECK,
    /// which reserves 2); messages and --json documents keep the real code
    #[arg(long, global = true, value_name = "CODE", value_parser = clap::value_parser!(u8).range(1..))]
    pub fail_exit: Option<u8>,
}

/// The commands. Each one's flags are built only when it is the one run (`defer`), so a
/// one-shot command does not build every other command's flags at start.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Send a GET request and print the response body
    Get(RequestCmd),
    /// Send a POST request (body from -d/--data or --data-binary)
    Post(RequestCmd),
    /// Send a request with any method (-X METHOD)
    Request(RequestCmd),
    /// Ask the server FCGI_GET_VALUES (max connections, max requests, multiplexing)
    Probe(ProbeCmd),
    /// Send a request like `get` and print every record both ways, or decode a capture
    Dump(DumpCmd),
    /// Health check on php-fpm's ping page (pm ping.path)
    Ping(PingCmd),
    /// Health check on php-fpm's status page (pm.status_path), with thresholds
    Status(StatusCmd),
    /// Load test: keep -c requests in flight for -D or -n, report requests/s and latency
    Bench(BenchCmd),
    /// Prometheus exporter for php-fpm pools: /metrics, /healthz and / over HTTP
    Exporter(crate::cli_monitor::ExporterCmd),
    /// HTTP front for php-fpm and other FastCGI applications: static files, PHP scripts, a
    /// front controller, or a mounted application; HTTP/1.1, HTTP/2, TLS
    Serve(crate::commands::serve::ServeCmd),
    /// Print shell completions for SHELL
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on standard output, or write one per command into --dir
    Manpage {
        /// Write fcgi.1 and a page per command (fcgi-get.1, ...) into DIR instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

// The `#[derive(Args)]` structs below are described in plain comments, not doc comments: clap
// makes a struct's doc comment the `about` of every command that includes it, applied after the
// command's own (the subcommand's flags are added later, `defer`), so `fcgi get --help` would
// open with "Where the FastCGI server is" (test `subcommands_keep_their_own_descriptions`).

// Where the FastCGI server is.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Unix socket of the FastCGI server (--unix-socket: curl's name)
    #[arg(long, visible_alias = "unix-socket", value_name = "PATH", conflicts_with = "connect")]
    pub socket: Option<PathBuf>,
    /// Server address: HOST:PORT, [IPv6]:PORT, tcp://HOST:PORT or unix:/PATH
    /// [default: $FCGI_ADDRESS]
    #[arg(long, value_name = "ADDRESS")]
    pub connect: Option<String>,
    /// Time allowed to connect (e.g. 2s, 500ms)
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Time allowed for the whole operation (for bench: for each request) [default: 30s for
    /// requests and bench, 5s for probe/ping/status]
    #[arg(short = 'm', long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_time: Option<Duration>,
}

// What request to send.
#[derive(Debug, Args, Clone)]
pub struct RequestSpec {
    /// Method to use (default: GET for `get`, POST for `post`, required for `request`)
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// Send a HEAD request and print the response headers (like curl -I)
    #[arg(short = 'I', long)]
    pub head: bool,
    /// Document root: SCRIPT_FILENAME = DIR + script name [default: $FCGI_DOCROOT, else the
    /// current directory]
    #[arg(long, value_name = "DIR")]
    pub docroot: Option<PathBuf>,
    /// File appended to a path ending in '/'
    #[arg(long, value_name = "FILE", default_value = "index.php")]
    pub index: String,
    /// The application is mounted at PREFIX (WSGI, Go net/http/fcgi, uWSGI, PSGI, Rack), not a
    /// directory of scripts: SCRIPT_NAME = PREFIX without its trailing '/' ("" for /),
    /// PATH_INFO = the rest of the path, no SCRIPT_FILENAME [default: $FCGI_MOUNT]
    #[arg(long, value_name = "PREFIX", conflicts_with_all = ["docroot", "index"])]
    pub mount: Option<String>,
    /// Send this SCRIPT_FILENAME instead of the one derived from the document root
    #[arg(long, value_name = "PATH")]
    pub script_filename: Option<String>,
    /// Set (or override) a FastCGI parameter; repeatable
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Add a request header; repeatable
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Request body, as curl: text, @FILE or @- for standard input (newlines of files are
    /// removed); repeated values are joined with '&'; sets a form Content-Type
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Vec<String>,
    /// Request body sent exactly as given: text, @FILE or @-
    #[arg(long = "data-binary", value_name = "DATA")]
    pub data_binary: Vec<String>,
    /// curl's request flags (-G, --data-raw, --data-urlencode, -u, -A, -e, -b).
    #[command(flatten)]
    pub curl: crate::curl_compat::CurlRequestArgs,
    /// Where the server is.
    #[command(flatten)]
    pub target: TargetArgs,
}

// How to show the response.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Print the status line and headers before the body
    #[arg(short = 'i', long)]
    pub include: bool,
    /// Write the body to FILE (atomically for regular files: never a half-written file)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print no progress and no diagnostics (errors still go to stderr)
    #[arg(short = 's', long)]
    pub silent: bool,
    /// Show the parameters sent and a summary of every record on stderr
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Print one JSON document describing the response instead of the body (on standard
    /// output: not with -o)
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
    /// Fail with exit code 63 when the body is larger than SIZE (bytes, or with a binary
    /// unit: 500k, 16M, 2G), before reading more [default with --json, which keeps the body in
    /// memory: 16M; otherwise no limit]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_filesize: Option<u64>,
    /// Exit 0 even when the HTTP status is 4xx or 5xx
    #[arg(long)]
    pub no_fail: bool,
    /// Show Authorization and Cookie values in -v output instead of masking them
    #[arg(long)]
    pub show_secrets: bool,
    /// curl's transfer flags (-f, --fail-with-body, -S, -w, -D, --retry).
    #[command(flatten)]
    pub curl: crate::curl_compat::CurlTransferArgs,
}

// `get`, `post`, `request`.
#[derive(Debug, Args, Clone)]
pub struct RequestCmd {
    /// Request path with an optional query string, e.g. /index.php?page=2
    #[arg(value_name = "PATH")]
    pub path: String,
    /// The request.
    #[command(flatten)]
    pub spec: RequestSpec,
    /// The FastCGI role.
    #[command(flatten)]
    pub role: RoleArgs,
    /// The output.
    #[command(flatten)]
    pub output: OutputArgs,
}

// Which FastCGI role the request plays (specification §6), for `get`, `post`, `request`.
#[derive(Debug, Args, Clone)]
pub struct RoleArgs {
    /// FastCGI role: responder (the usual), authorizer (no body; exit 0 and the Variable-*
    /// headers as NAME=value lines when the application answers 200, else its answer and the
    /// exit code of its status) or filter (sends --filter-data as FCGI_DATA)
    #[arg(long, value_enum, value_name = "ROLE", default_value_t = Role::Responder)]
    pub role: Role,
    /// The file a Filter filters, sent as the FCGI_DATA stream after the body, with
    /// FCGI_DATA_LENGTH and FCGI_DATA_LAST_MOD (its mtime): @FILE, or @- for standard input
    /// (spooled to an unnamed temporary file first unless it is a regular file)
    #[arg(long, value_name = "@FILE|@-")]
    pub filter_data: Option<String>,
}

/// `--role`: the FastCGI roles (specification §6).
#[derive(Debug, Copy, Clone, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// FCGI_RESPONDER: a request and its response.
    Responder,
    /// FCGI_AUTHORIZER: may this request go on?
    Authorizer,
    /// FCGI_FILTER: the response made from a data file (FCGI_DATA).
    Filter,
}

// `probe`.
#[derive(Debug, Args, Clone)]
pub struct ProbeCmd {
    /// Where the server is.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
    /// Show the server, the parameters sent and every record on stderr
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

// `dump`.
#[derive(Debug, Args, Clone)]
pub struct DumpCmd {
    /// Request path, as for `get` (not with --input)
    #[arg(value_name = "PATH", required_unless_present = "input", conflicts_with = "input")]
    pub path: Option<String>,
    /// Decode a captured byte stream of records from FILE (or - for standard input) instead of
    /// sending a request
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Print one JSON object per record
    #[arg(long)]
    pub json: bool,
    /// Show Authorization and Cookie values instead of masking them
    #[arg(long)]
    pub show_secrets: bool,
    /// Show the server and the parameters sent on stderr (the records are the dump itself)
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// The request.
    #[command(flatten)]
    pub spec: RequestSpec,
}

// `ping`.
#[derive(Debug, Args, Clone)]
pub struct PingCmd {
    /// php-fpm's ping.path
    #[arg(long, value_name = "PATH", default_value = "/ping")]
    pub path: String,
    /// The answer expected (php-fpm's ping.response)
    #[arg(long, value_name = "TEXT", default_value = "pong")]
    pub expect: String,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
    /// Print nothing on success
    #[arg(short = 's', long)]
    pub silent: bool,
    /// Show the server, the parameters sent and every record on stderr
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Where the server is.
    #[command(flatten)]
    pub target: TargetArgs,
}

// `status`.
#[derive(Debug, Args, Clone)]
pub struct StatusCmd {
    /// php-fpm's pm.status_path ($FCGI_STATUS_PATH: php-fpm-healthcheck's name)
    #[arg(long, value_name = "PATH", default_value = "/status", env = "FCGI_STATUS_PATH")]
    pub path: String,
    /// Fail unless FIELD >= N; FIELD is a status key such as "idle processes" or
    /// idle-processes; repeatable
    #[arg(long = "min", value_name = "FIELD=N")]
    pub min: Vec<String>,
    /// Fail unless FIELD <= N; repeatable
    #[arg(long = "max", value_name = "FIELD=N")]
    pub max: Vec<String>,
    /// Fail when fewer than N processes are idle (the worker answering this check counts as
    /// idle)
    #[arg(long, value_name = "N")]
    pub min_idle: Option<u64>,
    /// Fail when more than N processes are active (not counting the worker answering this check)
    #[arg(long, value_name = "N")]
    pub max_active: Option<u64>,
    /// Fail when more than N connections wait in the listen queue
    #[arg(long, value_name = "N")]
    pub max_listen_queue: Option<u64>,
    /// Fail when "max children reached" is above N
    #[arg(long, value_name = "N")]
    pub max_children_reached: Option<u64>,
    /// Fail when more than N slow requests were counted
    #[arg(long, value_name = "N")]
    pub max_slow_requests: Option<u64>,
    /// Print the status document (and check results) as JSON (as --format json)
    #[arg(long)]
    pub json: bool,
    /// Print nothing on success
    #[arg(short = 's', long)]
    pub silent: bool,
    /// Show the server, the parameters sent and every record on stderr
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Also ask php-fpm for per-process data (?full): in --json, and for the per-process checks
    #[arg(long)]
    pub full: bool,
    /// Fail when fewer than N workers are available: idle ones (the one answering this check
    /// counted as idle) plus the room left below pm.max_children; works in every pm mode
    #[arg(long, value_name = "N")]
    pub min_available: Option<u64>,
    /// The pool's pm.max_children, for --min-available and --max-busy-ratio when pm is dynamic or
    /// ondemand (the status page gives it only for static pools)
    #[arg(long, value_name = "N")]
    pub max_children: Option<u64>,
    /// Fail when a process has been busy with one request for longer than DURATION (stuck
    /// workers; asks for ?full)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_request_duration: Option<Duration>,
    /// Fail when more than RATIO of pm.max_children is busy (0 to 1, or a percentage: 90%)
    #[arg(long, value_name = "RATIO", value_parser = crate::cli_monitor::parse_ratio)]
    pub max_busy_ratio: Option<f64>,
    /// Output: text, json, prometheus (text format 0.0.4) or openmetrics; the last two accept
    /// several pools and ask for ?full
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text", conflicts_with = "json")]
    pub format: crate::cli_monitor::StatusFormat,
    /// With --format prometheus or openmetrics: no phpfpm_process_* series (no ?full asked)
    #[arg(long)]
    pub no_process_metrics: bool,
    /// Where the pools are.
    #[command(flatten)]
    pub target: crate::cli_monitor::PoolTargets,
}

/// Default `-c` of `bench`: below the 5 children of a stock php-fpm pool (`pm.max_children`),
/// which pins one worker to every open connection.
pub const BENCH_CONCURRENCY: u32 = 4;
/// Default length of a `bench` run given neither `-n` nor `-D`.
pub const BENCH_DURATION: Duration = Duration::from_secs(10);

// `bench`.
#[derive(Debug, Args, Clone)]
pub struct BenchCmd {
    /// Request path with an optional query string, e.g. /index.php?page=2
    #[arg(value_name = "PATH")]
    pub path: String,
    /// Measure N requests (the run ends after them, or at -D if that comes first)
    #[arg(short = 'n', long = "requests", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Length of the measured run, a hard stop: requests still in flight then are cancelled
    /// [default: 10s without -n]
    #[arg(short = 'D', long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests in flight at once. Without --multiplex each needs its own connection: keep it
    /// below php-fpm's pm.max_children
    #[arg(short = 'c', long, value_name = "N", default_value_t = BENCH_CONCURRENCY,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Most connections to open [default: -c; 1 with --multiplex]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: Option<u32>,
    /// Send several requests at once on each connection (FastCGI multiplexing, whatever the
    /// server announces); php-fpm does not support it
    #[arg(long)]
    pub multiplex: bool,
    /// Send requests for this long before measuring (not counted)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// No progress bar and no notes (errors are still printed)
    #[arg(short = 's', long)]
    pub silent: bool,
    /// Print one JSON document (schema fcgi.bench/1) instead of the report
    #[arg(long)]
    pub json: bool,
    /// Show the server and the parameters of the request on stderr before the run
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// The request (sent again and again; -m/--max-time applies to each).
    #[command(flatten)]
    pub spec: RequestSpec,
}

/// `--max-filesize` when `--json` keeps the body in memory and none was given: 16 MiB.
pub const JSON_MAX_FILESIZE: u64 = 16 * 1024 * 1024;

/// Parses `1000`, `500k`, `16M`, `2G` (also `16MiB`, `16MB`: binary units, as curl) into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let value: u64 =
        number.trim().parse().map_err(|_| format!("{text:?} is not a size (e.g. 500k, 16M, 2G)"))?;
    let unit = unit.to_ascii_lowercase();
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("unknown unit in {text:?} (use k, M, G or T)")),
    };
    value.checked_mul(1 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

/// `16 MiB`, `500 KiB`, `1000 bytes`: a size as `--max-filesize` messages show it.
pub fn show_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// Parses `2`, `2s`, `1.5s`, `500ms`, `1m` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 =
        number.trim().parse().map_err(|_| format!("{text:?} is not a duration (e.g. 2s, 500ms)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (use ms, s or m)")),
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        return Err(format!("{text:?} is out of range (more than 0, at most a day)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The whole command tree with every subcommand's flags built (they are deferred otherwise), for
/// the completions and the man page.
pub fn full_command() -> clap::Command {
    use clap::CommandFactory;
    let mut command = Cli::command();
    command.build();
    command
}

/// The end of `fcgi --help` and the man page's extra section: the exit-code table of
/// [`crate::exit`], then the environment. Built at compile time (see [`exit::help`]).
const AFTER_LONG_HELP: &str = match std::str::from_utf8(&AFTER_LONG_HELP_BYTES) {
    Ok(text) => text,
    Err(_) => panic!("the help text is UTF-8"),
};
const AFTER_LONG_HELP_BYTES: [u8; exit::help_len(ENVIRONMENT_HELP)] = exit::help(ENVIRONMENT_HELP);
/// The environment variables `fcgi` reads, for the man pages (`ENVIRONMENT_HELP` is the
/// same list as `--help` shows it).
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("FCGI_ADDRESS", "default server address (as --connect)"),
    ("FCGI_DOCROOT", "default document root"),
    ("FCGI_MOUNT", "default mount prefix (as --mount; --docroot overrides it)"),
    ("FCGI_CONNECT", "php-fpm-healthcheck's name for FCGI_ADDRESS (used when FCGI_ADDRESS is unset)"),
    ("FCGI_STATUS_PATH", "php-fpm-healthcheck's name for the default of status --path"),
];
const ENVIRONMENT_HELP: &str = concat!(
    "\n",
    "Environment:\n",
    "  FCGI_ADDRESS  default server address (as --connect)\n",
    "  FCGI_DOCROOT  default document root\n",
    "  FCGI_MOUNT    default mount prefix (as --mount; --docroot overrides it)\n",
    "  FCGI_CONNECT  php-fpm-healthcheck's name for FCGI_ADDRESS (used when FCGI_ADDRESS is unset)\n",
    "  FCGI_STATUS_PATH  php-fpm-healthcheck's name for the default of status --path\n",
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("500k"), Ok(500 * 1024));
        assert_eq!(parse_size("16M"), Ok(JSON_MAX_FILESIZE));
        assert_eq!(parse_size("16MiB"), Ok(JSON_MAX_FILESIZE));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("2X").is_err() && parse_size("-1").is_err() && parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(show_size(JSON_MAX_FILESIZE), "16 MiB");
        assert_eq!(show_size(500 * 1024), "500 KiB");
        assert_eq!(show_size(1000), "1000 bytes");
    }

    #[test]
    fn clap_definitions_are_consistent() {
        full_command().debug_assert();
    }

    #[test]
    fn subcommands_keep_their_own_descriptions() {
        use clap::CommandFactory;
        let unbuilt = Cli::command();
        let built = full_command();
        for sub in unbuilt.get_subcommands() {
            let about = sub.get_about().map(ToString::to_string);
            assert!(about.is_some(), "{} has a description", sub.get_name());
            let after =
                built.find_subcommand(sub.get_name()).and_then(|s| s.get_about()).map(ToString::to_string);
            assert_eq!(
                after,
                about,
                "`fcgi {} --help` opens with the command's own description",
                sub.get_name()
            );
        }
    }

    #[test]
    fn help_lists_every_exit_code() {
        let mut expected = String::from("Exit codes:\n");
        for exit in Exit::ALL {
            expected.push_str(&format!("  {:>3}  {}\n", exit.code(), exit.meaning()));
        }
        expected.push_str("\nEnvironment:\n");
        assert!(AFTER_LONG_HELP.starts_with(&expected), "{AFTER_LONG_HELP}");
        for variable in ["FCGI_ADDRESS", "FCGI_DOCROOT", "FCGI_MOUNT"] {
            assert!(AFTER_LONG_HELP.contains(variable), "{variable}");
        }
        let help = full_command().render_long_help().to_string();
        assert!(help.contains(&expected), "fcgi --help:\n{help}");
    }

    #[test]
    fn man_page_lists_every_exit_code() {
        let pages = crate::manpages::pages().unwrap();
        let man = String::from_utf8(pages[0].roff.clone()).unwrap().replace("\\-", "-");
        for exit in Exit::ALL {
            assert!(
                man.contains(&format!("\\fB{}\\fR\n{}", exit.code(), exit.meaning())),
                "{exit:?}:\n{man}"
            );
        }
        // The environment list of --help and of the man pages is the same.
        for (name, meaning) in ENVIRONMENT {
            assert!(
                ENVIRONMENT_HELP.contains(&format!("{name} ")) && ENVIRONMENT_HELP.contains(meaning),
                "{name}"
            );
            assert!(man.contains(&format!("\\fB{name}\\fR\n{meaning}")), "{name}");
        }
        assert_eq!(ENVIRONMENT_HELP.lines().filter(|l| l.starts_with("  ")).count(), ENVIRONMENT.len());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        for bad in ["", "x", "0", "-1s", "5h", "nan", "inf", "1e9"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
