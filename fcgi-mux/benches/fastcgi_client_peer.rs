//! `fastcgi_client_peer`: the `fastcgi-client` crate driven as `cargo xtask bench mux` drives
//! fcgi-mux through `fcgi bench`, with the parameters (`--param NAME=VALUE`, repeated) that `fcgi`
//! sends for the same path, so both send the same request. Prints one JSON line.
//!
//! - `load`: `--concurrency` worker tasks, each sending its next request once the previous
//!   response was read, for `--duration` seconds (as `fcgi bench -D` without a warm-up). The
//!   crate has no pool and a `Client` runs one request at a time, so `--connections` keep-alive
//!   clients are shared through a free list with a semaphore: with fewer clients than workers a
//!   request waits for the next free one, as in fcgi-mux's pool. Client CPU is
//!   `getrusage(RUSAGE_SELF)` over the measured period, as `fcgi bench` measures its own;
//!   requests still in flight at the end are not counted.
//! - `stream`: one request, its response read through `execute_stream` and dropped; prints the
//!   byte count.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use fastcgi_client::conn::KeepAlive;
use fastcgi_client::io::TokioCompat;
use fastcgi_client::response::Content;
use fastcgi_client::{Client, Params, Request, StreamExt};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;
use serde_json::json;
use tokio::net::UnixStream;
use tokio::runtime::Builder;
use tokio::sync::Semaphore;

#[derive(Parser)]
struct Args {
    /// php-fpm's (or any responder's) unix socket.
    #[arg(long)]
    socket: String,
    /// A CGI parameter of the request, `NAME=VALUE`.
    #[arg(long = "param")]
    params: Vec<String>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Keep requests in flight and measure requests/s and client CPU per request.
    Load {
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 7)]
        connections: usize,
        /// Seconds of the measured period.
        #[arg(long, default_value_t = 2.0)]
        duration: f64,
        /// tokio's current-thread or multi-thread runtime.
        #[arg(long, default_value = "current", value_parser = ["current", "multi"])]
        runtime: String,
        /// A response whose output does not end with this counts as an error.
        #[arg(long)]
        expect_body: String,
    },
    /// Read one (large) response and print its size.
    Stream,
}

type KeepAliveClient = Client<TokioCompat<UnixStream>, KeepAlive>;

fn main() -> ExitCode {
    let Err(err) = run(Args::parse()) else { return ExitCode::SUCCESS };
    eprintln!("fastcgi_client_peer: {err:#}");
    ExitCode::FAILURE
}

fn run(args: Args) -> Result<()> {
    let params = leaked_params(&args.params)?;
    let report = match args.mode {
        Mode::Load { concurrency, connections, duration, runtime, expect_body } => {
            let mut runtime = match runtime.as_str() {
                "multi" => Builder::new_multi_thread(),
                _ => Builder::new_current_thread(),
            };
            let duration = Duration::try_from_secs_f64(duration).context("--duration")?;
            runtime.enable_all().build()?.block_on(async {
                let mut free = Vec::new();
                for _ in 0..connections {
                    free.push(Client::new_keep_alive_tokio(connect(&args.socket).await?));
                }
                let load = Load {
                    params,
                    expect: expect_body.into_bytes(),
                    free: Mutex::new(free),
                    permits: Semaphore::new(connections),
                    completed: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    first_error: OnceLock::new(),
                };
                Arc::new(load).run(concurrency, duration).await
            })?
        }
        Mode::Stream => Builder::new_current_thread().enable_all().build()?.block_on(async {
            let mut client = Client::new_keep_alive_tokio(connect(&args.socket).await?);
            let request = Request::new(params, fastcgi_client::io::empty());
            let mut response = client.execute_stream(request).await.context("sending the request")?;
            let mut bytes = 0u64;
            while let Some(content) = response.next().await {
                if let Content::Stdout(data) = content.context("reading the response")? {
                    bytes += data.len() as u64;
                }
            }
            anyhow::Ok(json!({ "bytes": bytes }))
        })?,
    };
    println!("{report}");
    Ok(())
}

/// The parameters as the crate's map of borrowed strings: leaked once, so that cloning the map
/// per request (the crate takes it by value) copies no strings.
fn leaked_params(pairs: &[String]) -> Result<Params<'static>> {
    let mut params = Params::default();
    params.clear();
    for pair in pairs {
        let (name, value) = pair.split_once('=').with_context(|| format!("--param {pair:?}: no `=`"))?;
        let leak = |text: &str| -> &'static str { Box::leak(text.to_owned().into_boxed_str()) };
        params.insert(leak(name).into(), leak(value).into());
    }
    Ok(params)
}

async fn connect(socket: &str) -> Result<UnixStream> {
    UnixStream::connect(socket).await.with_context(|| format!("connecting to {socket}"))
}

/// What the workers share: the request, the keep-alive clients not in use (a permit per free
/// one) and the counters of the measured period.
struct Load {
    params: Params<'static>,
    expect: Vec<u8>,
    free: Mutex<Vec<KeepAliveClient>>,
    permits: Semaphore,
    completed: AtomicU64,
    errors: AtomicU64,
    first_error: OnceLock<String>,
}

impl Load {
    async fn run(self: Arc<Self>, concurrency: usize, duration: Duration) -> Result<serde_json::Value> {
        let cpu_before = cpu_seconds()?;
        let started = Instant::now();
        for _ in 0..concurrency {
            let load = self.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(err) = load.one_request().await {
                        let _ = load.first_error.set(format!("{err:#}"));
                        load.errors.fetch_add(1, Ordering::Relaxed);
                    } else {
                        load.completed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        tokio::time::sleep(duration).await;
        // This snapshot ends the measured period; the workers are dropped with the runtime.
        let cpu = cpu_seconds()? - cpu_before;
        let completed = self.completed.load(Ordering::Relaxed);
        Ok(json!({
            "completed": completed,
            "errors": self.errors.load(Ordering::Relaxed),
            "first_error": self.first_error.get(),
            "req_per_s": completed as f64 / started.elapsed().as_secs_f64(),
            "cpu_us_per_req": cpu * 1e6 / completed.max(1) as f64,
        }))
    }

    /// One request on a free client. A client whose request failed is in an unknown state and
    /// is dropped with its permit (any error fails the benchmark anyway).
    async fn one_request(&self) -> Result<()> {
        let permit = self.permits.acquire().await?;
        let mut client = self.free.lock().unwrap().pop().context("a permit without a client")?;
        let request = Request::new(self.params.clone(), fastcgi_client::io::empty());
        let output = match client.execute(request).await {
            Ok(output) => output,
            Err(err) => {
                permit.forget();
                bail!("fastcgi-client: {err}");
            }
        };
        self.free.lock().unwrap().push(client);
        drop(permit);
        // The crate hands back the raw CGI output, head and body.
        let stdout = output.stdout.unwrap_or_default();
        if !stdout.ends_with(&self.expect) {
            bail!("unexpected output {:?}", String::from_utf8_lossy(&stdout[..stdout.len().min(200)]));
        }
        Ok(())
    }
}

/// User + system CPU of this process (all threads) so far, seconds.
fn cpu_seconds() -> Result<f64> {
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    Ok((usage.user_time().num_microseconds() + usage.system_time().num_microseconds()) as f64 / 1e6)
}
