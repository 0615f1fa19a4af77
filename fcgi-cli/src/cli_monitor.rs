//! The command-line definitions of monitoring: several php-fpm pools for `fcgi status` (one per
//! `--socket`/`--connect`), and `fcgi exporter`. Kept apart from `cli.rs`, which holds the rest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::cli::{TargetArgs, parse_duration};
use crate::exit::{Exit, Failure};
use crate::target::Target;

// The pools to ask (`status`, `exporter`).
#[derive(Debug, Args, Clone)]
pub struct PoolTargets {
    /// Unix socket of a php-fpm pool; repeatable (several pools need --format prometheus or
    /// openmetrics); --unix-socket: curl's name
    #[arg(long, visible_alias = "unix-socket", value_name = "PATH")]
    pub socket: Vec<PathBuf>,
    /// Address of a php-fpm pool: HOST:PORT, [IPv6]:PORT, tcp://HOST:PORT or unix:/PATH;
    /// repeatable [default: $FCGI_ADDRESS]
    #[arg(long, value_name = "ADDRESS")]
    pub connect: Vec<String>,
    /// Time allowed to connect (e.g. 2s, 500ms)
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Time allowed for the whole check of each pool [default: 5s]
    #[arg(short = 'm', long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_time: Option<Duration>,
}

impl PoolTargets {
    /// Every pool given, in the order --socket then --connect; `$FCGI_ADDRESS` when none is.
    pub fn targets(&self, default_max_time: Duration) -> Result<Vec<Target>, Failure> {
        let one = |socket: Option<PathBuf>, connect: Option<String>| {
            let args = TargetArgs {
                socket,
                connect,
                connect_timeout: self.connect_timeout,
                max_time: self.max_time,
            };
            Target::from_args(&args, default_max_time)
        };
        if self.socket.is_empty() && self.connect.is_empty() {
            return Ok(vec![one(None, None)?]);
        }
        let mut targets = Vec::new();
        for socket in &self.socket {
            targets.push(one(Some(socket.clone()), None)?);
        }
        for connect in &self.connect {
            targets.push(one(None, Some(connect.clone()))?);
        }
        Ok(targets)
    }
}

/// `fcgi status --format`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// One line: `ok: pool www, ...` or the failed checks
    Text,
    /// One JSON document (schema fcgi.status/1), as --json
    Json,
    /// Prometheus text format 0.0.4, hipages/php-fpm_exporter's metric names
    Prometheus,
    /// OpenMetrics 1.0 text (counters end in _total)
    Openmetrics,
}

/// Default `--listen` of `fcgi exporter`: loopback, hipages/php-fpm_exporter's port.
pub const EXPORTER_LISTEN: &str = "127.0.0.1:9253";

// `exporter`.
#[derive(Debug, Args, Clone)]
pub struct ExporterCmd {
    /// Address to serve /metrics, /healthz and / on (loopback unless told otherwise)
    #[arg(long, value_name = "ADDR", default_value = EXPORTER_LISTEN)]
    pub listen: SocketAddr,
    /// Unix socket of a php-fpm pool; repeatable
    #[arg(long, value_name = "PATH")]
    pub socket: Vec<PathBuf>,
    /// Address of a php-fpm pool (HOST:PORT, tcp://HOST:PORT, unix:/PATH); repeatable
    #[arg(long, value_name = "ADDRESS")]
    pub connect: Vec<String>,
    /// Directory of php-fpm sockets, listed again at every scrape (symlinks followed; each
    /// socket reported under the path found there)
    #[arg(long, value_name = "DIR")]
    pub socket_dir: Option<PathBuf>,
    /// Which names in --socket-dir are pools (* and ? wildcards)
    #[arg(long, value_name = "GLOB", default_value = "*.sock", requires = "socket_dir")]
    pub socket_glob: String,
    /// php-fpm's pm.status_path (a query such as ?full is sent as QUERY_STRING)
    #[arg(long, value_name = "PATH", default_value = "/status")]
    pub path: String,
    /// Time allowed for one scrape of every pool; each pool that does not answer within it is
    /// reported with phpfpm_up 0. Shortened to Prometheus' X-Prometheus-Scrape-Timeout-Seconds
    /// (less 100 ms) when that is shorter
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub scrape_timeout: Duration,
    /// Time allowed to connect to a pool (at most the scrape timeout)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Most pools asked at once (each status request occupies a php-fpm worker and a socket)
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrency: u32,
    /// Do not ask php-fpm for per-process data (?full): no phpfpm_process_* series
    #[arg(long)]
    pub no_process_metrics: bool,
    /// Answer in OpenMetrics 1.0 when the scraper accepts it (Prometheus does); counters then
    /// end in _total, which dashboards made for hipages/php-fpm_exporter do not query. Without
    /// it, always the text format 0.0.4
    #[arg(long)]
    pub openmetrics: bool,
    /// Require HTTP basic authentication for /metrics and / (not /healthz): FILE holds
    /// user:password lines
    #[arg(long, value_name = "FILE")]
    pub basic_auth_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// On SIGTERM or SIGINT, how long requests in progress may take to finish
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

impl ExporterCmd {
    /// The fixed pools (--socket, --connect), checked now so that a typo fails at start.
    pub fn fixed_targets(&self) -> Result<Vec<fcgi_mux::Address>, Failure> {
        let mut out: Vec<fcgi_mux::Address> =
            self.socket.iter().map(|path| fcgi_mux::Address::Unix(path.clone())).collect();
        for text in &self.connect {
            out.push(text.parse().map_err(|err: fcgi_mux::AddressError| {
                Failure::new(Exit::Usage, format!("--connect {text:?}: {err}"))
            })?);
        }
        if out.is_empty() && self.socket_dir.is_none() {
            return Err(Failure::new(
                Exit::Usage,
                "no php-fpm pool given: use --socket PATH, --connect HOST:PORT or --socket-dir DIR",
            ));
        }
        Ok(out)
    }
}

/// Parses `0.9` or `90%` into a ratio between 0 and 1.
pub fn parse_ratio(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(number) => (number, 100.0),
        None => (text, 1.0),
    };
    let value: f64 =
        number.trim().parse().map_err(|_| format!("{text:?} is not a ratio (e.g. 0.9 or 90%)"))?;
    let ratio = value / scale;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(format!("{text:?} is out of range (0 to 1, or 0% to 100%)"));
    }
    Ok(ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios() {
        assert_eq!(parse_ratio("0.9"), Ok(0.9));
        assert_eq!(parse_ratio("90%"), Ok(0.9));
        assert_eq!(parse_ratio("1"), Ok(1.0));
        for bad in ["", "x", "1.5", "-0.1", "120%", "nan"] {
            assert!(parse_ratio(bad).is_err(), "{bad}");
        }
    }
}
