//! Requests on their way from the handles to the driver: a locked list plus the driver's
//! waker. Lighter than a channel for one consumer that owns a waker anyway; the list closes
//! when the last handle goes (the driver may then finish) or when the driver goes (sending
//! fails and the request is given back).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conn::Prepared;
use crate::conn::shared::{DriverWaker, RequestShared, lock};
use crate::conn::state::Slot;

/// A request handed to the driver, with the slot it holds on the connection.
pub(crate) struct Start {
    pub(crate) prepared: Prepared,
    pub(crate) shared: Arc<RequestShared>,
    pub(crate) slot: Slot,
    /// The total deadline, counted from when the caller asked.
    pub(crate) deadline: Option<(Instant, Duration)>,
}

#[derive(Default)]
struct Queue {
    starts: Vec<Start>,
    handles_gone: bool,
    driver_gone: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    waker: Arc<DriverWaker>,
}

/// The handles' end. Dropping it tells the driver no more requests will come.
pub(crate) struct Sender(Arc<Shared>);

/// The driver's end.
pub(crate) struct Receiver(Arc<Shared>);

/// A connected pair.
pub(crate) fn queue(waker: Arc<DriverWaker>) -> (Sender, Receiver) {
    let shared = Arc::new(Shared { queue: Mutex::default(), waker });
    (Sender(shared.clone()), Receiver(shared))
}

impl Sender {
    /// Queues a request for the driver; gives it back when the driver is gone.
    pub(crate) fn send(&self, start: Start) -> Result<(), Box<Start>> {
        let mut queue = lock(&self.0.queue);
        if queue.driver_gone {
            return Err(Box::new(start));
        }
        queue.starts.push(start);
        drop(queue);
        self.0.waker.wake();
        Ok(())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        lock(&self.0.queue).handles_gone = true;
        self.0.waker.wake();
    }
}

impl Receiver {
    /// Moves the queued requests to `into` (empty); true once every handle is gone.
    pub(crate) fn take(&self, into: &mut Vec<Start>) -> bool {
        let mut queue = lock(&self.0.queue);
        // Trade lists: both keep their allocations.
        std::mem::swap(into, &mut queue.starts);
        queue.handles_gone
    }

    /// Refuses further requests and returns those still queued.
    pub(crate) fn close(&self) -> Vec<Start> {
        let mut queue = lock(&self.0.queue);
        queue.driver_gone = true;
        std::mem::take(&mut queue.starts)
    }
}
