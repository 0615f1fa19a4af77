//! A pool of connections to one backend.
//!
//! Requests take a free slot on an open connection (one per connection unless it
//! multiplexes), open a new connection while there are fewer than `max_connections`, or wait
//! in a first-come, first-served queue. A freed slot is handed straight to the first waiter,
//! so newcomers cannot overtake the queue.
//!
//! Every count is held by a guard, so a request future dropped at any await point gives back
//! what it held: a [`Slot`] on a connection, a [`ConnectPermit`] to open one, its place in the
//! queue (a dropped receiver), the grant a waiter was sent but never received (dropped with
//! the channel, and with it the guard it carries).
//!
//! A request that failed before any of its bytes were written (the server closed a kept-alive
//! connection, as php-fpm may after END_REQUEST) or that was refused with CANT_MPX_CONN is
//! sent again; nothing else is retried, except OVERLOADED once when configured. A backend that
//! closes kept connections between requests (uWSGI always does) is noticed, and from then on
//! each connection to it carries one request.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fcgi_proto::ProtocolStatus;
use http_body::Body;
use tokio::sync::{Notify, oneshot};

use crate::address::Address;
use crate::config::PoolConfig;
use crate::conn::shared::lock;
use crate::conn::state::{ConnEvent, Listener, Slot};
use crate::conn::{
    BoxedStream, Connection, Lifecycle, Prepared, prepare, prepare_authorizer, prepare_encoded, prepare_role,
    total_deadline,
};
use crate::error::{BoxError, Error, TimeoutKind};
use crate::request::EncodedParams;
use crate::response::ResponseBody;

/// Most times one request is sent again after failures that prove it never ran.
const MAX_RESENDS: usize = 3;

/// A cloneable handle to a pool of connections to one FastCGI backend.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

/// Opens a stream for a pool ([`Pool::with_connector`]).
type ConnectFn = dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<BoxedStream>> + Send>> + Send + Sync;

struct PoolInner {
    address: Address,
    /// Opens streams instead of connecting to `address` directly.
    connector: Option<Arc<ConnectFn>>,
    config: PoolConfig,
    state: Mutex<PoolState>,
    /// Notified whenever a connection becomes unusable (for `close`).
    changed: Notify,
    /// For the guards this pool hands out.
    weak_self: Weak<PoolInner>,
}

#[derive(Default)]
struct PoolState {
    connections: Vec<Connection>,
    connecting: usize,
    waiters: VecDeque<oneshot::Sender<Grant>>,
    closed: bool,
    /// The backend closes kept connections between requests: one request per connection.
    single_use: bool,
}

/// What a waiter is handed. Each variant carries the guard of what it grants.
enum Grant {
    /// A connection with a slot reserved for the waiter.
    Slot(Connection, Slot),
    /// Permission to open a new connection (counted in `connecting`).
    Connect(ConnectPermit),
}

/// One count in `connecting`: given back when dropped, however the opener goes away.
struct ConnectPermit {
    pool: Weak<PoolInner>,
    armed: bool,
}

impl ConnectPermit {
    /// The count is given back by the caller, who holds the pool's lock.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ConnectPermit {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Some(inner) = self.pool.upgrade() else { return };
        let mut state = lock(&inner.state);
        state.connecting -= 1;
        inner.grant_connects(&mut state);
    }
}

/// A snapshot of the pool.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Open connections that accept requests.
    pub open: usize,
    /// Open connections without a request.
    pub idle: usize,
    /// Connections being established.
    pub connecting: usize,
    /// Requests in flight on open connections.
    pub in_flight: usize,
    /// Requests waiting for a slot.
    pub waiting: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("address", &self.inner.address).field("stats", &self.stats()).finish()
    }
}

impl Pool {
    /// A pool for `address`. Connections are opened on demand.
    pub fn new(address: Address, config: PoolConfig) -> Pool {
        Self::build(address, None, config)
    }

    /// A pool whose connections are streams opened by `connect` (a TLS stream to `address`,
    /// a socket with options of your own, an in-memory stream in tests); `address` names the
    /// backend in logs and [`Pool::address`]. `connect` runs under
    /// [`ConnectionConfig::connect_timeout`](crate::ConnectionConfig::connect_timeout).
    pub fn with_connector<F, Fut, S>(address: Address, config: PoolConfig, connect: F) -> Pool
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::io::Result<S>> + Send + 'static,
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let connector: Arc<ConnectFn> = Arc::new(move || {
            let opening = connect();
            Box::pin(async move { opening.await.map(|stream| Box::new(stream) as BoxedStream) })
        });
        Self::build(address, Some(connector), config)
    }

    fn build(address: Address, connector: Option<Arc<ConnectFn>>, mut config: PoolConfig) -> Pool {
        config.connection.keep_conn = config.keep_alive;
        config.max_connections = config.max_connections.max(1);
        let inner = Arc::new_cyclic(|weak_self| PoolInner {
            address,
            connector,
            config,
            state: Mutex::default(),
            changed: Notify::new(),
            weak_self: weak_self.clone(),
        });
        Pool { inner }
    }

    /// The backend's address.
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// Sends a request on a pooled connection and waits for the response head. See
    /// [`Connection::request`] for the body and CONTENT_LENGTH rules. The total timeout
    /// counts from this call: waiting for a connection is part of it.
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
        let prepared = prepare(request, params, &self.inner.config.connection).await?;
        self.send(prepared, asked).await
    }

    /// [`Connection::authorize`] on a pooled connection.
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
        let prepared = prepare_authorizer(request, params, &self.inner.config.connection).await?;
        self.send(prepared, asked).await
    }

    /// [`Connection::filter`] on a pooled connection.
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
        let config = &self.inner.config.connection;
        let prepared = prepare_role(request, params, fcgi_proto::Role::FILTER, Some(data), config).await?;
        self.send(prepared, asked).await
    }

    /// Checks and encodes `params` once, for [`Pool::request_encoded`]: the same parameters
    /// sent with many requests whose bodies have `body_len` bytes (CONTENT_LENGTH is checked
    /// against it, or added, as [`Pool::request`] does).
    pub fn encode_params<I, N, V>(&self, params: I, body_len: u64) -> Result<EncodedParams, Error>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<Bytes>,
        V: Into<Bytes>,
    {
        let params = params.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        EncodedParams::new(params, body_len, &self.inner.config.connection)
    }

    /// [`Pool::request`] with parameters encoded beforehand by this pool's
    /// [`Pool::encode_params`]: the request's records are copied, not encoded again. A body
    /// whose length differs from the one the parameters were encoded for is refused.
    pub async fn request_encoded<B>(
        &self,
        request: http::Request<B>,
        params: &EncodedParams,
    ) -> Result<http::Response<ResponseBody>, Error>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let asked = Instant::now();
        let prepared = prepare_encoded(request, params, &self.inner.config.connection).await?;
        self.send(prepared, asked).await
    }

    /// Sends a prepared request, on another connection when it did not run.
    async fn send(
        &self,
        mut prepared: Prepared,
        asked: Instant,
    ) -> Result<http::Response<ResponseBody>, Error> {
        let deadline = total_deadline(&self.inner.config.connection, asked);
        let (head_only, span) = (prepared.head_only, prepared.span.clone());
        let mut resends = 0;
        loop {
            let (connection, slot) = self.checkout(asked, deadline).await?;
            match connection.send(prepared, slot, deadline).await {
                Ok(response) => return Ok(response),
                Err((error, Some(replay))) if resends < MAX_RESENDS && self.may_resend(&error, resends) => {
                    tracing::debug!(%error, "request did not run; sending it again");
                    resends += 1;
                    prepared = replay.into_prepared(head_only, span.clone());
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    fn may_resend(&self, error: &Error, resends: usize) -> bool {
        let overloaded =
            matches!(error, Error::Refused { status, .. } if *status == ProtocolStatus::OVERLOADED);
        error.is_retryable() || (overloaded && self.inner.config.retry_overloaded && resends == 0)
    }

    /// Current counts.
    pub fn stats(&self) -> PoolStats {
        let state = lock(&self.inner.state);
        let open: Vec<&Connection> = state.connections.iter().filter(|c| !c.is_closed()).collect();
        PoolStats {
            open: open.len(),
            idle: open.iter().filter(|c| c.in_flight() == 0).count(),
            connecting: state.connecting,
            in_flight: open.iter().map(|c| c.in_flight()).sum(),
            waiting: state.waiters.iter().filter(|w| !w.is_closed()).count(),
        }
    }

    /// Stops taking requests, lets those in flight finish for up to `drain`, then closes what
    /// is left (failing its requests with [`Error::Closed`]). Waiting requests fail at once.
    pub async fn close(&self, drain: Duration) {
        let deadline = tokio::time::Instant::now() + drain;
        {
            let mut state = lock(&self.inner.state);
            state.closed = true;
            state.waiters.clear();
            for connection in &state.connections {
                connection.shared().request_retire();
            }
        }
        loop {
            let changed = self.inner.changed.notified();
            let open = {
                let mut state = lock(&self.inner.state);
                state.connections.retain(|c| !c.shared().is_closed());
                state.connections.len() + state.connecting
            };
            if open == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
        let state = lock(&self.inner.state);
        for connection in &state.connections {
            connection.shared().request_close();
        }
    }

    /// A connection with a slot reserved for one request.
    async fn checkout(
        &self,
        asked: Instant,
        total: Option<(Instant, Duration)>,
    ) -> Result<(Connection, Slot), Error> {
        match self.reserve_or_queue()? {
            Checkout::Ready(connection, slot) => Ok((connection, slot)),
            // Waiting and connecting hold a timer, a channel and a connect in progress: boxed,
            // so that the future of a request that finds a free connection stays small (it is
            // moved on every await of the caller's).
            pending => Box::pin(self.wait_or_connect(pending, asked, total)).await,
        }
    }

    /// A free slot now, or what to wait for: a connection this caller may open, or a place in
    /// the queue.
    fn reserve_or_queue(&self) -> Result<Checkout, Error> {
        let mut state = lock(&self.inner.state);
        if state.closed {
            return Err(Error::Closed);
        }
        state.connections.retain(|c| !c.is_closed());
        if state.waiters.iter().all(|w| w.is_closed()) {
            if let Some((connection, slot)) = reserve(&state.connections) {
                return Ok(Checkout::Ready(connection, slot));
            }
        }
        if state.connections.len() + state.connecting < self.inner.config.max_connections {
            state.connecting += 1;
            Ok(Checkout::Connect(ConnectPermit { pool: self.inner.weak_self.clone(), armed: true }))
        } else {
            let (sender, receiver) = oneshot::channel();
            state.waiters.push_back(sender);
            Ok(Checkout::Wait(receiver))
        }
    }

    /// Waits for a grant or opens a connection, within the queue timeout and the total deadline.
    async fn wait_or_connect(
        &self,
        pending: Checkout,
        asked: Instant,
        total: Option<(Instant, Duration)>,
    ) -> Result<(Connection, Slot), Error> {
        let queue_timeout = self.inner.config.queue_timeout;
        let queue_deadline = asked + queue_timeout;
        let (deadline, timeout_error) = match total {
            Some((at, after)) if at < queue_deadline => (at, Error::timeout(TimeoutKind::Total, after)),
            _ => (queue_deadline, Error::timeout(TimeoutKind::Queue, queue_timeout)),
        };
        let permit = match pending {
            Checkout::Ready(connection, slot) => return Ok((connection, slot)),
            Checkout::Connect(permit) => permit,
            Checkout::Wait(receiver) => match tokio::time::timeout_at(deadline.into(), receiver).await {
                Ok(Ok(Grant::Slot(connection, slot))) => return Ok((connection, slot)),
                Ok(Ok(Grant::Connect(permit))) => permit,
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => return Err(timeout_error),
            },
        };
        match tokio::time::timeout_at(deadline.into(), self.open_connection(permit)).await {
            Ok(result) => result,
            Err(_) => Err(timeout_error),
        }
    }

    /// Opens a connection (counted by `permit`) and reserves a slot on it.
    async fn open_connection(&self, permit: ConnectPermit) -> Result<(Connection, Slot), Error> {
        let weak = Arc::downgrade(&self.inner);
        let listener: Listener = Arc::new(move |event| PoolInner::on_event(&weak, event));
        let mut config = self.inner.config.connection.clone();
        if lock(&self.inner.state).single_use {
            config.keep_conn = false;
        }
        let lifecycle = Lifecycle {
            idle_timeout: Some(self.inner.config.idle_timeout),
            max_lifetime: self.inner.config.max_lifetime,
            listener: Some(listener),
        };
        let result = match &self.inner.connector {
            None => Connection::connect_with(&self.inner.address, config, lifecycle).await,
            Some(connect) => {
                let timeout = config.connect_timeout;
                match tokio::time::timeout(timeout, connect()).await {
                    Ok(Ok(stream)) => {
                        Connection::over_stream(stream, &self.inner.address, config, lifecycle).await
                    }
                    Ok(Err(source)) => Err(Error::Connect {
                        address: self.inner.address.to_string(),
                        source: Arc::new(source),
                    }),
                    Err(_) => Err(Error::timeout(TimeoutKind::Connect, timeout)),
                }
            }
        };
        let mut state = lock(&self.inner.state);
        state.connecting -= 1;
        permit.disarm();
        match result {
            Ok((connection, driver)) => {
                tokio::spawn(driver);
                let slot = connection.shared().add_request();
                if state.closed {
                    connection.shared().request_retire();
                } else {
                    state.connections.push(connection.clone());
                    // A multiplexing server may take more than this request: share the rest.
                    self.inner.grant_slots(&mut state);
                }
                Ok((connection, slot))
            }
            Err(error) => {
                self.inner.grant_connects(&mut state);
                Err(error)
            }
        }
    }
}

/// What [`Pool::checkout`] found.
enum Checkout {
    /// A slot on an open connection.
    Ready(Connection, Slot),
    /// Room for one more connection, which this caller opens.
    Connect(ConnectPermit),
    /// A place in the queue.
    Wait(oneshot::Receiver<Grant>),
}

/// A slot on the first connection that has one free.
fn reserve(connections: &[Connection]) -> Option<(Connection, Slot)> {
    connections.iter().find_map(|c| c.shared().try_reserve().map(|slot| (c.clone(), slot)))
}

impl PoolInner {
    fn on_event(weak: &Weak<PoolInner>, event: ConnEvent) {
        let Some(inner) = weak.upgrade() else { return };
        let mut state = lock(&inner.state);
        match event {
            ConnEvent::SlotFreed => inner.grant_slots(&mut state),
            ConnEvent::Unusable => {
                if !state.single_use && state.connections.iter().any(|c| c.shared().peer_closed_idle()) {
                    tracing::debug!(
                        address = %inner.address,
                        "the server closes kept connections between requests; one request per connection from now on"
                    );
                    state.single_use = true;
                }
                state.connections.retain(|c| !c.is_closed());
                inner.grant_slots(&mut state);
                inner.grant_connects(&mut state);
                drop(state);
                inner.changed.notify_waiters();
            }
        }
    }

    /// Hands free slots to waiters, first come first served.
    fn grant_slots(&self, state: &mut PoolState) {
        while let Some(waiter) = state.waiters.front() {
            if waiter.is_closed() {
                state.waiters.pop_front();
                continue;
            }
            let Some((connection, slot)) = reserve(&state.connections) else { return };
            let Some(waiter) = state.waiters.pop_front() else { return };
            if let Err(Grant::Slot(_, slot)) = waiter.send(Grant::Slot(connection, slot)) {
                // The waiter left in the meantime; no event: this code holds the pool's lock.
                slot.release_quietly();
            }
        }
    }

    /// Lets waiters open connections while the pool is below its size.
    fn grant_connects(&self, state: &mut PoolState) {
        let usable = state.connections.iter().filter(|c| !c.is_closed()).count();
        while usable + state.connecting < self.config.max_connections {
            let Some(waiter) = state.waiters.pop_front() else { return };
            let permit = ConnectPermit { pool: self.weak_self.clone(), armed: true };
            state.connecting += 1;
            if let Err(Grant::Connect(permit)) = waiter.send(Grant::Connect(permit)) {
                state.connecting -= 1;
                permit.disarm();
            }
        }
    }
}

#[cfg(test)]
mod tests;
