//! Forwarding a request to the FastCGI application through fcgi-mux's [`Pool`].
//!
//! - The body: a declared length (Content-Length) larger than `--max-body` is 413 before a
//!   byte is read; a body of known length streams to FastCGI STDIN as the client sends it; a
//!   body without one (HTTP/1.1 chunked, HTTP/2 without content-length) is buffered up to
//!   `--max-body` to learn its length (php-fpm needs an exact CONTENT_LENGTH), else 413.
//! - The environment: fcgi-cgi-env's `derive` (its safety rules: decoding once, httpoxy,
//!   header-name collisions, hop-by-hop headers...), then, in PHP mode, the script the router
//!   chose as nginx's `snippets/fastcgi-php.conf` sends it: SCRIPT_NAME, SCRIPT_FILENAME =
//!   root + SCRIPT_NAME, PATH_INFO (present, empty when there is none), DOCUMENT_URI =
//!   SCRIPT_NAME + PATH_INFO; REQUEST_URI stays what the client sent.
//! - Failures before the response head: 502 (backend down, broken, refused), 503 (no free
//!   connection within the pool's queue timeout, or FCGI_OVERLOADED), 504 (no first byte in
//!   time), 400/500 for requests the environment rules refuse; a short text body, the cause on
//!   stderr.
//! - The application's STDERR is written to stderr, escaped, once the response ends.

use bytes::Bytes;
use fcgi_cgi_env::{AppConfig, ConnectionInfo};
use fcgi_mux::{Error, Outcome, Pool, TimeoutKind};
use http::request::Parts;
use http::{Response, StatusCode, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use super::proxy::TrustedProxies;
use super::response::{self, Finish, ServeBody};
use crate::records;

/// Longest piece of one STDERR line written to the log.
const STDERR_LINE_MAX: usize = 2048;

/// The FastCGI side of the server.
pub struct Backend {
    /// The connections to the application.
    pub pool: Pool,
    /// The environment rules (mounted, or scripts with the split done by the router).
    pub app: AppConfig,
    /// PHP mode: the document root as the application sees it (SCRIPT_FILENAME's prefix).
    pub script_root: Option<String>,
    /// `--max-body`.
    pub max_body: u64,
    /// `--trusted-proxy`.
    pub trusted: TrustedProxies,
}

/// The script the router chose (PHP mode).
pub struct Script {
    /// SCRIPT_NAME.
    pub name: Vec<u8>,
    /// PATH_INFO.
    pub path_info: Vec<u8>,
}

impl Backend {
    /// Sends the request and returns the response to stream back (or the error response).
    pub async fn forward(
        &self,
        parts: Parts,
        body: Incoming,
        connection: &ConnectionInfo,
        peer: Option<std::net::IpAddr>,
        script: Option<Script>,
    ) -> Response<ServeBody> {
        let (body, len) = match self.ready_body(&parts, body).await {
            Ok(ready) => ready,
            Err(status) => return response::text(status),
        };
        let params = match self.params(&parts, len, connection, peer, script.as_ref()) {
            Ok(params) => params,
            Err(error) => {
                let status = if error.is_config_error() {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else if matches!(error, fcgi_cgi_env::Error::OutsideMount { .. }) {
                    // Mounted mode: a path outside the prefix is not the application's.
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::BAD_REQUEST
                };
                log_failure(&parts, status, &error);
                return response::text(status);
            }
        };
        let request = match http::Request::builder().method(parts.method.clone()).body(body) {
            Ok(request) => request,
            Err(_) => return response::text(StatusCode::INTERNAL_SERVER_ERROR),
        };
        match self.pool.request(request, params).await {
            Ok(response) => {
                let (mut head, body) = response.into_parts();
                let outcome = body.outcome();
                // Hop-by-hop fields are the server's business, not the application's.
                head.headers.remove(header::CONNECTION);
                head.headers.remove(header::TRANSFER_ENCODING);
                let mut body = ServeBody::fcgi(body);
                let (method, uri) = (parts.method.clone(), parts.uri.clone());
                body.on_finish(Box::new(StderrLog { outcome, method, uri }));
                Response::from_parts(head, body)
            }
            Err(error) => {
                let status = status_for(&error);
                log_failure(&parts, status, &error);
                response::text(status)
            }
        }
    }

    /// The body to send and its length, or the status refusing it.
    async fn ready_body(
        &self,
        parts: &Parts,
        body: Incoming,
    ) -> Result<(Either<Incoming, Full<Bytes>>, u64), StatusCode> {
        let declared = body.size_hint().exact().or_else(|| {
            parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        });
        if let Some(len) = declared {
            if len > self.max_body {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            return Ok((Either::Left(body), len));
        }
        if body.is_end_stream() {
            return Ok((Either::Right(Full::new(Bytes::new())), 0));
        }
        let limit = usize::try_from(self.max_body).unwrap_or(usize::MAX);
        match Limited::new(body, limit).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                let len = bytes.len() as u64;
                Ok((Either::Right(Full::new(bytes)), len))
            }
            Err(error) if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                Err(StatusCode::PAYLOAD_TOO_LARGE)
            }
            Err(_) => Err(StatusCode::BAD_REQUEST),
        }
    }

    /// The CGI environment.
    fn params(
        &self,
        parts: &Parts,
        len: u64,
        connection: &ConnectionInfo,
        peer: Option<std::net::IpAddr>,
        script: Option<&Script>,
    ) -> Result<fcgi_cgi_env::CgiParams, fcgi_cgi_env::Error> {
        let mut params = fcgi_cgi_env::derive(parts, Some(len), connection, &self.app)?;
        if let Some(forwarded) = self.trusted.forwarded(peer, &parts.headers) {
            if let Some(client) = forwarded.client {
                params.set("REMOTE_ADDR", client.to_canonical().to_string())?;
                params.remove("REMOTE_PORT");
            }
            match forwarded.https {
                Some(true) => {
                    params.set("HTTPS", "on")?;
                    params.set("REQUEST_SCHEME", "https")?;
                }
                Some(false) => {
                    params.remove("HTTPS");
                    params.set("REQUEST_SCHEME", "http")?;
                }
                None => {}
            }
        }
        if let (Some(script), Some(root)) = (script, &self.script_root) {
            params.set("SCRIPT_NAME", script.name.clone())?;
            params.set("SCRIPT_FILENAME", [root.as_bytes(), &script.name].concat())?;
            params.set("PATH_INFO", script.path_info.clone())?;
            params.set("DOCUMENT_URI", [&script.name[..], &script.path_info].concat())?;
        }
        Ok(params)
    }
}

/// The status answering a request that failed before its response head.
pub fn status_for(error: &Error) -> StatusCode {
    match error {
        Error::Timeout { kind: TimeoutKind::Queue, .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Refused { status, .. } if *status == fcgi_mux::fcgi_proto::ProtocolStatus::OVERLOADED => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        other => other.gateway_status(),
    }
}

/// `GET /path` for log lines, escaped.
fn request_line(method: &http::Method, uri: &http::Uri) -> String {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    records::escape_cut(format!("{method} {target}").as_bytes(), STDERR_LINE_MAX)
}

/// One line on stderr: the status, the request and the error with its causes.
fn log_failure(parts: &Parts, status: StatusCode, error: &(dyn std::error::Error + 'static)) {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    eprintln!(
        "fcgi serve: {} for {}: {}",
        status.as_u16(),
        request_line(&parts.method, &parts.uri),
        crate::exit::one_line(&text)
    );
}

/// Writes the application's STDERR when the response ends.
struct StderrLog {
    outcome: Outcome,
    /// The request, for the log lines (written out only when there is STDERR).
    method: http::Method,
    uri: http::Uri,
}

impl Finish for StderrLog {
    fn finish(self: Box<Self>, _body_bytes: u64, _complete: bool) {
        let stderr = self.outcome.stderr();
        if stderr.kept.is_empty() {
            return;
        }
        let request = request_line(&self.method, &self.uri);
        let mut out = String::new();
        for line in stderr.kept.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            out.push_str(&format!(
                "fcgi serve: stderr of {}: {}\n",
                request,
                records::escape_cut(line, STDERR_LINE_MAX)
            ));
        }
        if stderr.dropped > 0 {
            out.push_str(&format!(
                "fcgi serve: stderr of {}: ({} more bytes dropped)\n",
                request, stderr.dropped
            ));
        }
        eprint!("{out}");
    }
}
