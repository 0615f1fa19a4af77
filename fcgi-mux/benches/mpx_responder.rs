//! `mpx_responder SOCKET_PATH`: a multiplexing hello-world FastCGI responder made with the
//! `tokio-fastcgi` crate, the server of `cargo xtask bench mux`'s "one connection × 64
//! multiplexed requests vs 64 connections". It measures nothing itself; prints `ready` once it
//! listens and runs until killed.
//!
//! Every request gets `Status: 200 OK` and `Hello, world!` from a task of its own (requests
//! multiplexed on one connection really run concurrently). Built so that the client is what is
//! measured: reads go through a `BufReader` (`tokio-fastcgi` reads a record's header and body
//! with separate calls), and writes through a channel to one writer task per connection, which
//! writes whatever queued up in one call (`tokio-fastcgi` writes each record's parts separately
//! and flushes after each stream). It runs on a current-thread runtime, which is required:
//! `tokio-fastcgi` guards a connection's writer with `try_lock().expect(..)`, which panics when
//! two requests of one connection write at once from two threads.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context as TaskContext, Poll};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_fastcgi::{RequestResult, Requests};

/// The whole CGI response of every request.
const RESPONSE: &[u8] = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, world!";

/// Bytes the writer task gathers into one `write` at most.
const WRITE_BATCH: usize = 256 * 1024;

fn main() -> ExitCode {
    // `run` returns only on an error.
    let Err(err) = run();
    eprintln!("mpx_responder: {err:#}");
    ExitCode::FAILURE
}

fn run() -> Result<Infallible> {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else { bail!("usage: mpx_responder SOCKET_PATH") };
    let path = std::path::PathBuf::from(path);
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("building the runtime")?;
    runtime.block_on(async {
        let listener = UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        println!("ready");
        loop {
            let (stream, _) = listener.accept().await.context("accepting a connection")?;
            tokio::spawn(async move {
                if let Err(err) = serve(stream).await {
                    eprintln!("mpx_responder: connection failed: {err}");
                }
            });
        }
    })
}

/// Serves one connection until the client closes it.
async fn serve(stream: tokio::net::UnixStream) -> Result<(), tokio_fastcgi::Error> {
    let (read, write) = stream.into_split();
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(write_loop(receiver, write));
    let mut requests = Requests::new(BufReader::new(read), ChannelWriter(sender), u8::MAX, u8::MAX);
    while let Some(request) = requests.next().await? {
        tokio::spawn(async move {
            let result = request
                .process(|request| async move {
                    match request.get_stdout().write(RESPONSE).await {
                        Ok(_) => RequestResult::Complete(0),
                        Err(_) => RequestResult::Complete(1),
                    }
                })
                .await;
            if let Err(err) = result {
                eprintln!("mpx_responder: request failed: {err}");
            }
        });
    }
    Ok(())
}

/// Writes what the connection's requests queued, in as few `write` calls as possible.
async fn write_loop(mut receiver: mpsc::UnboundedReceiver<Bytes>, mut socket: OwnedWriteHalf) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(chunk) = receiver.recv().await {
        batch.extend_from_slice(&chunk);
        while batch.len() < WRITE_BATCH {
            let Ok(more) = receiver.try_recv() else { break };
            batch.extend_from_slice(&more);
        }
        if socket.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
    }
}

/// The `AsyncWrite` handed to `tokio-fastcgi`: queues bytes for [`write_loop`], never blocks.
struct ChannelWriter(mpsc::UnboundedSender<Bytes>);

impl AsyncWrite for ChannelWriter {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let stopped = |_| io::Error::new(io::ErrorKind::BrokenPipe, "the connection's writer stopped");
        Poll::Ready(self.0.send(Bytes::copy_from_slice(buf)).map(|()| buf.len()).map_err(stopped))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
