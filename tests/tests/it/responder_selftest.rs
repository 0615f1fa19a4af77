//! Proof that the fault-injecting responder (`fcgi_tests::responder`) does what it claims: each
//! behaviour checked on the wire with the synchronous test client, run on a blocking thread
//! while the responder runs on the test's tokio runtime.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fcgi_proto::{
    NameValuePair, Padding, ParamsOptions, ProtocolStatus, Record, RecordBody, RecordHeader, RecordType,
    RequestId, Role, encode_end_of_stream, encode_params, encode_record, encode_stream,
};
use fcgi_tests::client::{self, Stream, Target};
use fcgi_tests::responder::behaviour::{HTTP_400, LATE_STDOUT, STRAY_STDOUT, stray_id};
use fcgi_tests::responder::script::{self, OK_HEAD, pattern};
use fcgi_tests::responder::{AbortPolicy, Action, Behaviour, GetValues, Responder};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs blocking client code off the runtime's worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("the client thread panicked")
}

/// One whole RESPONDER request with KEEP_CONN, for any id.
fn request_wire(id: u16, params: &[(&str, &str)], stdin: &[u8]) -> BytesMut {
    let id = RequestId(id);
    let mut wire = BytesMut::new();
    encode_record(&mut wire, &Record::begin_request(id, Role::RESPONDER, true), Padding::None).unwrap();
    encode_params(&mut wire, id, params.iter().copied(), ParamsOptions::default()).unwrap();
    encode_stream(&mut wire, RecordType::STDIN, id, stdin, Padding::None);
    encode_end_of_stream(&mut wire, RecordType::STDIN, id);
    wire
}

fn simple_request(id: u16, script_name: &str) -> BytesMut {
    request_wire(id, &[("SCRIPT_NAME", script_name), ("QUERY_STRING", "")], b"")
}

fn encoded(record: &Record) -> Vec<u8> {
    let mut wire = BytesMut::new();
    encode_record(&mut wire, record, Padding::None).unwrap();
    wire.to_vec()
}

/// Connects, writes `wire` and reads records until `stop` says so (or end of input).
fn talk(target: &Target, wire: &[u8], stop: impl Fn(&Record) -> bool) -> io::Result<Vec<Record>> {
    let mut stream = target.connect()?;
    stream.write_all(wire)?;
    client::read_records(&mut stream, stop)
}

/// A stop condition: the `n`th END_REQUEST (of any id).
fn after_ends(n: usize) -> impl Fn(&Record) -> bool {
    let seen = Cell::new(0);
    move |record| {
        if matches!(record.body, RecordBody::EndRequest(_)) {
            seen.set(seen.get() + 1);
        }
        seen.get() == n
    }
}

fn set_read_timeout(stream: &Stream, timeout: Duration) {
    match stream {
        Stream::Unix(s) => s.set_read_timeout(Some(timeout)).unwrap(),
        Stream::Tcp(s) => s.set_read_timeout(Some(timeout)).unwrap(),
    }
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Reads until EOF; a reset after the data counts as the end too.
fn read_until_closed(stream: &mut Stream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return data,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return data,
            Err(err) => panic!("reading until the responder closes: {err}"),
        }
    }
}

fn stdout(id: u16, data: &'static [u8]) -> Record {
    Record::new(RequestId(id), RecordBody::Stdout(Bytes::from_static(data)))
}

fn end(id: u16, status: ProtocolStatus) -> Record {
    Record::end_request(RequestId(id), 0, status)
}

fn stdout_of(records: &[Record], id: u16) -> Vec<u8> {
    records
        .iter()
        .filter(|r| r.request_id == RequestId(id))
        .filter_map(|r| match &r.body {
            RecordBody::Stdout(data) => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn pairs(list: &[(&'static str, &'static str)]) -> Vec<NameValuePair> {
    list.iter().map(|(n, v)| NameValuePair::new(*n, *v)).collect()
}

// ---------------------------------------------------------------------------------------------
// The normal answer

#[tokio::test(flavor = "multi_thread")]
async fn echo_answers_a_responder_request_over_a_unix_socket() {
    let server = Responder::start(Behaviour::echo()).await;
    let path = server.socket_path().unwrap().to_path_buf();
    assert_eq!(server.address_string(), format!("unix:{}", path.display()));
    assert!(server.tcp_addr().is_none());

    let target = server.target();
    let reply = blocking(move || {
        let params = [("SCRIPT_NAME", "/hello"), ("QUERY_STRING", "a=1&b=%20"), ("CONTENT_LENGTH", "3")];
        client::request(&target, &params, b"abc")
    })
    .await
    .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.header("Content-Type").as_deref(), Some("text/plain"));
    assert_eq!(reply.body(), b"id=1 conn=0 script=/hello query=a=1&b=%20 stdin=3");
    assert_eq!((reply.app_status, reply.protocol_status), (0, ProtocolStatus::REQUEST_COMPLETE.0));
    assert!(reply.stderr.is_empty());

    let received = server.received();
    assert_eq!(server.connections(), 1);
    let types: Vec<RecordType> = received[0].iter().map(Record::record_type).collect();
    use RecordType as T;
    assert_eq!(types, [T::BEGIN_REQUEST, T::PARAMS, T::PARAMS, T::STDIN, T::STDIN]);
    assert_eq!(received[0][3].body, RecordBody::Stdin(Bytes::from_static(b"abc")));
    assert!(server.errors().is_empty(), "{:?}", server.errors());

    server.shutdown().await;
    assert!(!path.exists(), "socket left behind");
    assert!(!path.parent().unwrap().exists(), "temp dir left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_over_tcp_sends_head_body_end_of_stdout_and_end_request() {
    let server = Responder::start_tcp(Behaviour::echo()).await;
    let addr: SocketAddr = server.address_string().parse().unwrap();
    assert_eq!(Some(addr), server.tcp_addr());
    assert!(server.socket_path().is_none());

    let target = server.target();
    let records = blocking(move || talk(&target, &simple_request(7, "/tcp"), after_ends(1))).await.unwrap();
    assert_eq!(
        records,
        [
            stdout(7, OK_HEAD.as_bytes()),
            stdout(7, b"id=7 conn=0 script=/tcp query= stdin=0"),
            stdout(7, b""),
            end(7, ProtocolStatus::REQUEST_COMPLETE),
        ]
    );
    server.shutdown().await;
    let refused = blocking(move || std::net::TcpStream::connect(addr)).await;
    assert!(refused.is_err(), "still listening after shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_see_the_whole_request_and_each_connection_is_logged() {
    let server = Responder::start(Behaviour::script(|req| {
        let text = format!(
            "conn={} seq={} keep={} method={} body={}",
            req.connection,
            req.sequence,
            req.keep_conn,
            req.param_str("REQUEST_METHOD"),
            String::from_utf8_lossy(&req.stdin)
        );
        script::respond(req.id, format!("Status: 201\r\n\r\n{text}"))
    }))
    .await;
    let target = server.target();
    let bodies = blocking(move || {
        let params = [("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "5")];
        let first = client::request(&target, &params, b"hello").unwrap();
        let second = client::request(&target, &params, b"world").unwrap();
        assert_eq!((first.status(), second.status()), (201, 201));
        (first.body().to_vec(), second.body().to_vec())
    })
    .await;
    assert_eq!(bodies.0, b"conn=0 seq=0 keep=false method=POST body=hello");
    assert_eq!(bodies.1, b"conn=1 seq=0 keep=false method=POST body=world");
    assert_eq!(server.connections(), 2);
    assert!(server.errors().is_empty(), "{:?}", server.errors());
}

// ---------------------------------------------------------------------------------------------
// Faults in the answer

#[tokio::test(flavor = "multi_thread")]
async fn garbage_instead_of_records_then_close() {
    let server = Responder::start(Behaviour::http_400()).await;
    let target = server.target();
    let (raw, parsed) = blocking(move || {
        let mut stream = target.connect().unwrap();
        stream.write_all(&simple_request(1, "/x")).unwrap();
        let raw = read_until_closed(&mut stream);
        (raw, client::request(&target, &[("SCRIPT_NAME", "/x")], b""))
    })
    .await;
    assert_eq!(raw, HTTP_400);
    let err = parsed.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    // The request itself was read in full before answering.
    assert_eq!(server.received()[0].len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn close_in_the_middle_of_a_record() {
    let server = Responder::start(Behaviour::close_mid_record()).await;
    let target = server.target();
    let (raw, parsed) = blocking(move || {
        let mut stream = target.connect().unwrap();
        stream.write_all(&simple_request(3, "/x")).unwrap();
        (read_until_closed(&mut stream), talk(&target, &simple_request(3, "/x"), after_ends(1)))
    })
    .await;
    assert_eq!(raw.len(), 8 + 4);
    let header = RecordHeader::parse(raw[..8].try_into().unwrap());
    assert_eq!(header, RecordHeader::new(RecordType::STDOUT, RequestId(3), 16, 0));
    assert_eq!(&raw[8..], b"Stat");
    let err = parsed.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("12"), "the truncation names what arrived: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn close_after_some_stdout_before_end_request() {
    let server = Responder::start(Behaviour::close_before_end()).await;
    let target = server.target();
    let records = blocking(move || talk(&target, &simple_request(1, "/x"), after_ends(1))).await.unwrap();
    assert_eq!(records, [stdout(1, OK_HEAD.as_bytes()), stdout(1, b"partial body")]);
    let err = client::reply_from(&records).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_for_unknown_ids_come_before_the_real_answer() {
    let server = Responder::start(Behaviour::unknown_ids_first()).await;
    let target = server.target();
    let stop = |r: &Record| r.request_id == RequestId(5) && matches!(r.body, RecordBody::EndRequest(_));
    let records = blocking(move || talk(&target, &simple_request(5, "/real"), stop)).await.unwrap();
    let stray = stray_id(RequestId(5));
    assert_eq!(stray, RequestId(1005));
    assert_eq!(
        records[..3],
        [
            Record::new(stray, RecordBody::Stdout(Bytes::from_static(STRAY_STDOUT))),
            Record::new(stray, RecordBody::Stdout(Bytes::new())),
            Record::end_request(stray, 0, ProtocolStatus::REQUEST_COMPLETE),
        ]
    );
    assert_eq!(records.len(), 3 + 4);
    assert_eq!(
        stdout_of(&records, 5),
        format!("{OK_HEAD}id=5 conn=0 script=/real query= stdin=0").as_bytes()
    );
    assert_eq!(stray_id(RequestId(64536)), RequestId(1000), "never id 0");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdout_on_the_management_id() {
    let server = Responder::start(Behaviour::stdout_on_management_id()).await;
    let target = server.target();
    let (raw, parsed) = blocking(move || {
        let mut stream = target.connect().unwrap();
        stream.write_all(&simple_request(1, "/x")).unwrap();
        let mut first = vec![0u8; 8 + STRAY_STDOUT.len()];
        stream.read_exact(&mut first).unwrap();
        (first, talk(&target, &simple_request(1, "/x"), after_ends(1)))
    })
    .await;
    assert_eq!(raw, encoded(&Record::new(RequestId::MANAGEMENT, RecordBody::Stdout(STRAY_STDOUT.into()))));
    let err = parsed.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "the codec rejects it: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdout_after_end_request_for_the_same_id() {
    let server = Responder::start(Behaviour::stdout_after_end()).await;
    let target = server.target();
    let late = |r: &Record| matches!(&r.body, RecordBody::Stdout(data) if data == LATE_STDOUT);
    let records = blocking(move || talk(&target, &simple_request(2, "/x"), late)).await.unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(records[3], end(2, ProtocolStatus::REQUEST_COMPLETE));
    assert_eq!(records[4], stdout(2, LATE_STDOUT));
}

#[tokio::test(flavor = "multi_thread")]
async fn end_request_with_each_refusal_status() {
    let cases = [
        (Behaviour::overloaded(), ProtocolStatus::OVERLOADED),
        (Behaviour::unknown_role(), ProtocolStatus::UNKNOWN_ROLE),
        (Behaviour::cant_mpx_conn(), ProtocolStatus::CANT_MPX_CONN),
        (Behaviour::end_with(ProtocolStatus(9)), ProtocolStatus(9)),
    ];
    for (behaviour, status) in cases {
        let server = Responder::start(behaviour).await;
        let target = server.target();
        let records = blocking(move || talk(&target, &simple_request(1, "/x"), after_ends(1))).await.unwrap();
        assert_eq!(records, [end(1, status)], "{status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_answers_other_roles_with_unknown_role() {
    let server = Responder::start(Behaviour::echo()).await;
    let target = server.target();
    let mut wire = BytesMut::new();
    encode_record(&mut wire, &Record::begin_request(RequestId(1), Role::AUTHORIZER, false), Padding::None)
        .unwrap();
    encode_end_of_stream(&mut wire, RecordType::PARAMS, RequestId(1));
    encode_end_of_stream(&mut wire, RecordType::STDIN, RequestId(1));
    let records = blocking(move || talk(&target, &wire, after_ends(1))).await.unwrap();
    assert_eq!(records, [end(1, ProtocolStatus::UNKNOWN_ROLE)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn drip_sends_the_same_bytes_one_at_a_time() {
    const DELAY: Duration = Duration::from_millis(1);
    let normal = Responder::start(Behaviour::echo()).await;
    let dripping = Responder::start(Behaviour::echo().drip(DELAY)).await;
    let (normal_target, drip_target) = (normal.target(), dripping.target());
    let (expected, dripped, elapsed) = blocking(move || {
        let wire = simple_request(1, "/drip");
        let records = talk(&normal_target, &wire, after_ends(1)).unwrap();
        let expected: Vec<u8> = records.iter().flat_map(encoded).collect();

        let mut stream = drip_target.connect().unwrap();
        let start = Instant::now();
        stream.write_all(&wire).unwrap();
        let mut dripped = Vec::new();
        let mut chunk = [0u8; 1024];
        while dripped.len() < expected.len() {
            let n = stream.read(&mut chunk).unwrap();
            assert_ne!(n, 0, "closed early");
            dripped.extend_from_slice(&chunk[..n]);
        }
        (expected, dripped, start.elapsed())
    })
    .await;
    assert_eq!(dripped, expected);
    assert!(elapsed >= DELAY * (expected.len() as u32 - 1), "{} bytes in {elapsed:?}", expected.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_stderr_is_streamed_in_full_records_before_the_answer() {
    const LEN: u64 = 3 * 1024 * 1024 + 5;
    let server = Responder::start(Behaviour::huge_stderr(LEN)).await;
    let target = server.target();
    let records = blocking(move || talk(&target, &simple_request(1, "/x"), after_ends(1))).await.unwrap();
    let stderr: Vec<&Bytes> = records
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Stderr(data) => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(stderr.len(), LEN.div_ceil(65535) as usize + 1, "records of 65535 bytes, then the empty one");
    assert!(stderr[..stderr.len() - 1].iter().all(|d| !d.is_empty() && d.len() <= 65535));
    let reply = client::reply_from(&records).unwrap();
    assert_eq!(reply.stderr.len() as u64, LEN);
    assert!(reply.stderr == pattern(0, LEN as usize), "the STDERR pattern is intact");
    assert_eq!(reply.body(), b"id=1 conn=0 script=/x query= stdin=0");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_body_is_the_pattern() {
    const LEN: u64 = 2 * 1024 * 1024 + 3;
    let server = Responder::start_tcp(Behaviour::large_body(LEN)).await;
    let target = server.target();
    let reply = blocking(move || client::request(&target, &[("SCRIPT_NAME", "/big")], b"")).await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.body().len() as u64, LEN);
    assert!(reply.body() == pattern(0, LEN as usize), "the body pattern is intact");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_cgi_head_is_sent_as_given() {
    let server = Responder::start(Behaviour::stdout("Location: /elsewhere\r\n\r\n")).await;
    let target = server.target();
    let reply = blocking(move || client::request(&target, &[("SCRIPT_NAME", "/x")], b"")).await.unwrap();
    assert_eq!(reply.stdout, b"Location: /elsewhere\r\n\r\n");
    assert_eq!(reply.status(), 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn never_answer_holds_the_connection_until_shutdown() {
    let server = Responder::start(Behaviour::never_answer()).await;
    let target = server.target();
    let mut stream = blocking(move || {
        let mut stream = target.connect().unwrap();
        stream.write_all(&simple_request(1, "/x")).unwrap();
        set_read_timeout(&stream, Duration::from_millis(300));
        let err = stream.read(&mut [0u8; 64]).unwrap_err();
        assert!(is_timeout(&err), "{err}");
        stream
    })
    .await;
    assert!(
        server.wait_until(Duration::from_secs(5), |conns| conns.first().is_some_and(|c| c.len() == 4)).await
    );
    server.shutdown().await;
    let after = blocking(move || read_until_closed(&mut stream)).await;
    assert!(after.is_empty(), "shutdown closes held connections without a word");
}

#[tokio::test(flavor = "multi_thread")]
async fn close_after_answer_closes_even_a_kept_connection() {
    let server = Responder::start(Behaviour::echo().close_after_answer()).await;
    let target = server.target();
    let (records, rest) = blocking(move || {
        let mut stream = target.connect().unwrap();
        stream.write_all(&simple_request(1, "/keep")).unwrap(); // KEEP_CONN set
        let records = client::read_records(&mut stream, after_ends(1)).unwrap();
        (records, read_until_closed(&mut stream))
    })
    .await;
    assert_eq!(records.last(), Some(&end(1, ProtocolStatus::REQUEST_COMPLETE)));
    assert!(rest.is_empty(), "EOF right after END_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_connect_actions_run_before_any_request() {
    let server = Responder::start(Behaviour::echo().on_connect(vec![Action::raw(HTTP_400)])).await;
    let target = server.target();
    let greeting = blocking(move || {
        let mut stream = target.connect().unwrap();
        let mut greeting = vec![0u8; HTTP_400.len()];
        stream.read_exact(&mut greeting).unwrap();
        greeting
    })
    .await;
    assert_eq!(greeting, HTTP_400);
}

// ---------------------------------------------------------------------------------------------
// Multiplexing

#[tokio::test(flavor = "multi_thread")]
async fn two_requests_back_to_back_on_one_connection_are_both_answered() {
    let server = Responder::start(Behaviour::echo()).await;
    let target = server.target();
    let mut wire = simple_request(1, "/one");
    wire.extend_from_slice(&simple_request(2, "/two"));
    let records = blocking(move || talk(&target, &wire, after_ends(2))).await.unwrap();
    assert_eq!(records.len(), 8);
    assert_eq!(stdout_of(&records, 1), format!("{OK_HEAD}id=1 conn=0 script=/one query= stdin=0").as_bytes());
    assert_eq!(stdout_of(&records, 2), format!("{OK_HEAD}id=2 conn=0 script=/two query= stdin=0").as_bytes());
    for id in [1, 2] {
        let last = records.iter().rfind(|r| r.request_id == RequestId(id)).unwrap();
        assert_eq!(*last, end(id, ProtocolStatus::REQUEST_COMPLETE));
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_answers_interleave_record_by_record() {
    let server = Responder::start(Behaviour::script(|req| {
        vec![
            Action::stdout(req.id, OK_HEAD),
            Action::Sleep(Duration::from_millis(100)),
            Action::stdout(req.id, script::echo_body(req)),
            Action::end(req.id, ProtocolStatus::REQUEST_COMPLETE),
        ]
    }))
    .await;
    let target = server.target();
    let mut wire = simple_request(1, "/one");
    wire.extend_from_slice(&simple_request(2, "/two"));
    let records = blocking(move || talk(&target, &wire, after_ends(2))).await.unwrap();
    let heads: Vec<u16> = records[..2]
        .iter()
        .map(|r| {
            assert_eq!(r.body, RecordBody::Stdout(Bytes::from_static(OK_HEAD.as_bytes())));
            r.request_id.0
        })
        .collect();
    assert!(heads == [1, 2] || heads == [2, 1], "both heads before any body: {records:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn single_request_refuses_a_concurrent_request_with_cant_mpx_conn() {
    let server = Responder::start(Behaviour::echo().delay(Duration::from_millis(100)).single_request()).await;
    let target = server.target();
    let mut wire = simple_request(1, "/one");
    wire.extend_from_slice(&simple_request(2, "/two"));
    let records = blocking(move || talk(&target, &wire, after_ends(2))).await.unwrap();
    assert_eq!(records[0], end(2, ProtocolStatus::CANT_MPX_CONN), "refused at once");
    assert_eq!(records.len(), 5);
    assert_eq!(stdout_of(&records, 1), format!("{OK_HEAD}id=1 conn=0 script=/one query= stdin=0").as_bytes());
    assert_eq!(records[4], end(1, ProtocolStatus::REQUEST_COMPLETE));

    // Once request 1 has ended, the next one is welcome on the same connection.
    let target = server.target();
    let records = blocking(move || {
        let mut stream = target.connect().unwrap();
        stream.write_all(&simple_request(1, "/a")).unwrap();
        let mut records = client::read_records(&mut stream, after_ends(1)).unwrap();
        stream.write_all(&simple_request(2, "/b")).unwrap();
        records.extend(client::read_records(&mut stream, after_ends(1)).unwrap());
        records
    })
    .await;
    assert_eq!(records[3], end(1, ProtocolStatus::REQUEST_COMPLETE));
    assert_eq!(records[7], end(2, ProtocolStatus::REQUEST_COMPLETE));
    assert!(server.errors().is_empty(), "{:?}", server.errors());
}

// ---------------------------------------------------------------------------------------------
// Management records

async fn get_values_answer(behaviour: Behaviour) -> io::Result<Vec<NameValuePair>> {
    let server = Responder::start(behaviour).await;
    let target = server.target();
    blocking(move || client::get_values(&target)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn get_values_answers() {
    let standard = get_values_answer(Behaviour::echo()).await.unwrap();
    assert_eq!(
        standard,
        pairs(&[("FCGI_MAX_CONNS", "16"), ("FCGI_MAX_REQS", "64"), ("FCGI_MPXS_CONNS", "1")])
    );

    let single = get_values_answer(Behaviour::echo().single_request()).await.unwrap();
    assert_eq!(single, pairs(&[("FCGI_MAX_CONNS", "16"), ("FCGI_MAX_REQS", "16"), ("FCGI_MPXS_CONNS", "0")]));

    let php_fpm_like = GetValues::Pairs(vec![("FCGI_MPXS_CONNS".into(), "0".into())]);
    let given = get_values_answer(Behaviour::echo().get_values(php_fpm_like)).await.unwrap();
    assert_eq!(given, pairs(&[("FCGI_MPXS_CONNS", "0")]));

    let empty = get_values_answer(Behaviour::echo().get_values(GetValues::Empty)).await.unwrap();
    assert!(empty.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn get_values_can_go_unanswered() {
    let server = Responder::start(Behaviour::echo().get_values(GetValues::Ignore)).await;
    let target = server.target();
    let err = blocking(move || {
        let mut stream = target.connect().unwrap();
        let query = Record::new(RequestId::MANAGEMENT, RecordBody::GetValues(fcgi_proto::standard_query()));
        stream.write_all(&encoded(&query)).unwrap();
        set_read_timeout(&stream, Duration::from_millis(300));
        stream.read(&mut [0u8; 64]).unwrap_err()
    })
    .await;
    assert!(is_timeout(&err), "{err}");
    assert!(matches!(server.received()[0][0].body, RecordBody::GetValues(_)));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_record_types_get_unknown_type() {
    let server = Responder::start(Behaviour::echo()).await;
    let target = server.target();
    let unknown = Record::new(
        RequestId::MANAGEMENT,
        RecordBody::Unknown { record_type: RecordType(42), content: Bytes::from_static(b"?") },
    );
    let wire = encoded(&unknown);
    let stop = |r: &Record| matches!(r.body, RecordBody::UnknownType(_));
    let records = blocking(move || talk(&target, &wire, stop)).await.unwrap();
    assert_eq!(records, [Record::new(RequestId::MANAGEMENT, RecordBody::UnknownType(RecordType(42)))]);
}

// ---------------------------------------------------------------------------------------------
// ABORT_REQUEST

fn with_abort(id: u16) -> BytesMut {
    let mut wire = simple_request(id, "/slow");
    wire.extend_from_slice(&encoded(&Record::new(RequestId(id), RecordBody::AbortRequest)));
    wire
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_ends_a_request_at_once_by_default() {
    let server = Responder::start(Behaviour::never_answer()).await;
    let target = server.target();
    let records = blocking(move || talk(&target, &with_abort(4), after_ends(1))).await.unwrap();
    assert_eq!(records, [end(4, ProtocolStatus::REQUEST_COMPLETE)]);
    assert_eq!(server.received()[0].last().unwrap().body, RecordBody::AbortRequest);
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_can_be_ignored() {
    let behaviour = Behaviour::echo().delay(Duration::from_millis(50)).on_abort(AbortPolicy::Ignore);
    let server = Responder::start(behaviour).await;
    let target = server.target();
    let records = blocking(move || talk(&target, &with_abort(4), after_ends(1))).await.unwrap();
    assert_eq!(records.len(), 4, "the full answer: {records:?}");
    assert_eq!(
        stdout_of(&records, 4),
        format!("{OK_HEAD}id=4 conn=0 script=/slow query= stdin=0").as_bytes()
    );
    assert!(server.received()[0].iter().any(|r| r.body == RecordBody::AbortRequest));
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_can_end_at_once_and_keep_running_like_go() {
    let behaviour = Behaviour::echo().delay(Duration::from_millis(50)).on_abort(AbortPolicy::EndAndContinue);
    let server = Responder::start(behaviour).await;
    let target = server.target();
    let records = blocking(move || talk(&target, &with_abort(4), after_ends(2))).await.unwrap();
    assert_eq!(records[0], end(4, ProtocolStatus::REQUEST_COMPLETE));
    assert_eq!(records.len(), 1 + 4, "then the script's own answer: {records:?}");
    assert_eq!(records[4], end(4, ProtocolStatus::REQUEST_COMPLETE));
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_while_the_request_is_still_being_read() {
    let server = Responder::start(Behaviour::echo()).await;
    let target = server.target();
    let id = RequestId(6);
    let mut wire = BytesMut::new();
    encode_record(&mut wire, &Record::begin_request(id, Role::RESPONDER, true), Padding::None).unwrap();
    encode_params(&mut wire, id, [("SCRIPT_NAME", "/x")], ParamsOptions::default()).unwrap();
    wire.extend_from_slice(&encoded(&Record::new(id, RecordBody::AbortRequest)));
    // Stragglers of the aborted request are ignored; the connection stays usable.
    encode_end_of_stream(&mut wire, RecordType::STDIN, id);
    wire.extend_from_slice(&simple_request(6, "/after"));
    let records = blocking(move || talk(&target, &wire, after_ends(2))).await.unwrap();
    assert_eq!(records[0], end(6, ProtocolStatus::REQUEST_COMPLETE));
    assert_eq!(
        stdout_of(&records, 6),
        format!("{OK_HEAD}id=6 conn=0 script=/after query= stdin=0").as_bytes()
    );
    assert!(server.errors().is_empty(), "{:?}", server.errors());
}

// ---------------------------------------------------------------------------------------------
// Checking the client

#[tokio::test(flavor = "multi_thread")]
async fn client_garbage_closes_that_connection_only() {
    let server = Responder::start(Behaviour::echo()).await;
    let target = server.target();
    let (after_garbage, reply) = blocking(move || {
        let mut stream = target.connect().unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let after_garbage = read_until_closed(&mut stream);
        (after_garbage, client::request(&target, &[("SCRIPT_NAME", "/ok")], b""))
    })
    .await;
    assert!(after_garbage.is_empty());
    assert_eq!(reply.unwrap().body(), b"id=1 conn=1 script=/ok query= stdin=0");
    let errors = server.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("connection 0: framing error"), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_order_records_and_bad_content_length_are_reported() {
    let server = Responder::start(Behaviour::echo()).await;
    let target = server.target();
    let id = RequestId(1);
    let mut early_stdin = BytesMut::new();
    encode_record(&mut early_stdin, &Record::begin_request(id, Role::RESPONDER, false), Padding::None)
        .unwrap();
    encode_stream(&mut early_stdin, RecordType::PARAMS, id, b"\x01\x01ab", Padding::None);
    encode_stream(&mut early_stdin, RecordType::STDIN, id, b"body", Padding::None);
    let (closed, reply) = blocking(move || {
        let mut stream = target.connect().unwrap();
        stream.write_all(&early_stdin).unwrap();
        let closed = read_until_closed(&mut stream);
        (closed, client::request(&target, &[("CONTENT_LENGTH", "10")], b"short"))
    })
    .await;
    assert!(closed.is_empty());
    assert_eq!(reply.unwrap().status(), 200, "a wrong CONTENT_LENGTH is noted, still answered");
    let errors = server.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("FCGI_STDIN for request 1 before the end of its FCGI_PARAMS"), "{errors:?}");
    assert!(errors[1].starts_with("connection 1: request 1: CONTENT_LENGTH"), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_responder_removes_its_socket() {
    let server = Responder::start(Behaviour::echo()).await;
    let path = server.socket_path().unwrap().to_path_buf();
    assert!(path.exists());
    drop(server);
    assert!(!path.exists());
    assert!(!path.parent().unwrap().exists());
}
