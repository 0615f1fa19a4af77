//! Accepting connections and serving each with hyper: HTTP/1.1 and HTTP/2 (prior knowledge,
//! or ALPN over TLS) through hyper-util's auto builder, with the limits of `fcgi serve`:
//!
//! - at most `--max-connections` connections: the accept loop waits for a free slot, and
//!   clients beyond it wait in the kernel's listen queue;
//! - the request head: `--max-head-size` (hyper's read buffer: beyond it, 431), `--max-headers`
//!   (431), `--head-timeout` (hyper closes a connection that has not sent a whole head in time:
//!   slowloris; on HTTP/1.1 the wait for the next request counts, on TLS the handshake too);
//! - `--idle-timeout`: a connection with no request in flight for that long is shut down
//!   gracefully (HTTP/2 gets a GOAWAY);
//! - HTTP/2: `--h2-max-streams` concurrent streams, the header list bounded by
//!   `--max-head-size`, and hyper's limits on reset streams (CVE-2023-44487, rapid reset) at
//!   their defaults;
//! - shutdown: on the signal the accept loop stops, every connection is told to finish
//!   (HTTP/1.1 closes after the response in flight, HTTP/2 sends GOAWAY), and the caller waits
//!   for them up to its deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fcgi_cgi_env::ConnectionInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::service::{Activity, Handler, Site};

/// The connection limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// `--max-head-size`.
    pub max_head_size: usize,
    /// `--max-headers`.
    pub max_headers: usize,
    /// `--head-timeout`.
    pub head_timeout: Duration,
    /// `--idle-timeout`.
    pub idle_timeout: Duration,
    /// `--max-connections`.
    pub max_connections: usize,
    /// `--h2-max-streams`.
    pub h2_max_streams: u32,
}

/// hyper's read buffer cannot be smaller than this (its own minimum).
const MIN_HEAD_BUFFER: usize = 8192;

/// The accept loop and its connections.
pub struct Server {
    site: Arc<Site>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    builder: Arc<auto::Builder<TokioExecutor>>,
    slots: Arc<Semaphore>,
}

impl Server {
    /// A server for `site`.
    pub fn new(site: Arc<Site>, tls: Option<TlsAcceptor>, limits: Limits) -> Server {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.head_timeout)
            .max_headers(limits.max_headers)
            .max_buf_size(limits.max_head_size.max(MIN_HEAD_BUFFER));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_streams)
            .max_header_list_size(u32::try_from(limits.max_head_size).unwrap_or(u32::MAX));
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        Server { site, tls, limits, builder: Arc::new(builder), slots }
    }

    /// Accepts until `shutdown` turns true; then tells every connection to finish and waits
    /// for them up to `drain`. Returns how many connections were still open at the deadline.
    pub async fn run(
        &self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
        drain: Duration,
    ) -> usize {
        loop {
            let permit = tokio::select! {
                permit = self.slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let (stream, client) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // EMFILE and the like: wait a little instead of spinning.
                        eprintln!("fcgi serve: accept: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let _ = stream.set_nodelay(true);
            let connection = self.connection(stream, client, shutdown.clone());
            tokio::spawn(async move {
                connection.await;
                drop(permit);
            });
        }
        drop(listener);
        let all = u32::try_from(self.limits.max_connections).unwrap_or(u32::MAX);
        match tokio::time::timeout(drain, self.slots.acquire_many(all)).await {
            Ok(_) => 0,
            Err(_) => self.limits.max_connections - self.slots.available_permits(),
        }
    }

    fn connection(
        &self,
        stream: TcpStream,
        client: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (site, tls, builder, limits) =
            (self.site.clone(), self.tls.clone(), self.builder.clone(), self.limits.clone());
        async move {
            let server = stream.local_addr().ok();
            let mut info = ConnectionInfo::new().client(client).tls(tls.is_some());
            if let Some(server) = server {
                info = info.server(server);
            }
            let handler = Handler {
                site,
                connection: Arc::new(info),
                client: Some(client),
                activity: Arc::new(Activity::default()),
            };
            match tls {
                None => serve(&builder, stream, handler, &limits, shutdown).await,
                Some(acceptor) => {
                    // A failed or slow handshake is the client's problem, and common
                    // (scanners): the connection is dropped without a word.
                    let handshake = tokio::time::timeout(limits.head_timeout, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        serve(&builder, stream, handler, &limits, shutdown).await;
                    }
                }
            }
        }
    }
}

/// Serves one connection until it ends, shutting it down gracefully when it has been idle for
/// `--idle-timeout` or when the server stops.
async fn serve<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    handler: Handler,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = handler.activity.clone();
    let connection = builder.serve_connection(TokioIo::new(io), handler);
    tokio::pin!(connection);
    let idle = idle(&activity, limits.idle_timeout);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = &mut idle, if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = shutdown.wait_for(|stop| *stop), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves once no request has been in flight for `timeout`.
async fn idle(activity: &Activity, timeout: Duration) {
    loop {
        let changed = activity.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if activity.in_flight() > 0 {
            changed.await;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(timeout) => {
                if activity.in_flight() == 0 {
                    return;
                }
            }
            () = changed => {}
        }
    }
}
