//! The sans-I/O FastCGI connection: every protocol rule of one connection, with no socket,
//! no task and no clock of its own.
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | [`ConnectionMachine`]: inputs, outputs, the connection-wide rules |
//! | `request.rs` | one request: what is left to send, how far its response came, its deadlines |
//! | `receive.rs` | decoding received bytes and dispatching each record |
//! | `timers.rs` | the deadlines: first byte, total, stall, drain, idle, lifetime, GET_VALUES |
//!
//! The tokio driver (`ConnectionDriver`) pumps a machine over a stream; tests drive it
//! directly with scripted server bytes and chosen instants.

mod receive;
mod request;
#[cfg(test)]
mod tests;
mod timers;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fcgi_proto::{
    Decoder, Padding, ProtocolStatus, Record, RecordBody, RequestId, Role, ServerValues, encode_record,
};

pub use request::RequestKey;
use request::{Outgoing, Phase, Request, Response, Wrote};

use crate::cgi::{CgiHead, HeadScanner};
use crate::config::{ConnectionConfig, Multiplexing};
use crate::error::{BoxError, Error};
use crate::observer::{Direction, observe, observe_written};
use crate::request::{EncodedParams, Head, check_content_length, check_length};

/// Stop filling the transmit buffer past this many bytes (one more record may follow).
const TRANSMIT_TARGET: usize = 64 * 1024;

/// How a request ended at the FastCGI level (its END_REQUEST).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EndStatus {
    /// The application status (php-fpm always sends 0: it does not pass exit codes).
    pub app_status: u32,
    /// The protocol status.
    pub protocol_status: ProtocolStatus,
}

/// A request's BEGIN_REQUEST and PARAMS stream, checked against its body length and ready to
/// be written by a [`ConnectionMachine`].
pub struct RequestHead(pub(crate) Head);

impl std::fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Parameter values may be secrets (Authorization, Cookie): never shown.
        f.write_str("RequestHead")
    }
}

impl RequestHead {
    /// Checks `params` (whole pairs within a record, CONTENT_LENGTH equal to `body_len`, which
    /// is added when missing) for a connection configured with `config`.
    pub fn new<I, N, V>(params: I, body_len: u64, config: &ConnectionConfig) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<Bytes>,
        V: Into<Bytes>,
    {
        Self::for_role(Role::RESPONDER, params, body_len, None, config)
    }

    /// The head of a request in any of the three roles of the specification:
    ///
    /// - [`Role::RESPONDER`]: as [`RequestHead::new`].
    /// - [`Role::AUTHORIZER`] (§6.3): CONTENT_LENGTH, PATH_INFO, PATH_TRANSLATED and SCRIPT_NAME
    ///   are left out, as the specification says; the body must be empty.
    /// - [`Role::FILTER`] (§6.4): `data_len` bytes of FCGI_DATA follow the body, and
    ///   FCGI_DATA_LENGTH is made to agree with them (added when missing) as CONTENT_LENGTH is
    ///   with the body. FCGI_DATA_LAST_MOD is the caller's to give.
    pub fn for_role<I, N, V>(
        role: Role,
        params: I,
        body_len: u64,
        data_len: Option<u64>,
        config: &ConnectionConfig,
    ) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<Bytes>,
        V: Into<Bytes>,
    {
        let mut pairs: Vec<(Bytes, Bytes)> = params.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        match role {
            Role::AUTHORIZER => {
                if body_len != 0 {
                    return Err(Error::InvalidRequest("an Authorizer request has no body".into()));
                }
                const LEFT_OUT: [&[u8]; 4] =
                    [b"CONTENT_LENGTH", b"PATH_INFO", b"PATH_TRANSLATED", b"SCRIPT_NAME"];
                pairs.retain(|(name, _)| !LEFT_OUT.contains(&name.as_ref()));
            }
            Role::FILTER => {
                check_content_length(&mut pairs, body_len)?;
                check_length(&mut pairs, "FCGI_DATA_LENGTH", "filter data", data_len.unwrap_or(0))?;
            }
            _ => check_content_length(&mut pairs, body_len)?,
        }
        Head::new(pairs, role, config).map(RequestHead)
    }

    /// The head of parameters encoded once beforehand, for a body of `body_len` bytes.
    pub fn encoded(params: &EncodedParams, body_len: u64, config: &ConnectionConfig) -> Result<Self, Error> {
        params.head_for(body_len, config).map(RequestHead)
    }
}

/// Per-request options of [`ConnectionMachine::start`].
#[derive(Copy, Clone, Debug, Default)]
#[non_exhaustive]
pub struct StartOptions {
    /// A HEAD request: its response body is dropped.
    pub head_only: bool,
    /// When the whole request must be over, and the timeout it stands for. It may have started
    /// before the request reached the connection (a pool counts the wait for a connection).
    pub deadline: Option<(Instant, Duration)>,
    /// A Filter's FCGI_DATA length: the data stream follows the body (see
    /// [`send_data`](ConnectionMachine::send_data)). `None` for the other roles.
    pub data_len: Option<u64>,
}

impl StartOptions {
    /// Sets [`StartOptions::data_len`].
    #[must_use]
    pub fn data_len(mut self, len: u64) -> Self {
        self.data_len = Some(len);
        self
    }

    /// Sets [`StartOptions::head_only`].
    #[must_use]
    pub fn head_only(mut self, head_only: bool) -> Self {
        self.head_only = head_only;
        self
    }

    /// Sets [`StartOptions::deadline`]: the request must be over at `at`, which stands for a
    /// timeout of `after`.
    #[must_use]
    pub fn deadline(mut self, at: Instant, after: Duration) -> Self {
        self.deadline = Some((at, after));
        self
    }
}

/// What happened to a request, in the order it happened. Every request given to
/// [`ConnectionMachine::start`] gets exactly one [`Event::End`] (unless it was cancelled) and
/// then exactly one [`Event::Released`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The CGI response head arrived (`Status:` applied, `Location:` alone giving 302).
    Head {
        /// The request.
        key: RequestKey,
        /// The parsed head (boxed: events are moved several times on their way, and every
        /// other kind is small).
        head: Box<CgiHead>,
    },
    /// Response body bytes. Give them back with [`ConnectionMachine::release`] once consumed:
    /// that is the receive window.
    Body {
        /// The request.
        key: RequestKey,
        /// The bytes.
        data: Bytes,
    },
    /// Application STDERR, within the configured limit; `dropped` bytes beyond it were counted
    /// and dropped.
    Stderr {
        /// The request.
        key: RequestKey,
        /// The bytes kept.
        data: Bytes,
        /// Bytes of this record beyond the limit.
        dropped: usize,
    },
    /// The request is over for the application: END_REQUEST arrived, or it failed.
    End {
        /// The request.
        key: RequestKey,
        /// How it ended.
        result: Result<EndStatus, Error>,
        /// The head given back when the request provably never ran (nothing of it was written,
        /// or the server refused it with CANT_MPX_CONN or OVERLOADED): it may be sent again
        /// elsewhere with the same body.
        returned: Option<Box<RequestHead>>,
    },
    /// The request no longer occupies the connection (its slot and id are free).
    Released {
        /// The request.
        key: RequestKey,
    },
}

/// Why a closed machine closed.
#[derive(Clone, Debug)]
enum Closed {
    /// On purpose: idle, retired and empty, or every handle gone.
    Clean,
    /// The connection failed.
    Failed(Error),
}

/// One FastCGI connection as a state machine.
///
/// **Inputs**: received bytes ([`recv_buffer`](Self::recv_buffer) + [`handle_input`](Self::handle_input),
/// or [`receive`](Self::receive)), the end of input ([`handle_eof`](Self::handle_eof)), a failed
/// write ([`handle_write_error`](Self::handle_write_error)) or any other I/O failure
/// ([`handle_io_error`](Self::handle_io_error)), the time ([`handle_timeout`](Self::handle_timeout);
/// every input takes `now`), and the application's commands: [`start`](Self::start) a request,
/// give body bytes ([`send_body`](Self::send_body), [`finish_body`](Self::finish_body),
/// [`fail_body`](Self::fail_body)), [`release`](Self::release) consumed response bytes,
/// [`cancel`](Self::cancel), [`retire`](Self::retire), [`close`](Self::close).
///
/// **Outputs**: bytes to send ([`poll_transmit`](Self::poll_transmit)), per-request
/// [`Event`]s ([`poll_event`](Self::poll_event)), the next deadline
/// ([`next_deadline`](Self::next_deadline)), whether to read at all
/// ([`wants_read`](Self::wants_read)), which requests want body bytes
/// ([`wants_body`](Self::wants_body)), and the connection's state
/// ([`accepts_requests`](Self::accepts_requests), [`limit`](Self::limit),
/// [`close_reason`](Self::close_reason)).
///
/// The rules it keeps, all of them here and nowhere else:
///
/// - One request at a time unless the connection multiplexes ([`Multiplexing`]); the next
///   BEGIN_REQUEST only after the previous END_REQUEST; nothing but requests once GET_VALUES
///   was answered or timed out; CANT_MPX_CONN drops to one request at a time.
/// - Strict record order per request: BEGIN_REQUEST, whole-pair PARAMS, the empty PARAMS, STDIN,
///   the empty STDIN; exactly the declared body bytes. Writers take turns, one record each.
/// - Ids allocated when a request leaves the queue, reused only after END_REQUEST; records for
///   other ids dropped within [`ConnectionConfig::stray_limit`]; malformed or client-only
///   records fail the connection.
/// - Cancelling on a connection that does not multiplex closes it; on one that does, ABORT_REQUEST
///   and drain the id until END_REQUEST or [`ConnectionConfig::abort_drain_timeout`].
/// - Bounded memory: reading stops while a request holds [`ConnectionConfig::response_buffer`]
///   bytes not yet released; after [`ConnectionConfig::stall_timeout`] on a multiplexed
///   connection that request is aborted so the others proceed. STDERR is kept up to
///   [`ConnectionConfig::stderr_limit`]; the CGI head up to [`ConnectionConfig::max_head_len`].
/// - Deadlines: first byte, total, stall, drain, idle, maximum lifetime, GET_VALUES.
pub struct ConnectionMachine {
    config: ConnectionConfig,
    limit: usize,
    /// While waiting for FCGI_GET_VALUES_RESULT: when to give up.
    negotiating: Option<Instant>,
    server_values: Option<ServerValues>,
    decoder: Decoder,
    received: BytesMut,
    eof: bool,
    control: VecDeque<Record>,
    requests: Vec<Request>,
    next_id: u16,
    /// The id that wrote last: writers take turns after it.
    cursor: u16,
    next_key: u64,
    events: VecDeque<Event>,
    stray_bytes: usize,
    paused_since: Option<Instant>,
    idle_since: Option<Instant>,
    idle_timeout: Option<Duration>,
    retire_at: Option<Instant>,
    retiring: bool,
    closed: Option<Closed>,
    /// Writing failed: nothing more is sent, and what was received is still read to its end
    /// (see [`ConnectionMachine::handle_write_error`]).
    write_failed: Option<Error>,
    /// Requests whose first bytes went out in the last [`ConnectionMachine::poll_transmit`]:
    /// if none of those bytes reached the stream, they were sent nothing.
    first_sent: Vec<RequestKey>,
    /// Requests that ended with END_REQUEST.
    completed: u64,
    /// The server closed the connection while no request was in progress, after at least one
    /// completed although KEEP_CONN was set (uWSGI does this after every request).
    peer_closed_idle: bool,
}

impl std::fmt::Debug for ConnectionMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionMachine")
            .field("limit", &self.limit)
            .field("requests", &self.requests.len())
            .field("retiring", &self.retiring)
            .field("closed", &self.closed)
            .finish()
    }
}

impl ConnectionMachine {
    /// A machine for a connection opened at `now`. With [`Multiplexing::Auto`] its first output
    /// is FCGI_GET_VALUES, and requests wait for the answer (or
    /// [`ConnectionConfig::get_values_timeout`]).
    pub fn new(config: ConnectionConfig, now: Instant) -> Self {
        let mut machine = Self {
            limit: 1,
            negotiating: None,
            server_values: None,
            decoder: Decoder::new(),
            received: BytesMut::new(),
            eof: false,
            control: VecDeque::new(),
            requests: Vec::new(),
            next_id: 1,
            cursor: 0,
            next_key: 0,
            events: VecDeque::new(),
            stray_bytes: 0,
            paused_since: None,
            idle_since: Some(now),
            idle_timeout: None,
            retire_at: None,
            retiring: false,
            closed: None,
            write_failed: None,
            first_sent: Vec::new(),
            completed: 0,
            peer_closed_idle: false,
            config,
        };
        match machine.config.multiplexing {
            Multiplexing::Off => {}
            Multiplexing::Force => machine.limit = machine.max_requests(),
            Multiplexing::Auto => {
                let query =
                    Record::new(RequestId::MANAGEMENT, RecordBody::GetValues(fcgi_proto::standard_query()));
                machine.control.push_back(query);
                machine.negotiating = Some(now + machine.config.get_values_timeout);
            }
        }
        machine
    }

    /// Closes the connection after `idle` without requests (a pool's idle timeout).
    #[must_use]
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Takes no new requests from `now + lifetime` on, and closes once the last one ended.
    #[must_use]
    pub fn with_max_lifetime(mut self, lifetime: Option<Duration>, now: Instant) -> Self {
        self.retire_at = lifetime.map(|lifetime| now + lifetime);
        self
    }

    fn max_requests(&self) -> usize {
        self.config.max_concurrent_requests.clamp(1, usize::from(u16::MAX) - 1)
    }

    // ---- commands ----

    /// Takes a request. It waits in the machine's queue while the connection has no free slot
    /// (or is still asking GET_VALUES). A machine that takes no new requests answers at once
    /// with [`Event::End`] (`ConnectionClosed`, nothing sent, head returned).
    pub fn start(
        &mut self,
        head: RequestHead,
        body_len: u64,
        options: StartOptions,
        now: Instant,
    ) -> RequestKey {
        let key = RequestKey(self.next_key);
        self.next_key += 1;
        let first_byte = now + self.config.first_byte_timeout;
        let total = options.deadline.or_else(|| self.config.total_timeout.map(|after| (now + after, after)));
        let request = Request {
            key,
            id: None,
            phase: Phase::Queued,
            out: Outgoing::new(head.0, body_len, options.data_len),
            response: Response::Head {
                scanner: HeadScanner::new(self.config.max_head_len),
                buffered: BytesMut::new(),
            },
            head_only: options.head_only,
            first_byte: Some(first_byte),
            answers_from: 0,
            total,
            buffered: 0,
            stderr_kept: 0,
        };
        self.idle_since = None;
        if !self.accepts_requests() {
            let returned = request.out.head.map(|head| Box::new(RequestHead(head)));
            let error = Error::ConnectionClosed { sent_nothing: true };
            self.events.push_back(Event::End { key, result: Err(error), returned });
            self.events.push_back(Event::Released { key });
            self.note_idle(now);
            return key;
        }
        self.requests.push(request);
        key
    }

    /// True when `key` can take body bytes now: it is on the wire, its body has not ended and
    /// the bytes given before have been framed. One chunk per request at a time keeps memory
    /// bounded and lets writers take turns.
    pub fn wants_body(&self, key: RequestKey) -> bool {
        self.find(key).is_some_and(|r| r.phase == Phase::Sending && r.out.wants_body())
    }

    /// Body bytes for `key`. More than its declared length fails the request.
    pub fn send_body(&mut self, key: RequestKey, data: Bytes, now: Instant) {
        let Some(at) = self.position(key) else { return };
        if let Err(error) = self.requests[at].out.push_body(data) {
            self.abort(at, Some(error), now);
        }
    }

    /// The end of `key`'s body. Fewer bytes than declared fails the request.
    pub fn finish_body(&mut self, key: RequestKey, now: Instant) {
        let Some(at) = self.position(key) else { return };
        if let Err(error) = self.requests[at].out.end_body() {
            self.abort(at, Some(error), now);
        }
    }

    /// True when `key` can take FCGI_DATA bytes now (a Filter whose body has been written).
    pub fn wants_data(&self, key: RequestKey) -> bool {
        self.find(key).is_some_and(|r| r.phase == Phase::Sending && r.out.wants_data())
    }

    /// FCGI_DATA bytes for a Filter request. More than its declared length fails the request.
    pub fn send_data(&mut self, key: RequestKey, data: Bytes, now: Instant) {
        let Some(at) = self.position(key) else { return };
        if let Err(error) = self.requests[at].out.push_data(data) {
            self.abort(at, Some(error), now);
        }
    }

    /// The end of a Filter's FCGI_DATA. Fewer bytes than declared fails the request.
    pub fn finish_data(&mut self, key: RequestKey, now: Instant) {
        let Some(at) = self.position(key) else { return };
        if let Err(error) = self.requests[at].out.end_data() {
            self.abort(at, Some(error), now);
        }
    }

    /// `key`'s body stream failed: the request fails with [`Error::Body`].
    pub fn fail_body(&mut self, key: RequestKey, error: BoxError, now: Instant) {
        let Some(at) = self.position(key) else { return };
        self.abort(at, Some(Error::Body(std::sync::Arc::new(error))), now);
    }

    /// The application consumed `n` body bytes of `key`: room in its receive buffer again.
    /// Records held back meanwhile are dispatched by the next
    /// [`handle_input`](Self::handle_input) (see [`has_input_pending`](Self::has_input_pending)).
    pub fn release(&mut self, key: RequestKey, n: usize) {
        if let Some(at) = self.position(key) {
            let request = &mut self.requests[at];
            request.buffered = request.buffered.saturating_sub(n);
            if !self.paused() {
                self.paused_since = None;
            }
        }
    }

    /// The application gave up on `key` (dropped its future or body). No [`Event::End`]
    /// follows; [`Event::Released`] does once the connection is done with it.
    pub fn cancel(&mut self, key: RequestKey, now: Instant) {
        if let Some(at) = self.position(key) {
            if self.requests[at].is_live() {
                self.abort(at, None, now);
            }
        }
    }

    /// No new requests; the connection closes once the last one has ended.
    pub fn retire(&mut self) {
        self.retiring = true;
        self.close_if_done();
    }

    /// Closes now, failing every request still on the connection with `error` (those that
    /// never ran get `ConnectionClosed { sent_nothing: true }` and their head back).
    pub fn close(&mut self, error: Error) {
        self.fail_all(Closed::Failed(error));
    }

    // ---- outputs ----

    /// Appends the bytes to send to `dst` (control records first, then one record per request
    /// in turn) until `dst` holds 64 KiB or nothing is left to send now.
    pub fn poll_transmit(&mut self, dst: &mut BytesMut, now: Instant) {
        self.first_sent.clear();
        if self.closed.is_some() || self.write_failed.is_some() {
            return;
        }
        while let Some(record) = self.control.pop_front() {
            let at = dst.len();
            if encode_record(dst, &record, Padding::None).is_ok() {
                self.observe_sent(&dst[at..]);
            }
        }
        if self.negotiating.is_some() || !self.has_work_to_send() {
            return;
        }
        self.activate();
        let padding = self.config.padding;
        while dst.len() < TRANSMIT_TARGET {
            let Some(at) = self.next_writer() else { break };
            let request = &mut self.requests[at];
            let Some(id) = request.id else { break };
            self.cursor = id.0;
            let start = dst.len();
            if !request.out.wrote_any {
                self.first_sent.push(request.key);
            }
            match request.out.write_next(id, dst, padding) {
                Ok(Wrote::Record) => {
                    if request.out.all_written() {
                        request.phase = Phase::Waiting;
                    }
                    self.observe_sent(&dst[start..]);
                }
                Ok(Wrote::Nothing) => break,
                Err(error) => {
                    dst.truncate(start);
                    self.abort(at, Some(error), now);
                }
            }
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// False while a request's receive buffer is full (or the connection is closed): reading
    /// the socket then waits, since FastCGI has no flow control of its own.
    pub fn wants_read(&self) -> bool {
        // Decoding consumes every whole record while not paused, so what stays buffered is at
        // most one partial record plus one read.
        self.closed.is_none() && !self.eof && !self.paused() && !self.has_buffered_record()
    }

    /// True while new requests are taken (not retiring, not closed).
    pub fn accepts_requests(&self) -> bool {
        self.closed.is_none() && !self.retiring
    }

    /// Requests that may run at once: 1 unless the connection multiplexes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Requests on the connection: queued, in progress or being drained.
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// What the server answered to FCGI_GET_VALUES ([`Multiplexing::Auto`] only; `None` for no
    /// answer or an empty one).
    pub fn server_values(&self) -> Option<ServerValues> {
        self.server_values
    }

    /// True while the GET_VALUES exchange is under way.
    pub fn is_negotiating(&self) -> bool {
        self.negotiating.is_some()
    }

    /// True once the connection is closed: stop reading and writing, drop the socket.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Why it closed: `Some(Ok(()))` on purpose (idle, retired, every handle gone),
    /// `Some(Err(_))` when the connection failed, `None` while open.
    pub fn close_reason(&self) -> Option<Result<(), Error>> {
        self.closed.as_ref().map(|closed| match closed {
            Closed::Clean => Ok(()),
            Closed::Failed(error) => Err(error.clone()),
        })
    }

    /// True when the server closed the connection between requests although KEEP_CONN was
    /// set: a pool should stop reusing connections to it.
    pub fn peer_closed_idle(&self) -> bool {
        self.peer_closed_idle
    }

    // ---- internals ----

    fn find(&self, key: RequestKey) -> Option<&Request> {
        self.requests.iter().find(|r| r.key == key)
    }

    fn position(&self, key: RequestKey) -> Option<usize> {
        self.requests.iter().position(|r| r.key == key)
    }

    fn position_of_id(&self, id: RequestId) -> Option<usize> {
        self.requests.iter().position(|r| r.id == Some(id))
    }

    fn multiplexed(&self) -> bool {
        self.limit > 1
    }

    fn live(&self) -> usize {
        self.requests.iter().filter(|r| r.is_live()).count()
    }

    fn paused(&self) -> bool {
        let limit = self.config.response_buffer;
        self.requests.iter().any(|r| r.is_full(limit))
    }

    /// True when a request is queued or has a record ready (most calls find nothing to do).
    fn has_work_to_send(&self) -> bool {
        self.requests.iter().any(|r| match r.phase {
            Phase::Queued => true,
            Phase::Sending => r.out.has_record(),
            _ => false,
        })
    }

    /// Gives queued requests an id while there are free slots.
    fn activate(&mut self) {
        if !self.accepts_requests() {
            return;
        }
        let mut active = self.requests.iter().filter(|r| r.phase != Phase::Queued).count();
        while active < self.limit {
            let Some(at) = self.requests.iter().position(|r| r.phase == Phase::Queued) else { break };
            let id = self.allocate_id();
            let answers_from = self.decoder.bytes_consumed() + self.received.len() as u64;
            let request = &mut self.requests[at];
            request.id = Some(id);
            request.answers_from = answers_from;
            request.phase = Phase::Sending;
            active += 1;
        }
    }

    /// The next free id in rotation, skipping 0. Ids are not reused at once, so that a record a
    /// server sends late for a finished request finds no request and is dropped.
    fn allocate_id(&mut self) -> RequestId {
        let mut id = self.next_id;
        while self.requests.iter().any(|r| r.id == Some(RequestId(id))) {
            id = following(id);
        }
        self.next_id = following(id);
        RequestId(id)
    }

    /// The sending request with a record ready whose id comes first after the cursor, wrapping.
    fn next_writer(&self) -> Option<usize> {
        self.requests
            .iter()
            .enumerate()
            .filter(|(_, r)| r.phase == Phase::Sending && r.out.has_record())
            .filter_map(|(at, r)| r.id.map(|id| (at, id.0)))
            .min_by_key(|&(_, id)| (id <= self.cursor, id))
            .map(|(at, _)| at)
    }

    /// Ends request `at` early. `error` goes to the application (`None`: it cancelled). On a
    /// connection that does not multiplex the connection closes (no measured server stops a
    /// script on ABORT_REQUEST, and php-fpm closes after it anyway); on one that does,
    /// ABORT_REQUEST is sent and the id drained.
    fn abort(&mut self, at: usize, error: Option<Error>, now: Instant) {
        let request = &mut self.requests[at];
        let key = request.key;
        request.first_byte = None;
        request.total = None;
        if let Some(error) = error {
            self.events.push_back(Event::End { key, result: Err(error), returned: None });
        }
        let multiplexed = self.multiplexed();
        let request = &mut self.requests[at];
        if !request.out.wrote_any {
            self.requests.remove(at);
            self.events.push_back(Event::Released { key });
            self.after_removal(now);
            return;
        }
        if !multiplexed {
            // Marked so that closing does not report it a second time.
            request.phase = Phase::Draining { deadline: now };
            self.fail_all(Closed::Clean);
            return;
        }
        request.phase = Phase::Draining { deadline: now + self.config.abort_drain_timeout };
        if let Some(id) = request.id {
            self.control.push_back(Record::new(id, RecordBody::AbortRequest));
        }
    }

    fn after_removal(&mut self, now: Instant) {
        if !self.paused() {
            self.paused_since = None;
        }
        self.note_idle(now);
        self.close_if_done();
    }

    fn note_idle(&mut self, now: Instant) {
        if self.requests.is_empty() && self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
    }

    /// A retiring connection closes once no live request is left.
    fn close_if_done(&mut self) {
        if self.closed.is_none() && self.retiring && self.live() == 0 {
            self.fail_all(Closed::Clean);
        }
    }

    /// Closes, reporting every request still on the connection.
    fn fail_all(&mut self, reason: Closed) {
        if self.closed.is_some() {
            return;
        }
        self.control.clear();
        for request in std::mem::take(&mut self.requests) {
            let key = request.key;
            if request.is_live() {
                let (error, returned) = match &reason {
                    Closed::Clean | Closed::Failed(Error::Closed | Error::ConnectionClosed { .. })
                        if !request.out.wrote_any =>
                    {
                        (
                            Error::ConnectionClosed { sent_nothing: true },
                            request.out.head.map(|head| Box::new(RequestHead(head))),
                        )
                    }
                    Closed::Clean | Closed::Failed(Error::Closed) => {
                        (Error::ConnectionClosed { sent_nothing: false }, None)
                    }
                    Closed::Failed(other) => (other.clone(), None),
                };
                self.events.push_back(Event::End { key, result: Err(error), returned });
            }
            self.events.push_back(Event::Released { key });
        }
        self.closed = Some(reason);
    }

    fn observe_sent(&self, written: &[u8]) {
        if let Some(observer) = &self.config.observer {
            observe_written(observer, written);
        }
    }

    fn observe_received(&self, frame: &fcgi_proto::Frame) {
        observe(self.config.observer.as_ref(), Direction::Received, frame.header, &frame.record);
    }
}

/// The id after `id`, skipping 0 (the management id).
fn following(id: u16) -> u16 {
    if id == u16::MAX { 1 } else { id + 1 }
}
