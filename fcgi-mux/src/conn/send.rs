//! The sending side of one request: its head records, then its body as STDIN records, then
//! the empty STDIN record — one record per call (a small head: its three records in one
//! call), so that the driver can interleave requests fairly.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use fcgi_proto::{
    HEADER_LEN, Padding, RecordHeader, RecordType, RequestId, encode_end_of_stream, write_header,
};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;

use crate::error::{BoxError, Error};
use crate::request::{DIRECT_HEAD_LIMIT, Head, RequestBody, encode_head};

/// What one call to [`Outgoing::next_record`] did.
pub(crate) enum Next {
    /// Appended one record.
    Wrote,
    /// Nothing to send now (the body stream is pending; the waker is registered).
    Idle,
    /// Everything was sent, the empty STDIN included.
    Done,
    /// The request cannot be completed (body error, or a body not matching its length).
    Failed(Error),
}

enum Source {
    Full(Bytes),
    Stream(UnsyncBoxBody<Bytes, BoxError>),
    Finished,
}

/// A request given back to be sent again elsewhere: its head and its body.
pub(crate) struct Replay {
    pub(crate) head: Head,
    pub(crate) body: RequestBody,
}

pub(crate) struct Outgoing {
    /// Kept whole after it was sent, for a retry.
    head: Head,
    /// Bytes of the head written so far.
    head_sent: usize,
    head_done: bool,
    source: Source,
    /// The whole body, kept while it may still be needed for a retry.
    full_body: Option<Bytes>,
    /// Body bytes taken from the source and not yet framed.
    chunk: Bytes,
    declared: u64,
    sent: u64,
    stdin_closed: bool,
    stream_touched: bool,
    /// True once any record of the request was handed to the socket.
    pub(crate) wrote_any: bool,
}

impl Outgoing {
    pub(crate) fn new(head: Head, body: RequestBody) -> Self {
        let declared = body.len();
        let (source, full_body) = match body {
            RequestBody::Full(bytes) => (Source::Full(bytes.clone()), Some(bytes)),
            RequestBody::Stream { body, .. } => (Source::Stream(body), None),
        };
        let head_done = matches!(&head, Head::Encoded(records) if records.is_empty());
        Self {
            head,
            head_sent: 0,
            head_done,
            source,
            full_body,
            chunk: Bytes::new(),
            declared,
            sent: 0,
            stdin_closed: false,
            stream_touched: false,
            wrote_any: false,
        }
    }

    /// True once the empty STDIN record was produced.
    pub(crate) fn is_done(&self) -> bool {
        self.stdin_closed
    }

    /// The request, when it can be sent again: always with an in-memory body, with a stream
    /// only if nothing was read from it.
    pub(crate) fn take_replay(&mut self) -> Option<Replay> {
        let body = self.take_replay_body()?;
        let head = std::mem::replace(&mut self.head, Head::Encoded(Bytes::new()));
        Some(Replay { head, body })
    }

    fn take_replay_body(&mut self) -> Option<RequestBody> {
        if let Some(bytes) = self.full_body.take() {
            return Some(RequestBody::Full(bytes));
        }
        if self.stream_touched {
            return None;
        }
        match std::mem::replace(&mut self.source, Source::Finished) {
            Source::Stream(body) => Some(RequestBody::Stream { body, length: self.declared }),
            other => {
                self.source = other;
                None
            }
        }
    }

    /// Appends the next record of this request, with id `id`, to `dst`.
    pub(crate) fn next_record(
        &mut self,
        cx: &mut Context<'_>,
        id: RequestId,
        dst: &mut BytesMut,
        padding: Padding,
    ) -> Next {
        if !self.head_done {
            if let Err(error) = self.write_head(id, dst, padding) {
                return Next::Failed(error);
            }
            self.wrote_any = true;
            return Next::Wrote;
        }
        loop {
            if !self.chunk.is_empty() {
                let n = self.chunk.len().min(padding.max_content_len());
                if self.sent + n as u64 > self.declared {
                    return Next::Failed(body_error(format!(
                        "the body is longer than its declared length of {} bytes",
                        self.declared
                    )));
                }
                let data = self.chunk.split_to(n);
                let pad = padding.for_content(n);
                write_header(dst, &RecordHeader::new(RecordType::STDIN, id, n as u16, pad));
                dst.extend_from_slice(&data);
                dst.put_bytes(0, usize::from(pad));
                self.sent += n as u64;
                self.wrote_any = true;
                return Next::Wrote;
            }
            match &mut self.source {
                Source::Finished => {
                    if self.stdin_closed {
                        return Next::Done;
                    }
                    if self.sent != self.declared {
                        return Next::Failed(body_error(format!(
                            "the body ended after {} of its declared {} bytes",
                            self.sent, self.declared
                        )));
                    }
                    encode_end_of_stream(dst, RecordType::STDIN, id);
                    self.stdin_closed = true;
                    self.wrote_any = true;
                    return Next::Wrote;
                }
                Source::Full(bytes) => {
                    self.chunk = std::mem::take(bytes);
                    self.source = Source::Finished;
                }
                Source::Stream(body) => {
                    self.stream_touched = true;
                    match Pin::new(body).poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data() {
                                self.chunk = data;
                            }
                        }
                        Poll::Ready(Some(Err(err))) => return Next::Failed(Error::Body(Arc::new(err))),
                        Poll::Ready(None) => self.source = Source::Finished,
                        Poll::Pending => return Next::Idle,
                    }
                }
            }
        }
    }

    /// Appends the whole head when it is small, else its next record.
    fn write_head(&mut self, id: RequestId, dst: &mut BytesMut, padding: Padding) -> Result<(), Error> {
        match &self.head {
            Head::Params { pairs, keep_conn } => {
                encode_head(dst, id, pairs, *keep_conn, padding)?;
                self.head_done = true;
            }
            Head::Encoded(records) => {
                // Reused encoded parameters (`EncodedParams`) are usually small: whole, like a
                // head encoded here.
                let whole = records.len() <= DIRECT_HEAD_LIMIT;
                loop {
                    let rest = &records[self.head_sent..];
                    let header: &[u8; HEADER_LEN] =
                        rest.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or_else(truncated_head)?;
                    let record = &rest[..RecordHeader::parse(header).record_len().min(rest.len())];
                    dst.extend_from_slice(record);
                    let at = dst.len() - record.len();
                    dst[at + 2..at + 4].copy_from_slice(&id.0.to_be_bytes());
                    self.head_sent += record.len();
                    self.head_done = self.head_sent == records.len();
                    if self.head_done || !whole {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

fn truncated_head() -> Error {
    Error::InvalidRequest("the encoded request head ends inside a record header".into())
}

fn body_error(message: String) -> Error {
    Error::Body(Arc::new(message.into()))
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::request::PLACEHOLDER_ID;

    /// Every record of a request with an empty body, as the driver writes them.
    fn wire(head: Head) -> (Vec<u8>, usize) {
        let mut out = Outgoing::new(head, RequestBody::Full(Bytes::new()));
        let mut cx = Context::from_waker(Waker::noop());
        let mut dst = BytesMut::new();
        let mut calls = 0;
        while let Next::Wrote = out.next_record(&mut cx, RequestId(7), &mut dst, Padding::None) {
            calls += 1;
        }
        (dst.to_vec(), calls)
    }

    #[test]
    fn a_small_head_is_written_in_one_turn_with_the_same_bytes() {
        let pairs = vec![
            (Bytes::from_static(b"SCRIPT_FILENAME"), Bytes::from_static(b"/srv/index.php")),
            (Bytes::from_static(b"LONG"), Bytes::from(vec![b'x'; 300])),
        ];
        let mut encoded = BytesMut::new();
        encode_head(&mut encoded, PLACEHOLDER_ID, &pairs, true, Padding::None).unwrap();
        let (direct, direct_calls) = wire(Head::Params { pairs, keep_conn: true });
        let (pre_encoded, pre_encoded_calls) = wire(Head::Encoded(encoded.freeze()));
        assert_eq!(direct, pre_encoded);
        assert_eq!((direct_calls, pre_encoded_calls), (2, 2), "the head in one turn, then STDIN");
    }

    #[test]
    fn a_large_encoded_head_is_written_one_record_per_turn() {
        let pairs: Vec<(Bytes, Bytes)> =
            (0..3).map(|i| (Bytes::from(format!("X_{i}")), Bytes::from(vec![b'x'; 40 * 1024]))).collect();
        let mut encoded = BytesMut::new();
        encode_head(&mut encoded, PLACEHOLDER_ID, &pairs, true, Padding::None).unwrap();
        let mut expected = BytesMut::new();
        encode_head(&mut expected, RequestId(7), &pairs, true, Padding::None).unwrap();
        let (wire_bytes, calls) = wire(Head::Encoded(encoded.freeze()));
        assert_eq!(&wire_bytes[..expected.len()], &expected[..]);
        // BEGIN_REQUEST, one PARAMS record per 40 KiB pair, the empty PARAMS,
        // then the empty STDIN.
        assert_eq!(calls, 1 + 3 + 1 + 1);
    }
}
