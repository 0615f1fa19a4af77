//! The connection driver: a thin pump between a stream and a [`ConnectionMachine`].
//!
//! Each poll it takes new requests from the handles, tells the machine about cancelled
//! requests and consumed body bytes, reads what the machine wants to read, feeds request
//! bodies the machine asks for, writes what the machine produced, hands the machine's events
//! to the requests' handles, and sleeps until the machine's next deadline. Every protocol
//! decision is the machine's.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use crate::conn::Replay;
use crate::conn::commands::{Receiver, Start};
use crate::conn::shared::RequestShared;
use crate::conn::state::{ConnShared, Slot};
use crate::error::Error;
use crate::machine::{ConnectionMachine, Event, RequestKey, StartOptions};
use crate::request::{RequestBody, StreamBody};

/// Socket reads per poll before other tasks get a turn.
const READS_PER_POLL: usize = 4;
/// Room made in the receive buffer before a read, at first and after a small read ...
const READ_CHUNK: usize = 64 * 1024;
/// ... and at most, doubling while reads fill all the room they are given: a large response
/// streaming in. Received records are slices of this buffer, so the partial record at its end
/// is copied into the next one; bigger buffers switch less often while a large answer streams
/// in, and small answers keep a connection's buffer small.
const MAX_READ_CHUNK: usize = 256 * 1024;
/// Records dispatched before the driver lets the tasks it woke run. On a multiplexed
/// connection this lets them queue their next requests while the rest of a large batch of
/// answers is still being dispatched, so that client and server work at the same time
/// instead of taking turns with whole batches.
const RECORDS_PER_TURN: usize = 32;

/// Any byte stream a connection can run over: unix or TCP sockets, a TLS stream, an in-memory
/// duplex.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One request on the driver's side.
struct Active {
    key: RequestKey,
    shared: std::sync::Arc<RequestShared>,
    /// A streamed body, polled when the machine wants bytes.
    stream: Option<StreamBody>,
    /// What can be sent again if the machine gives the head back: the whole body, or a stream
    /// nothing was read from.
    replay_body: Option<RequestBody>,
    /// A Filter's FCGI_DATA, polled once the machine wants it; and what can be sent again.
    data_stream: Option<StreamBody>,
    replay_data: Option<RequestBody>,
    stream_touched: bool,
    cancelled: bool,
    /// Given back when the machine releases the request.
    _slot: Slot,
    span: tracing::Span,
}

pub(crate) struct Driver {
    io: Box<dyn Io>,
    machine: ConnectionMachine,
    conn: std::sync::Arc<ConnShared>,
    commands: Receiver,
    handles_gone: bool,
    incoming: Vec<Start>,
    active: Vec<Active>,
    write_buf: BytesMut,
    /// Some of what the machine last gave to send reached the stream.
    transmitted_any: bool,
    timer: Pin<Box<Sleep>>,
    read_closed: bool,
    /// The stream answered `Pending` during this poll: it wakes the task when there is more,
    /// and asking again before that only registers the same interest again.
    read_blocked: bool,
    /// Whole records are buffered but were left for the next turn (see [`RECORDS_PER_TURN`]).
    backlog: bool,
    read_size: ReadSize,
    span: tracing::Span,
}

/// How much room to make in the receive buffer before a read (see [`MAX_READ_CHUNK`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadSize(usize);

impl Default for ReadSize {
    fn default() -> Self {
        ReadSize(READ_CHUNK)
    }
}

impl ReadSize {
    /// After a read of `read` bytes into `room` bytes of spare capacity: a read that filled
    /// its room doubles the size, one of less than a quarter of [`READ_CHUNK`] resets it.
    fn after_read(&mut self, read: usize, room: usize) {
        if read >= room {
            self.0 = (self.0 * 2).min(MAX_READ_CHUNK);
        } else if read < READ_CHUNK / 4 {
            self.0 = READ_CHUNK;
        }
    }
}

impl Driver {
    pub(crate) fn new(
        io: Box<dyn Io>,
        machine: ConnectionMachine,
        conn: std::sync::Arc<ConnShared>,
        commands: Receiver,
        span: tracing::Span,
    ) -> Self {
        Self {
            io,
            machine,
            conn,
            commands,
            handles_gone: false,
            incoming: Vec::new(),
            active: Vec::new(),
            write_buf: BytesMut::with_capacity(64 * 1024),
            transmitted_any: false,
            timer: Box::pin(tokio::time::sleep(std::time::Duration::from_secs(3600))),
            read_closed: false,
            read_blocked: false,
            backlog: false,
            read_size: ReadSize::default(),
            span,
        }
    }

    /// The machine, for the GET_VALUES exchange before the handle is given out.
    pub(crate) fn machine(&self) -> &ConnectionMachine {
        &self.machine
    }

    fn accept(&mut self, now: Instant) -> bool {
        self.handles_gone = self.commands.take(&mut self.incoming);
        let progress = !self.incoming.is_empty();
        let mut incoming = std::mem::take(&mut self.incoming);
        for start in incoming.drain(..) {
            let Start { prepared, shared, slot, deadline } = start;
            if shared.handle_gone() {
                continue;
            }
            let crate::conn::Prepared { head, body, data, head_only, span } = prepared;
            let body_len = body.len();
            let mut options = StartOptions::default().head_only(head_only);
            options.deadline = deadline;
            options.data_len = data.as_ref().map(RequestBody::len);
            let key = self.machine.start(head, body_len, options, now);
            tracing::debug!(parent: &span, key = key.0, "request started");
            let (stream, replay_body) = match body {
                RequestBody::Full(bytes) => {
                    if !bytes.is_empty() {
                        self.machine.send_body(key, bytes.clone(), now);
                    }
                    self.machine.finish_body(key, now);
                    (None, Some(RequestBody::Full(bytes)))
                }
                RequestBody::Stream { body, length } => (Some(StreamBody { body, length }), None),
            };
            let (data_stream, replay_data) = match data {
                None => (None, None),
                Some(RequestBody::Full(bytes)) => {
                    // Given now; the machine frames it once the body has gone.
                    (Some(StreamBody::full(bytes.clone())), Some(RequestBody::Full(bytes)))
                }
                Some(RequestBody::Stream { body, length }) => (Some(StreamBody { body, length }), None),
            };
            self.active.push(Active {
                key,
                shared,
                stream,
                replay_body,
                data_stream,
                replay_data,
                stream_touched: false,
                cancelled: false,
                _slot: slot,
                span,
            });
        }
        // Kept for the next turn: the queue and this list trade allocations instead of making
        // new ones.
        self.incoming = incoming;
        progress
    }

    /// Cancellations and consumed body bytes, from the handles to the machine.
    fn sync_handles(&mut self, now: Instant) {
        for active in &mut self.active {
            let consumed = active.shared.take_consumed();
            if consumed > 0 {
                self.machine.release(active.key, consumed);
            }
            if !active.cancelled && active.shared.handle_gone() {
                active.cancelled = true;
                tracing::debug!(parent: &active.span, "request cancelled by its caller");
                self.machine.cancel(active.key, now);
            }
        }
    }

    fn read(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        // Records left from the last turn, or held while a receive buffer was full.
        self.backlog = false;
        if self.machine.has_input_pending() {
            self.backlog = self.machine.handle_input_limited(now, RECORDS_PER_TURN);
            if self.backlog {
                return true;
            }
            progress = true;
        }
        for _ in 0..READS_PER_POLL {
            if self.read_closed || self.read_blocked || !self.machine.wants_read() {
                break;
            }
            let buffer = self.machine.recv_buffer();
            // Grow only when little room is left: received records are handed out as slices of
            // this buffer, so a fresh allocation per read would be the usual case otherwise.
            if buffer.capacity() - buffer.len() < self.read_size.0 / 4 {
                buffer.reserve(self.read_size.0);
            }
            let room = buffer.capacity() - buffer.len();
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, buffer) {
                Poll::Ready(Ok(0)) => {
                    self.read_closed = true;
                    self.machine.handle_eof(now);
                    return true;
                }
                Poll::Ready(Ok(read)) => {
                    self.read_size.after_read(read, room);
                    self.backlog = self.machine.handle_input_limited(now, RECORDS_PER_TURN);
                    progress = true;
                    if self.backlog {
                        break;
                    }
                }
                Poll::Ready(Err(error)) => {
                    self.read_closed = true;
                    self.machine.handle_io_error(error);
                    return true;
                }
                Poll::Pending => {
                    self.read_blocked = true;
                    break;
                }
            }
        }
        progress
    }

    /// Feeds streamed bodies (and a Filter's data) the machine is ready for.
    fn feed_bodies(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        for active in &mut self.active {
            progress |= feed_data(&mut self.machine, active, cx, now);
            let Some(stream) = &mut active.stream else { continue };
            while self.machine.wants_body(active.key) {
                active.stream_touched = true;
                match Pin::new(&mut stream.body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        progress = true;
                        if let Ok(data) = frame.into_data() {
                            self.machine.send_body(active.key, data, now);
                        }
                    }
                    Poll::Ready(Some(Err(error))) => {
                        progress = true;
                        self.machine.fail_body(active.key, error, now);
                        active.stream = None;
                        break;
                    }
                    Poll::Ready(None) => {
                        progress = true;
                        self.machine.finish_body(active.key, now);
                        active.stream = None;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        progress
    }

    fn write(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        loop {
            if self.write_buf.is_empty() {
                self.machine.poll_transmit(&mut self.write_buf, now);
                if self.write_buf.is_empty() {
                    return progress;
                }
                self.transmitted_any = false;
            }
            let error = match Pin::new(&mut self.io).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => io::ErrorKind::WriteZero.into(),
                Poll::Ready(Ok(n)) => {
                    self.write_buf.advance(n);
                    self.transmitted_any = true;
                    progress = true;
                    continue;
                }
                Poll::Ready(Err(error)) => error,
                Poll::Pending => return progress,
            };
            // What the server sent before closing is still read (see the machine).
            self.write_buf.clear();
            self.machine.handle_write_error(error, self.transmitted_any, now);
            return true;
        }
    }

    /// Hands the machine's events to the handles.
    fn deliver(&mut self) -> bool {
        let mut progress = false;
        while let Some(event) = self.machine.poll_event() {
            progress = true;
            match event {
                Event::Head { key, head } => self.with(key, |a| a.shared.push_head(head)),
                Event::Body { key, data } => self.with(key, |a| a.shared.push_body(data)),
                Event::Stderr { key, data, dropped } => {
                    self.with(key, |a| a.shared.push_stderr(&data, dropped))
                }
                Event::End { key, result, returned } => self.with(key, |a| {
                    match &result {
                        Ok(status) => {
                            tracing::debug!(parent: &a.span, app_status = status.app_status, "request ended")
                        }
                        Err(error) => tracing::debug!(parent: &a.span, %error, "request failed"),
                    }
                    if let Some(head) = returned {
                        let data_ok = a.data_stream.is_none() || a.replay_data.is_some();
                        if let Some(body) = a.replay_body.take().or_else(|| untouched_stream(a)) {
                            if data_ok {
                                let data = a.replay_data.take();
                                a.shared.return_request(Replay { head: *head, body, data });
                            }
                        }
                    }
                    a.shared.finish(result);
                }),
                Event::Released { key } => {
                    if let Some(at) = self.active.iter().position(|a| a.key == key) {
                        self.active.swap_remove(at);
                    }
                }
            }
        }
        progress
    }

    fn with(&mut self, key: RequestKey, f: impl FnOnce(&mut Active)) {
        if let Some(active) = self.active.iter_mut().find(|a| a.key == key) {
            f(active);
        }
    }

    /// Sleeps until the machine's next deadline; true when one passed.
    fn timers(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.machine.next_deadline() else { return false };
        let now = clock();
        // Re-arm only when the timer would fire too late or has fired: one that fires early
        // just finds nothing due. Deadlines move later with every request, and resetting a
        // tokio timer costs more than an early wake-up.
        let armed = self.timer.deadline().into_std();
        if armed > deadline || armed <= now {
            self.timer.as_mut().reset(deadline.into());
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.machine.handle_timeout(now);
            return true;
        }
        false
    }

    /// Tells the pool what the machine decided.
    fn publish(&mut self) {
        let (retire, close) = self.conn.requested();
        if close && !self.machine.is_closed() {
            self.machine.close(Error::Closed);
        } else if (retire || self.handles_gone) && self.machine.accepts_requests() {
            self.machine.retire();
        }
        self.conn.set_limit(self.machine.limit());
        if self.machine.peer_closed_idle() {
            self.conn.set_peer_closed_idle();
        }
        if self.machine.is_closed() {
            self.conn.close();
        } else if !self.machine.accepts_requests() {
            self.conn.retire();
        }
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        let reason = self.machine.close_reason().unwrap_or(Ok(()));
        if let Err(error) = &reason {
            tracing::debug!(parent: &self.span, %error, "connection failed");
        } else {
            tracing::debug!(parent: &self.span, "connection closed");
        }
        for start in self.commands.close() {
            // Never reached the machine: nothing was sent.
            let Start { prepared, shared, .. } = start;
            shared.return_request(Replay { head: prepared.head, body: prepared.body, data: prepared.data });
            shared.finish(Err(Error::ConnectionClosed { sent_nothing: true }));
        }
        self.deliver();
        for active in self.active.drain(..) {
            active.shared.finish(Err(Error::Closed));
        }
        self.conn.close();
        reason
    }
}

/// Gives the machine a Filter's FCGI_DATA once it wants it (after the body).
fn feed_data(
    machine: &mut ConnectionMachine,
    active: &mut Active,
    cx: &mut Context<'_>,
    now: Instant,
) -> bool {
    let Some(stream) = &mut active.data_stream else { return false };
    let mut progress = false;
    while machine.wants_data(active.key) {
        progress = true;
        match Pin::new(&mut stream.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    machine.send_data(active.key, data, now);
                }
            }
            Poll::Ready(Some(Err(error))) => {
                machine.fail_body(active.key, error, now);
                active.data_stream = None;
                break;
            }
            Poll::Ready(None) => {
                machine.finish_data(active.key, now);
                active.data_stream = None;
                break;
            }
            Poll::Pending => {
                progress = false;
                break;
            }
        }
    }
    progress
}

/// A streamed body can be sent again only if nothing was read from it.
fn untouched_stream(active: &mut Active) -> Option<RequestBody> {
    if active.stream_touched {
        return None;
    }
    active.stream.take().map(|s| RequestBody::Stream { body: s.body, length: s.length })
}

fn clock() -> Instant {
    // tokio's clock, so that tests on a paused clock control the machine's time too.
    tokio::time::Instant::now().into_std()
}

impl Future for Driver {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = &mut *self;
        this.conn.waker.register(cx.waker());
        // New requests, cancellations and consumed bytes come with a wake-up, so once per poll
        // is enough for them; time is read once per poll too.
        let now = clock();
        this.read_blocked = false;
        this.accept(now);
        this.sync_handles(now);
        loop {
            // Read before writing: a server that closed a kept-alive connection right after
            // END_REQUEST is noticed before a new request is written to it, so that request
            // fails as "nothing sent" and can go elsewhere.
            let mut progress = this.read(cx, now);
            progress |= this.feed_bodies(cx, now);
            progress |= this.write(cx, now);
            this.publish();
            progress |= this.deliver();
            if this.machine.is_closed() {
                return Poll::Ready(this.shutdown());
            }
            if this.backlog {
                // Let the woken tasks run before dispatching the rest (see RECORDS_PER_TURN).
                this.timers(cx);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !progress && !this.timers(cx) {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.machine.is_closed() {
            self.machine.close(Error::Closed);
            let _ = self.shutdown();
        }
    }
}

/// Writes what the machine has to send and reads until it stops negotiating (the GET_VALUES
/// exchange before a connection is handed out).
pub(crate) async fn negotiate(driver: &mut Driver) -> Result<(), Error> {
    std::future::poll_fn(|cx| {
        let this = &mut *driver;
        this.read_blocked = false;
        loop {
            let now = clock();
            let mut progress = this.read(cx, now);
            progress |= this.write(cx, now);
            progress |= this.timers(cx);
            if this.machine.is_closed() {
                let reason = this.machine.close_reason().unwrap_or(Ok(()));
                return Poll::Ready(Err(reason
                    .err()
                    .unwrap_or(Error::ConnectionClosed { sent_nothing: true })));
            }
            if !this.machine.is_negotiating() {
                return Poll::Ready(Ok(()));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::{MAX_READ_CHUNK, READ_CHUNK, ReadSize};

    #[test]
    fn reads_that_fill_their_room_grow_the_next_one_and_small_reads_reset_it() {
        let mut size = ReadSize::default();
        size.after_read(READ_CHUNK, READ_CHUNK);
        assert_eq!(size, ReadSize(2 * READ_CHUNK));
        for _ in 0..4 {
            size.after_read(size.0, size.0);
        }
        assert_eq!(size, ReadSize(MAX_READ_CHUNK), "bounded");
        // A large read that left room keeps the size; a small answer resets it.
        size.after_read(READ_CHUNK, MAX_READ_CHUNK);
        assert_eq!(size, ReadSize(MAX_READ_CHUNK));
        size.after_read(300, MAX_READ_CHUNK);
        assert_eq!(size, ReadSize::default());
    }
}
