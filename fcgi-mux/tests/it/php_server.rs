//! End to end: the `php_server` example (axum, and hyper through hyper-util's adapter; the
//! module `example` here) in front of the real php-fpm started by `cargo xtask test`, driven
//! by a real HTTP client.
//!
//! Needs `FCGI_TEST_PHP_FPM_SOCKET` and `FCGI_TEST_DOCROOT` (see `tests/src/backend_env.rs`);
//! it fails loudly without them, never skips.
#![cfg(feature = "tower")]

#[path = "../../examples/php_server.rs"]
#[allow(dead_code)]
mod example;

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fcgi_cgi_env::AppConfig;
use fcgi_mux::{Address, ConnectionConfig, FcgiService, Pool, PoolConfig};
use http::{HeaderMap, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

/// `(php-fpm socket, docroot)` from the harness.
fn backend() -> (String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run these tests with `cargo xtask test` (or `cargo xtask backends`)")
        })
    };
    // The names of `tests/src/backend_env.rs`, spelled out so that the published package's tests
    // build without files from outside it (a test in `tests/src/backends.rs` checks them).
    (var("FCGI_TEST_PHP_FPM_SOCKET"), var("FCGI_TEST_DOCROOT"))
}

/// A small pool (php-fpm pins a worker per open connection, and other tests run meanwhile).
fn pool_config() -> PoolConfig {
    PoolConfig::default().max_connections(2).idle_timeout(Duration::from_millis(500))
}

fn php_pool(config: PoolConfig) -> Pool {
    let (socket, _) = backend();
    Pool::new(format!("unix:{socket}").parse::<Address>().unwrap(), config)
}

fn app() -> AppConfig {
    AppConfig::new(backend().1)
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Starts the example's axum app with `pool`; returns its address.
async fn start_axum(pool: Pool) -> SocketAddr {
    let (listener, addr) = bind().await;
    tokio::spawn(example::serve(listener, example::router(pool, app())));
    addr
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Sends one request on a fresh HTTP/1.1 connection with hyper's client.
async fn send<B>(addr: SocketAddr, request: Request<B>) -> Reply
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request_future = sender.send_request(request);
    let response = tokio::time::timeout(Duration::from_secs(20), request_future)
        .await
        .expect("no HTTP response within 20 s")
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply { status: parts.status, headers: parts.headers, body }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, Request::get(path).header("Host", "php.test").body(Empty::<Bytes>::new()).unwrap()).await
}

#[tokio::test]
async fn axum_serves_hello() {
    let addr = start_axum(php_pool(pool_config())).await;
    let reply = get(addr, "/hello.php").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "Hello, world!");
    assert_eq!(reply.headers["content-type"], "text/plain;charset=UTF-8");
    let missing = get(addr, "/no-such-script.php").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "php-fpm's own 404 passes through");
}

/// The reproduction: after 300 curl clients gave up after 10-90 ms, the example answered 504 to
/// every request for good (the pool had leaked its counts of connections being opened).
#[tokio::test]
async fn axum_keeps_serving_after_clients_give_up() {
    let addr = start_axum(php_pool(pool_config())).await;
    let mut clients = Vec::new();
    for i in 0..300u64 {
        clients.push(tokio::spawn(async move {
            let give_up = Duration::from_millis(10 + (i * 37) % 80);
            let _ = tokio::time::timeout(give_up, get(addr, "/slow.php?ms=30")).await;
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let reply = get(addr, "/hello.php").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "Hello, world!");
}

#[tokio::test]
async fn axum_answers_head_without_inventing_a_length() {
    let addr = start_axum(php_pool(pool_config())).await;
    let reply = send(
        addr,
        Request::head("/hello.php").header("Host", "php.test").body(Empty::<Bytes>::new()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert_eq!(reply.headers["content-type"], "text/plain;charset=UTF-8");
    assert!(!reply.headers.contains_key("content-length"), "{:?}", reply.headers);
}

#[tokio::test]
async fn axum_passes_path_info_query_and_addresses() {
    let addr = start_axum(php_pool(pool_config())).await;
    let reply = get(addr, "/env.php/extra?x=1").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let env: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let docroot = backend().1;
    let expected = [
        ("SCRIPT_NAME", "/env.php".to_owned()),
        ("PATH_INFO", "/extra".to_owned()),
        ("QUERY_STRING", "x=1".to_owned()),
        ("REQUEST_URI", "/env.php/extra?x=1".to_owned()),
        ("SCRIPT_FILENAME", format!("{}/env.php", docroot.trim_end_matches('/'))),
        ("REQUEST_METHOD", "GET".to_owned()),
        ("SERVER_NAME", "php.test".to_owned()),
        ("REMOTE_ADDR", "127.0.0.1".to_owned()),
        ("SERVER_ADDR", "127.0.0.1".to_owned()),
        ("SERVER_PORT", addr.port().to_string()),
    ];
    for (name, value) in expected {
        assert_eq!(env[name], value.as_str(), "{name} in {env}");
    }
    assert_eq!(env["_GET"]["x"], "1");
}

#[tokio::test]
async fn axum_echoes_a_post_body() {
    let addr = start_axum(php_pool(pool_config())).await;
    let body = Bytes::from_static(b"name=fcgi&mux=yes");
    let request = Request::post("/echo.php")
        .header("Host", "php.test")
        .header("Content-Type", "application/octet-stream")
        .body(Full::new(body.clone()))
        .unwrap();
    let reply = send(addr, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.body, body);
    assert_eq!(reply.headers["x-content-length"], "17");
    assert_eq!(reply.headers["x-method"], "POST");
}

/// A body of unknown length: hyper sends it chunked, so the service buffers it to learn
/// CONTENT_LENGTH.
struct Chunked(Vec<Bytes>);

impl Body for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(if self.0.is_empty() { None } else { Some(Ok(Frame::data(self.0.remove(0)))) })
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[tokio::test]
async fn axum_echoes_a_chunked_body() {
    let addr = start_axum(php_pool(pool_config())).await;
    let chunks = vec![Bytes::from_static(b"chunk one, "), Bytes::from_static(b"chunk two")];
    let request = Request::put("/echo.php")
        .header("Host", "php.test")
        .header("Content-Type", "text/plain")
        .body(Chunked(chunks))
        .unwrap();
    let reply = send(addr, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "chunk one, chunk two");
    assert_eq!(reply.headers["x-content-length"], "20");
    assert_eq!(reply.headers["x-body-length"], "20");
}

#[tokio::test]
async fn axum_streams_a_large_body() {
    let addr = start_axum(php_pool(pool_config())).await;
    let reply = get(addr, "/big.php?bytes=3000000").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), 3_000_000);
    let pattern = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/";
    assert!(reply.body.iter().enumerate().all(|(i, b)| *b == pattern[i % 64]));
}

#[tokio::test]
async fn axum_answers_502_when_the_backend_is_down() {
    let dir = std::env::temp_dir().join(format!("fcgi-mux-php-server-{}", std::process::id()));
    let socket = dir.join("nobody-listens.sock");
    let pool = Pool::new(format!("unix:{}", socket.display()).parse::<Address>().unwrap(), pool_config());
    let addr = start_axum(pool).await;
    let reply = get(addr, "/hello.php").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.text(), "502 Bad Gateway\n", "one line, no internal details");
}

#[tokio::test]
async fn axum_answers_504_on_a_first_byte_timeout() {
    let connection = ConnectionConfig::default().first_byte_timeout(Duration::from_millis(300));
    let addr = start_axum(php_pool(pool_config().connection(connection))).await;
    let started = std::time::Instant::now();
    let reply = get(addr, "/slow.php?ms=1500").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.text(), "504 Gateway Timeout\n");
    assert!(started.elapsed() < Duration::from_millis(1400), "answered at the timeout, not at the end");
    // The pool recovers: the next request on it works.
    let reply = get(addr, "/hello.php").await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn axum_answers_400_when_the_cgi_environment_is_refused() {
    let addr = start_axum(php_pool(pool_config())).await;
    let reply = get(addr, "/../../etc/passwd").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.text(), "400 Bad Request\n");
}

/// `FcgiService` as is, through hyper-util's `TowerToHyperService`, serving a hyper 1.x
/// HTTP/1 connection: no axum, no adapter of ours.
#[tokio::test]
async fn hyper_util_adapter_serves_the_service() {
    let service = FcgiService::new(php_pool(pool_config()), example::cgi_params(app()));
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .await
            .unwrap();
    });
    let reply = get(addr, "/hello.php").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "Hello, world!");
}

/// The example's `--hyper` route: hyper + hyper-util, errors mapped to 502/504.
#[tokio::test]
async fn example_hyper_route_serves_and_maps_errors() {
    let (listener, addr) = bind().await;
    tokio::spawn(example::serve_hyper(listener, php_pool(pool_config()), app()));
    let reply = get(addr, "/env.php/p?q=2").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let env: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(env["PATH_INFO"], "/p");
    assert_eq!(env["QUERY_STRING"], "q=2");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");

    let down = Pool::new("unix:/nonexistent/fcgi-mux-test.sock".parse::<Address>().unwrap(), pool_config());
    let (listener, addr) = bind().await;
    tokio::spawn(example::serve_hyper(listener, down, app()));
    let reply = get(addr, "/hello.php").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.text(), "502 Bad Gateway\n");
}

#[test]
fn arguments() {
    let args = |list: &[&str]| example::Args::parse(list.iter().map(|s| s.to_string()));
    let parsed =
        args(&["--listen", "127.0.0.1:9999", "--docroot", "/srv", "--fcgi", "unix:/run/php.sock"]).unwrap();
    assert_eq!(parsed.listen, "127.0.0.1:9999".parse::<SocketAddr>().unwrap());
    assert_eq!(parsed.docroot, "/srv");
    assert_eq!(parsed.fcgi.to_string(), "unix:/run/php.sock");
    assert!(!parsed.hyper);
    assert!(args(&["--docroot", "/srv"]).unwrap_err().contains("--fcgi"));
    assert!(args(&["--docroot"]).unwrap_err().contains("needs a value"));
    assert!(args(&["--bogus"]).unwrap_err().contains("unknown argument"));
}
