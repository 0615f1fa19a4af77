//! A pool of connections to one backend.
//!
//! Requests take a free slot on an open connection (one per connection unless it
//! multiplexes), open a new connection while there are fewer than `max_connections`, or wait
//! in a first-come, first-served queue bounded by `queue_timeout`. A freed slot is handed
//! straight to the first waiter, so newcomers cannot overtake the queue. Connections close
//! after `idle_timeout` without requests: an idle connection to php-fpm pins a worker.
//!
//! A request that failed before any of its bytes were written (the server closed a kept-alive
//! connection, as php-fpm may after END_REQUEST) or that was refused with CANT_MPX_CONN is
//! sent again; nothing else is retried, except OVERLOADED once when configured.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use bytes::Bytes;
use fcgi_proto::ProtocolStatus;
use http_body::Body;
use tokio::sync::oneshot;

use crate::address::Address;
use crate::config::PoolConfig;
use crate::conn::shared::lock;
use crate::conn::state::{ConnEvent, Listener};
use crate::conn::{Connection, Prepared, prepare, prepare_encoded};
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

struct PoolInner {
    address: Address,
    config: PoolConfig,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    connections: Vec<Connection>,
    connecting: usize,
    waiters: VecDeque<oneshot::Sender<Grant>>,
}

/// What a waiter is handed.
enum Grant {
    /// A connection with a slot reserved for the waiter.
    Slot(Connection),
    /// Permission to open a new connection (already counted in `connecting`).
    Connect,
}

/// A snapshot of the pool.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Open connections that accept requests.
    pub open: usize,
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
    pub fn new(address: Address, mut config: PoolConfig) -> Pool {
        config.connection.keep_conn = true;
        config.max_connections = config.max_connections.max(1);
        Pool { inner: Arc::new(PoolInner { address, config, state: Mutex::default() }) }
    }

    /// The backend's address.
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// Sends a request on a pooled connection and waits for the response head. See
    /// [`Connection::request`] for the body and CONTENT_LENGTH rules.
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
        let prepared = prepare(request, params, &self.inner.config.connection).await?;
        self.send(prepared).await
    }

    /// Checks and encodes `params` once, for [`Pool::request_encoded`]: the same parameters
    /// sent with many requests whose bodies have `body_len` bytes (CONTENT_LENGTH is checked
    /// against it, or added, as [`Pool::request`] does).
    pub fn encode_params(&self, params: Vec<(Bytes, Bytes)>, body_len: u64) -> Result<EncodedParams, Error> {
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
        let prepared = prepare_encoded(request, params, &self.inner.config.connection).await?;
        self.send(prepared).await
    }

    /// Sends a prepared request, on another connection when it did not run (see
    /// [`Pool::may_resend`]).
    async fn send(&self, mut prepared: Prepared) -> Result<http::Response<ResponseBody>, Error> {
        let mut resends = 0;
        loop {
            let connection = self.checkout().await?;
            match connection.send(prepared).await {
                Ok(response) => return Ok(response),
                Err((error, Some(replay), rest))
                    if resends < MAX_RESENDS && self.may_resend(&error, resends) =>
                {
                    tracing::debug!(%error, "request did not run; sending it again");
                    resends += 1;
                    prepared = rest.with(replay);
                }
                Err((error, _, _)) => return Err(error),
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
            connecting: state.connecting,
            in_flight: open.iter().map(|c| c.in_flight()).sum(),
            waiting: state.waiters.iter().filter(|w| !w.is_closed()).count(),
        }
    }

    /// A connection with a slot reserved for one request.
    async fn checkout(&self) -> Result<Connection, Error> {
        let deadline = Instant::now() + self.inner.config.queue_timeout;
        let waiter = {
            let mut state = lock(&self.inner.state);
            state.connections.retain(|c| !c.is_closed());
            if state.waiters.iter().all(|w| w.is_closed()) {
                if let Some(connection) = state.connections.iter().find(|c| c.shared().try_reserve()) {
                    return Ok(connection.clone());
                }
            }
            if state.connections.len() + state.connecting < self.inner.config.max_connections {
                state.connecting += 1;
                None
            } else {
                let (sender, receiver) = oneshot::channel();
                state.waiters.push_back(sender);
                Some(receiver)
            }
        };
        if let Some(receiver) = waiter {
            match tokio::time::timeout_at(deadline.into(), receiver).await {
                Ok(Ok(Grant::Slot(connection))) => return Ok(connection),
                Ok(Ok(Grant::Connect)) => {}
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => return Err(Error::timeout(TimeoutKind::Queue, self.inner.config.queue_timeout)),
            }
        }
        self.open_connection().await
    }

    /// Opens a connection (already counted in `connecting`) and reserves a slot on it.
    async fn open_connection(&self) -> Result<Connection, Error> {
        let weak = Arc::downgrade(&self.inner);
        let listener: Listener = Arc::new(move |event| PoolInner::on_event(&weak, event));
        let config = self.inner.config.connection.clone();
        let result = Connection::connect_with(
            &self.inner.address,
            config,
            Some(self.inner.config.idle_timeout),
            Some(listener),
        )
        .await;
        let mut state = lock(&self.inner.state);
        state.connecting -= 1;
        match result {
            Ok((connection, driver)) => {
                tokio::spawn(driver);
                connection.shared().add_request();
                state.connections.push(connection.clone());
                // A multiplexing server may take more than this request: share the rest.
                self.inner.grant_slots(&mut state);
                Ok(connection)
            }
            Err(error) => {
                self.inner.grant_connects(&mut state);
                Err(error)
            }
        }
    }
}

impl PoolInner {
    fn on_event(weak: &Weak<PoolInner>, event: ConnEvent) {
        let Some(inner) = weak.upgrade() else { return };
        let mut state = lock(&inner.state);
        match event {
            ConnEvent::SlotFreed => inner.grant_slots(&mut state),
            ConnEvent::Unusable => {
                state.connections.retain(|c| !c.is_closed());
                inner.grant_slots(&mut state);
                inner.grant_connects(&mut state);
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
            let Some(connection) = state.connections.iter().find(|c| c.shared().try_reserve()).cloned()
            else {
                return;
            };
            let Some(waiter) = state.waiters.pop_front() else { return };
            if let Err(Grant::Slot(connection)) = waiter.send(Grant::Slot(connection)) {
                connection.shared().unreserve();
            }
        }
    }

    /// Lets waiters open connections while the pool is below its size.
    fn grant_connects(&self, state: &mut PoolState) {
        let usable = state.connections.iter().filter(|c| !c.is_closed()).count();
        while usable + state.connecting < self.config.max_connections {
            let Some(waiter) = state.waiters.pop_front() else { return };
            if waiter.send(Grant::Connect).is_ok() {
                state.connecting += 1;
            }
        }
    }
}
