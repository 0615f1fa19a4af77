//! The caller's side of a response: waiting for the CGI head, then streaming the body as an
//! `http_body::Body`. The connection machine parses the head and enforces every deadline;
//! this side only waits, and cancels the request when dropped before the end.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::conn::shared::{BodyEvent, RequestShared, Stderr};
use crate::error::Error;
use crate::machine::EndStatus;

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

/// Waits for the response head and returns the response with its streaming body.
pub(crate) async fn receive(
    shared: Arc<RequestShared>,
    span: tracing::Span,
) -> Result<http::Response<ResponseBody>, Error> {
    let mut guard = CancelGuard { shared: shared.clone(), armed: true };
    let head = match poll_fn(|cx| shared.poll_head(cx)).await {
        Ok(head) => head,
        Err(error) => {
            guard.armed = false;
            tracing::debug!(parent: &span, %error, "request failed before the response head");
            return Err(error);
        }
    };
    guard.armed = false;
    let body = ResponseBody { guard: CancelGuard { shared: shared.clone(), armed: true }, done: false };
    let mut response = http::Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    if let Some(reason) = head.reason {
        response.extensions_mut().insert(ReasonPhrase(reason));
    }
    if head.status_given {
        response.extensions_mut().insert(StatusGiven);
    }
    if !head.variables.is_empty() {
        response.extensions_mut().insert(Variables(head.variables));
    }
    Ok(response)
}

/// In the response's extensions when a `Status:` line set the status (not when it is the
/// 200 of a head without one, or the 302 of a `Location:` alone): an Authorizer's answer
/// without `Status:` means "authorized" (FastCGI §6.3 as lighttpd reads it).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StatusGiven;

/// The `Variable-NAME: value` fields of the head (an Authorizer's variables, FastCGI §6.3),
/// NAME with its case as sent, in order; in the response's extensions when there was one.
/// They are in the headers too (lowercased there, as every [`http::HeaderName`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variables(pub Vec<(String, http::HeaderValue)>);

/// The reason phrase of a `Status:` line (`404 Not Found` → `Not Found`), in the response's
/// extensions when the application gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonPhrase(pub String);

/// The rest of a response that is not body: the application's STDERR and the END_REQUEST
/// status, from [`ResponseBody::outcome`], so that they stay reachable after the body was
/// consumed by something that takes it whole (`response.into_body().collect()`):
///
/// ```no_run
/// # async fn run(response: http::Response<fcgi_mux::ResponseBody>) -> Result<(), fcgi_mux::Error> {
/// use http_body_util::BodyExt;
/// let outcome = response.body().outcome();
/// let body = response.into_body().collect().await?.to_bytes();
/// println!("{} bytes, stderr {:?}, {:?}", body.len(), outcome.stderr().kept, outcome.end_status());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Outcome(Arc<RequestShared>);

impl Outcome {
    /// The application's STDERR received so far (all of it once the body ended), bounded by
    /// [`ConnectionConfig::stderr_limit`](crate::ConnectionConfig::stderr_limit).
    pub fn stderr(&self) -> Stderr {
        self.0.stderr()
    }

    /// END_REQUEST's statuses, once the request ended well.
    pub fn end_status(&self) -> Option<EndStatus> {
        self.0.end_status()
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome").field("end_status", &self.end_status()).finish()
    }
}

/// A streaming response body. Dropping it before the end cancels the request (see the crate
/// docs on cancellation).
pub struct ResponseBody {
    guard: CancelGuard,
    done: bool,
}

impl ResponseBody {
    /// A handle to STDERR and the end status that outlives this body (see [`Outcome`]).
    pub fn outcome(&self) -> Outcome {
        Outcome(self.guard.shared.clone())
    }

    /// END_REQUEST's statuses, once the body has been read to its end.
    pub fn end_status(&self) -> Option<EndStatus> {
        self.guard.shared.end_status()
    }

    /// The application's STDERR received so far (all of it once the body ended), bounded by
    /// [`ConnectionConfig::stderr_limit`](crate::ConnectionConfig::stderr_limit).
    pub fn stderr(&self) -> Stderr {
        self.guard.shared.stderr()
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").field("done", &self.done).field("end", &self.end_status()).finish()
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
        match this.guard.shared.poll_body(cx) {
            Poll::Ready(BodyEvent::Data(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(BodyEvent::End(result)) => {
                this.done = true;
                this.guard.armed = false;
                Poll::Ready(result.err().map(Err))
            }
            Poll::Pending => Poll::Pending,
        }
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
