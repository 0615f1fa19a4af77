//! Connection-wide state shared by the driver, the handles and the pool: how many requests
//! are in flight, how many may be, and whether new ones may start.

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
}

impl ConnShared {
    pub(crate) fn new(limit: usize, listener: Option<Listener>) -> Self {
        Self {
            waker: Arc::default(),
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit.clamp(1, usize::from(u16::MAX))),
            state: AtomicU8::new(OPEN),
            listener,
        }
    }

    /// Requests accepted and not yet finished (queued ones included).
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Requests that may run at once: 1 unless the connection multiplexes.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    /// After CANT_MPX_CONN: one request at a time from now on.
    pub(crate) fn stop_multiplexing(&self) {
        self.limit.store(1, Ordering::Release);
    }

    /// Counts a request in, whatever the limit (a lone connection queues in the driver).
    pub(crate) fn add_request(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes a slot if one is free and the connection is open (the pool's dispatch).
    pub(crate) fn try_reserve(&self) -> bool {
        if !self.is_open() {
            return false;
        }
        let limit = self.limit();
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .is_ok()
    }

    /// Gives back the slot of a request that never reached the driver.
    pub(crate) fn unreserve(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn release_slot(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.emit(ConnEvent::SlotFreed);
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
