//! Shared code of the benchmark programs in `fcgi-mux/benches/`, run by `cargo xtask bench mux`
//! and `stream` (each program includes it as `mod common;` and uses a part of it).
//!
//! | binary | measures |
//! |---|---|
//! | `mux_load` | requests/s and client CPU per request through `fcgi_mux::Pool` or one `Connection` |
//! | `fastcgi_client_load` | the same load through the `fastcgi-client` crate (the peer) |
//! | `mpx_responder` | not a measurement: a multiplexing hello-world responder made with `tokio-fastcgi` |
//! | `stream_1g` | peak RSS and MB/s while streaming a large response, fcgi-mux or `fastcgi-client` |
//!
//! # How a load is measured
//!
//! [`drive`] runs `concurrency` worker tasks, each sending one request after the other (so
//! exactly `concurrency` requests are in flight). It lets them run for a warm-up period (connections
//! opened, allocator and caches warm), then takes a snapshot of the wall clock, the completed
//! request count and the process's CPU time, lets them run for the measured period (a duration
//! and/or a number of requests), and takes the second snapshot. Figures come from the difference:
//! only steady-state work is counted, not start-up or the tail of the last requests.
//!
//! CPU time is `getrusage(RUSAGE_SELF)` (user + system, every thread of the process; the
//! kernel accounts it from the scheduler's nanosecond runtime, reported in microseconds), via
//! `nix`'s safe wrapper since the workspace forbids `unsafe`. Peak RSS is `VmHWM` from
//! `/proc/self/status`.
//!
//! Every program prints exactly one JSON object on one line on stdout (progress and errors go to
//! stderr), which `xtask/src/bench/mux.rs` reads.

#![allow(dead_code, reason = "each program uses a part of this module")]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;
use tokio::sync::Notify;

/// Which tokio runtime a program runs on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// `new_current_thread`: everything on the calling thread.
    Current,
    /// `new_multi_thread` with one worker per available core.
    Multi,
}

impl RuntimeKind {
    /// The name used on the command line and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Current => "current",
            RuntimeKind::Multi => "multi",
        }
    }

    /// Builds the runtime (I/O and timers enabled).
    pub fn build(self) -> Result<tokio::runtime::Runtime> {
        let mut builder = match self {
            RuntimeKind::Current => tokio::runtime::Builder::new_current_thread(),
            RuntimeKind::Multi => tokio::runtime::Builder::new_multi_thread(),
        };
        builder.enable_all().build().context("building the tokio runtime")
    }
}

/// Which large response the streaming programs ask for (`stream_1g`, `raw_read`).
#[derive(Clone, Debug, clap::Args)]
pub struct BigResponse {
    /// The FastCGI server: `unix:/path/to.sock` or `HOST:PORT`.
    #[arg(long)]
    pub address: String,
    /// SCRIPT_FILENAME of big.php.
    #[arg(long)]
    pub script_filename: String,
    /// SCRIPT_NAME.
    #[arg(long, default_value = "/big.php")]
    pub script_name: String,
    /// Body bytes to ask for (`QUERY_STRING bytes=N`).
    #[arg(long, default_value_t = 1 << 30)]
    pub bytes: u64,
}

/// The load options every load generator takes.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// The FastCGI server: `unix:/path/to.sock` or `HOST:PORT`.
    #[arg(long)]
    pub address: String,
    /// SCRIPT_FILENAME: the script's absolute path on the server.
    #[arg(long)]
    pub script_filename: String,
    /// SCRIPT_NAME (also REQUEST_URI and DOCUMENT_URI, with the query appended to REQUEST_URI).
    #[arg(long, default_value = "/hello.php")]
    pub script_name: String,
    /// QUERY_STRING.
    #[arg(long, default_value = "")]
    pub query: String,
    /// Requests in flight at once (one worker task each).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds of load before the measured period starts.
    #[arg(long, default_value_t = 0.5)]
    pub warmup: f64,
    /// Seconds of the measured period (it ends earlier if `--requests` are done first).
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// End the measured period after this many requests (default: only `--duration` ends it).
    #[arg(long)]
    pub requests: Option<u64>,
    /// The tokio runtime the client runs on.
    #[arg(long, value_enum, default_value = "current")]
    pub runtime: RuntimeKind,
    /// Fail a request whose response body differs from this text.
    #[arg(long)]
    pub expect_body: Option<String>,
}

impl LoadArgs {
    /// Checks the numbers; returns the measured-period options.
    pub fn load_options(&self) -> Result<LoadOptions> {
        if self.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        let seconds = |value: f64, what: &str| {
            Duration::try_from_secs_f64(value)
                .with_context(|| format!("{what} must be a number of seconds >= 0, not {value}"))
        };
        let duration = seconds(self.duration, "--duration")?;
        if duration.is_zero() && self.requests.is_none() {
            bail!("--duration 0 needs --requests N");
        }
        Ok(LoadOptions {
            concurrency: self.concurrency,
            warmup: seconds(self.warmup, "--warmup")?,
            duration: if duration.is_zero() { None } else { Some(duration) },
            requests: self.requests,
        })
    }

    /// The CGI parameters of the request (the same list for every client measured).
    pub fn params(&self) -> Vec<(String, String)> {
        cgi_params(&self.script_filename, &self.script_name, &self.query)
    }
}

/// The parameters sent with each benchmark request: what nginx's `fastcgi_params` sends for
/// `GET /script?query` without headers. Both load generators send this exact list.
pub fn cgi_params(script_filename: &str, script_name: &str, query: &str) -> Vec<(String, String)> {
    let request_uri =
        if query.is_empty() { script_name.to_owned() } else { format!("{script_name}?{query}") };
    let document_root = match script_filename.strip_suffix(script_name) {
        Some(root) if !root.is_empty() => root.to_owned(),
        _ => "/".to_owned(),
    };
    [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "fcgi-bench"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_FILENAME", script_filename),
        ("SCRIPT_NAME", script_name),
        ("DOCUMENT_URI", script_name),
        ("REQUEST_URI", &request_uri),
        ("QUERY_STRING", query),
        ("DOCUMENT_ROOT", &document_root),
        ("SERVER_NAME", "localhost"),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// Parses `unix:/path`, `unix:///path`, a path containing `/`, or `HOST:PORT` into what a
/// tokio socket connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAddress {
    /// A unix socket path.
    Unix(std::path::PathBuf),
    /// `HOST:PORT`.
    Tcp(String),
}

impl SocketAddress {
    /// Parses an address as [`fcgi_mux::Address`] does.
    pub fn parse(text: &str) -> Result<SocketAddress> {
        match text.parse::<fcgi_mux::Address>()? {
            fcgi_mux::Address::Unix(path) => Ok(SocketAddress::Unix(path)),
            fcgi_mux::Address::Tcp { host, port } if host.contains(':') => {
                Ok(SocketAddress::Tcp(format!("[{host}]:{port}")))
            }
            fcgi_mux::Address::Tcp { host, port } => Ok(SocketAddress::Tcp(format!("{host}:{port}"))),
        }
    }
}

/// CPU time used by this process so far (all threads), from `getrusage(RUSAGE_SELF)`.
#[derive(Copy, Clone, Debug, Default)]
pub struct CpuTime {
    /// User time.
    pub user: Duration,
    /// System time.
    pub sys: Duration,
    /// Voluntary context switches (blocking waits).
    pub voluntary_switches: i64,
    /// Involuntary context switches (preemptions).
    pub involuntary_switches: i64,
}

impl CpuTime {
    /// Reads the process's usage now.
    pub fn now() -> Result<CpuTime> {
        let usage = getrusage(UsageWho::RUSAGE_SELF).context("getrusage(RUSAGE_SELF)")?;
        let micros = |tv: nix::sys::time::TimeVal| Duration::from_micros(tv.num_microseconds().max(0) as u64);
        Ok(CpuTime {
            user: micros(usage.user_time()),
            sys: micros(usage.system_time()),
            voluntary_switches: usage.voluntary_context_switches(),
            involuntary_switches: usage.involuntary_context_switches(),
        })
    }

    /// The usage between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
            voluntary_switches: self.voluntary_switches - earlier.voluntary_switches,
            involuntary_switches: self.involuntary_switches - earlier.involuntary_switches,
        }
    }

    /// User + system.
    pub fn total(&self) -> Duration {
        self.user + self.sys
    }
}

/// Peak resident set size of this process in bytes (`VmHWM` in `/proc/self/status`).
pub fn peak_rss_bytes() -> Result<u64> {
    status_kib("VmHWM").map(|kib| kib * 1024)
}

/// Current resident set size of this process in bytes (`VmRSS` in `/proc/self/status`).
pub fn rss_bytes() -> Result<u64> {
    status_kib("VmRSS").map(|kib| kib * 1024)
}

fn status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .with_context(|| format!("no {field} line in kB in /proc/self/status"))
}

/// The measured-period options of [`drive`].
#[derive(Copy, Clone, Debug)]
pub struct LoadOptions {
    /// Worker tasks, i.e. requests in flight.
    pub concurrency: usize,
    /// Load before the measured period.
    pub warmup: Duration,
    /// Length of the measured period, if bounded by time.
    pub duration: Option<Duration>,
    /// Requests ending the measured period, if bounded by count.
    pub requests: Option<u64>,
}

/// What [`drive`] measured.
#[derive(Clone, Debug)]
pub struct LoadOutcome {
    /// Requests completed in the measured period (errors included).
    pub requests: u64,
    /// Requests of the measured period that failed.
    pub errors: u64,
    /// Length of the measured period.
    pub wall: Duration,
    /// CPU time of the process during the measured period.
    pub cpu: CpuTime,
    /// Requests completed over the whole run, warm-up and tail included (to relate the
    /// server's CPU, measured over the process's whole life, to requests).
    pub total_requests: u64,
    /// Requests that failed over the whole run, warm-up and tail included.
    pub total_errors: u64,
    /// The first error of the run, if any.
    pub first_error: Option<String>,
}

impl LoadOutcome {
    /// Completed requests per second of the measured period.
    pub fn requests_per_second(&self) -> f64 {
        per_second(self.requests, self.wall)
    }

    /// Client CPU (user + system) per completed request, in microseconds.
    pub fn cpu_us_per_request(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.cpu.total().as_secs_f64() * 1e6 / self.requests as f64 }
    }

    /// The fields every load generator prints, plus `extra` ones describing the setup.
    pub fn to_json(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut object = serde_json::json!({
            "requests": self.requests,
            "errors": self.errors,
            "total_requests": self.total_requests,
            "total_errors": self.total_errors,
            "wall_s": self.wall.as_secs_f64(),
            "req_per_s": self.requests_per_second(),
            "cpu_user_s": self.cpu.user.as_secs_f64(),
            "cpu_sys_s": self.cpu.sys.as_secs_f64(),
            "cpu_us_per_req": self.cpu_us_per_request(),
            "voluntary_switches": self.cpu.voluntary_switches,
            "involuntary_switches": self.cpu.involuntary_switches,
            "first_error": self.first_error,
        });
        if let (Some(object), serde_json::Value::Object(extra)) = (object.as_object_mut(), extra) {
            object.extend(extra);
        }
        object
    }
}

/// `count` per `wall`, 0 for an empty period.
pub fn per_second(count: u64, wall: Duration) -> f64 {
    if wall.is_zero() { 0.0 } else { count as f64 / wall.as_secs_f64() }
}

/// Counters shared by the workers of [`drive`].
#[derive(Default)]
struct Counters {
    done: AtomicU64,
    errors: AtomicU64,
    /// `done` when the measured period started; `u64::MAX` before.
    measure_base: AtomicU64,
    target: AtomicU64,
    stop: AtomicBool,
    first_error: Mutex<Option<String>>,
    target_reached: Notify,
}

/// Runs `options.concurrency` workers, each awaiting `request()` again and again, and measures the
/// steady state (see the module docs). A request's `Err` is counted as an error, never stops the
/// run; its message is kept if it is the first one.
///
/// Must be called inside a tokio runtime; the workers are spawned tasks.
pub async fn drive<F, Fut>(options: LoadOptions, request: F) -> Result<LoadOutcome>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let counters = Arc::new(Counters { measure_base: AtomicU64::new(u64::MAX), ..Counters::default() });
    counters.target.store(options.requests.unwrap_or(u64::MAX), Ordering::Relaxed);
    let request = Arc::new(request);
    let mut workers = Vec::with_capacity(options.concurrency);
    for _ in 0..options.concurrency {
        let counters = counters.clone();
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            while !counters.stop.load(Ordering::Relaxed) {
                let result = request().await;
                if let Err(error) = result {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    let mut first = counters.first_error.lock().unwrap_or_else(|e| e.into_inner());
                    if first.is_none() {
                        *first = Some(format!("{error:#}"));
                    }
                }
                let done = counters.done.fetch_add(1, Ordering::AcqRel) + 1;
                let base = counters.measure_base.load(Ordering::Acquire);
                if base != u64::MAX && done - base >= counters.target.load(Ordering::Relaxed) {
                    counters.target_reached.notify_one();
                }
            }
        }));
    }

    tokio::time::sleep(options.warmup).await;
    let start_cpu = CpuTime::now()?;
    let start = Instant::now();
    let start_done = counters.done.load(Ordering::Acquire);
    let start_errors = counters.errors.load(Ordering::Acquire);
    counters.measure_base.store(start_done, Ordering::Release);
    let period = async {
        match options.duration {
            Some(duration) => {
                let _ = tokio::time::timeout(duration, counters.target_reached.notified()).await;
            }
            None => counters.target_reached.notified().await,
        }
    };
    // A target reached between the base store and `notified()` was signalled with
    // `notify_one`, which stores a permit: it is not lost.
    period.await;
    let end_done = counters.done.load(Ordering::Acquire);
    let end_errors = counters.errors.load(Ordering::Acquire);
    let wall = start.elapsed();
    let cpu = CpuTime::now()?.since(&start_cpu);
    counters.stop.store(true, Ordering::Relaxed);

    // The last requests finish on their own timeouts at worst (fcgi-mux: first byte 30 s).
    let tail = tokio::time::timeout(Duration::from_secs(40), async {
        for worker in workers {
            worker.await.context("a load worker panicked")?;
        }
        Ok::<(), anyhow::Error>(())
    });
    match tail.await {
        Ok(result) => result?,
        Err(_) => bail!("the last requests did not finish within 40 s after the measured period"),
    }
    let first_error = counters.first_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(LoadOutcome {
        requests: end_done - start_done,
        errors: end_errors - start_errors,
        wall,
        cpu,
        total_requests: counters.done.load(Ordering::Acquire),
        total_errors: counters.errors.load(Ordering::Acquire),
        first_error,
    })
}

/// Prints `value` as the program's one JSON line on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_follow_the_script() {
        let params = cgi_params("/srv/www/big.php", "/big.php", "bytes=10");
        let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("REQUEST_URI"), Some("/big.php?bytes=10"));
        assert_eq!(get("DOCUMENT_ROOT"), Some("/srv/www"));
        assert_eq!(get("QUERY_STRING"), Some("bytes=10"));
        let params = cgi_params("/x.php", "/other.php", "");
        let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("REQUEST_URI"), Some("/other.php"));
        assert_eq!(get("DOCUMENT_ROOT"), Some("/"));
    }

    #[test]
    fn addresses() {
        assert_eq!(SocketAddress::parse("unix:/a/b").unwrap(), SocketAddress::Unix("/a/b".into()));
        assert_eq!(
            SocketAddress::parse("127.0.0.1:9000").unwrap(),
            SocketAddress::Tcp("127.0.0.1:9000".into())
        );
        assert_eq!(SocketAddress::parse("[::1]:9000").unwrap(), SocketAddress::Tcp("[::1]:9000".into()));
        assert!(SocketAddress::parse("nonsense").is_err());
    }

    #[test]
    fn drive_counts_requests_and_errors() {
        let runtime = RuntimeKind::Current.build().unwrap();
        let options =
            LoadOptions { concurrency: 3, warmup: Duration::ZERO, duration: None, requests: Some(100) };
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let outcome = runtime
            .block_on(drive(options, move || {
                let n = counted.fetch_add(1, Ordering::Relaxed);
                async move {
                    tokio::task::yield_now().await;
                    if n % 10 == 0 { bail!("failure {n}") } else { Ok(()) }
                }
            }))
            .unwrap();
        assert!(outcome.requests >= 100, "{outcome:?}");
        assert!(outcome.errors >= 10, "{outcome:?}");
        assert_eq!(outcome.first_error.as_deref(), Some("failure 0"));
        assert!(CpuTime::now().unwrap().total() > Duration::ZERO);
        assert!(peak_rss_bytes().unwrap() >= rss_bytes().unwrap() / 2);
    }
}
