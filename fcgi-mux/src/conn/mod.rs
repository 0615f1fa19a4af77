//! One FastCGI connection: a cloneable [`Connection`] handle and the [`ConnectionDriver`]
//! future that owns the socket.
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | connecting, the optional GET_VALUES exchange, the handle |
//! | `commands.rs` | the queue of requests from the handles to the driver |
//! | `state.rs` | connection-wide counters and open/retiring/closed state |
//! | `shared.rs` | per-request state shared by the driver and the request's handles |
//! | `store.rs` | per-request driver state keyed by request id, id allocation |
//! | `send.rs` | one request's outgoing records |
//! | `recv.rs` | dispatching received records |
//! | `driver.rs` | the driver future: scheduling, timers, shutdown |

mod commands;
mod driver;
mod recv;
mod send;
pub(crate) mod shared;
pub(crate) mod state;
mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fcgi_proto::{Decoder, RecordBody, ServerValues};
use http_body::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::address::{Address, Transport};
use crate::config::{ConnectionConfig, Multiplexing};
use crate::error::{BoxError, Error, ProtocolViolation, TimeoutKind};
use crate::observer::{Direction, observe};
use crate::request::{EncodedParams, Head, RequestBody, check_content_length, prepare_body};
use crate::response::{self, ResponseBody, first_byte_deadline};
use driver::{Driver, Start};
use send::Replay;
use shared::RequestShared;
use state::{ConnShared, Listener};

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// A request prepared for the wire: its head and a body of known length. A request that never
/// ran comes back from the driver (see [`send::Replay`]) to be sent again.
pub(crate) struct Prepared {
    pub(crate) head: Head,
    pub(crate) body: RequestBody,
    pub(crate) head_only: bool,
    pub(crate) span: tracing::Span,
}

/// A handle to one FastCGI connection. Cheap to clone; every clone sends requests over the
/// same socket. The connection closes once every handle is gone and its requests ended.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Handle>,
}

struct Handle {
    commands: commands::Sender,
    shared: Arc<ConnShared>,
    config: ConnectionConfig,
    server_values: Option<ServerValues>,
    id: u64,
}

/// The future that drives a connection: spawn it (e.g. `tokio::spawn(driver)`). It ends when
/// the connection closes.
#[must_use = "a connection does nothing unless its driver is spawned"]
pub struct ConnectionDriver(Driver);

impl Future for ConnectionDriver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.id)
            .field("in_flight", &self.inner.shared.in_flight())
            .field("limit", &self.inner.shared.limit())
            .finish()
    }
}

impl Connection {
    /// Connects to `address`; with [`Multiplexing::Auto`] also asks FCGI_GET_VALUES. Spawn the
    /// returned driver to make the connection work.
    pub async fn connect(
        address: &Address,
        config: ConnectionConfig,
    ) -> Result<(Connection, ConnectionDriver), Error> {
        Self::connect_with(address, config, None, None).await
    }

    /// Connects and spawns the driver on the current tokio runtime.
    pub async fn spawn(address: &Address, config: ConnectionConfig) -> Result<Connection, Error> {
        let (connection, driver) = Self::connect(address, config).await?;
        tokio::spawn(driver);
        Ok(connection)
    }

    pub(crate) async fn connect_with(
        address: &Address,
        config: ConnectionConfig,
        idle_timeout: Option<Duration>,
        listener: Option<Listener>,
    ) -> Result<(Connection, ConnectionDriver), Error> {
        let id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("fcgi_connection", id, %address);
        let mut io = address.connect(config.connect_timeout).await?;
        tracing::debug!(parent: &span, "connected");
        let mut read_buf = BytesMut::new();
        let mut decoder = Decoder::new();
        let (limit, server_values) = match config.multiplexing {
            Multiplexing::Off => (1, None),
            Multiplexing::Force => (config.max_concurrent_requests, None),
            Multiplexing::Auto => {
                let values = exchange_values(&mut io, &mut read_buf, &mut decoder, &config).await?;
                let limit = match values {
                    Some(v) if v.mpxs_conns == Some(true) => {
                        let server_max = v.max_reqs.map_or(usize::MAX, |n| n as usize);
                        config.max_concurrent_requests.min(server_max).max(1)
                    }
                    _ => 1,
                };
                tracing::debug!(parent: &span, ?values, limit, "FCGI_GET_VALUES exchanged");
                (limit, values)
            }
        };
        let shared = Arc::new(ConnShared::new(limit, listener));
        let (commands, receiver) = commands::queue(shared.waker.clone());
        let driver =
            Driver::new(io, config.clone(), shared.clone(), receiver, read_buf, decoder, idle_timeout, span);
        let handle = Handle { commands, shared, config, server_values, id };
        Ok((Connection { inner: Arc::new(handle) }, ConnectionDriver(driver)))
    }

    /// Sends a request and waits for the response head.
    ///
    /// `params` are the FastCGI parameters (for example from `fcgi-cgi-env`). CONTENT_LENGTH
    /// is made to match the body: added when missing, refused when it disagrees. A body whose
    /// length is unknown (no exact size hint, no Content-Length header) is buffered up to
    /// [`ConnectionConfig::max_buffered_body`] to learn it. A `HEAD` request's response has
    /// no body.
    pub async fn request<B>(
        &self,
        request: http::Request<B>,
        params: Vec<(Bytes, Bytes)>,
    ) -> Result<http::Response<ResponseBody>, Error>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let prepared = prepare(request, params, &self.inner.config).await?;
        let mut prepared = prepared;
        // One retry after CANT_MPX_CONN: the server refused the request without running it
        // and this connection now sends one request at a time.
        for attempt in 0..2 {
            self.inner.shared.add_request();
            match self.send(prepared).await {
                Err((error, Some(replay), rest)) if attempt == 0 && is_cant_mpx(&error) => {
                    prepared = rest.with(replay);
                }
                result => return result.map_err(|(error, _, _)| error),
            }
        }
        Err(Error::Closed)
    }

    /// Sends a prepared request whose slot was already counted; on failure returns the request
    /// when it can be sent again.
    pub(crate) async fn send(
        &self,
        prepared: Prepared,
    ) -> Result<http::Response<ResponseBody>, (Error, Option<Replay>, PreparedRest)> {
        let config = &self.inner.config;
        let started = Instant::now();
        let first_byte = first_byte_deadline(config, started);
        let shared = Arc::new(RequestShared::new(self.inner.shared.waker.clone(), config, first_byte));
        let Prepared { head, body, head_only, span } = prepared;
        let rest = PreparedRest { head_only, span: span.clone() };
        let start = Start { head, body, shared: shared.clone(), span: span.clone() };
        if let Err(start) = self.inner.commands.send(start) {
            self.inner.shared.unreserve();
            let replay = Replay { head: start.head, body: start.body };
            return Err((Error::ConnectionClosed { sent_nothing: true }, Some(replay), rest));
        }
        response::receive(shared.clone(), config, head_only, started, span)
            .await
            .map_err(|error| (error, shared.take_returned(), rest))
    }

    /// What the server answered to FCGI_GET_VALUES ([`Multiplexing::Auto`] only).
    pub fn server_values(&self) -> Option<ServerValues> {
        self.inner.server_values
    }

    /// Requests that may run at once on this connection now.
    pub fn max_concurrent_requests(&self) -> usize {
        self.inner.shared.limit()
    }

    /// Requests in flight or queued.
    pub fn in_flight(&self) -> usize {
        self.inner.shared.in_flight()
    }

    /// True once the connection takes no new requests.
    pub fn is_closed(&self) -> bool {
        !self.inner.shared.is_open()
    }

    pub(crate) fn shared(&self) -> &Arc<ConnShared> {
        &self.inner.shared
    }
}

/// The parts of a [`Prepared`] request that stay with the caller during an attempt.
pub(crate) struct PreparedRest {
    pub(crate) head_only: bool,
    pub(crate) span: tracing::Span,
}

impl PreparedRest {
    /// The request again, with the head and body the failed attempt gave back.
    pub(crate) fn with(self, replay: Replay) -> Prepared {
        Prepared { head: replay.head, body: replay.body, head_only: self.head_only, span: self.span }
    }
}

fn is_cant_mpx(error: &Error) -> bool {
    matches!(error, Error::Refused { status, .. } if *status == fcgi_proto::ProtocolStatus::CANT_MPX_CONN)
}

/// Turns an `http::Request` and its params into a [`Prepared`] request.
pub(crate) async fn prepare<B>(
    request: http::Request<B>,
    mut params: Vec<(Bytes, Bytes)>,
    config: &ConnectionConfig,
) -> Result<Prepared, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    prepare_with(request, config, |body_len| {
        check_content_length(&mut params, body_len)?;
        Head::new(params, config)
    })
    .await
}

/// The same with parameters encoded beforehand.
pub(crate) async fn prepare_encoded<B>(
    request: http::Request<B>,
    params: &EncodedParams,
    config: &ConnectionConfig,
) -> Result<Prepared, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    prepare_with(request, config, |body_len| params.head_for(body_len, config)).await
}

/// Readies the body (learning its length), then makes the head for that length with `head`.
async fn prepare_with<B>(
    request: http::Request<B>,
    config: &ConnectionConfig,
    head: impl FnOnce(u64) -> Result<Head, Error>,
) -> Result<Prepared, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let body = prepare_body(body, declared_length(&parts)?, config).await?;
    let head = head(body.len())?;
    let span = tracing::debug_span!("fcgi_request", method = %parts.method, uri = %parts.uri);
    Ok(Prepared { head, body, head_only: parts.method == http::Method::HEAD, span })
}

/// The Content-Length header's value, if there is one.
fn declared_length(parts: &http::request::Parts) -> Result<Option<u64>, Error> {
    match parts.headers.get(http::header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(value) => {
            value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).map(Some).ok_or_else(|| {
                Error::InvalidRequest(format!("Content-Length header {value:?} is not a number"))
            })
        }
    }
}

/// Asks FCGI_GET_VALUES and waits a short while for the answer. `None` when there is no
/// answer in time or an empty one (both mean "unknown"); an error when the peer does not
/// speak FastCGI or closes.
async fn exchange_values(
    io: &mut Transport,
    read_buf: &mut BytesMut,
    decoder: &mut Decoder,
    config: &ConnectionConfig,
) -> Result<Option<ServerValues>, Error> {
    let query = crate::probe::get_values_query(config.observer.as_ref())?;
    io.write_all(&query).await.map_err(Error::io)?;
    let wait = async {
        loop {
            while let Some(frame) = decoder
                .decode_frame(read_buf)
                .map_err(|e| Error::Protocol(ProtocolViolation::Malformed(e)))?
            {
                observe(config.observer.as_ref(), Direction::Received, frame.header, &frame.record);
                if let RecordBody::GetValuesResult(pairs) = frame.record.body {
                    let values = ServerValues::from_pairs(&pairs);
                    return Ok((!values.is_empty()).then_some(values));
                }
            }
            read_buf.reserve(4096);
            if io.read_buf(read_buf).await.map_err(Error::io)? == 0 {
                return Err(Error::ConnectionClosed { sent_nothing: true });
            }
        }
    };
    match tokio::time::timeout(config.get_values_timeout, wait).await {
        Ok(result) => result,
        Err(_) => {
            tracing::debug!(after = ?config.get_values_timeout, "{} (treated as unknown)", TimeoutKind::GetValues);
            Ok(None)
        }
    }
}
