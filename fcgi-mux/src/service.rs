//! The pool as a `tower_service::Service<http::Request<B>>` (feature `tower`), so that hyper
//! 1.x (through hyper-util's `TowerToHyperService`), axum and tower middleware can use it.
//!
//! This crate does not derive CGI parameters (that is `fcgi-cgi-env`'s job, and the layering
//! rule keeps the two apart), so the service is given a function that does: it sees the
//! request head and the exact body length, and returns the parameters.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

use crate::config::ConnectionConfig;
use crate::conn::declared_length;
use crate::error::{BoxError, Error};
use crate::pool::Pool;
use crate::request::{RequestBody, prepare_body};
use crate::response::ResponseBody;

/// A [`Pool`] as a `tower_service::Service<http::Request<B>>` (feature `tower`).
///
/// `params` turns each request head and its body length into the FastCGI parameters,
/// typically with `fcgi_cgi_env::derive`:
/// `Fn(&http::request::Parts, u64) -> Result<Vec<(Bytes, Bytes)>, BoxError>`. It runs once
/// the body length is known: from an exact size hint or the `Content-Length` header (the body
/// then streams), else by buffering the body up to [`FcgiService::max_buffered_body`]
/// (8 MiB by default; a larger body fails with [`Error::InvalidRequest`]). Its error becomes
/// [`Error::Params`].
///
/// [`poll_ready`](tower_service::Service::poll_ready) is always ready: the pool queues
/// requests itself (bounded by [`PoolConfig::queue_timeout`](crate::PoolConfig::queue_timeout)).
/// [`call`](tower_service::Service::call) returns a boxed `Send` future that resolves once
/// the response head has arrived; the body then streams as a [`ResponseBody`]. An HTTP
/// gateway answers errors with [`Error::gateway_status`] (502, 504, 400).
///
/// # Example: hyper 1.x through hyper-util
///
/// ```no_run
/// use std::sync::Arc;
///
/// use bytes::Bytes;
/// use fcgi_cgi_env::{AppConfig, ConnectionInfo, derive};
/// use fcgi_mux::{FcgiService, Pool, PoolConfig};
/// use hyper_util::rt::TokioIo;
/// use hyper_util::service::TowerToHyperService;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let pool = Pool::new("unix:/run/php/php-fpm.sock".parse()?, PoolConfig::default());
/// let app = Arc::new(AppConfig::new("/var/www/html"));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (stream, client) = listener.accept().await?;
///     let server = stream.local_addr()?;
///     let connection = ConnectionInfo::new().client(client).server(server);
///     let app = app.clone();
///     let service = FcgiService::new(pool.clone(), move |head: &http::request::Parts, body_len: u64| {
///         let params = derive(head, Some(body_len), &connection, &app)?;
///         Ok(params.into_iter().map(|(n, v)| (Bytes::from(n), Bytes::from(v))).collect())
///     });
///     // A service error closes the HTTP connection: map it with `Error::gateway_status`
///     // first (axum, or `tower::ServiceExt::map_result`) to answer 502/504 instead.
///     tokio::spawn(
///         hyper::server::conn::http1::Builder::new()
///             .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
///     );
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct FcgiService<F> {
    pool: Pool,
    params: F,
    max_buffered_body: usize,
}

impl<F> std::fmt::Debug for FcgiService<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcgiService")
            .field("pool", &self.pool)
            .field("max_buffered_body", &self.max_buffered_body)
            .finish_non_exhaustive()
    }
}

impl<F> FcgiService<F>
where
    F: Fn(&http::request::Parts, u64) -> Result<Vec<(Bytes, Bytes)>, BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    /// A service sending requests through `pool`, with parameters from `params`.
    pub fn new(pool: Pool, params: F) -> Self {
        FcgiService { pool, params, max_buffered_body: ConnectionConfig::default().max_buffered_body }
    }
}

impl<F> FcgiService<F> {
    /// Sets the largest request body of unknown length (no `Content-Length`, no exact size
    /// hint: a chunked upload) that is buffered to learn its length. Default 8 MiB, as
    /// [`ConnectionConfig::max_buffered_body`]; the pool's own setting does not apply, since
    /// the service learns the length before the parameters are derived.
    #[must_use]
    pub fn max_buffered_body(mut self, limit: usize) -> Self {
        self.max_buffered_body = limit;
        self
    }

    /// The pool requests are sent through.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl<B, F> tower_service::Service<http::Request<B>> for FcgiService<F>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Fn(&http::request::Parts, u64) -> Result<Vec<(Bytes, Bytes)>, BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Error>> + Send>>;

    /// Always ready: the pool queues requests itself.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let pool = self.pool.clone();
        let params = self.params.clone();
        let config = ConnectionConfig::default().max_buffered_body(self.max_buffered_body);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let content_length = declared_length(&parts.headers)?;
            let body = prepare_body(body, content_length, &config).await?;
            let pairs = params(&parts, body.len()).map_err(|error| Error::Params(Arc::new(error)))?;
            let body: UnsyncBoxBody<Bytes, BoxError> = match body {
                RequestBody::Full(bytes) => Full::new(bytes).map_err(|never| match never {}).boxed_unsync(),
                RequestBody::Stream { body, .. } => body,
            };
            pool.request(http::Request::from_parts(parts, body), pairs).await
        })
    }
}

/// An [`FcgiService`] that answers its errors itself, so that it can be mounted where a
/// service must not fail (axum's `Router::route_service`, `fallback_service`): a request that
/// fails before its response head is answered with [`Error::gateway_status`] (502, 504 or
/// 400) and a one-line body naming the status; the error is logged (`tracing`, level warn).
/// Made by [`FcgiService::into_gateway`].
#[derive(Clone, Debug)]
pub struct FcgiGateway<F>(FcgiService<F>);

/// The body of an [`FcgiGateway`] response: the application's, or the gateway's own short one.
pub type GatewayBody = http_body_util::Either<ResponseBody, Full<Bytes>>;

impl<F> FcgiService<F> {
    /// This service, answering errors with a status instead of failing: see [`FcgiGateway`].
    pub fn into_gateway(self) -> FcgiGateway<F> {
        FcgiGateway(self)
    }
}

impl<B, F> tower_service::Service<http::Request<B>> for FcgiGateway<F>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Fn(&http::request::Parts, u64) -> Result<Vec<(Bytes, Bytes)>, BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    type Response = http::Response<GatewayBody>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<GatewayBody>, std::convert::Infallible>> + Send>>;

    /// Always ready: the pool queues requests itself.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let inner = tower_service::Service::call(&mut self.0, request);
        Box::pin(async move {
            Ok(match inner.await {
                Ok(response) => response.map(http_body_util::Either::Left),
                Err(error) => {
                    let status = error.gateway_status();
                    tracing::warn!(%error, status = status.as_u16(), "FastCGI request failed");
                    let text = format!("{} {}\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
                    let mut response =
                        http::Response::new(http_body_util::Either::Right(Full::new(Bytes::from(text))));
                    *response.status_mut() = status;
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    response
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Address;

    fn assert_send<T: Send>(_: &T) {}

    #[tokio::test]
    async fn params_errors_and_bad_lengths_fail_before_connecting() {
        use tower_service::Service;
        // Nothing listens there: reaching the pool would be a Connect error, not these.
        let pool = Pool::new("127.0.0.1:1".parse::<Address>().unwrap(), crate::PoolConfig::default());
        let mut refusing = FcgiService::new(pool.clone(), |_: &http::request::Parts, _: u64| {
            Err::<Vec<(Bytes, Bytes)>, BoxError>("path escapes the document root".into())
        });
        let future = refusing.call(http::Request::new(Full::new(Bytes::new())));
        assert_send(&future);
        let error = future.await.unwrap_err();
        assert!(matches!(error, Error::Params(_)), "{error}");
        assert_eq!(error.gateway_status(), http::StatusCode::BAD_REQUEST);

        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let mut service = FcgiService::new(pool, move |_: &http::request::Parts, len: u64| {
            record.lock().unwrap().push(len);
            Ok(Vec::new())
        })
        .max_buffered_body(4);
        let bad =
            http::Request::post("/").header("Content-Length", "abc").body(Full::new(Bytes::new())).unwrap();
        assert!(matches!(service.call(bad).await, Err(Error::InvalidRequest(_))));
        let mismatch = http::Request::post("/")
            .header("Content-Length", "3")
            .body(Full::new(Bytes::from("four")))
            .unwrap();
        assert!(matches!(service.call(mismatch).await, Err(Error::InvalidRequest(_))));
        assert!(seen.lock().unwrap().is_empty(), "params are derived only once the length is right");

        let ok = http::Request::post("/").body(Full::new(Bytes::from("four"))).unwrap();
        let error = service.call(ok).await.unwrap_err();
        assert!(matches!(error, Error::Connect { .. }), "{error}");
        assert_eq!(*seen.lock().unwrap(), [4]);
    }

    #[tokio::test]
    async fn the_gateway_answers_errors_with_their_status() {
        use http_body_util::BodyExt;
        use tower_service::Service;
        let pool = Pool::new("127.0.0.1:1".parse::<Address>().unwrap(), crate::PoolConfig::default());
        let mut gateway =
            FcgiService::new(pool, |_: &http::request::Parts, _: u64| Ok(Vec::new())).into_gateway();
        let response = gateway.call(http::Request::new(Full::new(Bytes::new()))).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::BAD_GATEWAY);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"502 Bad Gateway\n");

        // Mountable in axum as it is.
        let router = axum::Router::new().route_service("/app", gateway);
        let request = http::Request::get("/app").body(axum::body::Body::empty()).unwrap();
        let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::BAD_GATEWAY);
    }
}
