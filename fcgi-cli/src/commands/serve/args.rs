//! The flags of `fcgi serve`, with every limit's default as a number (docs/SERVE.md lists them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::cli::{parse_duration, parse_size};

/// Default `--listen`: loopback only, so a server started by hand is not reachable from outside.
pub const LISTEN: &str = "127.0.0.1:8080";
/// Default `--max-body`: 8 MiB, PHP's own `post_max_size` default.
pub const MAX_BODY: u64 = 8 * 1024 * 1024;
/// Default `--max-head-size`: 32 KiB for the request line and headers together.
pub const MAX_HEAD_SIZE: u64 = 32 * 1024;
/// Default `--max-headers`: 100 header lines (hyper's own default).
pub const MAX_HEADERS: usize = 100;
/// Default `--max-connections`: 1024 client connections at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: u32 = 1024;
/// Default `--h2-max-streams`: 100 concurrent HTTP/2 streams per connection.
pub const H2_MAX_STREAMS: u32 = 100;
/// Default `--fcgi-connections`: 4 connections to the FastCGI server (below the 5 children
/// of a stock php-fpm pool: each open connection pins a worker).
pub const FCGI_CONNECTIONS: u32 = 4;

/// The access log's format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// nginx's and Apache's `combined`.
    Combined,
    /// One JSON object per line.
    Json,
}

// `serve` (described in a plain comment: see the note in cli.rs).
#[derive(Debug, Args, Clone)]
pub struct ServeCmd {
    /// Address to accept HTTP on
    #[arg(long, value_name = "ADDR", default_value = LISTEN)]
    pub listen: SocketAddr,
    /// Unix socket of the FastCGI server
    #[arg(long, value_name = "PATH", conflicts_with = "connect", required_unless_present = "connect")]
    pub socket: Option<PathBuf>,
    /// FastCGI server address: HOST:PORT, [IPv6]:PORT, tcp://HOST:PORT or unix:/PATH
    #[arg(long, value_name = "ADDRESS")]
    pub connect: Option<String>,
    /// PHP mode: serve static files from DIR and run its .php scripts (front controller
    /// index.php, as Caddy's php_fastcgi) [default without --mount: the current directory]
    #[arg(long, value_name = "DIR")]
    pub docroot: Option<PathBuf>,
    /// The document root as the FastCGI server sees it, when it differs (php-fpm in a
    /// container) [default: --docroot]
    #[arg(long, value_name = "DIR", conflicts_with = "mount")]
    pub fcgi_docroot: Option<String>,
    /// Index file of a directory and the front controller
    #[arg(long, value_name = "FILE", default_value = "index.php", conflicts_with = "mount")]
    pub index: String,
    /// Mounted mode: every request under PREFIX goes to the application (WSGI, Go, ...):
    /// SCRIPT_NAME = PREFIX, PATH_INFO = the rest; no static files
    #[arg(long, value_name = "PREFIX", conflicts_with = "docroot")]
    pub mount: Option<String>,
    /// Certificate chain (PEM): serve HTTPS, with ALPN h2 and http/1.1
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A proxy in front (address or network, e.g. 10.0.0.0/8; repeatable): from it,
    /// X-Forwarded-For gives REMOTE_ADDR and X-Forwarded-Proto gives HTTPS
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = clap::value_parser!(super::proxy::Cidr))]
    pub trusted_proxies: Vec<super::proxy::Cidr>,
    /// Fixed SERVER_NAME [default: from the Host header]
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Largest request body (bytes, or 500k, 16M...); larger ones get 413
    #[arg(long, value_name = "SIZE", default_value_t = MAX_BODY, value_parser = parse_size)]
    pub max_body: u64,
    /// Largest request head: request line and headers
    #[arg(long, value_name = "SIZE", default_value_t = MAX_HEAD_SIZE, value_parser = parse_size)]
    pub max_head_size: u64,
    /// Most header lines in a request
    #[arg(long, value_name = "N", default_value_t = MAX_HEADERS)]
    pub max_headers: usize,
    /// Time allowed to receive a request head; on HTTP/1.1 this includes the wait for the
    /// next request on a kept-alive connection
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub head_timeout: Duration,
    /// A connection with no request in flight for this long is closed
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Most client connections at once; more wait in the listen queue
    #[arg(long, value_name = "N", default_value_t = MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Most concurrent HTTP/2 streams per connection
    #[arg(long, value_name = "N", default_value_t = H2_MAX_STREAMS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub h2_max_streams: u32,
    /// Most connections to the FastCGI server (keep below php-fpm's pm.max_children)
    #[arg(long, value_name = "N", default_value_t = FCGI_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub fcgi_connections: u32,
    /// Time allowed for the application's first response byte (504 after it)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub fcgi_timeout: Duration,
    /// Where the access log goes: a file, - for standard output, or off
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub access_log: String,
    /// Access log format
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "combined")]
    pub log_format: LogFormat,
    /// After SIGTERM or SIGINT, time allowed for requests in flight before exiting
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Worker threads (1: everything on one thread, the lightest)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
}
