//! The sending side of one request: its head records, then its body as STDIN records, then
//! the empty STDIN record — one record per call, so that the driver can interleave
//! requests fairly.

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
use crate::request::RequestBody;

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

pub(crate) struct Outgoing {
    head: Bytes,
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
    pub(crate) fn new(head: Bytes, body: RequestBody) -> Self {
        let declared = body.len();
        let (source, full_body) = match body {
            RequestBody::Full(bytes) => (Source::Full(bytes.clone()), Some(bytes)),
            RequestBody::Stream { body, .. } => (Source::Stream(body), None),
        };
        Self {
            head,
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

    /// The body, when it can be sent again: always for an in-memory body, for a stream only
    /// if nothing was read from it.
    pub(crate) fn take_replay(&mut self) -> Option<RequestBody> {
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
        if let Some(record) = self.next_head_record() {
            dst.extend_from_slice(&record);
            let at = dst.len() - record.len();
            dst[at + 2..at + 4].copy_from_slice(&id.0.to_be_bytes());
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

    fn next_head_record(&mut self) -> Option<Bytes> {
        let header: &[u8; HEADER_LEN] = self.head.get(..HEADER_LEN)?.try_into().ok()?;
        let len = RecordHeader::parse(header).record_len();
        Some(self.head.split_to(len.min(self.head.len())))
    }
}

fn body_error(message: String) -> Error {
    Error::Body(Arc::new(message.into()))
}
