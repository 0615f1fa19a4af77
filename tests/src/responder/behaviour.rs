//! [`Behaviour`]: how a [`Responder`](super::Responder) answers, as presets that each target a
//! client rule, and modifiers that combine with any of them.
//!
//! | preset | sends | the client rule it tests (BRIEF §3–4) |
//! |---|---|---|
//! | [`echo`](Behaviour::echo) | a proper RESPONDER answer naming the request | the normal path; demultiplexing |
//! | [`script`](Behaviour::script) | whatever the closure returns | anything else |
//! | [`garbage`](Behaviour::garbage) / [`http_400`](Behaviour::http_400) | bytes that are not records, then close | "not FastCGI" is a clear framing error |
//! | [`close_mid_record`](Behaviour::close_mid_record) | half a STDOUT record, then close | a read-close inside a record is an error, after buffered data is processed |
//! | [`close_before_end`](Behaviour::close_before_end) | a head and part of a body, then close | EOF before END_REQUEST fails the request (never a truncated success) |
//! | [`unknown_ids_first`](Behaviour::unknown_ids_first) | STDOUT/END for an id not in progress, then the answer | records for unknown ids are drained |
//! | [`stdout_on_management_id`](Behaviour::stdout_on_management_id) | STDOUT on id 0, then the answer | application records on id 0 are rejected |
//! | [`stdout_after_end`](Behaviour::stdout_after_end) | the answer, then [`LATE_STDOUT`] for the same id | STDOUT after END_REQUEST is ignored |
//! | [`huge_stderr`](Behaviour::huge_stderr) | `len` bytes of STDERR, then the answer | STDERR is bounded, kept apart from the body |
//! | [`end_with`](Behaviour::end_with), [`overloaded`](Behaviour::overloaded), [`unknown_role`](Behaviour::unknown_role), [`cant_mpx_conn`](Behaviour::cant_mpx_conn) | only END_REQUEST with that status | OVERLOADED: no reuse, optional retry; UNKNOWN_ROLE: error; CANT_MPX_CONN: one request at a time, retry |
//! | [`never_answer`](Behaviour::never_answer) | nothing; the connection stays open | first-byte and total timeouts; cancellation |
//! | [`large_body`](Behaviour::large_body) | a `len`-byte pattern body, as fast as the socket takes it | streaming, bounded buffers, slow readers, stalls |
//! | [`stdout`](Behaviour::stdout) | the given raw STDOUT (CGI head + body), then END | CGI parsing: `Location:` → 302, bad header lines, limits |
//!
//! | modifier | effect |
//! |---|---|
//! | [`delay`](Behaviour::delay) | sleep before answering each request (concurrency, cancellation) |
//! | [`close_after_answer`](Behaviour::close_after_answer) | close the connection after each answer, KEEP_CONN or not (a pooled connection found closed is replaced) |
//! | [`drip`](Behaviour::drip) | every byte the connection sends is written alone, with a pause (record reassembly) |
//! | [`single_request`](Behaviour::single_request) | a BEGIN_REQUEST while another request is in progress gets CANT_MPX_CONN |
//! | [`on_abort`](Behaviour::on_abort) | ABORT_REQUEST: end the request at once, ignore it, or end it and keep running |
//! | [`get_values`](Behaviour::get_values) | GET_VALUES answered with the standard values, given pairs, empty, or not at all |
//! | [`unknown_type_answer`](Behaviour::unknown_type_answer) | answer records of unknown types with UNKNOWN_TYPE, or ignore them |
//! | [`on_connect`](Behaviour::on_connect) | actions run as soon as a connection is accepted (e.g. garbage before any request) |

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fcgi_proto::{HEADER_LEN, ProtocolStatus, RecordHeader, RecordType, RequestId};

use super::script::{self, Action, OK_HEAD, RequestInfo};

/// A script: the actions that answer one request.
pub type Script = Arc<dyn Fn(&RequestInfo) -> Vec<Action> + Send + Sync>;

/// What [`Behaviour::http_400`] sends.
pub const HTTP_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\r\n";

/// The STDOUT data [`Behaviour::stdout_after_end`] sends after END_REQUEST.
pub const LATE_STDOUT: &[u8] = b"late STDOUT after END_REQUEST\n";

/// The STDOUT data of the records [`Behaviour::unknown_ids_first`] and
/// [`Behaviour::stdout_on_management_id`] send for ids not in progress.
pub const STRAY_STDOUT: &[u8] = b"stray STDOUT\n";

/// `FCGI_MAX_CONNS` in the [`GetValues::Standard`] answer.
pub const STANDARD_MAX_CONNS: &str = "16";
/// `FCGI_MAX_REQS` in the [`GetValues::Standard`] answer of a multiplexing responder
/// (a [`single_request`](Behaviour::single_request) one answers [`STANDARD_MAX_CONNS`]).
pub const STANDARD_MAX_REQS: &str = "64";

/// How `FCGI_GET_VALUES` is answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GetValues {
    /// Answer each standard name asked for: `FCGI_MAX_CONNS` = [`STANDARD_MAX_CONNS`],
    /// `FCGI_MAX_REQS` = [`STANDARD_MAX_REQS`] (or [`STANDARD_MAX_CONNS`] without
    /// multiplexing), `FCGI_MPXS_CONNS` = `1` or `0`. Other names are left out.
    #[default]
    Standard,
    /// Answer exactly these pairs, whatever was asked (php-fpm answers only
    /// `FCGI_MPXS_CONNS=0`; Go answers `FCGI_MPXS_CONNS=1`).
    Pairs(Vec<(String, String)>),
    /// An empty GET_VALUES_RESULT (flup, although it multiplexes).
    Empty,
    /// No answer at all (fcgiwrap until another record arrives).
    Ignore,
}

/// What happens on ABORT_REQUEST for a request in progress (one not in progress is only
/// recorded: that is the normal race of an abort with the end).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum AbortPolicy {
    /// Stop the request's script and send END_REQUEST (REQUEST_COMPLETE, app status 0) at once,
    /// after whatever the script had queued: what a client hopes for on a multiplexed
    /// connection.
    #[default]
    End,
    /// Let the request run to its end as if nothing was asked (php-fpm, php-cgi, fcgiwrap,
    /// flup): the client must drain or close.
    Ignore,
    /// Send END_REQUEST at once but let the script go on, so its STDOUT and its own
    /// END_REQUEST follow (Go's net/http/fcgi): the client must drain the aborted id.
    EndAndContinue,
}

/// How a responder answers requests and management records. See the module docs for the
/// presets and modifiers; [`Behaviour::default`] is [`Behaviour::echo`].
#[derive(Clone)]
pub struct Behaviour {
    pub(super) answer: Script,
    pub(super) multiplex: bool,
    pub(super) on_abort: AbortPolicy,
    pub(super) get_values: GetValues,
    pub(super) unknown_type: bool,
    pub(super) drip: Option<Duration>,
    pub(super) on_connect: Vec<Action>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self::echo()
    }
}

impl fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Behaviour")
            .field("multiplex", &self.multiplex)
            .field("on_abort", &self.on_abort)
            .field("get_values", &self.get_values)
            .field("unknown_type", &self.unknown_type)
            .field("drip", &self.drip)
            .field("on_connect", &self.on_connect)
            .finish_non_exhaustive()
    }
}

/// Presets.
impl Behaviour {
    /// Answers every request with [`script::echo`]; multiplexes; standard GET_VALUES answer;
    /// UNKNOWN_TYPE for unknown types; [`AbortPolicy::End`].
    pub fn echo() -> Self {
        Self::script(script::echo)
    }

    /// Answers every request with the actions `script` returns for it.
    ///
    /// ```
    /// use fcgi_proto::ProtocolStatus;
    /// use fcgi_tests::responder::{Behaviour, script};
    ///
    /// // The first connection is overloaded, later ones answer normally.
    /// let behaviour = Behaviour::script(|req| match req.connection {
    ///     0 => vec![script::Action::end(req.id, ProtocolStatus::OVERLOADED)],
    ///     _ => script::echo(req),
    /// });
    /// # let _ = behaviour;
    /// ```
    pub fn script(script: impl Fn(&RequestInfo) -> Vec<Action> + Send + Sync + 'static) -> Self {
        Self {
            answer: Arc::new(script),
            multiplex: true,
            on_abort: AbortPolicy::default(),
            get_values: GetValues::default(),
            unknown_type: true,
            drip: None,
            on_connect: Vec::new(),
        }
    }

    /// Answers every request with `bytes` (not records), then closes.
    pub fn garbage(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::script(move |_| vec![Action::Raw(bytes.clone()), Action::Close])
    }

    /// Answers every request with [`HTTP_400`]: an HTTP server where a FastCGI one was expected.
    pub fn http_400() -> Self {
        Self::garbage(HTTP_400)
    }

    /// Sends the header and 4 of the 16 content bytes of a STDOUT record, then closes.
    pub fn close_mid_record() -> Self {
        Self::script(|req| {
            let header = RecordHeader::new(RecordType::STDOUT, req.id, 16, 0).to_bytes();
            let mut partial = header.to_vec();
            partial.extend_from_slice(b"Stat");
            debug_assert_eq!(partial.len(), HEADER_LEN + 4);
            vec![Action::raw(partial), Action::Close]
        })
    }

    /// Sends the CGI head and the first part of the body (`partial body`), then closes
    /// without END_REQUEST.
    pub fn close_before_end() -> Self {
        Self::script(|req| {
            vec![Action::stdout(req.id, OK_HEAD), Action::stdout(req.id, "partial body"), Action::Close]
        })
    }

    /// Before the answer, sends a STDOUT record ([`STRAY_STDOUT`]), the empty STDOUT and an
    /// END_REQUEST for [`stray_id`] of the request's id: an id nobody asked for (or one that
    /// already ended).
    pub fn unknown_ids_first() -> Self {
        Self::script(|req| {
            let stray = stray_id(req.id);
            let mut actions = vec![
                Action::stdout(stray, STRAY_STDOUT),
                Action::stdout(stray, Bytes::new()),
                Action::end(stray, ProtocolStatus::REQUEST_COMPLETE),
            ];
            actions.extend(script::echo(req));
            actions
        })
    }

    /// Before the answer, sends a STDOUT record ([`STRAY_STDOUT`]) on request id 0, which only
    /// management records may use.
    pub fn stdout_on_management_id() -> Self {
        Self::script(|req| {
            let mut actions = vec![Action::stdout(RequestId::MANAGEMENT, STRAY_STDOUT)];
            actions.extend(script::echo(req));
            actions
        })
    }

    /// The normal answer, then one more STDOUT record ([`LATE_STDOUT`]) for the same id.
    pub fn stdout_after_end() -> Self {
        Self::script(|req| {
            let mut actions = script::echo(req);
            actions.push(Action::stdout(req.id, LATE_STDOUT));
            actions
        })
    }

    /// Streams `len` bytes of [`script::pattern`] on STDERR (records of 65535 bytes, produced
    /// as the socket takes them), ends STDERR, then gives the normal answer.
    pub fn huge_stderr(len: u64) -> Self {
        Self::script(move |req| {
            let mut actions = vec![
                Action::Pattern { record_type: RecordType::STDERR, id: req.id, len },
                Action::stderr(req.id, Bytes::new()),
            ];
            actions.extend(script::echo(req));
            actions
        })
    }

    /// Answers every request with only END_REQUEST carrying `status` (app status 0).
    pub fn end_with(status: ProtocolStatus) -> Self {
        Self::script(move |req| vec![Action::end(req.id, status)])
    }

    /// [`end_with`](Self::end_with) OVERLOADED.
    pub fn overloaded() -> Self {
        Self::end_with(ProtocolStatus::OVERLOADED)
    }

    /// [`end_with`](Self::end_with) UNKNOWN_ROLE.
    pub fn unknown_role() -> Self {
        Self::end_with(ProtocolStatus::UNKNOWN_ROLE)
    }

    /// [`end_with`](Self::end_with) CANT_MPX_CONN, for every request, even the first (to
    /// refuse only concurrent ones, see [`single_request`](Self::single_request)).
    pub fn cant_mpx_conn() -> Self {
        Self::end_with(ProtocolStatus::CANT_MPX_CONN)
    }

    /// Reads each request and never answers it: the connection stays open and silent.
    pub fn never_answer() -> Self {
        Self::script(|_| vec![Action::Hold])
    }

    /// Answers with [`OK_HEAD`] and a body of `len` bytes of [`script::pattern`], streamed as
    /// fast as the socket accepts it.
    pub fn large_body(len: u64) -> Self {
        Self::script(move |req| {
            vec![
                Action::stdout(req.id, OK_HEAD),
                Action::Pattern { record_type: RecordType::STDOUT, id: req.id, len },
                Action::stdout(req.id, Bytes::new()),
                Action::end(req.id, ProtocolStatus::REQUEST_COMPLETE),
            ]
        })
    }

    /// Answers with exactly this STDOUT (a raw CGI head and body, e.g. `"Location: /x\r\n\r\n"`
    /// or bad header lines), then the empty STDOUT and END_REQUEST complete.
    pub fn stdout(raw: impl Into<Bytes>) -> Self {
        let raw = raw.into();
        Self::script(move |req| script::respond(req.id, raw.clone()))
    }
}

/// Modifiers.
impl Behaviour {
    /// Sleeps `delay` before running the script of each request.
    pub fn delay(mut self, delay: Duration) -> Self {
        let inner = self.answer;
        self.answer = Arc::new(move |req| {
            let mut actions = vec![Action::Sleep(delay)];
            actions.extend(inner(req));
            actions
        });
        self
    }

    /// Closes the connection after each answer, whatever KEEP_CONN said. (By default the
    /// responder never closes on its own account, like php-fpm, which leaves that to the client
    /// even without KEEP_CONN.)
    pub fn close_after_answer(mut self) -> Self {
        let inner = self.answer;
        self.answer = Arc::new(move |req| {
            let mut actions = inner(req);
            actions.push(Action::Close);
            actions
        });
        self
    }

    /// Writes every byte the connection sends on its own, pausing `delay` after each (the
    /// bytes are those of the undripped answer; dripping is done by the connection's writer, so
    /// concurrent answers still never tear each other's records).
    pub fn drip(mut self, delay: Duration) -> Self {
        self.drip = Some(delay);
        self
    }

    /// Whether concurrent requests are accepted on one connection (the default). Without, a
    /// BEGIN_REQUEST that arrives while another request is in progress is answered with
    /// END_REQUEST CANT_MPX_CONN at once, and its PARAMS and STDIN are ignored.
    pub fn multiplex(mut self, multiplex: bool) -> Self {
        self.multiplex = multiplex;
        self
    }

    /// `multiplex(false)`: one request at a time per connection, like flup non-multiplexed.
    pub fn single_request(self) -> Self {
        self.multiplex(false)
    }

    /// What to do on ABORT_REQUEST.
    pub fn on_abort(mut self, policy: AbortPolicy) -> Self {
        self.on_abort = policy;
        self
    }

    /// How to answer GET_VALUES.
    pub fn get_values(mut self, answer: GetValues) -> Self {
        self.get_values = answer;
        self
    }

    /// Whether records of unknown types get an UNKNOWN_TYPE answer (default) or none
    /// (php-fpm resets the connection instead; a test wanting that uses a script).
    pub fn unknown_type_answer(mut self, answer: bool) -> Self {
        self.unknown_type = answer;
        self
    }

    /// Actions run once when a connection is accepted, alongside reading it (records they
    /// send should use id 0 or be raw bytes).
    pub fn on_connect(mut self, actions: Vec<Action>) -> Self {
        self.on_connect = actions;
        self
    }
}

/// The id [`Behaviour::unknown_ids_first`] uses for a request `id`: `id + 1000` modulo 65536,
/// never 0.
pub fn stray_id(id: RequestId) -> RequestId {
    match id.0.wrapping_add(1000) {
        0 => RequestId(1000),
        stray => RequestId(stray),
    }
}
