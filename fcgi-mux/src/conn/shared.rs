//! What the driver and one request's handle share: the response as it arrives (head, body
//! chunks, STDERR, the end), how much of the body the handle consumed (the receive window
//! the machine waits on), a request given back for a retry, and cancellation.
//!
//! The driver pushes; the handle pops. When the handle frees room in a full buffer or goes
//! away it wakes the driver through the connection's waker, so the driver never polls for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use crate::cgi::CgiHead;
use crate::conn::Replay;
use crate::error::Error;
use crate::machine::EndStatus;

/// The application's STDERR for one request, as far as it was kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stderr {
    /// The first bytes, up to the configured limit.
    pub kept: Bytes,
    /// Bytes received beyond the limit and dropped.
    pub dropped: u64,
}

/// The connection driver's waker, shared by every request on the connection.
#[derive(Default)]
pub(crate) struct DriverWaker(Mutex<Option<Waker>>);

impl DriverWaker {
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = lock(&self.0);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    pub(crate) fn wake(&self) {
        if let Some(waker) = lock(&self.0).as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// One request's shared state.
pub(crate) struct RequestShared {
    inner: Mutex<Inner>,
    /// Body bytes the handle took since the driver last asked.
    consumed: AtomicUsize,
    gone: AtomicBool,
    driver: Arc<DriverWaker>,
    buffer_limit: usize,
}

#[derive(Default)]
struct Inner {
    head: Option<Box<CgiHead>>,
    body: Chunks,
    body_len: usize,
    stderr: BytesMut,
    stderr_dropped: u64,
    end: Option<Result<EndStatus, Error>>,
    handle_gone: bool,
    handle_waker: Option<Waker>,
    returned: Option<Replay>,
}

/// What the handle sees when it polls for the body.
pub(crate) enum BodyEvent {
    Data(Bytes),
    End(Result<EndStatus, Error>),
}

impl RequestShared {
    pub(crate) fn new(driver: Arc<DriverWaker>, buffer_limit: usize) -> Self {
        Self {
            inner: Mutex::default(),
            consumed: AtomicUsize::new(0),
            gone: AtomicBool::new(false),
            driver,
            buffer_limit,
        }
    }

    // ---- driver side ----

    pub(crate) fn push_head(&self, head: Box<CgiHead>) {
        let mut inner = lock(&self.inner);
        inner.head = Some(head);
        wake_handle(&mut inner);
    }

    pub(crate) fn push_body(&self, data: Bytes) {
        let mut inner = lock(&self.inner);
        if inner.handle_gone {
            return;
        }
        inner.body_len += data.len();
        inner.body.push_back(data);
        wake_handle(&mut inner);
    }

    pub(crate) fn push_stderr(&self, data: &[u8], dropped: usize) {
        let mut inner = lock(&self.inner);
        inner.stderr.extend_from_slice(data);
        inner.stderr_dropped += dropped as u64;
    }

    /// Records the end of the request, unless it already ended.
    pub(crate) fn finish(&self, result: Result<EndStatus, Error>) {
        let mut inner = lock(&self.inner);
        if inner.end.is_none() {
            if result.is_err() {
                // A failed request's buffered data is useless.
                inner.body.clear();
                inner.body_len = 0;
            }
            inner.end = Some(result);
        }
        wake_handle(&mut inner);
    }

    /// Gives an unsent request back so that it can be retried elsewhere.
    pub(crate) fn return_request(&self, replay: Replay) {
        lock(&self.inner).returned = Some(replay);
    }

    /// Body bytes consumed since the last call (the machine's `release`).
    pub(crate) fn take_consumed(&self) -> usize {
        self.consumed.swap(0, Ordering::AcqRel)
    }

    pub(crate) fn handle_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    // ---- handle side ----

    /// Ready with the response head, or with the error that ended the request before it.
    pub(crate) fn poll_head(&self, cx: &mut Context<'_>) -> Poll<Result<Box<CgiHead>, Error>> {
        let mut inner = lock(&self.inner);
        if let Some(head) = inner.head.take() {
            return Poll::Ready(Ok(head));
        }
        match &inner.end {
            Some(Err(error)) => Poll::Ready(Err(error.clone())),
            // The machine never ends a request successfully without a head.
            Some(Ok(_)) => Poll::Ready(Err(Error::Closed)),
            None => {
                inner.handle_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// The next body bytes, or the end.
    pub(crate) fn poll_body(&self, cx: &mut Context<'_>) -> Poll<BodyEvent> {
        let mut inner = lock(&self.inner);
        if let Some(data) = inner.body.pop_front() {
            let was_full = inner.body_len >= self.buffer_limit;
            inner.body_len -= data.len();
            drop(inner);
            self.consumed.fetch_add(data.len(), Ordering::AcqRel);
            if was_full {
                self.driver.wake();
            }
            return Poll::Ready(BodyEvent::Data(data));
        }
        if let Some(end) = &inner.end {
            return Poll::Ready(BodyEvent::End(end.clone()));
        }
        inner.handle_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn stderr(&self) -> Stderr {
        let inner = lock(&self.inner);
        Stderr { kept: Bytes::copy_from_slice(&inner.stderr), dropped: inner.stderr_dropped }
    }

    /// The end status once the request ended well.
    pub(crate) fn end_status(&self) -> Option<EndStatus> {
        match lock(&self.inner).end {
            Some(Ok(status)) => Some(status),
            _ => None,
        }
    }

    pub(crate) fn take_returned(&self) -> Option<Replay> {
        lock(&self.inner).returned.take()
    }

    /// The handle is gone: the request is cancelled unless it already ended.
    pub(crate) fn cancel(&self) {
        let mut inner = lock(&self.inner);
        inner.handle_gone = true;
        self.gone.store(true, Ordering::Release);
        inner.body.clear();
        inner.body_len = 0;
        let ended = inner.end.is_some();
        drop(inner);
        if !ended {
            self.driver.wake();
        }
    }
}

/// Body bytes waiting for the handle, oldest first. The handle usually takes each chunk before
/// the next arrives, so the first one is kept inline and most requests allocate no queue.
#[derive(Default)]
struct Chunks {
    /// The oldest chunk; `None` only when `rest` is empty too.
    front: Option<Bytes>,
    rest: VecDeque<Bytes>,
}

impl Chunks {
    fn push_back(&mut self, data: Bytes) {
        if self.front.is_none() {
            self.front = Some(data);
        } else {
            self.rest.push_back(data);
        }
    }

    fn pop_front(&mut self) -> Option<Bytes> {
        let front = self.front.take()?;
        self.front = self.rest.pop_front();
        Some(front)
    }

    fn clear(&mut self) {
        self.front = None;
        self.rest.clear();
    }
}

fn wake_handle(inner: &mut Inner) {
    if let Some(waker) = inner.handle_waker.take() {
        waker.wake();
    }
}

/// Locks, ignoring poisoning: the state stays consistent because no code panics while
/// holding these locks.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
