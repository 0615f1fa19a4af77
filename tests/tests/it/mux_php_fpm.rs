//! fcgi-mux against the real php-fpm started by `cargo xtask test`: single connections, the
//! pool, request and response bodies, errors, cancellation.

use std::time::Duration;

use bytes::Bytes;
use fcgi_mux::{Address, Connection, ConnectionConfig};
use fcgi_tests::backends::{PhpFpm, php_fpm};
use http_body_util::{BodyExt, Full};

fn params(fpm: &PhpFpm, script: &str, method: &str, query: &str) -> Vec<(Bytes, Bytes)> {
    let pairs = [
        ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
        ("REQUEST_METHOD", method.to_string()),
        ("SCRIPT_NAME", format!("/{script}")),
        ("SCRIPT_FILENAME", fpm.script_path(script).display().to_string()),
        ("REQUEST_URI", format!("/{script}?{query}")),
        ("QUERY_STRING", query.to_string()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_string()),
    ];
    pairs.into_iter().map(|(n, v)| (Bytes::from_static(n.as_bytes()), Bytes::from(v))).collect()
}

fn unix(fpm: &PhpFpm) -> Address {
    Address::Unix(fpm.socket.clone())
}

fn get(uri: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn hello_world_over_one_connection() {
    let fpm = php_fpm();
    for address in [unix(&fpm), Address::Tcp { host: "127.0.0.1".into(), port: fpm.tcp.port() }] {
        let connection = Connection::spawn(&address, ConnectionConfig::default()).await.unwrap();
        let response =
            connection.request(get("/hello.php"), params(&fpm, "hello.php", "GET", "")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/plain;charset=UTF-8");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"Hello, world!");
    }
}

#[tokio::test]
async fn keep_conn_reuses_one_connection_for_many_requests() {
    let fpm = php_fpm();
    let config = ConnectionConfig::default().keep_conn(true);
    let connection = Connection::spawn(&unix(&fpm), config).await.unwrap();
    for i in 0..50 {
        let query = format!("msg=n{i}");
        let response =
            connection.request(get("/stderr.php"), params(&fpm, "stderr.php", "GET", &query)).await.unwrap();
        let mut body = response.into_body();
        let mut data = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(chunk) = frame.unwrap().into_data() {
                data.extend_from_slice(&chunk);
            }
        }
        assert_eq!(data, b"body");
        let stderr = body.stderr();
        assert!(String::from_utf8_lossy(&stderr.kept).contains(&format!("n{i}")), "request {i}: {stderr:?}");
        assert_eq!(body.end_status().unwrap().protocol_status, fcgi_proto::ProtocolStatus::REQUEST_COMPLETE);
    }
    assert!(!connection.is_closed());
}

#[tokio::test]
async fn post_bodies_reach_php_exactly() {
    let fpm = php_fpm();
    let connection =
        Connection::spawn(&unix(&fpm), ConnectionConfig::default().keep_conn(true)).await.unwrap();
    for size in [0usize, 1, 5000, 200_000] {
        let body: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let request = http::Request::post("/echo.php").body(Full::new(Bytes::from(body.clone()))).unwrap();
        let response = connection.request(request, params(&fpm, "echo.php", "POST", "")).await.unwrap();
        assert_eq!(response.headers()["x-body-length"], size.to_string().as_str());
        let echoed = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(echoed.len(), size);
        assert!(echoed[..] == body[..], "body of {size} bytes differs");
    }
}

/// Parameters encoded once (`Pool::encode_params`) serve many requests through the pool, each
/// body reaching PHP with a matching CONTENT_LENGTH; a body of another length is refused before
/// anything is sent, and so are parameters encoded by a pool configured otherwise (padding).
#[tokio::test]
async fn encoded_params_are_reused_across_requests() {
    let fpm = php_fpm();
    let pool = fcgi_mux::Pool::new(unix(&fpm), fcgi_mux::PoolConfig::default().max_connections(2));
    let body = Bytes::from_static(b"name=value&n=42");
    let encoded = pool.encode_params(params(&fpm, "echo.php", "POST", ""), body.len() as u64).unwrap();
    assert_eq!(encoded.body_len(), 15);
    for round in 0..20 {
        let request = http::Request::post("/echo.php").body(Full::new(body.clone())).unwrap();
        let response = pool.request_encoded(request, &encoded).await.unwrap();
        assert_eq!(response.status(), 200, "round {round}");
        assert_eq!(response.headers()["x-content-length"], "15", "round {round}");
        assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), body, "round {round}");
    }

    let longer =
        http::Request::post("/echo.php").body(Full::new(Bytes::from_static(b"0123456789abcdef"))).unwrap();
    match pool.request_encoded(longer, &encoded).await {
        Err(fcgi_mux::Error::InvalidRequest(message)) => {
            assert!(message.contains("15-byte body"), "{message}")
        }
        other => panic!("expected InvalidRequest, got {:?}", other.map(|r| r.status())),
    }
    let padded = fcgi_mux::Pool::new(
        unix(&fpm),
        fcgi_mux::PoolConfig::default()
            .connection(ConnectionConfig::default().padding(fcgi_proto::Padding::Align8)),
    );
    let request = http::Request::post("/echo.php").body(Full::new(body.clone())).unwrap();
    match padded.request_encoded(request, &encoded).await {
        Err(fcgi_mux::Error::InvalidRequest(message)) => {
            assert!(message.contains("configuration"), "{message}")
        }
        other => panic!("expected InvalidRequest, got {:?}", other.map(|r| r.status())),
    }
    // CONTENT_LENGTH that contradicts the body length is refused when encoding.
    let mut lying = params(&fpm, "echo.php", "POST", "");
    lying.push((Bytes::from_static(b"CONTENT_LENGTH"), Bytes::from_static(b"3")));
    assert!(matches!(pool.encode_params(lying, 15), Err(fcgi_mux::Error::InvalidRequest(_))));
}

/// Heads under 16 KiB of PARAMS are encoded straight into the connection's write buffer,
/// larger ones are pre-encoded and written record by record: both, alternating on one
/// kept-alive connection, reach php-fpm intact (every pair whole within one record).
#[tokio::test]
async fn small_and_large_heads_alternate_on_one_kept_alive_connection() {
    let fpm = php_fpm();
    let connection =
        Connection::spawn(&unix(&fpm), ConnectionConfig::default().keep_conn(true)).await.unwrap();
    for round in 0..6u8 {
        let response =
            connection.request(get("/hello.php"), params(&fpm, "hello.php", "GET", "")).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"Hello, world!", "round {round}");

        // 20 KiB to 160 KiB of PARAMS, in pairs of up to 40 KiB.
        let mut params = params(&fpm, "env.php", "GET", &format!("round={round}"));
        let big_pairs = 1 + usize::from(round) % 4;
        let size = if round == 0 { 20 * 1024 } else { 40 * 1024 };
        for pair in 0..big_pairs {
            let value: String =
                (0..size).map(|i| char::from(b'a' + ((i + pair + usize::from(round)) % 26) as u8)).collect();
            params.push((Bytes::from(format!("HTTP_X_BIG_{pair}")), Bytes::from(value)));
        }
        let expected = params.clone();
        let response = connection.request(get("/env.php"), params).await.unwrap();
        assert_eq!(response.status(), 200, "round {round}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let env: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(env["_GET"]["round"], round.to_string());
        for (name, value) in expected.iter().filter(|(name, _)| name.starts_with(b"HTTP_X_BIG_")) {
            let name = std::str::from_utf8(name).unwrap();
            assert_eq!(env[name].as_str().map(str::as_bytes), Some(&value[..]), "round {round}: {name}");
        }
    }
}

#[tokio::test]
async fn status_and_404() {
    let fpm = php_fpm();
    let connection =
        Connection::spawn(&unix(&fpm), ConnectionConfig::default().keep_conn(true)).await.unwrap();
    let response =
        connection.request(get("/status.php"), params(&fpm, "status.php", "GET", "code=503")).await.unwrap();
    assert_eq!(response.status(), 503);
    let mut missing = params(&fpm, "missing.php", "GET", "");
    missing.retain(|(n, _)| n.as_ref() != b"SCRIPT_FILENAME");
    missing.push((
        Bytes::from_static(b"SCRIPT_FILENAME"),
        Bytes::from(format!("{}/nope.php", fpm.docroot.display())),
    ));
    let response = connection.request(get("/missing.php"), missing).await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn first_byte_timeout_on_a_slow_script() {
    let fpm = php_fpm();
    let config = ConnectionConfig::default().first_byte_timeout(Duration::from_millis(300));
    let connection = Connection::spawn(&unix(&fpm), config).await.unwrap();
    let started = std::time::Instant::now();
    let err =
        connection.request(get("/slow.php"), params(&fpm, "slow.php", "GET", "ms=3000")).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_through_a_pool_each_matched_to_its_response() {
    let fpm = php_fpm();
    let pool = fcgi_mux::Pool::new(unix(&fpm), fcgi_mux::PoolConfig::default().max_connections(3));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let pool = pool.clone();
        let params = params(&fpm, "echo.php", "POST", &format!("i={i}"));
        tasks.spawn(async move {
            let body = format!("request number {i}");
            let request =
                http::Request::post("/echo.php").body(Full::new(Bytes::from(body.clone()))).unwrap();
            let response = pool.request(request, params).await.unwrap_or_else(|e| panic!("request {i}: {e}"));
            let echoed = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(echoed, body.as_bytes(), "request {i} got another request's response");
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let stats = pool.stats();
    assert!(stats.open <= 3, "{stats:?}");
    assert_eq!(stats.in_flight, 0, "{stats:?}");
}

#[tokio::test]
async fn pool_closes_idle_connections() {
    let fpm = php_fpm();
    let config = fcgi_mux::PoolConfig::default().idle_timeout(Duration::from_millis(200));
    let pool = fcgi_mux::Pool::new(unix(&fpm), config);
    let response = pool.request(get("/hello.php"), params(&fpm, "hello.php", "GET", "")).await.unwrap();
    response.into_body().collect().await.unwrap();
    assert_eq!(pool.stats().open, 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(pool.stats().open, 0, "the idle connection was closed");
    let response = pool.request(get("/hello.php"), params(&fpm, "hello.php", "GET", "")).await.unwrap();
    assert_eq!(response.status(), 200, "and a new one is opened on demand");
}

#[tokio::test]
async fn probe_php_fpm_answers_mpxs_conns_0() {
    let fpm = php_fpm();
    let report = fcgi_mux::probe(&unix(&fpm), &fcgi_mux::ProbeConfig::default()).await.unwrap();
    match report.outcome {
        fcgi_mux::ProbeOutcome::Answered { pairs, values } => {
            assert_eq!(pairs.len(), 1);
            assert_eq!(values.mpxs_conns, Some(false));
            assert_eq!(values.max_conns, None);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn auto_multiplexing_learns_php_fpm_does_not_multiplex() {
    let fpm = php_fpm();
    let config = ConnectionConfig::default().keep_conn(true).multiplexing(fcgi_mux::Multiplexing::Auto);
    let connection = Connection::spawn(&unix(&fpm), config).await.unwrap();
    assert_eq!(connection.server_values().and_then(|v| v.mpxs_conns), Some(false));
    assert_eq!(connection.max_concurrent_requests(), 1);
    // Concurrent requests on it are sent one after the other, never pipelined.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..5 {
        let connection = connection.clone();
        let params = params(&fpm, "slow.php", "GET", &format!("ms={}", 50 + i));
        tasks.spawn(async move {
            let response = connection.request(get("/slow.php"), params).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        });
    }
    let mut bodies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        bodies.push(String::from_utf8(result.unwrap().to_vec()).unwrap());
    }
    bodies.sort();
    assert_eq!(bodies, vec!["slept 50", "slept 51", "slept 52", "slept 53", "slept 54"]);
}

#[tokio::test]
async fn connection_refused_and_missing_socket_are_connect_errors() {
    let err = Connection::spawn(&Address::Unix("/nonexistent/php.sock".into()), ConnectionConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, fcgi_mux::Error::Connect { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/php.sock"), "{err}");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err =
        Connection::spawn(&Address::Tcp { host: "127.0.0.1".into(), port }, ConnectionConfig::default())
            .await
            .unwrap_err();
    assert!(matches!(err, fcgi_mux::Error::Connect { .. }), "{err}");
    let err = Connection::spawn(
        &Address::Tcp { host: "no-such-host.invalid".into(), port: 9000 },
        ConnectionConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, fcgi_mux::Error::Resolve { .. }), "{err}");
}

#[tokio::test]
async fn a_10_mib_body_is_streamed_with_its_declared_length() {
    use fcgi_tests::bodies::ChunkedBody;
    let fpm = php_fpm();
    let connection = Connection::spawn(&unix(&fpm), ConnectionConfig::default()).await.unwrap();
    // No exact size hint: the Content-Length header gives the length, the body streams.
    let request = http::Request::post("/echo.php")
        .header("content-length", (10 * 1024 * 1024).to_string())
        .body(ChunkedBody::pattern(64 * 1024, 160))
        .unwrap();
    let response = connection.request(request, params(&fpm, "echo.php", "POST", "")).await.unwrap();
    assert_eq!(response.headers()["x-content-length"], "10485760");
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert!(echoed[..] == ChunkedBody::expected(64 * 1024, 160)[..], "10 MiB body differs");
}

#[tokio::test]
async fn a_body_of_unknown_length_is_buffered_to_learn_it_or_refused() {
    use fcgi_tests::bodies::ChunkedBody;
    let fpm = php_fpm();
    let config = ConnectionConfig::default().keep_conn(true).max_buffered_body(1024 * 1024);
    let connection = Connection::spawn(&unix(&fpm), config).await.unwrap();
    let request = http::Request::post("/echo.php").body(ChunkedBody::pattern(1000, 300)).unwrap();
    let response = connection.request(request, params(&fpm, "echo.php", "POST", "")).await.unwrap();
    assert_eq!(response.headers()["x-content-length"], "300000", "CONTENT_LENGTH learned by buffering");
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert!(echoed[..] == ChunkedBody::expected(1000, 300)[..]);

    let too_big = http::Request::post("/echo.php").body(ChunkedBody::pattern(64 * 1024, 20)).unwrap();
    let err = connection.request(too_big, params(&fpm, "echo.php", "POST", "")).await.unwrap_err();
    assert!(matches!(err, fcgi_mux::Error::InvalidRequest(_)), "{err}");
    assert!(err.to_string().contains("no declared length"), "{err}");
    // Nothing was sent: the connection is still good.
    let response = connection.request(get("/hello.php"), params(&fpm, "hello.php", "GET", "")).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_body_that_fails_or_lies_about_its_length_fails_the_request_not_php() {
    use fcgi_tests::bodies::ChunkedBody;
    let fpm = php_fpm();
    let connection = Connection::spawn(&unix(&fpm), ConnectionConfig::default()).await.unwrap();
    let short = http::Request::post("/echo.php")
        .header("content-length", "5000")
        .body(ChunkedBody::pattern(1000, 3))
        .unwrap();
    let started = std::time::Instant::now();
    let err = connection.request(short, params(&fpm, "echo.php", "POST", "")).await.unwrap_err();
    assert!(err.to_string().contains("ended after 3000 of its declared 5000 bytes"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "php-fpm hangs on a short body: we must not wait for it"
    );

    let connection = Connection::spawn(&unix(&fpm), ConnectionConfig::default()).await.unwrap();
    let failing = http::Request::post("/echo.php")
        .header("content-length", "5000")
        .body(ChunkedBody::pattern(1000, 5).failing_after(2))
        .unwrap();
    let err = connection.request(failing, params(&fpm, "echo.php", "POST", "")).await.unwrap_err();
    assert!(matches!(err, fcgi_mux::Error::Body(_)), "{err}");
    assert!(err.to_string().contains("the upload source failed"), "{err}");
}

#[tokio::test]
async fn a_script_that_dies_mid_output_keeps_its_partial_body_and_stderr_apart() {
    let fpm = php_fpm();
    let connection = Connection::spawn(&unix(&fpm), ConnectionConfig::default()).await.unwrap();
    let response = connection.request(get("/dies.php"), params(&fpm, "dies.php", "GET", "")).await.unwrap();
    assert_eq!(response.status(), 200, "headers were flushed before the fatal error");
    let mut body = response.into_body();
    let mut data = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(chunk) = frame.unwrap().into_data() {
            data.extend_from_slice(&chunk);
        }
    }
    assert_eq!(data, b"partial output\n");
    let stderr = String::from_utf8_lossy(&body.stderr().kept).into_owned();
    assert!(stderr.contains("Call to undefined function"), "stderr: {stderr:?}");
}

#[tokio::test]
async fn cancelling_a_slow_request_closes_its_connection_and_the_pool_goes_on() {
    let fpm = php_fpm();
    let pool = fcgi_mux::Pool::new(unix(&fpm), fcgi_mux::PoolConfig::default().max_connections(1));
    let slow = pool.request(get("/slow.php"), params(&fpm, "slow.php", "GET", "ms=3000"));
    assert!(tokio::time::timeout(Duration::from_millis(200), slow).await.is_err(), "still running");
    // The request future was dropped: its connection is closed (php-fpm ignores ABORT_REQUEST).
    let started = std::time::Instant::now();
    let response = pool.request(get("/hello.php"), params(&fpm, "hello.php", "GET", "")).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Hello, world!");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the next request did not wait for the cancelled one"
    );

    // Dropping a response body half-way does the same.
    let response =
        pool.request(get("/big.php"), params(&fpm, "big.php", "GET", "bytes=50000000")).await.unwrap();
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    let response = pool.request(get("/hello.php"), params(&fpm, "hello.php", "GET", "")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(pool.stats().open, 1);
}

#[tokio::test]
async fn head_requests_get_headers_only() {
    let fpm = php_fpm();
    let connection = Connection::spawn(&unix(&fpm), ConnectionConfig::default()).await.unwrap();
    let request = http::Request::head("/hello.php").body(Full::new(Bytes::new())).unwrap();
    let response = connection.request(request, params(&fpm, "hello.php", "HEAD", "")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-length").is_none(), "no invented Content-Length");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());
}
