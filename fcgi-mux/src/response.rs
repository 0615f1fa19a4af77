//! The response side of a request: waiting for the CGI head (first-byte and total
//! timeouts), then streaming the body as an `http_body::Body`.
//!
//! Until the first record arrives the connection driver watches the deadline, with one timer
//! per connection; after that the request's handle watches the total deadline, with a timer
//! made only when it has to wait.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::cgi::{self, HeadParse, HeadScanner};
use crate::config::ConnectionConfig;
use crate::conn::shared::{EndStatus, Event, RequestShared, Stderr};
use crate::error::{Error, TimeoutKind};

/// Cancels the request when dropped before its response ended.
struct CancelGuard {
    shared: Arc<RequestShared>,
    armed: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.armed {
            self.shared.cancel();
        }
    }
}

/// How long a request may wait for its first record: the first-byte timeout, or the total
/// one if that is shorter. The connection driver watches this deadline, with one timer for
/// the whole connection rather than one per request, and fails the request when it passes.
fn first_byte_limit(config: &ConnectionConfig) -> (TimeoutKind, Duration) {
    match config.total_timeout {
        Some(total) if total <= config.first_byte_timeout => (TimeoutKind::Total, total),
        _ => (TimeoutKind::FirstByte, config.first_byte_timeout),
    }
}

/// When a request sent at `started` fails if nothing has arrived for it.
pub(crate) fn first_byte_deadline(config: &ConnectionConfig, started: Instant) -> Instant {
    started + first_byte_limit(config).1
}

/// The error of a request whose first-byte deadline passed.
pub(crate) fn first_byte_timeout(config: &ConnectionConfig) -> Error {
    let (kind, after) = first_byte_limit(config);
    Error::timeout(kind, after)
}

/// The total deadline, watched by the request's handle once the first record has arrived.
/// Its timer is made only when the handle has to wait: a response that is all there when it
/// is read (the usual case for small ones) costs no timer.
struct TotalDeadline {
    after: Duration,
    at: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl TotalDeadline {
    fn new(after: Duration, started: Instant) -> Self {
        Self { after, at: started + after, sleep: None }
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.at;
        self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at.into()))).as_mut().poll(cx)
    }

    fn error(&self) -> Error {
        Error::timeout(TimeoutKind::Total, self.after)
    }
}

/// Waits for the response head and returns the response with its streaming body.
pub(crate) async fn receive(
    shared: Arc<RequestShared>,
    config: &ConnectionConfig,
    head_only: bool,
    started: Instant,
    span: tracing::Span,
) -> Result<http::Response<ResponseBody>, Error> {
    let mut guard = CancelGuard { shared: shared.clone(), armed: true };
    // Until the first record (or the end) the driver watches the deadline: see first_byte_limit.
    poll_fn(|cx| shared.poll_first_byte(cx)).await;
    let mut total = config.total_timeout.map(|after| TotalDeadline::new(after, started));
    let mut buffered = BytesMut::new();
    let mut scanner = HeadScanner::new(config.max_head_len);
    let outcome = loop {
        let event = poll_fn(|cx| {
            if let Poll::Ready(event) = shared.poll_event(cx) {
                return Poll::Ready(Some(event));
            }
            match &mut total {
                Some(total) => total.poll_expired(cx).map(|()| None),
                None => Poll::Pending,
            }
        })
        .await;
        match event {
            None => break Err(total.as_ref().map_or(Error::Closed, TotalDeadline::error)),
            Some(Event::Data(data)) if buffered.is_empty() => {
                // Usually the whole head is in the first record: parse it in place, no copy.
                match scanner.parse(&data) {
                    Ok(HeadParse::Complete { head, body_offset }) => {
                        break Ok((head, data.slice(body_offset..)));
                    }
                    Ok(HeadParse::Incomplete) => buffered.extend_from_slice(&data),
                    Err(error) => break Err(Error::Cgi(error)),
                }
            }
            Some(Event::Data(data)) => {
                buffered.extend_from_slice(&data);
                match scanner.parse(&buffered) {
                    Ok(HeadParse::Complete { head, body_offset }) => {
                        break Ok((head, buffered.split_off(body_offset).freeze()));
                    }
                    Ok(HeadParse::Incomplete) => {}
                    Err(error) => break Err(Error::Cgi(error)),
                }
            }
            Some(Event::End(Ok(_))) => break Err(Error::Cgi(cgi::head_incomplete_at_end(&buffered))),
            Some(Event::End(Err(error))) => break Err(error),
        }
    };
    let (head, leftover) = match outcome {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::debug!(parent: &span, %error, "request failed before the response head");
            return Err(error);
        }
    };
    guard.armed = false;
    let body = ResponseBody {
        guard: CancelGuard { shared, armed: true },
        leftover: if head_only { Bytes::new() } else { leftover },
        deadline: total,
        end: None,
        head_only,
        done: false,
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    if let Some(reason) = head.reason {
        response.extensions_mut().insert(ReasonPhrase(reason));
    }
    Ok(response)
}

/// The reason phrase of a `Status:` line (`404 Not Found` → `Not Found`), in the response's
/// extensions when the application gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonPhrase(pub String);

/// A streaming response body. Dropping it before the end cancels the request (see the crate
/// docs on cancellation).
pub struct ResponseBody {
    guard: CancelGuard,
    leftover: Bytes,
    deadline: Option<TotalDeadline>,
    end: Option<EndStatus>,
    head_only: bool,
    done: bool,
}

impl ResponseBody {
    /// END_REQUEST's statuses, once the body has been read to its end.
    pub fn end_status(&self) -> Option<EndStatus> {
        self.end
    }

    /// The application's STDERR received so far (all of it once the body ended), bounded by
    /// [`ConnectionConfig::stderr_limit`].
    pub fn stderr(&self) -> Stderr {
        self.guard.shared.stderr()
    }

    fn finish(&mut self, result: Result<EndStatus, Error>) -> Option<Result<Frame<Bytes>, Error>> {
        self.done = true;
        self.guard.armed = false;
        self.deadline = None;
        match result {
            Ok(status) => {
                self.end = Some(status);
                None
            }
            Err(error) => Some(Err(error)),
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").field("done", &self.done).field("end", &self.end).finish()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if !this.leftover.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.leftover)))));
        }
        loop {
            match this.guard.shared.poll_event(cx) {
                Poll::Ready(Event::Data(_)) if this.head_only => continue,
                Poll::Ready(Event::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Poll::Ready(Event::End(result)) => return Poll::Ready(this.finish(result)),
                Poll::Pending => break,
            }
        }
        if let Some(deadline) = &mut this.deadline {
            if deadline.poll_expired(cx).is_ready() {
                let error = deadline.error();
                this.done = true;
                this.deadline = None;
                this.guard.armed = false;
                this.guard.shared.cancel();
                return Poll::Ready(Some(Err(error)));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        // Not exact for HEAD: an HTTP server would turn an exact 0 into an invented
        // `Content-Length: 0` for a resource that has a body.
        if self.done { SizeHint::with_exact(0) } else { SizeHint::default() }
    }
}
