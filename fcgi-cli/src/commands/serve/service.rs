//! One request: routing (PHP mode or mounted), then a static file, a
//! redirect, an error page or the FastCGI application; the access-log entry and the
//! connection's in-flight count ride on the response body until it is sent.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use fcgi_cgi_env::ConnectionInfo;
use http::{Method, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use tokio::sync::Notify;

use super::access_log::{AccessLog, Entry};
use super::forward::{Backend, Script};
use super::response::{self, Finish, ServeBody};
use super::route::{DocRoot, Route};
use super::static_files;

/// What the server serves.
pub enum Mode {
    /// `--docroot`: static files and PHP scripts.
    Php(DocRoot),
    /// `--mount`: everything goes to the application.
    Mounted,
}

/// Shared by every connection.
pub struct Site {
    /// PHP or mounted.
    pub mode: Mode,
    /// The FastCGI application.
    pub backend: Backend,
    /// The access log.
    pub log: AccessLog,
}

/// Requests in flight on one connection, for the idle timeout.
#[derive(Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Notified when the count goes from 0 to 1 or back.
    pub changed: Notify,
}

impl Activity {
    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn start(self: &Arc<Self>) -> InFlight {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.changed.notify_waiters();
        }
        InFlight(self.clone())
    }
}

/// One request in flight; dropped when its response is sent (or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_waiters();
        }
    }
}

impl Finish for InFlight {
    fn finish(self: Box<Self>, _body_bytes: u64, _complete: bool) {}
}

/// The hyper service of one connection.
#[derive(Clone)]
pub struct Handler {
    /// The site.
    pub site: Arc<Site>,
    /// The connection's ends and TLS, for the CGI environment.
    pub connection: Arc<ConnectionInfo>,
    /// The client, for the access log.
    pub client: Option<SocketAddr>,
    /// The connection's in-flight count.
    pub activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for Handler {
    type Response = Response<ServeBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ServeBody>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}

impl Handler {
    async fn handle(self, request: Request<Incoming>) -> Response<ServeBody> {
        let in_flight = self.activity.start();
        let entry = self.site.log.enabled().then(|| self.entry(&request));
        let mut response = self.respond(request).await;
        response.body_mut().on_finish(Box::new(in_flight));
        if let Some(mut entry) = entry {
            entry.status = response.status().as_u16();
            if let Some(finish) = self.site.log.entry(entry) {
                response.body_mut().on_finish(finish);
            }
        }
        response
    }

    fn peer(&self) -> Option<std::net::IpAddr> {
        self.client.map(|client| client.ip())
    }

    fn entry(&self, request: &Request<Incoming>) -> Entry {
        let header = |name: header::HeaderName| request.headers().get(name).map(|v| v.as_bytes().to_vec());
        Entry {
            client: self.client,
            time: SystemTime::now(),
            started: Instant::now(),
            method: request.method().to_string(),
            target: request
                .uri()
                .path_and_query()
                .map_or_else(|| request.uri().to_string(), |pq| pq.to_string()),
            version: version_name(request.version()),
            status: 0,
            referer: header(header::REFERER),
            user_agent: header(header::USER_AGENT),
        }
    }

    async fn respond(&self, request: Request<Incoming>) -> Response<ServeBody> {
        // Request smuggling is hyper's parser's business, before this point: two different
        // Content-Lengths, a Transfer-Encoding other than chunked, bad chunk sizes and
        // obs-folded lines are answered 400; Content-Length with Transfer-Encoding is read as
        // chunked and the connection closed after the response (RFC 9112 §6.1), so the bytes
        // after the chunked body never become a request (tests/it/serve_limits.rs).
        let (parts, body) = request.into_parts();
        match &self.site.mode {
            Mode::Mounted => {
                self.site.backend.forward(parts, body, &self.connection, self.peer(), None).await
            }
            Mode::Php(docroot) => {
                let Ok(path) = fcgi_cgi_env::normalize_path(parts.uri.path()) else {
                    return response::text(StatusCode::BAD_REQUEST);
                };
                match docroot.route(&path) {
                    Route::Script { script_name, path_info } => {
                        let script = Script { name: script_name, path_info };
                        self.site
                            .backend
                            .forward(parts, body, &self.connection, self.peer(), Some(script))
                            .await
                    }
                    Route::Static(file) => {
                        if parts.method != Method::GET && parts.method != Method::HEAD {
                            let mut response = response::text(StatusCode::METHOD_NOT_ALLOWED);
                            response
                                .headers_mut()
                                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
                            return response;
                        }
                        static_files::respond(&parts.method, &parts.headers, file).await
                    }
                    Route::AddSlash => add_slash(&parts.uri),
                    Route::NotFound => response::text(StatusCode::NOT_FOUND),
                }
            }
        }
    }
}

/// 308 to the same path with a trailing slash, the query kept.
fn add_slash(uri: &http::Uri) -> Response<ServeBody> {
    let mut location = format!("{}/", uri.path());
    if let Some(query) = uri.query() {
        location.push('?');
        location.push_str(query);
    }
    let mut response = response::text(StatusCode::PERMANENT_REDIRECT);
    match header::HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => response::text(StatusCode::BAD_REQUEST),
    }
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP",
    }
}
