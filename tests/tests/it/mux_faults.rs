//! fcgi-mux against the in-tree fault-injecting responder: the faults no real server
//! produces on demand, multiplexing, cancellation and slow readers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fcgi_mux::{
    Address, Connection, ConnectionConfig, Error, Multiplexing, Pool, PoolConfig, ProtocolViolation,
};
use fcgi_proto::{DecodeErrorKind, ProtocolStatus, RecordBody, RecordType};
use fcgi_tests::responder::{AbortPolicy, Action, Behaviour, Responder, script};
use http_body_util::{BodyExt, Empty};

fn address(server: &Responder) -> Address {
    server.address_string().parse().unwrap()
}

fn params(script: &str, query: &str) -> Vec<(Bytes, Bytes)> {
    vec![
        (Bytes::from_static(b"REQUEST_METHOD"), Bytes::from_static(b"GET")),
        (Bytes::from_static(b"SCRIPT_NAME"), Bytes::from(script.to_string())),
        (Bytes::from_static(b"SCRIPT_FILENAME"), Bytes::from(format!("/srv{script}"))),
        (Bytes::from_static(b"QUERY_STRING"), Bytes::from(query.to_string())),
    ]
}

fn get() -> http::Request<Empty<Bytes>> {
    http::Request::get("/").body(Empty::new()).unwrap()
}

async fn connect(server: &Responder, config: ConnectionConfig) -> Connection {
    Connection::spawn(&address(server), config).await.unwrap()
}

async fn body_text(response: http::Response<fcgi_mux::ResponseBody>) -> Result<String, Error> {
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn fetch(connection: &Connection, script: &str, query: &str) -> Result<String, Error> {
    body_text(connection.request(get(), params(script, query)).await?).await
}

#[tokio::test]
async fn a_normal_answer_and_strict_record_order() {
    let server = Responder::start(Behaviour::echo()).await;
    let connection = connect(&server, ConnectionConfig::default()).await;
    let body = fetch(&connection, "/x", "a=1").await.unwrap();
    assert_eq!(body, "id=1 conn=0 script=/x query=a=1 stdin=0");
    assert!(server.errors().is_empty(), "{:?}", server.errors());
}

#[tokio::test]
async fn garbage_is_a_protocol_error_naming_the_byte() {
    let server = Responder::start(Behaviour::http_400()).await;
    let err = fetch(&connect(&server, ConnectionConfig::default()).await, "/x", "").await.unwrap_err();
    match &err {
        Error::Protocol(ProtocolViolation::Malformed(decode)) => {
            assert_eq!(decode.offset(), 0);
            assert_eq!(decode.kind(), &DecodeErrorKind::BadVersion(b'H'));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("is the peer speaking FastCGI?"), "{err}");
}

#[tokio::test]
async fn a_connection_closed_mid_record_is_a_truncation() {
    let server = Responder::start(Behaviour::close_mid_record()).await;
    let err = fetch(&connect(&server, ConnectionConfig::default()).await, "/x", "").await.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol(ProtocolViolation::Malformed(d)) if matches!(d.kind(), DecodeErrorKind::Truncated { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_connection_closed_before_end_request() {
    let server = Responder::start(Behaviour::close_before_end()).await;
    let connection = connect(&server, ConnectionConfig::default()).await;
    // What arrived before the close is delivered first (HAProxy once dropped it).
    let response = connection.request(get(), params("/x", "")).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let err = loop {
        match body.frame().await {
            Some(Ok(frame)) => received.extend_from_slice(&frame.into_data().unwrap()),
            Some(Err(err)) => break err,
            None => panic!("the body ended without an error"),
        }
    };
    assert_eq!(received, b"partial body");
    assert!(matches!(err, Error::ConnectionClosed { sent_nothing: false }), "{err:?}");
    assert!(!err.is_retryable(), "the request ran: never resent");
}

#[tokio::test]
async fn records_for_unknown_ids_are_dropped() {
    let server = Responder::start(Behaviour::unknown_ids_first()).await;
    let body = fetch(&connect(&server, ConnectionConfig::default()).await, "/x", "q").await.unwrap();
    assert_eq!(body, "id=1 conn=0 script=/x query=q stdin=0");
}

#[tokio::test]
async fn stray_records_beyond_the_bound_break_the_connection() {
    let server = Responder::start(Behaviour::script(|req| {
        let stray = fcgi_tests::responder::behaviour::stray_id(req.id);
        let mut actions: Vec<Action> = (0..40).map(|_| Action::stdout(stray, vec![b's'; 60_000])).collect();
        actions.extend(script::echo(req));
        actions
    }))
    .await;
    let connection = connect(&server, ConnectionConfig::default().stray_limit(1024 * 1024)).await;
    let err = fetch(&connection, "/x", "").await.unwrap_err();
    assert!(matches!(err, Error::Protocol(ProtocolViolation::TooManyStrayRecords { .. })), "{err:?}");
}

#[tokio::test]
async fn an_application_record_on_id_0_is_a_protocol_error() {
    let server = Responder::start(Behaviour::stdout_on_management_id()).await;
    let err = fetch(&connect(&server, ConnectionConfig::default()).await, "/x", "").await.unwrap_err();
    assert!(err.to_string().contains("request id 0"), "{err}");
}

#[tokio::test]
async fn stdout_after_end_request_is_ignored_and_the_connection_stays_usable() {
    let server = Responder::start(Behaviour::stdout_after_end()).await;
    let connection = connect(&server, ConnectionConfig::default().keep_conn(true)).await;
    for _ in 0..3 {
        let body = fetch(&connection, "/x", "").await.unwrap();
        assert!(body.contains(" conn=0 script=/x"), "{body}");
        assert!(!body.contains("late STDOUT"), "{body}");
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn protocol_statuses_are_errors_and_overloaded_retires_the_connection() {
    let server = Responder::start(Behaviour::overloaded()).await;
    let connection = connect(&server, ConnectionConfig::default().keep_conn(true)).await;
    let err = fetch(&connection, "/x", "").await.unwrap_err();
    assert!(matches!(err, Error::Refused { status: ProtocolStatus::OVERLOADED, .. }), "{err:?}");
    assert!(connection.is_closed(), "an overloaded connection is not reused");

    let server = Responder::start(Behaviour::unknown_role()).await;
    let err = fetch(&connect(&server, ConnectionConfig::default()).await, "/x", "").await.unwrap_err();
    assert!(matches!(err, Error::Refused { status: ProtocolStatus::UNKNOWN_ROLE, .. }), "{err:?}");
}

fn overloaded_on_first_connection() -> Behaviour {
    Behaviour::script(|req| {
        if req.connection == 0 {
            vec![Action::end(req.id, ProtocolStatus::OVERLOADED)]
        } else {
            script::echo(req)
        }
    })
}

#[tokio::test]
async fn the_pool_retries_overloaded_once_on_a_new_connection_only_when_asked() {
    let server = Responder::start(overloaded_on_first_connection()).await;
    let pool = Pool::new(address(&server), PoolConfig::default().retry_overloaded(true));
    let response = pool.request(get(), params("/x", "")).await.unwrap();
    assert!(
        body_text(response).await.unwrap().contains(" conn=1 script=/x"),
        "answered by a second connection"
    );

    let server = Responder::start(overloaded_on_first_connection()).await;
    let strict = Pool::new(address(&server), PoolConfig::default());
    let err = strict.request(get(), params("/x", "")).await.unwrap_err();
    assert!(matches!(err, Error::Refused { status: ProtocolStatus::OVERLOADED, .. }), "{err:?}");
    assert_eq!(server.connections(), 1, "not resent by default");
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_first_byte_timeout() {
    let server = Responder::start(Behaviour::never_answer()).await;
    let config = ConnectionConfig::default().first_byte_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let err = fetch(&connect(&server, config).await, "/x", "").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { kind: fcgi_mux::TimeoutKind::FirstByte, .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Polls a connection driver; the first time it is polled after `starve` is set, it first spends
/// all of the task's tokio cooperative budget, as a busy task may have before reaching the driver.
struct StarvedOnce<F> {
    driver: Pin<Box<F>>,
    starve: Arc<AtomicBool>,
}

impl<F: Future> Future for StarvedOnce<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.starve.swap(false, Ordering::SeqCst) {
            // Each ready `consume_budget` takes one unit; the first pending one (which also
            // schedules the task again) means the budget is gone.
            loop {
                let spend = std::pin::pin!(tokio::task::coop::consume_budget());
                if spend.poll(cx).is_pending() {
                    break;
                }
            }
            assert!(!tokio::task::coop::has_budget_remaining());
        }
        self.driver.as_mut().poll(cx)
    }
}

#[tokio::test]
async fn the_first_byte_deadline_holds_when_the_driver_first_sees_the_request_without_budget() {
    // The poll that takes the request in arms the first-byte timer, and a tokio timer polled
    // without budget stores no waker: unless the driver polls it again once it has budget, the
    // deadline passes unnoticed and the request waits for a server that never answers.
    let server = Responder::start(Behaviour::never_answer()).await;
    let config = ConnectionConfig::default().first_byte_timeout(Duration::from_millis(200));
    let (connection, driver) = Connection::connect(&address(&server), config).await.unwrap();
    let starve = Arc::new(AtomicBool::new(false));
    tokio::spawn(StarvedOnce { driver: Box::pin(driver), starve: starve.clone() });
    tokio::task::yield_now().await;
    starve.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(5), fetch(&connection, "/x", "")).await;
    assert!(!starve.load(Ordering::SeqCst), "the driver was polled starved");
    let err = outcome.expect("the first-byte deadline (200 ms) was missed").unwrap_err();
    assert!(matches!(err, Error::Timeout { kind: fcgi_mux::TimeoutKind::FirstByte, .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_total_timeout_while_the_body_drips() {
    let server = Responder::start(Behaviour::large_body(1_000_000).drip(Duration::from_millis(2))).await;
    let config = ConnectionConfig::default().total_timeout(Some(Duration::from_millis(400)));
    let err = fetch(&connect(&server, config).await, "/x", "").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { kind: fcgi_mux::TimeoutKind::Total, .. }), "{err:?}");
}

#[tokio::test]
async fn a_dripped_answer_arrives_whole() {
    let server = Responder::start(Behaviour::echo().drip(Duration::from_micros(200))).await;
    let body = fetch(&connect(&server, ConnectionConfig::default()).await, "/drip", "z").await.unwrap();
    assert_eq!(body, "id=1 conn=0 script=/drip query=z stdin=0");
}

#[tokio::test]
async fn cgi_heads_location_status_and_malformed_lines() {
    let cases: &[(&str, Result<u16, &str>)] = &[
        ("Location: /next\r\n\r\n", Ok(302)),
        ("Status: 301 Moved Permanently\r\nLocation: /next\r\n\r\n", Ok(301)),
        ("Content-Type: text/plain\n\nbare LF", Ok(200)),
        ("Status: 404\r\n\r\n", Ok(404)),
        ("Bad Header Line\r\n\r\n", Err("line 1")),
        ("X: a\rb\r\n\r\n", Err("line 1")),
        ("Status: abc\r\n\r\n", Err("Status")),
    ];
    for (head, expected) in cases {
        let server = Responder::start(Behaviour::stdout(head.to_string())).await;
        let connection = connect(&server, ConnectionConfig::default()).await;
        let outcome = connection.request(get(), params("/x", "")).await;
        match (outcome, expected) {
            (Ok(response), Ok(status)) => assert_eq!(response.status().as_u16(), *status, "{head:?}"),
            (Err(Error::Cgi(err)), Err(text)) => assert!(err.to_string().contains(text), "{head:?}: {err}"),
            (other, _) => panic!("{head:?}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_response_that_ends_before_its_head_is_an_error() {
    let server = Responder::start(Behaviour::stdout("Content-Type: text/plain\r\n")).await;
    let err = fetch(&connect(&server, ConnectionConfig::default()).await, "/x", "").await.unwrap_err();
    assert!(matches!(err, Error::Cgi(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_multiplexed_on_one_connection() {
    let server = Responder::start(Behaviour::echo().delay(Duration::from_millis(20))).await;
    let config = ConnectionConfig::default()
        .keep_conn(true)
        .multiplexing(Multiplexing::Force)
        .max_concurrent_requests(200);
    let connection = connect(&server, config).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let connection = connection.clone();
        tasks.spawn(async move { (i, fetch(&connection, "/m", &format!("n={i}")).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, body) = joined.unwrap();
        let body = body.unwrap();
        assert!(body.contains(&format!(" query=n={i} ")), "request {i} got {body}");
    }
    assert_eq!(server.connections(), 1);
    assert!(server.errors().is_empty(), "{:?}", server.errors());
    let ids: std::collections::HashSet<u16> = server.received()[0]
        .iter()
        .filter(|r| r.record_type() == RecordType::BEGIN_REQUEST)
        .map(|r| r.request_id.0)
        .collect();
    assert!(ids.len() > 100, "requests really were concurrent ({} distinct ids)", ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_multiplexed_request_sends_abort_and_leaves_the_others_intact() {
    let server = Responder::start(Behaviour::script(|req| {
        let mut actions = Vec::new();
        if req.param_str("SCRIPT_NAME") == "/slow" {
            actions.push(Action::Sleep(Duration::from_millis(400)));
        }
        actions.extend(script::echo(req));
        actions
    }))
    .await;
    let config = ConnectionConfig::default().keep_conn(true).multiplexing(Multiplexing::Force);
    let connection = connect(&server, config).await;
    let slow = connection.request(get(), params("/slow", ""));
    let others: Vec<_> = (0..10)
        .map(|i| {
            let connection = connection.clone();
            tokio::spawn(async move { fetch(&connection, "/fast", &format!("n={i}")).await })
        })
        .collect();
    assert!(tokio::time::timeout(Duration::from_millis(100), slow).await.is_err());
    for (i, task) in others.into_iter().enumerate() {
        assert!(task.await.unwrap().unwrap().contains(&format!("query=n={i} ")));
    }
    let aborted = server
        .wait_until(Duration::from_secs(2), |conns| {
            conns.iter().flatten().any(|r| matches!(r.body, RecordBody::AbortRequest))
        })
        .await;
    assert!(aborted, "the cancelled request was aborted with FCGI_ABORT_REQUEST");
    assert!(!connection.is_closed(), "a multiplexed connection survives a cancellation");
    assert!(fetch(&connection, "/after", "").await.unwrap().contains("script=/after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cant_mpx_conn_drops_the_connection_to_one_request_at_a_time() {
    let server = Responder::start(Behaviour::echo().delay(Duration::from_millis(30)).single_request()).await;
    let config = ConnectionConfig::default().keep_conn(true).multiplexing(Multiplexing::Force);
    let connection = connect(&server, config).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let connection = connection.clone();
        tasks.spawn(async move { (i, fetch(&connection, "/one", &format!("n={i}")).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, body) = joined.unwrap();
        assert!(body.unwrap().contains(&format!("query=n={i} ")), "request {i}");
    }
    assert_eq!(connection.max_concurrent_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_aborted_after_the_stall_timeout_so_the_others_finish() {
    let server = Responder::start(Behaviour::script(|req| {
        if req.param_str("SCRIPT_NAME") == "/big" {
            vec![
                Action::stdout(req.id, script::OK_HEAD),
                Action::Pattern { record_type: RecordType::STDOUT, id: req.id, len: 20 * 1024 * 1024 },
                Action::end(req.id, ProtocolStatus::REQUEST_COMPLETE),
            ]
        } else {
            let mut actions = vec![Action::Sleep(Duration::from_millis(100))];
            actions.extend(script::echo(req));
            actions
        }
    }))
    .await;
    let config = ConnectionConfig::default()
        .keep_conn(true)
        .multiplexing(Multiplexing::Force)
        .stall_timeout(Duration::from_millis(300));
    let connection = connect(&server, config).await;
    let big = connection.request(get(), params("/big", "")).await.unwrap();
    // `big` is not read: its buffer fills and reading pauses, holding up its neighbours...
    let started = Instant::now();
    let others: Vec<_> = (0..3)
        .map(|i| {
            let connection = connection.clone();
            tokio::spawn(async move { fetch(&connection, "/small", &format!("n={i}")).await })
        })
        .collect();
    for task in others {
        assert!(task.await.unwrap().unwrap().contains("script=/small"));
    }
    // ...until the stall timeout aborts it.
    assert!(started.elapsed() >= Duration::from_millis(250), "the others waited for the stall timeout");
    let err = body_text(big).await.unwrap_err();
    assert!(matches!(err, Error::Stalled { .. }), "{err:?}");
}

#[tokio::test]
async fn a_kept_connection_closed_by_the_server_is_replaced() {
    let server = Responder::start(Behaviour::echo().close_after_answer()).await;
    let pool = Pool::new(address(&server), PoolConfig::default().max_connections(1));
    for i in 0..5 {
        let response = pool.request(get(), params("/k", &format!("n={i}"))).await.unwrap();
        assert!(body_text(response).await.unwrap().contains(&format!("query=n={i} ")));
        // Let the close arrive: a request written before it does would have run for all
        // the client knows, and is not resent.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.connections() >= 2, "new connections replaced the closed ones");
}

#[tokio::test]
async fn huge_stderr_is_kept_up_to_the_limit() {
    let server = Responder::start(Behaviour::huge_stderr(4 * 1024 * 1024)).await;
    let connection = connect(&server, ConnectionConfig::default()).await;
    let response = connection.request(get(), params("/x", "")).await.unwrap();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.unwrap();
    }
    let stderr = body.stderr();
    assert_eq!(stderr.kept.len(), 64 * 1024);
    assert_eq!(stderr.dropped, 4 * 1024 * 1024 - 64 * 1024);
    assert_eq!(&stderr.kept[..], &script::pattern(0, 64 * 1024)[..]);
}

#[tokio::test]
async fn an_aborted_request_not_ended_in_time_retires_the_connection() {
    let server = Responder::start(
        Behaviour::script(|req| {
            vec![Action::Sleep(Duration::from_secs(5)), Action::end(req.id, ProtocolStatus::REQUEST_COMPLETE)]
        })
        .on_abort(AbortPolicy::Ignore),
    )
    .await;
    let config = ConnectionConfig::default()
        .keep_conn(true)
        .multiplexing(Multiplexing::Force)
        .abort_drain_timeout(Duration::from_millis(200));
    let connection = connect(&server, config).await;
    let request = connection.request(get(), params("/x", ""));
    assert!(tokio::time::timeout(Duration::from_millis(100), request).await.is_err());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(connection.is_closed(), "the connection takes no new requests after the drain deadline");
}
