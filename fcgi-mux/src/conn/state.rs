//! Connection-wide state shared by the driver, the handles and the pool: how many requests
//! are in flight, how many may be, whether new ones may start, and the [`Slot`] guard that
//! gives a counted request back however its holder goes away.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::conn::shared::DriverWaker;

const OPEN: u8 = 0;
const RETIRING: u8 = 1;
const CLOSED: u8 = 2;

/// What the pool hears from a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConnEvent {
    /// A request finished or left: a slot is free.
    SlotFreed,
    /// The connection takes no new requests (retiring or closed).
    Unusable,
}

pub(crate) type Listener = Arc<dyn Fn(ConnEvent) + Send + Sync>;

pub(crate) struct ConnShared {
    pub(crate) waker: Arc<DriverWaker>,
    in_flight: AtomicUsize,
    limit: AtomicUsize,
    state: AtomicU8,
    listener: Option<Listener>,
    /// Asked by the pool: take no new requests (`RETIRING`) or close now (`CLOSED`).
    requested: AtomicU8,
    /// The server closed the connection between requests although KEEP_CONN was set.
    peer_closed_idle: std::sync::atomic::AtomicBool,
}

impl ConnShared {
    pub(crate) fn new(limit: usize, listener: Option<Listener>) -> Self {
        Self {
            waker: Arc::default(),
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit.clamp(1, usize::from(u16::MAX))),
            state: AtomicU8::new(OPEN),
            listener,
            requested: AtomicU8::new(OPEN),
            peer_closed_idle: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Sets the limit the connection machine decided on.
    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.store(limit.clamp(1, usize::from(u16::MAX)), Ordering::Release);
    }

    /// Asks the driver to take no new requests and close once idle.
    pub(crate) fn request_retire(&self) {
        let _ = self.requested.compare_exchange(OPEN, RETIRING, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    /// Asks the driver to close now, failing what is still on the connection.
    pub(crate) fn request_close(&self) {
        self.requested.store(CLOSED, Ordering::Release);
        self.waker.wake();
    }

    /// What the pool asked for: (retire, close).
    pub(crate) fn requested(&self) -> (bool, bool) {
        let requested = self.requested.load(Ordering::Acquire);
        (requested != OPEN, requested == CLOSED)
    }

    pub(crate) fn set_peer_closed_idle(&self) {
        self.peer_closed_idle.store(true, Ordering::Release);
    }

    pub(crate) fn peer_closed_idle(&self) -> bool {
        self.peer_closed_idle.load(Ordering::Acquire)
    }

    /// Requests accepted and not yet finished (queued ones included).
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Requests that may run at once: 1 unless the connection multiplexes.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    /// Counts a request in, whatever the limit (a lone connection queues in the machine).
    pub(crate) fn add_request(self: &Arc<Self>) -> Slot {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Slot { conn: Some(self.clone()) }
    }

    /// Takes a slot if one is free and the connection is open (the pool's dispatch).
    pub(crate) fn try_reserve(self: &Arc<Self>) -> Option<Slot> {
        if !self.is_open() {
            return None;
        }
        let limit = self.limit();
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| Slot { conn: Some(self.clone()) })
    }

    pub(crate) fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    pub(crate) fn retire(&self) {
        if self.state.compare_exchange(OPEN, RETIRING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.emit(ConnEvent::Unusable);
        }
    }

    pub(crate) fn close(&self) {
        if self.state.swap(CLOSED, Ordering::AcqRel) != CLOSED {
            self.emit(ConnEvent::Unusable);
        }
    }

    fn emit(&self, event: ConnEvent) {
        if let Some(listener) = &self.listener {
            listener(event);
        }
    }
}

/// One counted request on a connection. Dropping it gives the count back and tells the pool
/// a slot is free, wherever the request was when its holder went away (a pool waiter, a
/// request future, the driver).
#[must_use = "dropping a slot frees it at once"]
pub(crate) struct Slot {
    conn: Option<Arc<ConnShared>>,
}

impl Slot {
    /// Gives the count back without telling the pool: for code that holds the pool's lock.
    pub(crate) fn release_quietly(mut self) {
        if let Some(conn) = self.conn.take() {
            conn.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.in_flight.fetch_sub(1, Ordering::AcqRel);
            conn.emit(ConnEvent::SlotFreed);
        }
    }
}
