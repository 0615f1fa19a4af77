//! The connection driver: the one task that owns the socket.
//!
//! It accepts requests from handles, writes their records interleaved one record per request
//! per round, reads and dispatches records (see `recv`), applies the timers (idle, stall,
//! drain) and fails everything with a clear error when the connection dies. It is a hand
//! written `Future` so that it can poll a changing set of request bodies and wake exactly
//! when the socket, a body, a handle or a timer needs it.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use fcgi_proto::{Decoder, HEADER_LEN, Padding, Record, RecordBody, RequestId, encode_record};
use tokio::io::AsyncWrite;
use tokio::time::Sleep;

use crate::address::Transport;
use crate::config::ConnectionConfig;
use crate::conn::commands::Receiver;
use crate::conn::send::{Next, Outgoing, Replay};
use crate::conn::state::ConnShared;
use crate::conn::store::{Entry, Phase, Store};
use crate::error::Error;
use crate::observer::{Direction, Observer, observe};
use crate::request::{Head, RequestBody};
use crate::response::first_byte_timeout;

/// Stop filling the write buffer past this many bytes (one more record may follow).
const WRITE_BUFFER_TARGET: usize = 64 * 1024;
/// Socket reads per poll before giving other tasks a turn.
const READS_PER_POLL: usize = 4;
/// Records dispatched before the driver lets the tasks it woke run. On a multiplexed
/// connection this lets them queue their next requests while the rest of a large batch of
/// responses is still being read, so the client and the server work at the same time
/// instead of taking turns with whole batches.
const RECORDS_PER_TURN: usize = 32;

/// A request handed to the driver.
pub(crate) struct Start {
    pub(crate) head: Head,
    pub(crate) body: RequestBody,
    pub(crate) shared: Arc<crate::conn::shared::RequestShared>,
    pub(crate) span: tracing::Span,
}

pub(crate) struct Driver {
    pub(super) io: Transport,
    pub(super) config: ConnectionConfig,
    pub(super) conn: Arc<ConnShared>,
    commands: Receiver,
    commands_closed: bool,
    queue: VecDeque<Start>,
    pub(super) store: Store,
    pub(super) read_buf: BytesMut,
    pub(super) decoder: Decoder,
    write_buf: BytesMut,
    pub(super) control: VecDeque<Record>,
    cursor: u16,
    pub(super) stray_bytes: usize,
    paused_since: Option<Instant>,
    idle_since: Option<Instant>,
    idle_timeout: Option<Duration>,
    timer: Pin<Box<Sleep>>,
    /// The timer was polled with the current waker since it was last reset: it will wake the
    /// driver at its deadline.
    timer_registered: bool,
    /// Set when the connection must close; the error goes to every request still on it.
    pub(super) closing: Option<Error>,
    /// No new request may start; close once the last one ends.
    pub(super) retiring: bool,
    read_eof: bool,
    /// The socket said "nothing to read" during this poll, so it will wake the driver when
    /// there is: no need to ask again before the next poll.
    read_pending: bool,
    /// Whole records are buffered but were left for the next turn (see [`RECORDS_PER_TURN`]).
    backlog: bool,
    write_error: Option<io::Error>,
    pub(super) span: tracing::Span,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        io: Transport,
        config: ConnectionConfig,
        conn: Arc<ConnShared>,
        commands: Receiver,
        read_buf: BytesMut,
        decoder: Decoder,
        idle_timeout: Option<Duration>,
        span: tracing::Span,
    ) -> Self {
        Self {
            io,
            config,
            conn,
            commands,
            commands_closed: false,
            queue: VecDeque::new(),
            store: Store::default(),
            read_buf,
            decoder,
            write_buf: BytesMut::with_capacity(WRITE_BUFFER_TARGET + 2 * HEADER_LEN),
            control: VecDeque::new(),
            cursor: 0,
            stray_bytes: 0,
            paused_since: None,
            idle_since: None,
            idle_timeout,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            timer_registered: false,
            closing: None,
            retiring: false,
            read_eof: false,
            read_pending: false,
            backlog: false,
            write_error: None,
            span,
        }
    }

    pub(super) fn multiplexed(&self) -> bool {
        self.conn.limit() > 1
    }

    fn accept(&mut self) -> bool {
        let mut progress = false;
        self.commands_closed = self.commands.take(&mut self.queue);
        while !self.retiring && self.closing.is_none() && self.store.len() < self.conn.limit() {
            let Some(start) = self.queue.pop_front() else { break };
            if start.shared.handle_gone() {
                self.conn.release_slot();
                continue;
            }
            let entry = Entry {
                out: Outgoing::new(start.head, start.body),
                first_byte: Some(start.shared.first_byte_deadline),
                shared: start.shared,
                phase: Phase::Sending,
                span: start.span,
            };
            let id = self.store.insert(entry);
            tracing::debug!(parent: &self.span, request_id = id.0, "request started");
            progress = true;
        }
        if self.retiring {
            self.refuse_queued();
        }
        progress
    }

    /// Fails requests that never started, so that they can be sent elsewhere.
    fn refuse_queued(&mut self) {
        while let Some(start) = self.queue.pop_front() {
            start.shared.return_request(Replay { head: start.head, body: start.body });
            start.shared.finish(Err(Error::ConnectionClosed { sent_nothing: true }));
            self.conn.release_slot();
        }
    }

    fn reap_cancelled(&mut self) -> bool {
        if !self.store.iter().any(|e| e.shared.handle_gone()) {
            return false;
        }
        let cancelled =
            self.store.ids_where(|e| !matches!(e.phase, Phase::Draining { .. }) && e.shared.handle_gone());
        for &id in &cancelled {
            tracing::debug!(parent: &self.span, request_id = id.0, "request cancelled by its caller");
            self.abort(id, None);
        }
        !cancelled.is_empty()
    }

    /// Ends request `id` early: on a multiplexed connection ABORT_REQUEST and drain its id;
    /// otherwise close the connection (no measured server stops a script on ABORT_REQUEST,
    /// and php-fpm closes after it anyway).
    pub(super) fn abort(&mut self, id: RequestId, error: Option<Error>) {
        let multiplexed = self.multiplexed();
        let Some(entry) = self.store.get_mut(id) else { return };
        entry.first_byte = None;
        if let Some(error) = error {
            entry.shared.fail(error);
        }
        if !multiplexed {
            self.closing.get_or_insert(Error::Closed);
            return;
        }
        if entry.out.wrote_any {
            entry.phase = Phase::Draining { deadline: Instant::now() + self.config.abort_drain_timeout };
            self.control.push_back(Record::new(id, RecordBody::AbortRequest));
        } else {
            self.store.remove(id);
            self.conn.release_slot();
        }
    }

    fn fill(&mut self, cx: &mut Context<'_>) -> bool {
        if self.write_error.is_some() {
            return false;
        }
        let mut wrote = false;
        while let Some(record) = self.control.pop_front() {
            let at = self.write_buf.len();
            if encode_record(&mut self.write_buf, &record, Padding::None).is_ok() {
                self.observe_sent(at);
                wrote = true;
            }
        }
        let padding = self.config.padding;
        // Round robin, one record per request per turn, starting after the request that
        // wrote last, until the buffer is full or no request has anything to send.
        let mut idle_turns = 0;
        while self.write_buf.len() < WRITE_BUFFER_TARGET
            && idle_turns < self.store.len()
            && self.closing.is_none()
        {
            let Some(id) = self.store.next_sending(self.cursor) else { break };
            self.cursor = id.0;
            let Some(entry) = self.store.get_mut(id) else { break };
            let at = self.write_buf.len();
            match entry.out.next_record(cx, id, &mut self.write_buf, padding) {
                Next::Wrote => {
                    idle_turns = 0;
                    wrote = true;
                    if entry.out.is_done() {
                        entry.phase = Phase::Waiting;
                    }
                    self.observe_sent(at);
                }
                Next::Done => entry.phase = Phase::Waiting,
                Next::Idle => idle_turns += 1,
                Next::Failed(error) => {
                    idle_turns += 1;
                    tracing::debug!(parent: &self.span, request_id = id.0, %error, "request body failed");
                    self.abort(id, Some(error));
                }
            }
        }
        wrote
    }

    #[inline(always)]
    fn observe_sent(&self, at: usize) {
        if let Some(observer) = &self.config.observer {
            observe_written(observer, &self.write_buf[at..]);
        }
    }

    fn flush(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while !self.write_buf.is_empty() && self.write_error.is_none() {
            match Pin::new(&mut self.io).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => self.write_error = Some(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.write_buf.advance(n);
                    progress = true;
                }
                Poll::Ready(Err(err)) => self.write_error = Some(err),
                Poll::Pending => break,
            }
        }
        progress
    }

    /// True while some request's response buffer is full.
    fn paused(&self) -> bool {
        self.store.iter().any(|e| !matches!(e.phase, Phase::Draining { .. }) && !e.shared.has_room())
    }

    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        if self.read_eof {
            return false;
        }
        if self.paused() {
            self.paused_since.get_or_insert_with(Instant::now);
            return false;
        }
        self.paused_since = None;
        if self.backlog {
            self.backlog = self.decode_buffered(RECORDS_PER_TURN);
            if self.backlog || self.closing.is_some() {
                return true;
            }
        }
        if self.read_pending {
            return false;
        }
        let mut progress = false;
        for _ in 0..READS_PER_POLL {
            if self.read_buf.capacity() - self.read_buf.len() < 16 * 1024 {
                self.read_buf.reserve(64 * 1024);
            }
            let room = self.read_buf.capacity() - self.read_buf.len();
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read_buf) {
                Poll::Ready(Ok(0)) => {
                    self.read_eof = true;
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    progress = true;
                    self.backlog = self.decode_buffered(RECORDS_PER_TURN);
                    // A read that did not fill the room drained the socket: reading again now
                    // would only find it empty. (The caller polls again after progress, which
                    // registers for readiness.)
                    if n < room || self.backlog || self.closing.is_some() || self.paused() {
                        break;
                    }
                }
                Poll::Ready(Err(err)) => {
                    self.closing.get_or_insert(Error::io(err));
                    return true;
                }
                Poll::Pending => {
                    self.read_pending = true;
                    break;
                }
            }
        }
        progress
    }

    fn timers(&mut self, cx: &mut Context<'_>) -> bool {
        let draining = self.store.iter().any(|e| matches!(e.phase, Phase::Draining { .. }));
        let first_byte = self.first_byte_deadline();
        // A first-byte deadline needs no work while the timer will wake the driver before it.
        let first_byte_watched = first_byte.is_none_or(|at| {
            self.timer_registered && !self.timer.is_elapsed() && self.timer.deadline().into_std() <= at
        });
        if self.paused_since.is_none() && !draining && first_byte_watched && !self.store.is_empty() {
            // Requests in flight, none stalled or draining, the timer set: nothing to do.
            self.idle_since = None;
            return false;
        }
        let now = Instant::now();
        let mut progress = false;
        let mut next: Option<Instant> = None;
        let mut consider =
            |deadline: Instant| next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));

        if let Some(since) = self.paused_since {
            if self.multiplexed() && self.store.live() > 1 {
                let deadline = since + self.config.stall_timeout;
                if now >= deadline {
                    self.abort_stalled();
                    self.paused_since = None;
                    progress = true;
                } else {
                    consider(deadline);
                }
            }
        }
        if let Some(deadline) = first_byte {
            if now >= deadline {
                self.expire_first_byte(now);
                progress = true;
            } else {
                consider(deadline);
            }
        }
        let mut expired_drain = false;
        for entry in self.store.iter() {
            if let Phase::Draining { deadline } = entry.phase {
                if now >= deadline {
                    expired_drain = true;
                } else {
                    consider(deadline);
                }
            }
        }
        if expired_drain && !self.retiring {
            tracing::debug!(parent: &self.span, "an aborted request was not ended in time; retiring the connection");
            self.retire();
            progress = true;
        }
        if self.store.is_empty() && self.queue.is_empty() {
            let since = *self.idle_since.get_or_insert(now);
            if let Some(idle) = self.idle_timeout {
                if now >= since + idle {
                    tracing::debug!(parent: &self.span, "idle timeout");
                    self.closing.get_or_insert(Error::Closed);
                    return true;
                }
                consider(since + idle);
            }
        } else {
            self.idle_since = None;
        }
        if let Some(deadline) = next {
            // Re-arm only when the timer would fire too late or already fired: a timer that
            // fires early just makes this run again. The idle deadline moves later after every
            // request, and resetting a tokio timer costs more than an early wake-up.
            let armed = self.timer.deadline().into_std();
            if armed > deadline || armed <= now {
                self.timer.as_mut().reset(deadline.into());
                self.timer_registered = false;
            }
            // Once polled with the current waker, the timer wakes the driver by itself. A poll
            // refused for lack of tokio's cooperative budget registers nothing: poll again later.
            if !self.timer_registered {
                let registers = tokio::task::coop::has_budget_remaining();
                if self.timer.as_mut().poll(cx).is_ready() {
                    progress = true;
                }
                self.timer_registered = registers;
            }
        }
        progress
    }

    /// The earliest first-byte deadline of the requests that have received nothing yet.
    fn first_byte_deadline(&self) -> Option<Instant> {
        let started = self.store.iter().filter_map(|e| e.first_byte);
        let queued = self.queue.iter().map(|start| start.shared.first_byte_deadline);
        started.chain(queued).min()
    }

    /// Fails the requests whose first-byte deadline has passed, queued ones included.
    fn expire_first_byte(&mut self, now: Instant) {
        let (conn, config, span) = (&self.conn, &self.config, &self.span);
        self.queue.retain(|start| {
            if start.shared.first_byte_deadline > now {
                return true;
            }
            let error = first_byte_timeout(config);
            tracing::debug!(parent: span, %error, "request still queued");
            start.shared.fail(error);
            conn.release_slot();
            false
        });
        let expired = self.store.ids_where(|e| e.first_byte.is_some_and(|at| at <= now));
        for id in expired {
            let error = first_byte_timeout(&self.config);
            tracing::debug!(parent: &self.span, request_id = id.0, %error, "no answer in time; aborting the request");
            self.abort(id, Some(error));
        }
    }

    fn abort_stalled(&mut self) {
        let stalled =
            self.store.ids_where(|e| !matches!(e.phase, Phase::Draining { .. }) && !e.shared.has_room());
        for id in stalled {
            tracing::debug!(parent: &self.span, request_id = id.0, "response not read in time; aborting the request");
            self.abort(id, Some(Error::Stalled { after: self.config.stall_timeout }));
        }
    }

    /// No new requests; the connection closes when the last one ends.
    pub(super) fn retire(&mut self) {
        self.retiring = true;
        self.conn.retire();
    }

    fn finished(&self) -> bool {
        let nothing_left = self.store.live() == 0 && self.queue.is_empty();
        nothing_left && (self.retiring || self.commands_closed)
    }

    /// Fails everything still on the connection and marks it closed.
    fn shutdown(&mut self, error: Error) {
        tracing::debug!(parent: &self.span, %error, "connection closing");
        self.conn.close();
        let mut queued = self.commands.close();
        self.queue.append(&mut queued);
        self.refuse_queued();
        for (_, mut entry) in self.store.drain() {
            if !matches!(entry.phase, Phase::Draining { .. }) {
                let error = match &error {
                    Error::ConnectionClosed { .. } | Error::Closed if !entry.out.wrote_any => {
                        if let Some(replay) = entry.out.take_replay() {
                            entry.shared.return_request(replay);
                        }
                        Error::ConnectionClosed { sent_nothing: true }
                    }
                    Error::Closed => Error::ConnectionClosed { sent_nothing: false },
                    other => other.clone(),
                };
                entry.shared.finish(Err(error));
            }
            self.conn.release_slot();
        }
    }

    fn on_eof(&mut self) -> Error {
        if let Err(err) = self.decoder.finish(&self.read_buf) {
            return Error::Protocol(err.into());
        }
        Error::ConnectionClosed { sent_nothing: false }
    }
}

/// Shows the records just written to `observer`.
fn observe_written(observer: &Observer, written: &[u8]) {
    let mut bytes = BytesMut::from(written);
    let mut decoder = Decoder::new();
    while let Ok(Some(frame)) = decoder.decode_frame(&mut bytes) {
        observe(Some(observer), Direction::Sent, frame.header, &frame.record);
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.conn.waker.register(cx.waker()) {
            this.timer_registered = false;
        }
        this.read_pending = false;
        loop {
            let mut progress = this.accept();
            progress |= this.reap_cancelled();
            // Read before writing: a server that closed a kept-alive connection right after
            // END_REQUEST (php-fpm may) is noticed before a new request is written to it,
            // so that request fails as "nothing sent" and the pool sends it elsewhere.
            progress |= this.read(cx);
            progress |= this.fill(cx);
            progress |= this.flush(cx);
            if this.read_eof && this.closing.is_none() {
                // What arrived before the close is delivered first.
                this.decode_buffered(usize::MAX);
                if this.closing.is_none() {
                    let error = this.on_eof();
                    this.closing = Some(error);
                }
            }
            if this.closing.is_none() {
                if let Some(err) = this.write_error.take() {
                    // Whatever the server sent before the failure has been read and dispatched.
                    this.closing = Some(Error::io(err));
                }
            }
            if let Some(error) = this.closing.take() {
                this.shutdown(error);
                return Poll::Ready(());
            }
            progress |= this.timers(cx);
            if this.closing.is_none() && this.finished() && this.write_buf.is_empty() {
                this.shutdown(Error::Closed);
                return Poll::Ready(());
            }
            if this.backlog && this.closing.is_none() && !this.paused() {
                // Let the woken tasks run before dispatching the rest (see RECORDS_PER_TURN).
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.conn.is_closed() {
            self.shutdown(Error::Closed);
        }
    }
}
