//! The body of every response `fcgi serve` sends, and the short error responses.
//!
//! One type for all of them (hyper wants one per service): nothing, bytes in memory, a part of
//! a file streamed in 64 KiB reads, or a FastCGI response streamed as the application writes it
//! (fcgi-mux's `ResponseBody`: hyper asks for the next frame only when the client has taken the
//! previous one, so a slow client holds the application back instead of filling memory, and
//! dropping it, which hyper does when the client goes away, cancels the FastCGI request).
//! A [`Finish`] rides along and runs when the response is done or dropped: the access-log line
//! and the application's STDERR.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use fcgi_mux::{BoxError, ResponseBody};
use http::{Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncReadExt;

/// Bytes read from a file per frame.
const FILE_CHUNK: usize = 64 * 1024;

/// Something to do when a response ends (fully sent, failed or dropped), told how many body
/// bytes went out.
pub trait Finish: Send + Sync {
    /// Called once.
    fn finish(self: Box<Self>, body_bytes: u64, complete: bool);
}

/// A response body.
pub struct ServeBody {
    kind: Kind,
    sent: u64,
    finish: Vec<Box<dyn Finish>>,
    complete: bool,
}

enum Kind {
    Empty { length: Option<u64> },
    Full(Option<Bytes>),
    File { file: tokio::io::Take<tokio::fs::File>, buf: BytesMut },
    Fcgi(ResponseBody),
}

impl ServeBody {
    fn new(kind: Kind) -> ServeBody {
        ServeBody { kind, sent: 0, finish: Vec::new(), complete: false }
    }

    /// No body.
    pub fn empty() -> ServeBody {
        ServeBody::new(Kind::Empty { length: None })
    }

    /// No body, for a HEAD response whose GET would have `length` bytes (the Content-Length
    /// header says so; the body says nothing).
    pub fn empty_with_length(length: u64) -> ServeBody {
        ServeBody::new(Kind::Empty { length: Some(length) })
    }

    /// Bytes in memory.
    pub fn full(bytes: impl Into<Bytes>) -> ServeBody {
        ServeBody::new(Kind::Full(Some(bytes.into())))
    }

    /// `count` bytes of `file` from `start`, read as the client takes them.
    pub async fn file(file: std::fs::File, start: u64, count: u64) -> std::io::Result<ServeBody> {
        use tokio::io::AsyncSeekExt;
        let mut file = tokio::fs::File::from_std(file);
        file.seek(std::io::SeekFrom::Start(start)).await?;
        Ok(ServeBody::new(Kind::File { file: file.take(count), buf: BytesMut::new() }))
    }

    /// A FastCGI response body.
    pub fn fcgi(body: ResponseBody) -> ServeBody {
        ServeBody::new(Kind::Fcgi(body))
    }

    /// Adds something to run when the response ends.
    pub fn on_finish(&mut self, finish: Box<dyn Finish>) {
        self.finish.push(finish);
    }

    fn count(&mut self, frame: &Frame<Bytes>) {
        if let Some(data) = frame.data_ref() {
            self.sent += data.len() as u64;
        }
    }
}

impl Drop for ServeBody {
    fn drop(&mut self) {
        let complete = self.complete || self.is_end_stream();
        for finish in self.finish.drain(..) {
            finish.finish(self.sent, complete);
        }
    }
}

impl Body for ServeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled: Option<Result<Frame<Bytes>, BoxError>> = match &mut this.kind {
            Kind::Empty { .. } => None,
            Kind::Full(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            Kind::File { file, buf } => {
                if file.limit() == 0 {
                    None
                } else {
                    buf.reserve(FILE_CHUNK);
                    match ready!(tokio_util::io::poll_read_buf(Pin::new(file), cx, buf)) {
                        Ok(0) => Some(Err("the file ended early (it shrank while being sent)".into())),
                        Ok(_) => Some(Ok(Frame::data(buf.split().freeze()))),
                        Err(error) => Some(Err(error.into())),
                    }
                }
            }
            Kind::Fcgi(body) => match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Ok(frame)) => Some(Ok(frame)),
                Some(Err(error)) => Some(Err(error.into())),
                None => None,
            },
        };
        match &polled {
            Some(Ok(frame)) => this.count(frame),
            Some(Err(_)) => {}
            None => this.complete = true,
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty { .. } => true,
            Kind::Full(bytes) => bytes.is_none(),
            Kind::File { file, .. } => file.limit() == 0,
            Kind::Fcgi(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            // A HEAD response: the header carries the length; no hint, or hyper would put 0.
            Kind::Empty { length: Some(_) } => SizeHint::default(),
            Kind::Empty { length: None } => SizeHint::with_exact(0),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::File { file, .. } => SizeHint::with_exact(file.limit()),
            Kind::Fcgi(body) => body.size_hint(),
        }
    }
}

/// A short text response: the status line's words and a newline (`404 Not Found`).
pub fn text(status: StatusCode) -> Response<ServeBody> {
    let text = format!("{} {}\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut response = Response::new(ServeBody::full(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
