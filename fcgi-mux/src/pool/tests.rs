//! The pool and the driver on tokio's paused clock over in-memory streams: cancelling at
//! every await point, deadlines that count from the caller's ask, servers that close.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::test_backend::Backend;
use crate::{Error, Pool, PoolConfig, TimeoutKind};

/// Runs a future for at most `polls` polls, then drops it: a caller that gives up at exactly
/// that await point.
struct CancelAfter<F: Future> {
    future: Pin<Box<F>>,
    polls: usize,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls == 0 {
            return Poll::Ready(None);
        }
        self.polls -= 1;
        self.future.as_mut().poll(cx).map(Some)
    }
}

async fn get(pool: &Pool, name: &'static str, body: &'static [u8]) -> Result<String, Error> {
    let request = http::Request::post(name).body(Full::new(Bytes::from_static(body))).unwrap();
    let response = pool.request(request, [("SCRIPT_NAME", name)]).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Lets every task run and time pass until the pool has settled.
async fn settle() {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_clean(pool: &Pool) {
    let stats = pool.stats();
    assert_eq!((stats.connecting, stats.in_flight, stats.waiting), (0, 0, 0), "{stats:?}");
}

/// Cancels a request after each number of polls in turn until it completes; after each run
/// nothing may be left counted and the next request must get its own answer.
async fn cancel_at_every_poll(pool: &Pool) {
    for polls in 0..200 {
        let outcome = CancelAfter { future: Box::pin(get(pool, "/cancelled", b"body")), polls }.await;
        settle().await;
        assert_clean(pool);
        assert_eq!(get(pool, "/next", b"12").await.unwrap(), "/next 2", "after cancelling at poll {polls}");
        if let Some(result) = outcome {
            assert_eq!(result.unwrap(), "/cancelled 4");
            return;
        }
    }
    panic!("the request never completed");
}

#[tokio::test(start_paused = true)]
async fn a_request_cancelled_at_any_await_point_leaks_nothing() {
    let backend = Backend { connect_delay: Duration::from_millis(10), ..Backend::default() };
    // A connection per request: cancelled while connecting, sending, waiting, reading.
    let (pool, _) = backend.pool(PoolConfig::default().keep_alive(false).max_connections(2));
    cancel_at_every_poll(&pool).await;
    // Kept connections: cancelled on a reused connection, which then closes.
    let (pool, _) = backend.pool(PoolConfig::default().max_connections(1));
    cancel_at_every_poll(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_waiter_cancelled_at_any_await_point_leaks_nothing() {
    let backend = Backend { answer_delay: Duration::from_millis(100), ..Backend::default() };
    let (pool, _) = backend.pool(PoolConfig::default().max_connections(1));
    for polls in 0..200 {
        // One request holds the only connection; the other waits for it and gives up.
        let holder = tokio::spawn({
            let pool = pool.clone();
            async move { get(&pool, "/holder", b"").await }
        });
        tokio::task::yield_now().await;
        let outcome = CancelAfter { future: Box::pin(get(&pool, "/waiter", b"")), polls }.await;
        assert_eq!(holder.await.unwrap().unwrap(), "/holder 0");
        settle().await;
        assert_clean(&pool);
        assert_eq!(get(&pool, "/next", b"").await.unwrap(), "/next 0", "after cancelling at poll {polls}");
        if outcome.is_some() {
            return;
        }
    }
    panic!("the waiter never completed");
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order_past_those_that_gave_up() {
    let backend = Backend { answer_delay: Duration::from_millis(100), ..Backend::default() };
    let (pool, _) = backend.pool(PoolConfig::default().max_connections(1));
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // /a holds the connection; /b waits first and gives up at 50 ms; /c and /d wait behind it;
    // /e comes after /b left, while the queue's front is a caller that is gone.
    for (name, start_ms, limit_ms) in
        [("/a", 0, 1000), ("/b", 1, 50), ("/c", 2, 1000), ("/d", 3, 1000), ("/e", 60, 1000)]
    {
        let (pool, answered) = (pool.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(start_ms)).await;
            let limit = Duration::from_millis(limit_ms);
            if let Ok(result) = tokio::time::timeout(limit, get(&pool, name, b"")).await {
                answered.lock().unwrap().push(result.unwrap());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*answered.lock().unwrap(), ["/a 0", "/c 0", "/d 0", "/e 0"]);
    settle().await;
    assert_clean(&pool);
}

#[tokio::test(start_paused = true)]
async fn many_random_caller_timeouts_leave_a_working_pool() {
    // The reproduction: requests under 0-20 ms caller timeouts left `connecting: 2` for good
    // and every later request timed out waiting for a connection.
    let backend = Backend {
        connect_delay: Duration::from_millis(3),
        answer_delay: Duration::from_millis(4),
        ..Backend::default()
    };
    let (pool, _) = backend.pool(PoolConfig::default().max_connections(2));
    let mut tasks = Vec::new();
    for i in 0..400u64 {
        let pool = pool.clone();
        let limit = Duration::from_millis((i * 7919) % 21);
        tasks.push(tokio::spawn(async move { tokio::time::timeout(limit, get(&pool, "/x", b"")).await }));
    }
    for task in tasks {
        let _ = task.await.unwrap();
    }
    settle().await;
    assert_clean(&pool);
    assert_eq!(get(&pool, "/after", b"").await.unwrap(), "/after 0");
}

#[tokio::test(start_paused = true)]
async fn the_total_deadline_covers_the_wait_for_a_connection() {
    // `fcgi bench -c 4 --connections 2 -m 3500ms` on a 3 s script showed 6 s latencies.
    let backend = Backend { answer_delay: Duration::from_secs(3), ..Backend::default() };
    let mut config = PoolConfig::default().max_connections(1);
    config.connection.total_timeout = Some(Duration::from_millis(3500));
    let (pool, _) = backend.pool(config);
    let start = tokio::time::Instant::now();
    let first = tokio::spawn({
        let pool = pool.clone();
        async move { get(&pool, "/first", b"").await }
    });
    tokio::task::yield_now().await;
    let second = get(&pool, "/second", b"").await;
    let waited = start.elapsed();
    assert!(matches!(second, Err(Error::Timeout { kind: TimeoutKind::Total, .. })), "{second:?}");
    assert!(waited <= Duration::from_millis(3600), "{waited:?}");
    assert_eq!(first.await.unwrap().unwrap(), "/first 0");
}

#[tokio::test(start_paused = true)]
async fn a_server_that_closes_after_every_request_shows_no_errors() {
    // uWSGI closes each connection after END_REQUEST although KEEP_CONN was set.
    let backend = Backend { close_after_end: true, ..Backend::default() };
    let (pool, seen) = backend.pool(PoolConfig::default().max_connections(2));
    for i in 0..50 {
        assert_eq!(get(&pool, "/u", b"").await.unwrap(), "/u 0", "request {i}");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 50, "no request was sent twice");
}

#[tokio::test(start_paused = true)]
async fn without_keep_alive_every_request_has_its_own_connection() {
    let (pool, seen) = Backend::default().pool(PoolConfig::default().keep_alive(false));
    for _ in 0..3 {
        get(&pool, "/k", b"").await.unwrap();
    }
    settle().await;
    assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
    assert_eq!(pool.stats().open, 0);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_close_and_lifetime_retires_them() {
    let mut config = PoolConfig::default().idle_timeout(Duration::from_secs(5));
    config.max_lifetime = Some(Duration::from_secs(1));
    let (pool, seen) = Backend::default().pool(config);
    get(&pool, "/a", b"").await.unwrap();
    assert_eq!(pool.stats().open, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pool.stats().open, 0, "past its lifetime with nothing to do");
    get(&pool, "/b", b"").await.unwrap();
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    let (pool, _) = Backend::default().pool(PoolConfig::default().idle_timeout(Duration::from_secs(5)));
    get(&pool, "/c", b"").await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(pool.stats().open, 0, "closed when idle");
}

#[tokio::test(start_paused = true)]
async fn close_lets_requests_finish_then_refuses_new_ones() {
    let backend = Backend { answer_delay: Duration::from_millis(200), ..Backend::default() };
    let (pool, _) = backend.pool(PoolConfig::default());
    let running = tokio::spawn({
        let pool = pool.clone();
        async move { get(&pool, "/running", b"").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    pool.close(Duration::from_secs(1)).await;
    assert_eq!(running.await.unwrap().unwrap(), "/running 0");
    assert!(matches!(get(&pool, "/late", b"").await, Err(Error::Closed)));
    assert_eq!(pool.stats().open, 0);
}

#[tokio::test(start_paused = true)]
async fn close_gives_up_on_requests_after_the_drain_deadline() {
    let backend = Backend { answer_delay: Duration::from_secs(60), ..Backend::default() };
    let (pool, _) = backend.pool(PoolConfig::default());
    let running = tokio::spawn({
        let pool = pool.clone();
        async move { get(&pool, "/slow", b"").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = tokio::time::Instant::now();
    pool.close(Duration::from_secs(1)).await;
    assert!(start.elapsed() <= Duration::from_millis(1100));
    assert!(running.await.unwrap().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_connection_runs_over_any_stream_and_its_driver_says_why_it_ended() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(Backend::default().serve(server, Default::default()));
    let config = crate::ConnectionConfig::default().keep_conn(true);
    let (connection, driver) = crate::Connection::handshake(client, config).await.unwrap();
    let driver = tokio::spawn(driver);
    let request = http::Request::get("/d").body(Full::new(Bytes::new())).unwrap();
    let response = connection.request(request, [("SCRIPT_NAME", "/d")]).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"/d 0");
    drop(connection);
    assert!(driver.await.unwrap().is_ok(), "every handle gone: a clean end");

    // A peer that answers garbage: the driver ends with the protocol error.
    let (client, mut server) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 1024];
        let _ = server.read(&mut buf).await;
        let _ = server.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let (connection, driver) =
        crate::Connection::handshake(client, crate::ConnectionConfig::default()).await.unwrap();
    let driver = tokio::spawn(driver);
    let request = http::Request::get("/e").body(Full::new(Bytes::new())).unwrap();
    let error = connection.request(request, [("SCRIPT_NAME", "/e")]).await.unwrap_err();
    assert!(matches!(error, Error::Protocol(_)), "{error}");
    assert!(matches!(driver.await.unwrap(), Err(Error::Protocol(_))));
}

#[test]
fn futures_are_send_and_errors_are_std_errors() {
    fn send<T: Send>(_: &T) {}
    fn error<E: std::error::Error + Send + Sync + 'static>() {}
    let pool = Pool::new("unix:/nowhere".parse().unwrap(), PoolConfig::default());
    let future = get(&pool, "/", b"");
    send(&future);
    error::<Error>();
    fn clone<T: Clone>() {}
    clone::<Pool>();
}

#[tokio::test(start_paused = true)]
async fn records_held_by_a_full_buffer_are_dispatched_once_the_body_is_read() {
    // The whole answer (body and END_REQUEST) arrives while the 4-byte receive buffer is full:
    // reading the body must let the rest through without any further byte from the server.
    let mut config = PoolConfig::default();
    config.connection.response_buffer = 4;
    let (pool, _) = Backend::default().pool(config);
    let start = tokio::time::Instant::now();
    assert_eq!(get(&pool, "/held", b"").await.unwrap(), "/held 0");
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_connector_that_fails_or_hangs_gives_a_clear_error() {
    let address: crate::Address = "unix:/in-memory".parse().unwrap();
    let refusing = Pool::with_connector(address.clone(), PoolConfig::default(), || async {
        Err::<tokio::io::DuplexStream, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    });
    let error = get(&refusing, "/x", b"").await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error}");
    assert_eq!(error.to_string(), "cannot connect to unix:/in-memory");
    assert_clean(&refusing);

    let mut config = PoolConfig::default();
    config.connection.connect_timeout = Duration::from_secs(2);
    let hanging = Pool::with_connector(address, config, || {
        std::future::pending::<std::io::Result<tokio::io::DuplexStream>>()
    });
    let start = tokio::time::Instant::now();
    let error = get(&hanging, "/x", b"").await.unwrap_err();
    assert!(matches!(error, Error::Timeout { kind: TimeoutKind::Connect, .. }), "{error}");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_clean(&hanging);
}

/// A server as the client's socket can show it: it takes `accept` bytes, then refuses writes
/// with a broken pipe, and its answer becomes readable only once a write was refused. A real
/// socket gives this order when the server answers and closes between two writes of the
/// client (uWSGI answering a Filter without reading its data).
struct AnswersThenCloses {
    accept: usize,
    answer: Option<Bytes>,
    refused: bool,
    reader: Option<std::task::Waker>,
}

impl tokio::io::AsyncWrite for AnswersThenCloses {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.accept == 0 {
            self.refused = true;
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        let n = buf.len().min(self.accept);
        self.accept -= n;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncRead for AnswersThenCloses {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.refused {
            self.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(answer) = self.answer.take() {
            buf.put_slice(&answer);
        }
        Poll::Ready(Ok(()))
    }
}

/// `Status: 413` and `too big`, then END_REQUEST, for request id 1.
fn early_answer() -> Bytes {
    use fcgi_proto::{Padding, ProtocolStatus, Record, RecordType, RequestId, encode_record};
    let mut answer = bytes::BytesMut::new();
    let head = Bytes::from_static(b"Status: 413 Too Large\r\n\r\ntoo big");
    let stdout = Record::stream(RecordType::STDOUT, RequestId(1), head).unwrap();
    encode_record(&mut answer, &stdout, Padding::None).unwrap();
    let end = Record::end_request(RequestId(1), 0, ProtocolStatus::REQUEST_COMPLETE);
    encode_record(&mut answer, &end, Padding::None).unwrap();
    answer.freeze()
}

#[tokio::test(start_paused = true)]
async fn an_answer_sent_before_the_server_stopped_reading_is_kept() {
    // The server answers after the first 4 KiB of a 1 MiB body and closes: writing the rest
    // fails, yet the answer it sent is the request's answer.
    let stream =
        AnswersThenCloses { accept: 4096, answer: Some(early_answer()), refused: false, reader: None };
    let (connection, driver) =
        crate::Connection::handshake(stream, crate::ConnectionConfig::default()).await.unwrap();
    let driver = tokio::spawn(driver);
    let body = Bytes::from(vec![b'x'; 1 << 20]);
    let request = http::Request::post("/upload").body(Full::new(body)).unwrap();
    let response = connection.request(request, [("SCRIPT_NAME", "/upload")]).await.unwrap();
    assert_eq!(response.status(), 413);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"too big");
    drop(connection);
    // Every request on it was answered: the connection ends as retired, without an error.
    assert!(driver.await.unwrap().is_ok());

    // Without an answer, the request fails with the write's error.
    let stream = AnswersThenCloses { accept: 4096, answer: None, refused: false, reader: None };
    let (connection, driver) =
        crate::Connection::handshake(stream, crate::ConnectionConfig::default()).await.unwrap();
    tokio::spawn(driver);
    let body = Bytes::from(vec![b'x'; 1 << 20]);
    let request = http::Request::post("/upload").body(Full::new(body)).unwrap();
    let error = connection.request(request, [("SCRIPT_NAME", "/upload")]).await.unwrap_err();
    assert!(matches!(&error, Error::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe), "{error:?}");
}
