//! `fastcgi_client_load`: the load of `mux_load`, through the `fastcgi-client` crate (the peer).
//!
//! `fastcgi-client` has no pool: a `Client` owns one connection and runs one request at a time
//! (`execute` takes `&mut self`; request id always 1). Its keep-alive mode is how it is meant to
//! serve many requests, so this program opens `--connections` keep-alive clients up front and
//! keeps `--concurrency` worker tasks busy: a worker takes a free client (a semaphore with one
//! permit per client and a free list), runs one request on it, and puts it back. With
//! `--concurrency` equal to `--connections` each worker in effect owns a client, as in "8
//! keep-alive clients on tokio"; with one more worker than clients, a request always waits for the
//! next free connection, as in fcgi-mux's pool.
//!
//! The parameters are the same list `mux_load` sends (`common::cgi_params`). The crate hands
//! back the raw CGI output (headers and body in one buffer) without parsing it; a request counts
//! as an error when `execute` fails, when the output is empty, or when it does not end with
//! `--expect-body` if given. CPU and the measured period: see the crate docs.
//!
//! Prints one JSON line with the fields of `mux_load` (`client` is `fastcgi-client`).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use clap::Parser;
use fastcgi_client::conn::KeepAlive;
use fastcgi_client::io::TokioCompat;
use fastcgi_client::{Client, Params, Request};
mod common;

use common::{LoadArgs, SocketAddress, drive, print_json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Semaphore;

/// Drives a FastCGI load through the `fastcgi-client` crate and prints one JSON line of figures.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    load: LoadArgs,
    /// Keep-alive clients (connections) opened before the run.
    #[arg(long, default_value_t = 7)]
    connections: usize,
}

type KeepAliveClient = Client<TokioCompat<Stream>, KeepAlive>;

/// Keep-alive clients not in use, and a permit per free one.
struct Clients {
    address: SocketAddress,
    free: Mutex<Vec<KeepAliveClient>>,
    permits: Semaphore,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fastcgi_client_load: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let options = args.load.load_options()?;
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let address = SocketAddress::parse(&args.load.address)?;
    // Borrowed ('static) names and values: cloning the map per request is then the cheapest
    // way to use this crate's `Params` (a `HashMap` of `Cow`s).
    let mut params = Params::default();
    params.clear();
    for (name, value) in args.load.params() {
        let name: &'static str = Box::leak(name.into_boxed_str());
        let value: &'static str = Box::leak(value.into_boxed_str());
        params.insert(name.into(), value.into());
    }
    let params = Arc::new(params);
    let expect = args.load.expect_body.clone().map(String::into_bytes);

    let runtime = args.load.runtime.build()?;
    let outcome = runtime.block_on(async {
        let mut free = Vec::with_capacity(args.connections);
        for _ in 0..args.connections {
            let stream = Stream::connect(&address).await?;
            free.push(Client::new_keep_alive_tokio(stream));
        }
        let clients =
            Arc::new(Clients { address, free: Mutex::new(free), permits: Semaphore::new(args.connections) });
        drive(options, move || {
            let clients = clients.clone();
            let params = Params::clone(&params);
            let expect = expect.clone();
            async move { one_request(&clients, params, expect.as_deref()).await }
        })
        .await
    })?;
    print_json(&outcome.to_json(serde_json::json!({
        "client": "fastcgi-client",
        "mode": "keep-alive clients",
        "connections": args.connections,
        "multiplexing": "off",
        "concurrency": args.load.concurrency,
        "runtime": args.load.runtime.name(),
    })));
    Ok(())
}

/// One request on a free client; the client goes back to the free list unless it failed: a
/// failed keep-alive connection is in an unknown state, so a new connection replaces it (or, if
/// that fails too, the pool shrinks by one).
async fn one_request(clients: &Clients, params: Params<'static>, expect: Option<&[u8]>) -> Result<()> {
    let permit = clients.permits.acquire().await.context("client pool closed")?;
    let mut client = clients
        .free
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .context("a permit without a free client")?;
    let result = client.execute(Request::new(params, fastcgi_client::io::empty())).await;
    let output = match result {
        Ok(output) => {
            clients.free.lock().unwrap_or_else(|e| e.into_inner()).push(client);
            drop(permit);
            output
        }
        Err(error) => {
            drop(client);
            match Stream::connect(&clients.address).await {
                Ok(stream) => {
                    let fresh = Client::new_keep_alive_tokio(stream);
                    clients.free.lock().unwrap_or_else(|e| e.into_inner()).push(fresh);
                    drop(permit);
                }
                Err(_) => permit.forget(),
            }
            bail!("fastcgi-client: {error}");
        }
    };
    let stdout = output.stdout.unwrap_or_default();
    if stdout.is_empty() {
        bail!("empty response");
    }
    if let Some(expect) = expect {
        if !stdout.ends_with(expect) {
            bail!("unexpected output {:?}", String::from_utf8_lossy(&stdout[..stdout.len().min(200)]));
        }
    }
    Ok(())
}

/// A tokio unix or TCP stream, for `Client::new_keep_alive_tokio`.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    async fn connect(address: &SocketAddress) -> Result<Stream> {
        match address {
            SocketAddress::Unix(path) => UnixStream::connect(path)
                .await
                .map(Stream::Unix)
                .with_context(|| format!("connecting to unix:{}", path.display())),
            SocketAddress::Tcp(hostport) => {
                let stream = TcpStream::connect(hostport)
                    .await
                    .with_context(|| format!("connecting to {hostport}"))?;
                stream.set_nodelay(true).context("setting TCP_NODELAY")?;
                Ok(Stream::Tcp(stream))
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}
