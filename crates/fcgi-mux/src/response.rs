//! The response side of a request: waiting for the CGI head (first-byte and total
//! timeouts), then streaming the body as an `http_body::Body`.

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

/// One timer per request, moved from the first-byte deadline to the total deadline without
/// re-registering it: a timer that fires before its current deadline is re-armed then, which
/// is rare (responses usually arrive long before any deadline).
struct Deadline {
    sleep: Pin<Box<Sleep>>,
    at: Instant,
}

impl Deadline {
    fn new(at: Instant) -> Self {
        Self { sleep: Box::pin(tokio::time::sleep_until(at.into())), at }
    }

    /// Moves the deadline; the timer is touched only when the new one is earlier.
    fn set(&mut self, at: Instant) {
        if at < self.sleep.deadline().into_std() {
            self.sleep.as_mut().reset(at.into());
        }
        self.at = at;
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.sleep.as_mut().poll(cx).is_ready() {
            if Instant::now() >= self.at {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(self.at.into());
        }
        Poll::Pending
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
    let total = config.total_timeout.map(|after| (after, started + after));
    let first_byte_at = started + config.first_byte_timeout;
    let (first_kind, first_after, first_deadline) = match total {
        Some((after, deadline)) if deadline <= first_byte_at => (TimeoutKind::Total, after, deadline),
        _ => (TimeoutKind::FirstByte, config.first_byte_timeout, first_byte_at),
    };
    let mut deadline = Deadline::new(first_deadline);
    let arrived = poll_fn(|cx| {
        if shared.poll_first_byte(cx).is_ready() {
            return Poll::Ready(true);
        }
        deadline.poll_expired(cx).map(|()| false)
    })
    .await;
    if !arrived {
        tracing::debug!(parent: &span, after = ?first_after, "{first_kind} timed out");
        return Err(Error::timeout(first_kind, first_after));
    }
    // The head may take until the total deadline.
    let far_future = started + Duration::from_secs(86_400 * 365);
    deadline.set(total.map_or(far_future, |(_, at)| at));
    let mut buffered = BytesMut::new();
    let mut scanner = HeadScanner::new(config.max_head_len);
    let outcome = loop {
        let event = poll_fn(|cx| {
            if let Poll::Ready(event) = shared.poll_event(cx) {
                return Poll::Ready(Some(event));
            }
            deadline.poll_expired(cx).map(|()| None)
        })
        .await;
        match event {
            None => {
                break Err(Error::timeout(
                    TimeoutKind::Total,
                    total.map_or(Duration::ZERO, |(after, _)| after),
                ));
            }
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
        deadline: total.map(|(after, _)| (after, deadline)),
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
    deadline: Option<(Duration, Deadline)>,
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
        if let Some((after, deadline)) = &mut this.deadline {
            if deadline.poll_expired(cx).is_ready() {
                let after = *after;
                this.done = true;
                this.deadline = None;
                this.guard.armed = false;
                this.guard.shared.cancel();
                return Poll::Ready(Some(Err(Error::timeout(TimeoutKind::Total, after))));
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
