//! One FastCGI connection: a cloneable [`Connection`] handle and the [`ConnectionDriver`]
//! future that pumps a [`ConnectionMachine`](crate::machine::ConnectionMachine) over a stream.
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | connecting, the handshake over any stream, the handle |
//! | `commands.rs` | the queue of requests from the handles to the driver |
//! | `state.rs` | connection-wide counters, open/retiring/closed, the [`Slot`](state::Slot) guard |
//! | `shared.rs` | per-request state shared by the driver and the request's handles |
//! | `driver.rs` | the driver future: the pump between the stream and the machine |

mod commands;
mod driver;
pub(crate) mod shared;
pub(crate) mod state;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fcgi_proto::ServerValues;
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::address::Address;
use crate::config::ConnectionConfig;
use crate::error::{BoxError, Error};
use crate::machine::{ConnectionMachine, RequestHead};
use crate::request::{EncodedParams, RequestBody, prepare_body};
use crate::response::{self, ResponseBody};
use commands::Start;
use driver::Driver;
use shared::RequestShared;
use state::{ConnShared, Listener, Slot};

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// A stream of any kind, boxed (what a pool's connector returns).
pub(crate) type BoxedStream = Box<dyn driver::Io>;

/// A request prepared for the wire: its head and a body of known length.
pub(crate) struct Prepared {
    pub(crate) head: RequestHead,
    pub(crate) body: RequestBody,
    /// A Filter's FCGI_DATA.
    pub(crate) data: Option<RequestBody>,
    pub(crate) head_only: bool,
    pub(crate) span: tracing::Span,
}

/// A request given back to be sent again elsewhere: its head and its body.
pub(crate) struct Replay {
    pub(crate) head: RequestHead,
    pub(crate) body: RequestBody,
    pub(crate) data: Option<RequestBody>,
}

/// A handle to one FastCGI connection. Cheap to clone; every clone sends requests over the
/// same stream. The connection closes once every handle is gone and its requests ended.
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

/// The future that drives a connection: spawn it (e.g. `tokio::spawn(driver)`). It resolves
/// when the connection closes: `Ok(())` when it closed on purpose (idle, retired, every handle
/// gone), the error that ended it otherwise.
#[must_use = "a connection does nothing unless its driver is polled (spawn it)"]
pub struct ConnectionDriver(Driver);

impl Future for ConnectionDriver {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl std::fmt::Debug for ConnectionDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConnectionDriver").field(self.0.machine()).finish()
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

/// Pool-side settings of one connection.
#[derive(Clone, Default)]
pub(crate) struct Lifecycle {
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) listener: Option<Listener>,
}

impl Connection {
    /// Connects to `address`; with [`Multiplexing::Auto`](crate::Multiplexing::Auto) also asks
    /// FCGI_GET_VALUES. Spawn the returned driver to make the connection work.
    pub async fn connect(
        address: &Address,
        config: ConnectionConfig,
    ) -> Result<(Connection, ConnectionDriver), Error> {
        Self::connect_with(address, config, Lifecycle::default()).await
    }

    /// Connects and spawns the driver on the current tokio runtime.
    pub async fn spawn(address: &Address, config: ConnectionConfig) -> Result<Connection, Error> {
        let (connection, driver) = Self::connect(address, config).await?;
        tokio::spawn(driver);
        Ok(connection)
    }

    /// A connection over a stream the caller opened (a TLS stream, a socket with its own
    /// options, an in-memory duplex in tests). With [`Multiplexing::Auto`](crate::Multiplexing::Auto)
    /// this waits for the GET_VALUES exchange; otherwise it returns at once.
    pub async fn handshake<S>(
        stream: S,
        config: ConnectionConfig,
    ) -> Result<(Connection, ConnectionDriver), Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("fcgi_connection", id);
        Self::handshake_with(Box::new(stream), config, Lifecycle::default(), id, span).await
    }

    pub(crate) async fn connect_with(
        address: &Address,
        config: ConnectionConfig,
        lifecycle: Lifecycle,
    ) -> Result<(Connection, ConnectionDriver), Error> {
        let id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("fcgi_connection", id, %address);
        let io = address.connect(config.connect_timeout).await?;
        tracing::debug!(parent: &span, "connected");
        Self::handshake_with(Box::new(io), config, lifecycle, id, span).await
    }

    /// A pooled connection over a stream a caller's connector opened.
    pub(crate) async fn over_stream(
        io: BoxedStream,
        label: &Address,
        config: ConnectionConfig,
        lifecycle: Lifecycle,
    ) -> Result<(Connection, ConnectionDriver), Error> {
        let id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("fcgi_connection", id, address = %label);
        Self::handshake_with(io, config, lifecycle, id, span).await
    }

    async fn handshake_with(
        io: Box<dyn driver::Io>,
        config: ConnectionConfig,
        lifecycle: Lifecycle,
        id: u64,
        span: tracing::Span,
    ) -> Result<(Connection, ConnectionDriver), Error> {
        let now = tokio::time::Instant::now().into_std();
        let machine = ConnectionMachine::new(config.clone(), now)
            .with_idle_timeout(lifecycle.idle_timeout)
            .with_max_lifetime(lifecycle.max_lifetime, now);
        let shared = Arc::new(ConnShared::new(1, lifecycle.listener));
        let (commands, receiver) = commands::queue(shared.waker.clone());
        let mut driver = Driver::new(io, machine, shared.clone(), receiver, span.clone());
        if driver.machine().is_negotiating() {
            driver::negotiate(&mut driver).await?;
            tracing::debug!(parent: &span, values = ?driver.machine().server_values(), limit = driver.machine().limit(), "FCGI_GET_VALUES exchanged");
        }
        shared.set_limit(driver.machine().limit());
        let server_values = driver.machine().server_values();
        let handle = Handle { commands, shared, config, server_values, id };
        Ok((Connection { inner: Arc::new(handle) }, ConnectionDriver(driver)))
    }

    /// Sends a request and waits for the response head.
    ///
    /// `params` are the FastCGI parameters, any pairs of byte strings (for example
    /// `fcgi-cgi-env`'s output). CONTENT_LENGTH is made to match the body: added when missing,
    /// refused when it disagrees. A body whose length is unknown (no exact size hint, no
    /// Content-Length header) is buffered up to [`ConnectionConfig::max_buffered_body`] to
    /// learn it. A `HEAD` request's response has no body.
    pub async fn request<B, I, N, V>(
        &self,
        request: http::Request<B>,
        params: I,
    ) -> Result<http::Response<ResponseBody>, Error>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        I: IntoIterator<Item = (N, V)>,
        N: Into<Bytes>,
        V: Into<Bytes>,
    {
        let asked = Instant::now();
        let config = &self.inner.config;
        let mut prepared = prepare(request, params, config).await?;
        let (head_only, span) = (prepared.head_only, prepared.span.clone());
        let deadline = total_deadline(config, asked);
        // One retry after CANT_MPX_CONN: the server refused the request without running it
        // and this connection now sends one request at a time.
        for attempt in 0..2 {
            let slot = self.inner.shared.add_request();
            match self.send(prepared, slot, deadline).await {
                Err((error, Some(replay))) if attempt == 0 && is_cant_mpx(&error) => {
                    prepared = replay.into_prepared(head_only, span.clone());
                }
                result => return result.map_err(|(error, _)| error),
            }
        }
        Err(Error::Closed)
    }

    /// Sends a prepared request holding `slot`; on failure returns the request when it can be
    /// sent again.
    pub(crate) async fn send(
        &self,
        prepared: Prepared,
        slot: Slot,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<http::Response<ResponseBody>, (Error, Option<Replay>)> {
        let config = &self.inner.config;
        let shared = Arc::new(RequestShared::new(self.inner.shared.waker.clone(), config.response_buffer));
        let span = prepared.span.clone();
        let start = Start { prepared, shared: shared.clone(), slot, deadline };
        if let Err(start) = self.inner.commands.send(start) {
            let replay =
                Replay { head: start.prepared.head, body: start.prepared.body, data: start.prepared.data };
            return Err((Error::ConnectionClosed { sent_nothing: true }, Some(replay)));
        }
        response::receive(shared.clone(), span).await.map_err(|error| (error, shared.take_returned()))
    }

    /// Sends an Authorizer request (FastCGI specification §6.3): the request's head and
    /// `params` without CONTENT_LENGTH, PATH_INFO, PATH_TRANSLATED and SCRIPT_NAME, no body. The
    /// response's status 200 means "authorized" (its `Variable-*` headers are the variables to
    /// pass on); any other status is the answer to send to the client.
    pub async fn authorize<I, N, V>(
        &self,
        request: http::Request<()>,
        params: I,
    ) -> Result<http::Response<ResponseBody>, Error>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<Bytes>,
        V: Into<Bytes>,
    {
        let asked = Instant::now();
        let prepared = prepare_authorizer(request, params, &self.inner.config).await?;
        self.send_once(prepared, asked).await
    }

    /// Sends a Filter request (FastCGI specification §6.4): the request and its body as for a
    /// Responder, then `data` (the file to filter) as FCGI_DATA, with FCGI_DATA_LENGTH made to
    /// agree with it. FCGI_DATA_LAST_MOD is the caller's to put in `params`.
    pub async fn filter<B, D, I, N, V>(
        &self,
        request: http::Request<B>,
        params: I,
        data: D,
    ) -> Result<http::Response<ResponseBody>, Error>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        D: Body + Send + 'static,
        D::Data: Send,
        D::Error: Into<BoxError>,
        I: IntoIterator<Item = (N, V)>,
        N: Into<Bytes>,
        V: Into<Bytes>,
    {
        let asked = Instant::now();
        let prepared =
            prepare_role(request, params, fcgi_proto::Role::FILTER, Some(data), &self.inner.config).await?;
        self.send_once(prepared, asked).await
    }

    /// Sends a prepared request once (no retry), its total deadline counted from `asked`.
    async fn send_once(
        &self,
        prepared: Prepared,
        asked: Instant,
    ) -> Result<http::Response<ResponseBody>, Error> {
        let slot = self.inner.shared.add_request();
        self.send(prepared, slot, total_deadline(&self.inner.config, asked)).await.map_err(|(error, _)| error)
    }

    /// What the server answered to FCGI_GET_VALUES ([`Multiplexing::Auto`](crate::Multiplexing::Auto) only).
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

impl Replay {
    /// The request again, ready for another attempt.
    pub(crate) fn into_prepared(self, head_only: bool, span: tracing::Span) -> Prepared {
        Prepared { head: self.head, body: self.body, data: self.data, head_only, span }
    }
}

/// When a request asked for at `asked` must be over.
pub(crate) fn total_deadline(config: &ConnectionConfig, asked: Instant) -> Option<(Instant, Duration)> {
    config.total_timeout.map(|after| (asked + after, after))
}

fn is_cant_mpx(error: &Error) -> bool {
    matches!(error, Error::Refused { status, .. } if *status == fcgi_proto::ProtocolStatus::CANT_MPX_CONN)
}

/// Turns an `http::Request` and its params into a [`Prepared`] request.
pub(crate) async fn prepare<B, I, N, V>(
    request: http::Request<B>,
    params: I,
    config: &ConnectionConfig,
) -> Result<Prepared, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    I: IntoIterator<Item = (N, V)>,
    N: Into<Bytes>,
    V: Into<Bytes>,
{
    let params: Vec<(Bytes, Bytes)> = params.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
    prepare_with(request, config, |body_len| RequestHead::new(params, body_len, config)).await
}

/// An Authorizer or Filter request (see [`RequestHead::for_role`]): for a Filter, `data` is
/// readied like a body (its length learned) and sent as FCGI_DATA after the body.
pub(crate) async fn prepare_role<B, D, I, N, V>(
    request: http::Request<B>,
    params: I,
    role: fcgi_proto::Role,
    data: Option<D>,
    config: &ConnectionConfig,
) -> Result<Prepared, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    D: Body + Send + 'static,
    D::Data: Send,
    D::Error: Into<BoxError>,
    I: IntoIterator<Item = (N, V)>,
    N: Into<Bytes>,
    V: Into<Bytes>,
{
    let data = match data {
        Some(data) => Some(prepare_body(data, None, config).await?),
        None => None,
    };
    let data_len = data.as_ref().map(RequestBody::len);
    let params: Vec<(Bytes, Bytes)> = params.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
    let mut prepared = prepare_with(request, config, |body_len| {
        RequestHead::for_role(role, params, body_len, data_len, config)
    })
    .await?;
    prepared.data = data;
    Ok(prepared)
}

/// An Authorizer request: the head of `request` and `params`, no body.
pub(crate) async fn prepare_authorizer<I, N, V>(
    request: http::Request<()>,
    params: I,
    config: &ConnectionConfig,
) -> Result<Prepared, Error>
where
    I: IntoIterator<Item = (N, V)>,
    N: Into<Bytes>,
    V: Into<Bytes>,
{
    let request = request.map(|()| http_body_util::Empty::<Bytes>::new());
    let no_data: Option<http_body_util::Empty<Bytes>> = None;
    prepare_role(request, params, fcgi_proto::Role::AUTHORIZER, no_data, config).await
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
    prepare_with(request, config, |body_len| RequestHead::encoded(params, body_len, config)).await
}

/// Readies the body (learning its length), then makes the head for that length with `head`.
async fn prepare_with<B>(
    request: http::Request<B>,
    config: &ConnectionConfig,
    head: impl FnOnce(u64) -> Result<RequestHead, Error>,
) -> Result<Prepared, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let body = prepare_body(body, declared_length(&parts.headers)?, config).await?;
    let head = head(body.len())?;
    let span = tracing::debug_span!("fcgi_request", method = %parts.method, uri = %parts.uri);
    Ok(Prepared { head, body, data: None, head_only: parts.method == http::Method::HEAD, span })
}

/// The Content-Length header's value, if there is one.
pub(crate) fn declared_length(headers: &http::HeaderMap) -> Result<Option<u64>, Error> {
    match headers.get(http::header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(value) => {
            value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).map(Some).ok_or_else(|| {
                Error::InvalidRequest(format!("Content-Length header {value:?} is not a number"))
            })
        }
    }
}
