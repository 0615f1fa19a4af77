//! One request's state inside the connection machine: what is still to be sent (head, body,
//! the empty STDIN), how far its response has come (CGI head, buffered body, STDERR), and its
//! deadlines.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use fcgi_proto::{
    HEADER_LEN, Padding, RecordHeader, RecordType, RequestId, encode_end_of_stream, write_header,
};

use crate::cgi::HeadScanner;
use crate::error::Error;
use crate::request::{DIRECT_HEAD_LIMIT, Head, encode_head};

/// Identifies a request given to a [`ConnectionMachine`](super::ConnectionMachine), from
/// [`start`](super::ConnectionMachine::start) until its
/// [`Released`](super::Event::Released) event. Unlike a FastCGI request id, a key is never
/// reused on a machine.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey(pub(crate) u64);

/// Where a request is in its life on the connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Accepted, waiting for a free slot (one request at a time unless multiplexing).
    Queued,
    /// Has an id; records are still to be written (head, body or the empty STDIN).
    Sending,
    /// Everything was written; waiting for END_REQUEST.
    Waiting,
    /// Ended early on a multiplexed connection: ABORT_REQUEST was sent and records for its id
    /// are dropped until its END_REQUEST arrives or the deadline passes.
    Draining { deadline: Instant },
}

/// How far the response has come.
// The scanner is large but there is one per request, in place: boxing it would cost an
// allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Response {
    /// Reading the CGI header block; `buffered` holds it when it spans records.
    Head { scanner: HeadScanner, buffered: BytesMut },
    /// The head was delivered; STDOUT is body from now on.
    Body,
}

pub(super) struct Request {
    pub(super) key: RequestKey,
    /// Allocated when the request leaves the queue; never reused before its END_REQUEST.
    pub(super) id: Option<RequestId>,
    pub(super) phase: Phase,
    pub(super) out: Outgoing,
    pub(super) response: Response,
    /// A HEAD request: its response body is dropped.
    pub(super) head_only: bool,
    /// When it fails if nothing has arrived for it; `None` once something has.
    pub(super) first_byte: Option<Instant>,
    /// The total deadline and the duration it stands for (for the error message).
    pub(super) total: Option<(Instant, Duration)>,
    /// Stream offset from which received records can be answers to it: whatever was already
    /// received when it was given its id was sent before the server could know of it.
    pub(super) answers_from: u64,
    /// Body bytes delivered and not yet released by the application.
    pub(super) buffered: usize,
    pub(super) stderr_kept: usize,
}

impl Request {
    pub(super) fn is_live(&self) -> bool {
        !matches!(self.phase, Phase::Draining { .. })
    }

    /// True when the response buffer is full: the machine stops reading for everyone.
    pub(super) fn is_full(&self, limit: usize) -> bool {
        self.is_live() && self.buffered >= limit
    }
}

/// One outgoing stream of a request (STDIN, or a Filter's FCGI_DATA): bytes given by the
/// application, framed into records, then the empty record that ends it.
struct StreamOut {
    record_type: RecordType,
    declared: u64,
    /// Bytes framed so far.
    sent: u64,
    /// Bytes given and not yet framed.
    chunk: Bytes,
    /// The application said the stream has ended.
    ended: bool,
    /// The empty record was written.
    closed: bool,
}

impl StreamOut {
    fn new(record_type: RecordType, declared: u64) -> Self {
        Self { record_type, declared, sent: 0, chunk: Bytes::new(), ended: false, closed: false }
    }

    fn what(&self) -> &'static str {
        if self.record_type == RecordType::DATA { "filter data" } else { "body" }
    }

    fn wants(&self) -> bool {
        !self.ended && self.chunk.is_empty()
    }

    fn push(&mut self, data: Bytes) -> Result<(), Error> {
        let total = self.sent + (self.chunk.len() + data.len()) as u64;
        if total > self.declared {
            return Err(body_error(format!(
                "the {} is longer than its declared length of {} bytes",
                self.what(),
                self.declared
            )));
        }
        if self.chunk.is_empty() {
            self.chunk = data;
        } else {
            let mut joined = BytesMut::from(&self.chunk[..]);
            joined.extend_from_slice(&data);
            self.chunk = joined.freeze();
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), Error> {
        self.ended = true;
        let total = self.sent + self.chunk.len() as u64;
        if total != self.declared {
            return Err(body_error(format!(
                "the {} ended after {total} of its declared {} bytes",
                self.what(),
                self.declared
            )));
        }
        Ok(())
    }

    fn has_record(&self) -> bool {
        !self.chunk.is_empty() || (self.ended && !self.closed)
    }

    /// Appends the stream's next record, if it has one ready.
    fn write_next(&mut self, id: RequestId, dst: &mut BytesMut, padding: Padding) -> bool {
        if !self.chunk.is_empty() {
            let n = self.chunk.len().min(padding.max_content_len());
            let data = self.chunk.split_to(n);
            let pad = padding.for_content(n);
            write_header(dst, &RecordHeader::new(self.record_type, id, n as u16, pad));
            dst.extend_from_slice(&data);
            dst.put_bytes(0, usize::from(pad));
            self.sent += n as u64;
            return true;
        }
        if self.ended && !self.closed {
            encode_end_of_stream(dst, self.record_type, id);
            self.closed = true;
            return true;
        }
        false
    }
}

/// The sending side of one request: its head records, then its body as STDIN records and the
/// empty STDIN record, then (a Filter) its FCGI_DATA records and the empty DATA record.
pub(super) struct Outgoing {
    /// Taken back (for a retry elsewhere) only when the request provably never ran.
    pub(super) head: Option<Head>,
    /// Bytes of an encoded head written so far.
    head_sent: usize,
    head_done: bool,
    stdin: StreamOut,
    data: Option<StreamOut>,
    /// Any record of the request was written.
    pub(super) wrote_any: bool,
}

/// What writing the next record of a request did.
pub(super) enum Wrote {
    /// One record (or a whole small head) was appended.
    Record,
    /// Nothing to write until the application gives more.
    Nothing,
}

impl Outgoing {
    pub(super) fn new(head: Head, declared: u64, data_len: Option<u64>) -> Self {
        let head_done = matches!(&head, Head::Encoded(records) if records.is_empty());
        Self {
            head: Some(head),
            head_sent: 0,
            head_done,
            stdin: StreamOut::new(RecordType::STDIN, declared),
            data: data_len.map(|len| StreamOut::new(RecordType::DATA, len)),
            wrote_any: false,
        }
    }

    /// True while the application may give body bytes.
    pub(super) fn wants_body(&self) -> bool {
        self.stdin.wants()
    }

    /// True while the application may give FCGI_DATA bytes: the body has been given whole.
    pub(super) fn wants_data(&self) -> bool {
        self.stdin.ended && self.data.as_ref().is_some_and(StreamOut::wants)
    }

    /// Takes body bytes from the application; an error when they exceed the declared length.
    pub(super) fn push_body(&mut self, data: Bytes) -> Result<(), Error> {
        self.stdin.push(data)
    }

    /// The application's body has ended; an error when it is shorter than declared.
    pub(super) fn end_body(&mut self) -> Result<(), Error> {
        self.stdin.end()
    }

    pub(super) fn push_data(&mut self, data: Bytes) -> Result<(), Error> {
        match &mut self.data {
            Some(stream) => stream.push(data),
            None => Err(Error::InvalidRequest("FCGI_DATA for a request that is not a Filter".into())),
        }
    }

    pub(super) fn end_data(&mut self) -> Result<(), Error> {
        match &mut self.data {
            Some(stream) => stream.end(),
            None => Ok(()),
        }
    }

    /// True once every record of the request was written.
    pub(super) fn all_written(&self) -> bool {
        self.stdin.closed && self.data.as_ref().is_none_or(|d| d.closed)
    }

    /// Appends the next record of request `id` to `dst`.
    pub(super) fn write_next(
        &mut self,
        id: RequestId,
        dst: &mut BytesMut,
        padding: Padding,
    ) -> Result<Wrote, Error> {
        if !self.head_done {
            self.write_head(id, dst, padding)?;
            self.wrote_any = true;
            return Ok(Wrote::Record);
        }
        // FCGI_DATA only after the whole of STDIN, empty record included.
        let stream = match &mut self.data {
            Some(data) if self.stdin.closed => data,
            _ => &mut self.stdin,
        };
        if stream.write_next(id, dst, padding) {
            self.wrote_any = true;
            return Ok(Wrote::Record);
        }
        Ok(Wrote::Nothing)
    }

    /// True when `write_next` would append something.
    pub(super) fn has_record(&self) -> bool {
        if !self.head_done {
            return true;
        }
        match &self.data {
            Some(data) if self.stdin.closed => data.has_record(),
            _ => self.stdin.has_record(),
        }
    }

    /// Appends the whole head when it is small, else its next record: a huge head must not hold
    /// up the other requests of a multiplexed connection.
    fn write_head(&mut self, id: RequestId, dst: &mut BytesMut, padding: Padding) -> Result<(), Error> {
        match &self.head {
            Some(Head::Params { pairs, role, keep_conn }) => {
                encode_head(dst, id, pairs, *role, *keep_conn, padding)?;
                self.head_done = true;
            }
            Some(Head::Encoded(records)) => {
                let whole = records.len() <= DIRECT_HEAD_LIMIT;
                loop {
                    let rest = &records[self.head_sent..];
                    let header: &[u8; HEADER_LEN] =
                        rest.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or_else(truncated_head)?;
                    let record = &rest[..RecordHeader::parse(header).record_len().min(rest.len())];
                    let at = dst.len();
                    dst.extend_from_slice(record);
                    dst[at + 2..at + 4].copy_from_slice(&id.0.to_be_bytes());
                    self.head_sent += record.len();
                    self.head_done = self.head_sent == records.len();
                    if self.head_done || !whole {
                        break;
                    }
                }
            }
            None => self.head_done = true,
        }
        Ok(())
    }
}

fn truncated_head() -> Error {
    Error::InvalidRequest("the encoded request head ends inside a record header".into())
}

fn body_error(message: String) -> Error {
    Error::Body(std::sync::Arc::new(message.into()))
}
