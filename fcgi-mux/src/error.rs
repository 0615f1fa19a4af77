//! The client's error type: what failed, sorted by whose fault it is.
//!
//! Errors are `Clone` because one connection failure is reported to every request on it.
//! `Display` never repeats `source()`: print the chain (`anyhow`'s `{:#}`, or walk `source()`)
//! to see the cause.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use fcgi_proto::{DecodeError, ProtocolStatus};

use crate::cgi::CgiError;

/// A boxed error from a caller's request body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to a FastCGI server.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The host name of a TCP address did not resolve.
    #[error("cannot resolve {host}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why.
        source: Arc<io::Error>,
    },
    /// Connecting failed (refused, no such socket, permission denied...).
    #[error("cannot connect to {address}")]
    Connect {
        /// The address, as given.
        address: String,
        /// Why.
        source: Arc<io::Error>,
    },
    /// A timeout expired.
    #[error("{kind} timed out after {}", humanize(*.after))]
    Timeout {
        /// Which timeout.
        kind: TimeoutKind,
        /// Its configured duration.
        after: Duration,
    },
    /// Reading or writing the connection failed.
    #[error("connection to the FastCGI server failed: {0}")]
    Io(Arc<io::Error>),
    /// The server closed the connection before ending the request.
    #[error("the FastCGI server closed the connection before ending the request{}",
        if *.sent_nothing { " (nothing of the request had been sent)" } else { "" })]
    ConnectionClosed {
        /// True when none of the request's bytes were written: it is safe to retry.
        sent_nothing: bool,
    },
    /// The server broke the FastCGI protocol (malformed records, records it must not send).
    #[error("FastCGI protocol error from the server: {0}")]
    Protocol(ProtocolViolation),
    /// The response's CGI header block was malformed.
    #[error("malformed CGI response from the application")]
    Cgi(#[from] CgiError),
    /// The server ended the request with a protocol status other than REQUEST_COMPLETE.
    #[error("the FastCGI server refused the request: {status}{}",
        if *.status == ProtocolStatus::CANT_MPX_CONN { " (it does not multiplex; the request never ran)" }
        else if *.status == ProtocolStatus::OVERLOADED { " (it is overloaded)" }
        else { "" })]
    Refused {
        /// The END_REQUEST protocol status.
        status: ProtocolStatus,
        /// The application status that came with it.
        app_status: u32,
    },
    /// The request was aborted because its response was not being read (see the crate
    /// docs on slow readers).
    #[error("request aborted: its response was not read for {}, holding up the connection", humanize(*.after))]
    Stalled {
        /// The stall timeout.
        after: Duration,
    },
    /// The caller's request body stream failed.
    #[error("request body: {0}")]
    Body(Arc<BoxError>),
    /// The request cannot be sent as given (caller misuse).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The FastCGI parameters could not be derived from the HTTP request (for example
    /// `fcgi-cgi-env` refused a path that escapes the document root). Returned by
    /// `FcgiService` (feature `tower`) when its parameter function fails; the function's
    /// error is kept, so it can be downcast to the deriving crate's error type.
    #[error("cannot derive the FastCGI parameters: {0}")]
    Params(Arc<BoxError>),
    /// The connection or pool is shut down.
    #[error("the connection is closed")]
    Closed,
}

/// Which timeout expired.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Establishing the connection.
    Connect,
    /// Waiting for the first byte of the response (the server accepted the connection but
    /// no worker took the request, or the script has not output anything).
    FirstByte,
    /// The whole request, response body included.
    Total,
    /// Waiting for a free connection in the pool.
    Queue,
    /// Waiting for `FCGI_GET_VALUES_RESULT`.
    GetValues,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connecting",
            TimeoutKind::FirstByte => "waiting for the first byte of the response",
            TimeoutKind::Total => "the request",
            TimeoutKind::Queue => "waiting for a free connection in the pool",
            TimeoutKind::GetValues => "waiting for FCGI_GET_VALUES_RESULT",
        })
    }
}

/// How the server broke the protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// Bytes that are not valid FastCGI records.
    #[error(transparent)]
    Malformed(#[from] DecodeError),
    /// A record type only a client may send (BEGIN_REQUEST, PARAMS, STDIN...).
    #[error("the server sent {0}, which only a client may send")]
    ClientRecord(fcgi_proto::RecordType),
    /// Too many bytes of records for requests that are not in progress.
    #[error("more than {limit} bytes of records for unknown or finished request ids")]
    TooManyStrayRecords {
        /// The configured bound.
        limit: usize,
    },
}

impl Error {
    /// True for timeouts of any kind.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// True when the request certainly did not run and may be sent again: nothing of it was
    /// written, or the server refused it with CANT_MPX_CONN.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::ConnectionClosed { sent_nothing } => *sent_nothing,
            Error::Refused { status, .. } => *status == ProtocolStatus::CANT_MPX_CONN,
            _ => false,
        }
    }

    /// The HTTP status a gateway (an HTTP server that forwards requests to FastCGI) should
    /// answer with when a request fails with this error before its response head:
    ///
    /// - `504 Gateway Timeout` for every [`Error::Timeout`] (connect, first byte, total,
    ///   pool queue);
    /// - `502 Bad Gateway` when the backend is at fault or unreachable: resolving,
    ///   connecting, I/O, the connection closing, protocol violations, malformed CGI
    ///   responses, a refused request, [`Error::Stalled`], [`Error::Closed`];
    /// - `400 Bad Request` when the HTTP request itself cannot be forwarded:
    ///   [`Error::InvalidRequest`] (Content-Length disagreeing with the body, a body of
    ///   unknown length too large to buffer), [`Error::Params`] (the request broke a CGI
    ///   environment rule) and [`Error::Body`] (the client's request body failed mid-way).
    ///
    /// Once the response head has been sent, an error from the body can no longer change
    /// the status: the gateway can only cut the response short.
    pub fn gateway_status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::Resolve { .. }
            | Error::Connect { .. }
            | Error::Io(_)
            | Error::ConnectionClosed { .. }
            | Error::Protocol(_)
            | Error::Cgi(_)
            | Error::Refused { .. }
            | Error::Stalled { .. }
            | Error::Closed => StatusCode::BAD_GATEWAY,
            Error::InvalidRequest(_) | Error::Params(_) | Error::Body(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn io(err: io::Error) -> Self {
        Error::Io(Arc::new(err))
    }

    pub(crate) fn timeout(kind: TimeoutKind, after: Duration) -> Self {
        Error::Timeout { kind, after }
    }
}

/// `1.5 s`, `250 ms`: durations as people write them.
fn humanize(duration: Duration) -> String {
    if duration.as_millis() < 1000 {
        format!("{} ms", duration.as_millis())
    } else if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            Error::timeout(TimeoutKind::FirstByte, Duration::from_millis(1500)).to_string(),
            "waiting for the first byte of the response timed out after 1.5 s"
        );
        assert_eq!(
            Error::timeout(TimeoutKind::Connect, Duration::from_secs(2)).to_string(),
            "connecting timed out after 2 s"
        );
        let refused = Error::Refused { status: ProtocolStatus::CANT_MPX_CONN, app_status: 0 };
        assert!(refused.is_retryable());
        assert_eq!(
            refused.to_string(),
            "the FastCGI server refused the request: FCGI_CANT_MPX_CONN (it does not multiplex; the request never ran)"
        );
        assert!(!Error::ConnectionClosed { sent_nothing: false }.is_retryable());
        assert!(Error::ConnectionClosed { sent_nothing: true }.is_retryable());
    }

    #[test]
    fn display_does_not_repeat_the_source() {
        use std::error::Error as _;
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let errors = [
            Error::Connect { address: "unix:/x".into(), source: Arc::new(refused) },
            Error::Resolve { host: "nowhere".into(), source: Arc::new(io::Error::other("no such host")) },
            Error::Cgi(crate::cgi::head_incomplete_at_end(b"X: 1")),
        ];
        for error in errors {
            let source = error.source().expect("a cause").to_string();
            assert!(!error.to_string().contains(&source), "{error} repeats {source}");
        }
    }

    #[test]
    fn gateway_status() {
        use http::StatusCode;
        for kind in [TimeoutKind::Connect, TimeoutKind::FirstByte, TimeoutKind::Total, TimeoutKind::Queue] {
            assert_eq!(
                Error::timeout(kind, Duration::from_secs(1)).gateway_status(),
                StatusCode::GATEWAY_TIMEOUT
            );
        }
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        for backend in [
            Error::Connect { address: "unix:/nowhere".into(), source: Arc::new(refused) },
            Error::io(io::Error::from(io::ErrorKind::ConnectionReset)),
            Error::ConnectionClosed { sent_nothing: false },
            Error::Refused { status: ProtocolStatus::OVERLOADED, app_status: 0 },
            Error::Stalled { after: Duration::from_secs(10) },
            Error::Closed,
        ] {
            assert_eq!(backend.gateway_status(), StatusCode::BAD_GATEWAY, "{backend}");
        }
        let params = Error::Params(Arc::new("request path escapes the document root".into()));
        assert_eq!(
            params.to_string(),
            "cannot derive the FastCGI parameters: request path escapes the document root"
        );
        for caller in [params, Error::InvalidRequest("x".into()), Error::Body(Arc::new("reset".into()))] {
            assert_eq!(caller.gateway_status(), StatusCode::BAD_REQUEST, "{caller}");
        }
    }
}
