//! What a script sees of a request ([`RequestInfo`]), what it can do ([`Action`]), the
//! standard answers built from those, and the deterministic data pattern of large streams.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use fcgi_proto::{NameValuePair, ProtocolStatus, Record, RecordBody, RecordType, RequestId, Role};

/// The CGI head of the normal answer.
pub const OK_HEAD: &str = "Status: 200\r\nContent-Type: text/plain\r\n\r\n";

/// STDIN bytes kept in [`RequestInfo::stdin`]; the rest is counted, not kept.
pub const STDIN_KEPT: usize = 16 * 1024 * 1024;

/// A complete request, as the responder received it. Scripts run once the empty STDIN
/// record has arrived.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// Index of the connection in [`Responder::received`](super::Responder::received)
    /// (0 for the first connection accepted).
    pub connection: usize,
    /// How many requests completed their STDIN on this connection before this one.
    pub sequence: usize,
    /// The request id.
    pub id: RequestId,
    /// The role from BEGIN_REQUEST.
    pub role: Role,
    /// The KEEP_CONN flag from BEGIN_REQUEST (the responder never closes on its own account).
    pub keep_conn: bool,
    /// The PARAMS, in order.
    pub params: Vec<NameValuePair>,
    /// The request body, up to [`STDIN_KEPT`] bytes.
    pub stdin: Bytes,
    /// The request body's length, all of it.
    pub stdin_len: u64,
}

impl RequestInfo {
    /// The value of the first param called `name`.
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params.iter().find(|pair| pair.name == name.as_bytes()).map(|pair| &pair.value[..])
    }

    /// The value of a param as text (lossy), empty when absent.
    pub fn param_str(&self, name: &str) -> String {
        self.param(name).map(|value| String::from_utf8_lossy(value).into_owned()).unwrap_or_default()
    }
}

/// One step of an answer. The output of a script goes through the connection's writer, one
/// whole `Record`/`Raw`/pattern record at a time, so that concurrent requests interleave
/// without tearing each other's records.
#[derive(Clone, Debug)]
pub enum Action {
    /// A record, encoded by `fcgi-proto` (unpadded; a stream body over 65535 bytes becomes
    /// several records; an empty stream body is the end-of-stream record). Any id may be
    /// used: 0, an id nobody asked for, an id already ended.
    Record(Record),
    /// Bytes written as they are: garbage, half a record, hand-made headers.
    Raw(Bytes),
    /// `len` bytes of [`pattern`] data on a stream, in records of up to 65535 bytes generated
    /// one at a time (nothing is buffered whole; each waits for the socket). No end-of-stream
    /// record: add one.
    Pattern {
        /// The stream (STDOUT, STDERR...).
        record_type: RecordType,
        /// The request id the records carry.
        id: RequestId,
        /// Total bytes.
        len: u64,
    },
    /// Wait before the next action.
    Sleep(Duration),
    /// Send nothing more and keep the connection open until the client closes it or the
    /// responder shuts down (reading continues: an ABORT_REQUEST is still seen and answered
    /// according to the [`AbortPolicy`](super::AbortPolicy)).
    Hold,
    /// Close the connection once everything queued before has been written. Ends every
    /// request on the connection.
    Close,
}

impl Action {
    /// STDOUT data for `id` (empty data: the end-of-stream record).
    pub fn stdout(id: RequestId, data: impl Into<Bytes>) -> Self {
        Action::Record(Record::new(id, RecordBody::Stdout(data.into())))
    }

    /// STDERR data for `id` (empty data: the end-of-stream record).
    pub fn stderr(id: RequestId, data: impl Into<Bytes>) -> Self {
        Action::Record(Record::new(id, RecordBody::Stderr(data.into())))
    }

    /// END_REQUEST for `id`, app status 0.
    pub fn end(id: RequestId, status: ProtocolStatus) -> Self {
        Action::Record(Record::end_request(id, 0, status))
    }

    /// Raw bytes.
    pub fn raw(bytes: impl Into<Bytes>) -> Self {
        Action::Raw(bytes.into())
    }
}

/// The body of the normal answer: `id=<id> conn=<connection> script=<SCRIPT_NAME>
/// query=<QUERY_STRING> stdin=<body length>`, no trailing newline.
pub fn echo_body(request: &RequestInfo) -> String {
    format!(
        "id={} conn={} script={} query={} stdin={}",
        request.id,
        request.connection,
        request.param_str("SCRIPT_NAME"),
        request.param_str("QUERY_STRING"),
        request.stdin_len
    )
}

/// The normal answer of a RESPONDER: STDOUT with [`OK_HEAD`] and then [`echo_body`] (two
/// records, so that concurrent answers interleave), the empty STDOUT, END_REQUEST complete.
/// A role other than RESPONDER gets END_REQUEST with UNKNOWN_ROLE instead.
pub fn echo(request: &RequestInfo) -> Vec<Action> {
    let id = request.id;
    if request.role != Role::RESPONDER {
        return vec![Action::end(id, ProtocolStatus::UNKNOWN_ROLE)];
    }
    vec![
        Action::stdout(id, OK_HEAD),
        Action::stdout(id, echo_body(request)),
        Action::stdout(id, Bytes::new()),
        Action::end(id, ProtocolStatus::REQUEST_COMPLETE),
    ]
}

/// A complete answer with the given STDOUT (CGI head and body, as raw as wanted): the data,
/// the empty STDOUT, END_REQUEST complete.
pub fn respond(id: RequestId, stdout: impl Into<Bytes>) -> Vec<Action> {
    vec![
        Action::stdout(id, stdout),
        Action::stdout(id, Bytes::new()),
        Action::end(id, ProtocolStatus::REQUEST_COMPLETE),
    ]
}

/// The repeating text of [`Action::Pattern`] streams: printable, with a newline, and of a
/// length (64) that does not divide 65535, so a misplaced record boundary shows.
const PATTERN_TEXT: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n";

/// The byte at `offset` of a pattern stream.
pub fn pattern_byte(offset: u64) -> u8 {
    PATTERN_TEXT[(offset % PATTERN_TEXT.len() as u64) as usize]
}

/// `len` bytes of a pattern stream starting at `offset` (to compare what a client received).
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern_byte(offset + i)).collect()
}

/// Up to `max` bytes of pattern data starting at `offset`, sharing one static block.
pub(super) fn pattern_chunk(offset: u64, max: usize) -> Bytes {
    static BLOCK: OnceLock<Bytes> = OnceLock::new();
    let block = BLOCK.get_or_init(|| pattern(0, fcgi_proto::MAX_CONTENT_LEN + PATTERN_TEXT.len()).into());
    let start = (offset % PATTERN_TEXT.len() as u64) as usize;
    block.slice(start..start + max.min(fcgi_proto::MAX_CONTENT_LEN))
}
