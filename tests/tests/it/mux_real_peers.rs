//! fcgi-mux against the other real servers the harness starts: flup (multiplexed and not)
//! and fcgiwrap (libfcgi). Their measured quirks are in the brief (§3).

use std::time::Duration;

use bytes::Bytes;
use fcgi_mux::{Address, Connection, ConnectionConfig, Error, Multiplexing};
use fcgi_tests::backends::{fcgiwrap, flup};
use http_body_util::{BodyExt, Empty};

fn params(script: &str, query: &str) -> Vec<(Bytes, Bytes)> {
    vec![
        (Bytes::from_static(b"REQUEST_METHOD"), Bytes::from_static(b"GET")),
        (Bytes::from_static(b"SCRIPT_NAME"), Bytes::from(script.to_string())),
        (Bytes::from_static(b"PATH_INFO"), Bytes::from(script.to_string())),
        (Bytes::from_static(b"QUERY_STRING"), Bytes::from(query.to_string())),
        (Bytes::from_static(b"SERVER_NAME"), Bytes::from_static(b"localhost")),
        (Bytes::from_static(b"SERVER_PORT"), Bytes::from_static(b"80")),
        (Bytes::from_static(b"SERVER_PROTOCOL"), Bytes::from_static(b"HTTP/1.1")),
    ]
}

fn get() -> http::Request<Empty<Bytes>> {
    http::Request::get("/").body(Empty::new()).unwrap()
}

async fn fetch(connection: &Connection, script: &str, query: &str) -> Result<String, Error> {
    let response = connection.request(get(), params(script, query)).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn multiplexed(max: usize) -> ConnectionConfig {
    ConnectionConfig::default().keep_conn(true).multiplexing(Multiplexing::Force).max_concurrent_requests(max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flup_multiplexed_serves_200_concurrent_requests_on_one_connection() {
    let flup = flup();
    let connection =
        Connection::spawn(&Address::Unix(flup.multiplexed.clone()), multiplexed(200)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let connection = connection.clone();
        tasks.spawn(async move { (i, fetch(&connection, "/echo", &format!("n={i}")).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, body) = joined.unwrap();
        assert_eq!(body.unwrap(), format!("query=n={i}\n"), "request {i}");
    }
    assert!(!connection.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flup_multiplexed_really_interleaves_and_a_cancelled_request_leaves_the_others_intact() {
    let flup = flup();
    let connection =
        Connection::spawn(&Address::Unix(flup.multiplexed.clone()), multiplexed(64)).await.unwrap();
    let started = std::time::Instant::now();
    let slow = {
        let connection = connection.clone();
        tokio::spawn(async move { fetch(&connection, "/sleep", "ms=800").await })
    };
    let cancelled = connection.request(get(), params("/sleep", "ms=600"));
    assert!(tokio::time::timeout(Duration::from_millis(50), cancelled).await.is_err());
    for i in 0..20 {
        assert_eq!(fetch(&connection, "/echo", &format!("n={i}")).await.unwrap(), format!("query=n={i}\n"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "echo requests did not wait behind the sleeping one"
    );
    assert_eq!(slow.await.unwrap().unwrap(), "slept 800\n");
    assert!(!connection.is_closed(), "cancelling one multiplexed request keeps the connection");
}

/// A one-chunk body that arrives after a delay, keeping its request's STDIN open meanwhile.
struct LateBody {
    delay: std::pin::Pin<Box<tokio::time::Sleep>>,
    chunk: Option<Bytes>,
}

impl http_body::Body for LateBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.delay.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(self.chunk.take().map(|c| Ok(http_body::Frame::data(c))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flup_not_multiplexed_answers_cant_mpx_conn_and_the_client_falls_back() {
    let flup = flup();
    let connection = Connection::spawn(&Address::Unix(flup.single.clone()), multiplexed(8)).await.unwrap();
    // Request 1's body arrives late, so flup is still reading request 1 when request 2's
    // BEGIN_REQUEST arrives: it refuses request 2 with CANT_MPX_CONN.
    let first = {
        let connection = connection.clone();
        tokio::spawn(async move {
            let body = LateBody {
                delay: Box::pin(tokio::time::sleep(Duration::from_millis(300))),
                chunk: Some(Bytes::from_static(b"late!")),
            };
            let request = http::Request::post("/").header("content-length", "5").body(body).unwrap();
            let mut params = params("/echo", "first");
            params[0].1 = Bytes::from_static(b"POST");
            let response = connection.request(request, params).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = fetch(&connection, "/echo", "second").await.unwrap();
    assert_eq!(second, "query=second\n", "the refused request was sent again and answered");
    assert_eq!(&first.await.unwrap()[..], b"query=first\nlate!");
    assert_eq!(
        connection.max_concurrent_requests(),
        1,
        "CANT_MPX_CONN dropped the connection to one at a time"
    );
}

#[tokio::test]
async fn flup_answers_get_values_empty_which_auto_treats_as_unknown() {
    let flup = flup();
    let config = ConnectionConfig::default().keep_conn(true).multiplexing(Multiplexing::Auto);
    let connection = Connection::spawn(&Address::Unix(flup.multiplexed.clone()), config).await.unwrap();
    assert_eq!(connection.server_values(), None);
    assert_eq!(connection.max_concurrent_requests(), 1);
    assert_eq!(fetch(&connection, "/echo", "a").await.unwrap(), "query=a\n");
    let report = fcgi_mux::probe(&Address::Unix(flup.single.clone()), &fcgi_mux::ProbeConfig::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, fcgi_mux::ProbeOutcome::AnsweredEmpty);
}

fn cgi_params(wrap: &fcgi_tests::backends::Fcgiwrap, query: &str) -> Vec<(Bytes, Bytes)> {
    let mut params = params("/hello.sh", query);
    params.push((
        Bytes::from_static(b"SCRIPT_FILENAME"),
        Bytes::from(wrap.script_path("hello.sh").display().to_string()),
    ));
    params
}

#[tokio::test]
async fn fcgiwrap_answers_get_values_late_and_auto_still_works() {
    let wrap = fcgiwrap();
    let address = Address::Unix(wrap.socket.clone());
    // Alone, the query gets no answer in time: fcgiwrap answers only once another record arrives.
    let config = fcgi_mux::ProbeConfig::default().answer_timeout(Duration::from_millis(300));
    assert_eq!(fcgi_mux::probe(&address, &config).await.unwrap().outcome, fcgi_mux::ProbeOutcome::NoAnswer);
    // Auto mode: no answer in time means "unknown", so one request at a time; the late answer
    // that arrives once the request is sent is ignored.
    let config = ConnectionConfig::default()
        .keep_conn(true)
        .multiplexing(Multiplexing::Auto)
        .get_values_timeout(Duration::from_millis(200));
    let connection = Connection::spawn(&address, config).await.unwrap();
    assert_eq!(connection.max_concurrent_requests(), 1);
    let response = connection.request(get(), cgi_params(&wrap, "x=1")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("x=1"), "{body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcgiwrap_gets_requests_one_at_a_time_never_pipelined() {
    let wrap = fcgiwrap();
    let connection =
        Connection::spawn(&Address::Unix(wrap.socket.clone()), ConnectionConfig::default().keep_conn(true))
            .await
            .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let connection = connection.clone();
        let params = cgi_params(&wrap, &format!("n={i}"));
        tasks.spawn(async move {
            let response = tokio::time::timeout(Duration::from_secs(10), connection.request(get(), params))
                .await
                .expect("fcgiwrap drops pipelined requests: a hang here means we pipelined")
                .unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (i, String::from_utf8_lossy(&body).into_owned())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, body) = joined.unwrap();
        assert!(body.contains(&format!("n={i}")), "request {i}: {body}");
    }
}
