//! `mux_load`: requests/s and client CPU per request through fcgi-mux.
//!
//! Keeps `--concurrency` GET requests in flight against `--address` (each worker task sends the
//! next request as soon as its previous response body was read to the end), through either
//!
//! - `--mode pool` (default): one `fcgi_mux::Pool` with `--connections` connections, each
//!   multiplexing (`--multiplexing force`, up to `--max-concurrent-requests` each) or not (`off`:
//!   what php-fpm needs), or
//! - `--mode connection`: one `fcgi_mux::Connection` carrying every request (multiplexed with
//!   `--multiplexing force`; with `off` the requests queue in its driver, one at a time).
//!
//! A request counts as an error unless it returns status 200 and its whole body (equal to
//! `--expect-body` when given). The measured period and the CPU figure are explained in the crate
//! docs (`getrusage(RUSAGE_SELF)`, user + system, over the steady-state period only).
//!
//! Prints one JSON line: `requests`, `errors`, `wall_s`, `req_per_s`, `cpu_user_s`, `cpu_sys_s`,
//! `cpu_us_per_req`, context switches, `first_error`, and the setup (`client`, `mode`,
//! `connections`, `multiplexing`, `concurrency`, `runtime`).
//!
//! ```text
//! mux_load --address unix:/run/php/php-fpm.sock --script-filename /srv/www/hello.php \
//!          --script-name /hello.php --concurrency 8 --connections 7 --duration 3
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
mod common;

use common::{LoadArgs, drive, print_json};
use fcgi_mux::{Address, Connection, ConnectionConfig, EncodedParams, Multiplexing, Pool, PoolConfig};
use http_body_util::{BodyExt, Empty};

/// Drives a FastCGI load through fcgi-mux and prints one JSON line of figures.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    load: LoadArgs,
    /// Through a pool, or one bare connection.
    #[arg(long, value_enum, default_value = "pool")]
    mode: Mode,
    /// The pool's `max_connections` (`--mode pool` only).
    #[arg(long, default_value_t = 7)]
    connections: usize,
    /// `off`: one request at a time per connection (php-fpm); `force`: multiplex.
    #[arg(long, value_enum, default_value = "off")]
    multiplexing: Mpx,
    /// Most requests in flight on one multiplexed connection.
    #[arg(long, default_value_t = 100)]
    max_concurrent_requests: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Pool,
    /// Through a pool, the parameters encoded once (`EncodedParams`, as `fcgi bench` does).
    PoolEncoded,
    Connection,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mpx {
    Off,
    Force,
}

/// Where requests go.
#[derive(Clone)]
enum Target {
    Pool(Pool),
    PoolEncoded(Pool, EncodedParams),
    Connection(Connection),
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mux_load: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let options = args.load.load_options()?;
    let address: Address = args.load.address.parse()?;
    let multiplexing = match args.multiplexing {
        Mpx::Off => Multiplexing::Off,
        Mpx::Force => Multiplexing::Force,
    };
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let connection_config = ConnectionConfig::default()
        .keep_conn(true)
        .multiplexing(multiplexing)
        .max_concurrent_requests(args.max_concurrent_requests);
    // Static (leaked) bytes: cloning the list per request costs one allocation, no refcounts,
    // the same as the peer's cheapest use of its API.
    let leak = |text: String| Bytes::from_static(Box::leak(text.into_bytes().into_boxed_slice()));
    let params: Arc<Vec<(Bytes, Bytes)>> =
        Arc::new(args.load.params().into_iter().map(|(name, value)| (leak(name), leak(value))).collect());
    let uri: http::Uri = match args.load.query.as_str() {
        "" => args.load.script_name.clone(),
        query => format!("{}?{query}", args.load.script_name),
    }
    .parse()
    .context("script name and query do not make a valid URI")?;
    let expect = args.load.expect_body.clone().map(Bytes::from);

    let runtime = args.load.runtime.build()?;
    let outcome = runtime.block_on(async {
        let pool = || {
            Pool::new(
                address.clone(),
                PoolConfig::default()
                    .max_connections(args.connections)
                    .queue_timeout(Duration::from_secs(30))
                    .connection(connection_config.clone()),
            )
        };
        let target = match args.mode {
            Mode::Pool => Target::Pool(pool()),
            Mode::PoolEncoded => {
                let pool = pool();
                let encoded = pool.encode_params(Vec::clone(&params), 0)?;
                Target::PoolEncoded(pool, encoded)
            }
            Mode::Connection => Target::Connection(
                Connection::spawn(&address, connection_config)
                    .await
                    .with_context(|| format!("connecting to {address}"))?,
            ),
        };
        drive(options, move || {
            let target = target.clone();
            let params = match target {
                Target::PoolEncoded(..) => Vec::new(),
                _ => Vec::clone(&params),
            };
            let uri = uri.clone();
            let expect = expect.clone();
            async move { one_request(target, uri, params, expect).await }
        })
        .await
    })?;
    let (mode, connections) = match args.mode {
        Mode::Pool => ("pool", args.connections),
        Mode::PoolEncoded => ("pool-encoded", args.connections),
        Mode::Connection => ("connection", 1),
    };
    print_json(&outcome.to_json(serde_json::json!({
        "client": "fcgi-mux",
        "mode": mode,
        "connections": connections,
        "multiplexing": format!("{:?}", args.multiplexing).to_lowercase(),
        "concurrency": args.load.concurrency,
        "runtime": args.load.runtime.name(),
    })));
    Ok(())
}

/// One GET, its body read to the end and checked.
async fn one_request(
    target: Target,
    uri: http::Uri,
    params: Vec<(Bytes, Bytes)>,
    expect: Option<Bytes>,
) -> Result<()> {
    let request = http::Request::get(uri).body(Empty::<Bytes>::new())?;
    let response = match &target {
        Target::Pool(pool) => pool.request(request, params).await?,
        Target::PoolEncoded(pool, encoded) => pool.request_encoded(request, encoded).await?,
        Target::Connection(connection) => connection.request(request, params).await?,
    };
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != http::StatusCode::OK {
        bail!("status {status}, body {:?}", String::from_utf8_lossy(&body[..body.len().min(200)]));
    }
    if let Some(expect) = expect {
        if body != expect {
            bail!("unexpected body {:?}", String::from_utf8_lossy(&body[..body.len().min(200)]));
        }
    }
    Ok(())
}
