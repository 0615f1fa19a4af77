//! `stream_1g`: memory and speed while streaming one large response.
//!
//! Sends one GET for `--script-name` (the test docroot's `big.php`) with `QUERY_STRING
//! bytes=N` (`--bytes`, default 1 GiB); `big.php` answers N bytes in 64 KiB chunks, each flushed
//! at once. The body is read chunk by chunk and discarded, so memory stays whatever the client
//! itself holds. With `--client fcgi-mux` (default) the request goes through an
//! `fcgi_mux::Pool` of one connection and the body is read as an `http_body::Body`; with
//! `--client fastcgi-client` through a keep-alive `fastcgi_client::Client::execute_stream`
//! (whose output includes the CGI headers, so its byte count is slightly larger).
//!
//! Prints one JSON line: `bytes` received (body; CGI output for fastcgi-client), `seconds` from
//! sending the request to the end of the body, `mb_per_s` (10^6 bytes), `rss_before_bytes`
//! (`VmRSS` right before the request), `peak_rss_bytes` (`VmHWM` from `/proc/self/status`:
//! the process's peak resident set, start-up included), and `cpu_s` (getrusage user + system
//! during the transfer). Fails when fewer or more than N body bytes arrive.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use fastcgi_client::{Client, Params, Request, StreamExt, response::Content};
mod common;

use common::{
    BigResponse, CpuTime, RuntimeKind, SocketAddress, cgi_params, peak_rss_bytes, print_json, rss_bytes,
};
use fcgi_mux::{Address, Pool, PoolConfig};
use http_body_util::{BodyExt, Empty};

/// Streams one large response and prints its speed and the process's peak RSS as JSON.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The response to ask for.
    #[command(flatten)]
    big: BigResponse,
    /// The client library.
    #[arg(long, value_enum, default_value = "fcgi-mux")]
    client: ClientKind,
    /// The tokio runtime.
    #[arg(long, value_enum, default_value = "current")]
    runtime: RuntimeKind,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ClientKind {
    FcgiMux,
    FastcgiClient,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("stream_1g: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let query = format!("bytes={}", args.big.bytes);
    let params = cgi_params(&args.big.script_filename, &args.big.script_name, &query);
    let runtime = args.runtime.build()?;
    let (received, started, rss_before, cpu_before) = runtime.block_on(async {
        match args.client {
            ClientKind::FcgiMux => {
                let address: Address = args.big.address.parse()?;
                let pool = Pool::new(address, PoolConfig::default().max_connections(1));
                let params: Vec<(Bytes, Bytes)> =
                    params.into_iter().map(|(n, v)| (Bytes::from(n), Bytes::from(v))).collect();
                let request = http::Request::get(format!("{}?{query}", args.big.script_name))
                    .body(Empty::<Bytes>::new())
                    .context("building the request")?;
                let (rss_before, cpu_before) = (rss_bytes()?, CpuTime::now()?);
                let started = Instant::now();
                let response = pool.request(request, params).await.context("sending the request")?;
                if response.status() != http::StatusCode::OK {
                    bail!("status {}", response.status());
                }
                let mut body = response.into_body();
                let mut received = 0u64;
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame.context("reading the body")?.into_data() {
                        received += data.len() as u64;
                    }
                }
                Ok((received, started, rss_before, cpu_before))
            }
            ClientKind::FastcgiClient => {
                let stream = match SocketAddress::parse(&args.big.address)? {
                    SocketAddress::Unix(path) => tokio::net::UnixStream::connect(&path)
                        .await
                        .with_context(|| format!("connecting to {}", path.display()))?,
                    SocketAddress::Tcp(_) => bail!("--client fastcgi-client supports unix sockets only"),
                };
                let mut client = Client::new_keep_alive_tokio(stream);
                let mut fcgi_params = Params::default();
                fcgi_params.clear();
                for (name, value) in params {
                    fcgi_params.insert(name.into(), value.into());
                }
                let (rss_before, cpu_before) = (rss_bytes()?, CpuTime::now()?);
                let started = Instant::now();
                let mut stream = client
                    .execute_stream(Request::new(fcgi_params, fastcgi_client::io::empty()))
                    .await
                    .map_err(|e| anyhow::anyhow!("sending the request: {e}"))?;
                let mut received = 0u64;
                while let Some(content) = stream.next().await {
                    match content.map_err(|e| anyhow::anyhow!("reading the response: {e}"))? {
                        Content::Stdout(data) => received += data.len() as u64,
                        Content::Stderr(_) => {}
                    }
                }
                Ok((received, started, rss_before, cpu_before))
            }
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = CpuTime::now()?.since(&cpu_before);
    let short = match args.client {
        ClientKind::FcgiMux => received != args.big.bytes,
        ClientKind::FastcgiClient => received < args.big.bytes,
    };
    if short {
        bail!("received {received} bytes, expected {}", args.big.bytes);
    }
    print_json(&serde_json::json!({
        "client": match args.client {
            ClientKind::FcgiMux => "fcgi-mux",
            ClientKind::FastcgiClient => "fastcgi-client",
        },
        "runtime": args.runtime.name(),
        "bytes": received,
        "seconds": seconds,
        "mb_per_s": if seconds > 0.0 { received as f64 / seconds / 1e6 } else { 0.0 },
        "rss_before_bytes": rss_before,
        "peak_rss_bytes": peak_rss_bytes()?,
        "cpu_s": cpu.total().as_secs_f64(),
    }));
    Ok(())
}
