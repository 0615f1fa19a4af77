//! State shared between the connection driver and the handles of one request: the response
//! buffer (bounded), the kept STDERR, the end of the request, and cancellation.
//!
//! The driver pushes; the request's handle pops. When the handle frees room or goes away it
//! wakes the driver through the connection's waker, so the driver never polls for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use fcgi_proto::ProtocolStatus;

use crate::config::ConnectionConfig;
use crate::conn::send::Replay;
use crate::error::Error;

/// How a request ended at the FastCGI level (its END_REQUEST).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EndStatus {
    /// The application status (php-fpm always sends 0: it does not pass exit codes).
    pub app_status: u32,
    /// The protocol status.
    pub protocol_status: ProtocolStatus,
}

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
    /// Stores the driver's waker; true when it differs from the one stored before.
    pub(crate) fn register(&self, waker: &Waker) -> bool {
        let mut slot = lock(&self.0);
        if slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return false;
        }
        *slot = Some(waker.clone());
        true
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
    /// Mirrors of two fields of `inner`, read by the driver on every poll without locking.
    full: AtomicBool,
    gone: AtomicBool,
    driver: Arc<DriverWaker>,
    buffer_limit: usize,
    stderr_limit: usize,
    /// When the driver fails the request if nothing has arrived for it.
    pub(crate) first_byte_deadline: Instant,
}

#[derive(Default)]
struct Inner {
    stdout: Chunks,
    stdout_len: usize,
    stderr: BytesMut,
    stderr_dropped: u64,
    received_any: bool,
    end: Option<Result<EndStatus, Error>>,
    handle_gone: bool,
    handle_waker: Option<Waker>,
    returned: Option<Replay>,
}

/// What the handle sees when it polls.
pub(crate) enum Event {
    Data(Bytes),
    End(Result<EndStatus, Error>),
}

impl RequestShared {
    pub(crate) fn new(
        driver: Arc<DriverWaker>,
        config: &ConnectionConfig,
        first_byte_deadline: Instant,
    ) -> Self {
        Self {
            inner: Mutex::default(),
            full: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            driver,
            buffer_limit: config.response_buffer,
            stderr_limit: config.stderr_limit,
            first_byte_deadline,
        }
    }

    // ---- driver side ----

    /// Appends response bytes. Returns false when the buffer is now full: the driver must
    /// stop reading the socket until the handle makes room.
    pub(crate) fn push_stdout(&self, data: Bytes) -> bool {
        let mut inner = lock(&self.inner);
        inner.received_any = true;
        if inner.handle_gone {
            return true;
        }
        if !data.is_empty() {
            inner.stdout_len += data.len();
            inner.stdout.push(data);
        }
        wake_handle(&mut inner);
        let room = inner.stdout_len < self.buffer_limit;
        self.full.store(!room, Ordering::Release);
        room
    }

    pub(crate) fn push_stderr(&self, data: &[u8]) {
        let mut inner = lock(&self.inner);
        inner.received_any = true;
        let room = self.stderr_limit.saturating_sub(inner.stderr.len());
        let kept = data.len().min(room);
        inner.stderr.extend_from_slice(&data[..kept]);
        inner.stderr_dropped += (data.len() - kept) as u64;
        wake_handle(&mut inner);
    }

    /// Records the end of the request, unless it already ended.
    pub(crate) fn finish(&self, result: Result<EndStatus, Error>) {
        let mut inner = lock(&self.inner);
        inner.received_any = true;
        if inner.end.is_none() {
            inner.end = Some(result);
        }
        wake_handle(&mut inner);
    }

    /// Fails the request, dropping what is buffered (an aborted request's data is useless).
    pub(crate) fn fail(&self, error: Error) {
        let mut inner = lock(&self.inner);
        inner.stdout.clear();
        inner.stdout_len = 0;
        self.full.store(false, Ordering::Release);
        if inner.end.is_none() {
            inner.end = Some(Err(error));
        }
        wake_handle(&mut inner);
    }

    /// Gives an unsent request back so that it can be retried elsewhere.
    pub(crate) fn return_request(&self, replay: Replay) {
        lock(&self.inner).returned = Some(replay);
    }

    pub(crate) fn has_room(&self) -> bool {
        !self.full.load(Ordering::Acquire) || self.handle_gone()
    }

    pub(crate) fn handle_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    // ---- handle side ----

    /// The next response bytes, or the end.
    pub(crate) fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Event> {
        let mut inner = lock(&self.inner);
        if let Some(data) = inner.stdout.pop() {
            let was_full = inner.stdout_len >= self.buffer_limit;
            inner.stdout_len -= data.len();
            if was_full && inner.stdout_len < self.buffer_limit {
                self.full.store(false, Ordering::Release);
            }
            drop(inner);
            if was_full {
                self.driver.wake();
            }
            return Poll::Ready(Event::Data(data));
        }
        if let Some(end) = &inner.end {
            return Poll::Ready(Event::End(end.clone()));
        }
        inner.handle_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Ready once any record for the request arrived, or the request ended (the driver fails
    /// it when its first-byte deadline passes).
    pub(crate) fn poll_first_byte(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = lock(&self.inner);
        if inner.received_any || inner.end.is_some() {
            return Poll::Ready(());
        }
        inner.handle_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn stderr(&self) -> Stderr {
        let inner = lock(&self.inner);
        Stderr { kept: Bytes::copy_from_slice(&inner.stderr), dropped: inner.stderr_dropped }
    }

    pub(crate) fn take_returned(&self) -> Option<Replay> {
        lock(&self.inner).returned.take()
    }

    /// The handle is gone: the request is cancelled unless it already ended.
    pub(crate) fn cancel(&self) {
        let mut inner = lock(&self.inner);
        inner.handle_gone = true;
        self.gone.store(true, Ordering::Release);
        inner.stdout.clear();
        inner.stdout_len = 0;
        self.full.store(false, Ordering::Release);
        let ended = inner.end.is_some();
        drop(inner);
        if !ended {
            self.driver.wake();
        }
    }
}

/// Response bytes waiting for the handle, oldest first. The handle usually takes each chunk
/// before the next arrives, so the first one is kept inline and a request allocates no queue.
#[derive(Default)]
struct Chunks {
    /// The oldest chunk; `None` only when `rest` is empty too.
    front: Option<Bytes>,
    rest: VecDeque<Bytes>,
}

impl Chunks {
    fn push(&mut self, data: Bytes) {
        if self.front.is_none() {
            self.front = Some(data);
        } else {
            self.rest.push_back(data);
        }
    }

    fn pop(&mut self) -> Option<Bytes> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_out_in_order() {
        let mut chunks = Chunks::default();
        assert_eq!(chunks.pop(), None);
        for text in ["a", "b", "c"] {
            chunks.push(Bytes::from_static(text.as_bytes()));
        }
        assert_eq!(chunks.pop().as_deref(), Some(&b"a"[..]));
        chunks.push(Bytes::from_static(b"d"));
        let rest: Vec<Bytes> = std::iter::from_fn(|| chunks.pop()).collect();
        assert_eq!(rest, ["b", "c", "d"].map(|t| Bytes::from_static(t.as_bytes())));
        chunks.push(Bytes::from_static(b"e"));
        chunks.clear();
        assert_eq!(chunks.pop(), None);
    }
}
