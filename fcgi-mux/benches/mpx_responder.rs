//! `mpx_responder SOCKET_PATH`: a multiplexing FastCGI responder made with the `tokio-fastcgi`
//! crate, the server side of the "one connection × 64 multiplexed requests vs 64 connections"
//! benchmark. It measures nothing itself.
//!
//! Every request, whatever its parameters, is answered `Status: 200 OK`, `Content-Type:
//! text/plain`, body `Hello, world!`, in a tokio task of its own (so requests multiplexed on one
//! connection really run concurrently, and a connection costs the same task structure whether it
//! carries one request or 64). It answers FCGI_GET_VALUES with `FCGI_MPXS_CONNS=1`
//! (`tokio-fastcgi` does that itself).
//!
//! Built for speed, so that the client is what is measured:
//!
//! - reads go through a `BufReader` (`tokio-fastcgi` reads a record header and body with
//!   separate `read_exact` calls);
//! - writes go through a channel to one writer task per connection, which writes whatever
//!   records queued up in one `write` call. `tokio-fastcgi` writes every record header and body
//!   separately and flushes after each stream's end, which would cost six syscalls per request;
//! - it runs on a current-thread runtime. This is required, not a choice: `tokio-fastcgi`
//!   guards a connection's writer with `try_lock().expect(..)`, which panics when two requests of
//!   one connection write at the same moment from two threads. On one thread, a writer is only
//!   held across an await when the write would block, and the channel writer never blocks.
//!
//! Prints `ready` on stdout once it listens; runs until killed. The socket file must not exist
//! beforehand (it is not removed on exit).

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
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mpx_responder: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        bail!("usage: mpx_responder SOCKET_PATH");
    };
    let path = std::path::PathBuf::from(path);
    if path.exists() {
        bail!("{} already exists; give a path for a new socket", path.display());
    }
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
            match receiver.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
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
        match self.0.send(Bytes::copy_from_slice(buf)) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the connection's writer stopped")))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
