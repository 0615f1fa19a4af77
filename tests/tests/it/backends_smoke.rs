//! Smoke tests of the non-php-fpm backends that `cargo xtask test` starts (flup multiplexed and
//! not, fcgiwrap), with the synchronous test client: each answers a request, and each shows the
//! peer behaviour the brief (§3) measured and the client is built for, so that a change in a peer,
//! or a broken harness, shows up here first.
//!
//! Measured on this harness (flup 1.0.3 from PyPI, Debian 12 fcgiwrap 1.1.0 on libfcgi):
//! - flup, both modes: FCGI_GET_VALUES gets an *empty* FCGI_GET_VALUES_RESULT at once.
//! - flup `multiplexed=True`: 50 requests on one connection run concurrently; replies interleave.
//! - flup `multiplexed=False`: a BEGIN_REQUEST for a second id while one is open gets
//!   END_REQUEST(CANT_MPX_CONN) at once; the first request is still served.
//! - fcgiwrap: FCGI_GET_VALUES is answered (MAX_CONNS=1, MAX_REQS=1, MPXS_CONNS=0) only when the
//!   next record arrives; a whole second request pipelined behind the first (KEEP_CONN) is dropped
//!   without a word; but a second BEGIN_REQUEST arriving while the first request's PARAMS/STDIN
//!   are still being read gets END_REQUEST(CANT_MPX_CONN) (libfcgi checks for that while reading).

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use fcgi_proto::{
    NameValuePair, Padding, ParamsOptions, ProtocolStatus, Record, RecordBody, RecordType, RequestId, Role,
    encode_end_of_stream, encode_params, encode_record, encode_stream, standard_query,
};
use fcgi_tests::backends::{fcgiwrap, flup};
use fcgi_tests::client::{self, TIMEOUT, Target};

/// How long to wait before concluding that a peer sends nothing.
const SILENCE: Duration = Duration::from_millis(700);

type Params = Vec<(String, String)>;

/// Params of a request to the flup app (`SCRIPT_NAME` routes it); everything WSGI wants is there,
/// so flup writes no warnings to STDERR.
fn flup_params(path: &str, query: &str, body_len: usize) -> Params {
    [
        ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
        ("REQUEST_METHOD", if body_len > 0 { "POST" } else { "GET" }.to_owned()),
        ("SCRIPT_NAME", path.to_owned()),
        ("REQUEST_URI", format!("{path}?{query}")),
        ("QUERY_STRING", query.to_owned()),
        ("CONTENT_LENGTH", body_len.to_string()),
        ("SERVER_NAME", "localhost".to_owned()),
        ("SERVER_PORT", "80".to_owned()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Params running `script` in the CGI dir through fcgiwrap.
fn cgi_params(script: &str, query: &str) -> Params {
    let wrap = fcgiwrap();
    [
        ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
        ("REQUEST_METHOD", "GET".to_owned()),
        ("SCRIPT_NAME", format!("/{script}")),
        ("SCRIPT_FILENAME", wrap.script_path(script).display().to_string()),
        ("QUERY_STRING", query.to_owned()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Appends BEGIN_REQUEST for `id`.
fn begin(wire: &mut BytesMut, id: u16, keep_conn: bool) {
    encode_record(wire, &Record::begin_request(RequestId(id), Role::RESPONDER, keep_conn), Padding::None)
        .unwrap();
}

/// Appends the PARAMS stream (with its empty record) and the STDIN stream (with its empty record).
fn params_and_stdin(wire: &mut BytesMut, id: u16, params: &Params, stdin: &[u8]) {
    let id = RequestId(id);
    encode_params(wire, id, params.iter().map(|(n, v)| (n, v)), ParamsOptions::default()).unwrap();
    encode_stream(wire, RecordType::STDIN, id, stdin, Padding::None);
    encode_end_of_stream(wire, RecordType::STDIN, id);
}

/// A whole request for `id`.
fn request(wire: &mut BytesMut, id: u16, keep_conn: bool, params: &Params, stdin: &[u8]) {
    begin(wire, id, keep_conn);
    params_and_stdin(wire, id, params, stdin);
}

fn connect(socket: &Path) -> UnixStream {
    let stream = UnixStream::connect(socket).unwrap_or_else(|err| panic!("connecting {socket:?}: {err}"));
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Reads records until END_REQUEST has arrived for every id in `ids`.
fn read_until_ends(stream: &mut UnixStream, ids: &[u16]) -> Vec<Record> {
    let left = Cell::new(ids.len());
    client::read_records(stream, |record| {
        if matches!(record.body, RecordBody::EndRequest(_)) && ids.contains(&record.request_id.0) {
            left.set(left.get() - 1);
        }
        left.get() == 0
    })
    .unwrap_or_else(|err| panic!("reading replies for ids {ids:?}: {err}"))
}

/// Asserts that nothing arrives on `stream` for [`SILENCE`] (the peer neither writes nor closes).
fn assert_silent(stream: &mut UnixStream, what: &str) {
    stream.set_read_timeout(Some(SILENCE)).unwrap();
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Ok(0) => panic!("{what}: the peer closed the connection instead of staying silent"),
        Ok(n) => panic!("{what}: expected silence, got {n} bytes: {:?}", &buf[..n]),
        Err(err) => panic!("{what}: expected silence, got {err}"),
    }
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
}

/// The STDOUT bytes and the END_REQUEST protocol status of `id` in `records`.
fn reply_of(records: &[Record], id: u16) -> (Vec<u8>, Option<ProtocolStatus>) {
    let mut stdout = Vec::new();
    let mut status = None;
    for record in records.iter().filter(|r| r.request_id == RequestId(id)) {
        match &record.body {
            RecordBody::Stdout(data) => stdout.extend_from_slice(data),
            RecordBody::EndRequest(end) => status = Some(end.protocol_status),
            _ => {}
        }
    }
    (stdout, status)
}

fn ends_with_body(stdout: &[u8], body: &[u8]) -> bool {
    stdout.ends_with(body) && stdout.windows(4).any(|w| w == b"\r\n\r\n")
}

#[test]
fn flup_multiplexed_echoes_query_string_and_body() {
    let target = Target::Unix(flup().multiplexed);
    let body = b"posted \x00 bytes\r\n".repeat(1000);
    let reply = client::request(&target, &flup_params("/echo", "a=1&b=%20x", body.len()), &body).unwrap();
    assert_eq!(reply.protocol_status, ProtocolStatus::REQUEST_COMPLETE.0);
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.header("X-Query-String").as_deref(), Some("a=1&b=%20x"));
    assert_eq!(reply.header("X-Body-Length"), Some(body.len().to_string()));
    let mut expected = b"query=a=1&b=%20x\n".to_vec();
    expected.extend_from_slice(&body);
    assert_eq!(reply.body(), &expected[..]);
    assert!(reply.stderr.is_empty(), "stderr: {:?}", String::from_utf8_lossy(&reply.stderr));
}

#[test]
fn flup_streams_big_bodies_and_keeps_stderr_apart() {
    let target = Target::Unix(flup().multiplexed);
    let big = client::request(&target, &flup_params("/big", "bytes=300000", 0), b"").unwrap();
    assert_eq!(big.status(), 200);
    assert_eq!(big.body().len(), 300_000);
    assert!(big.body().starts_with(b"abcdefghijklmnopqrstuvwxyzabc"));

    let stderr = client::request(&target, &flup_params("/stderr", "msg=to-stderr", 0), b"").unwrap();
    assert_eq!(stderr.body(), b"body");
    assert_eq!(stderr.stderr, b"to-stderr\n");
}

/// Request 1 sleeps; requests 2..=50, sent behind it on the same connection, are all answered
/// before it: flup runs them concurrently and interleaves the replies.
#[test]
fn flup_multiplexed_interleaves_50_requests_on_one_connection() {
    let mut stream = connect(&flup().multiplexed);
    let mut wire = BytesMut::new();
    request(&mut wire, 1, true, &flup_params("/sleep", "ms=1500", 0), b"");
    for id in 2..=50u16 {
        let body = format!("body of {id}");
        request(&mut wire, id, true, &flup_params("/echo", &format!("id={id}"), body.len()), body.as_bytes());
    }
    stream.write_all(&wire).unwrap();
    let ids: Vec<u16> = (1..=50).collect();
    let records = read_until_ends(&mut stream, &ids);

    let end_order: Vec<u16> = records
        .iter()
        .filter(|r| matches!(r.body, RecordBody::EndRequest(_)))
        .map(|r| r.request_id.0)
        .collect();
    assert_eq!(end_order.last(), Some(&1), "the sleeping request must end last: {end_order:?}");
    for id in 2..=50u16 {
        let (stdout, status) = reply_of(&records, id);
        assert_eq!(status, Some(ProtocolStatus::REQUEST_COMPLETE), "id {id}");
        let expected = format!("query=id={id}\nbody of {id}");
        assert!(
            ends_with_body(&stdout, expected.as_bytes()),
            "id {id}: {:?}",
            String::from_utf8_lossy(&stdout)
        );
    }
    let (stdout, status) = reply_of(&records, 1);
    assert_eq!(status, Some(ProtocolStatus::REQUEST_COMPLETE));
    assert!(ends_with_body(&stdout, b"slept 1500\n"), "{:?}", String::from_utf8_lossy(&stdout));
}

/// Brief §3: flup looks the asked names (bytes) up in a table keyed by str, so the answer is
/// always empty, even from the multiplexing server. Measured: answered at once, id 0.
#[test]
fn flup_answers_get_values_with_an_empty_result() {
    let servers = flup();
    for socket in [servers.multiplexed, servers.single] {
        let pairs = client::get_values(&Target::Unix(socket.clone())).unwrap();
        assert_eq!(pairs, Vec::<NameValuePair>::new(), "{socket:?}");
    }
}

/// BEGIN_REQUEST 1, BEGIN_REQUEST 2, then the rest of request 1: id 2 is refused at once with
/// CANT_MPX_CONN (the application never sees it), id 1 is served normally.
#[test]
fn flup_single_refuses_a_second_concurrent_request_with_cant_mpx_conn() {
    let mut stream = connect(&flup().single);
    let mut wire = BytesMut::new();
    begin(&mut wire, 1, false);
    begin(&mut wire, 2, false);
    params_and_stdin(&mut wire, 1, &flup_params("/echo", "first", 0), b"");
    stream.write_all(&wire).unwrap();
    let records = read_until_ends(&mut stream, &[1, 2]);

    let (stdout, status) = reply_of(&records, 2);
    assert_eq!(status, Some(ProtocolStatus::CANT_MPX_CONN));
    assert!(stdout.is_empty());
    let (stdout, status) = reply_of(&records, 1);
    assert_eq!(status, Some(ProtocolStatus::REQUEST_COMPLETE));
    assert!(ends_with_body(&stdout, b"query=first\n"), "{:?}", String::from_utf8_lossy(&stdout));
}

#[test]
fn fcgiwrap_runs_hello_sh() {
    let target = Target::Unix(fcgiwrap().socket);
    let reply = client::request(&target, &cgi_params("hello.sh", "name=fcgi&x=%41"), b"").unwrap();
    assert_eq!(reply.protocol_status, ProtocolStatus::REQUEST_COMPLETE.0);
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.header("Content-Type").as_deref(), Some("text/plain"));
    assert_eq!(reply.header("X-Request-Method").as_deref(), Some("GET"));
    assert_eq!(reply.body(), b"Hello from CGI\nQUERY_STRING=name=fcgi&x=%41\n");
}

/// Brief §3: fcgiwrap (libfcgi) answers GET_VALUES only once another record arrives. Measured: no
/// answer while the connection is quiet; when the request follows, the GET_VALUES_RESULT comes
/// first (MAX_CONNS=1, MAX_REQS=1, MPXS_CONNS=0), then the request's reply.
#[test]
fn fcgiwrap_answers_get_values_only_once_another_record_arrives() {
    let mut stream = connect(&fcgiwrap().socket);
    let mut wire = BytesMut::new();
    encode_record(
        &mut wire,
        &Record::new(RequestId::MANAGEMENT, RecordBody::GetValues(standard_query())),
        Padding::None,
    )
    .unwrap();
    stream.write_all(&wire).unwrap();
    assert_silent(&mut stream, "fcgiwrap after a lone GET_VALUES");

    let mut wire = BytesMut::new();
    request(&mut wire, 1, false, &cgi_params("hello.sh", "after-get-values"), b"");
    stream.write_all(&wire).unwrap();
    let records = read_until_ends(&mut stream, &[1]);
    assert_eq!(
        records[0].body,
        RecordBody::GetValuesResult(vec![
            NameValuePair::new("FCGI_MAX_CONNS", "1"),
            NameValuePair::new("FCGI_MAX_REQS", "1"),
            NameValuePair::new("FCGI_MPXS_CONNS", "0"),
        ]),
        "{records:?}"
    );
    assert_eq!(records[0].request_id, RequestId::MANAGEMENT);
    let (stdout, status) = reply_of(&records, 1);
    assert_eq!(status, Some(ProtocolStatus::REQUEST_COMPLETE));
    assert!(
        ends_with_body(&stdout, b"QUERY_STRING=after-get-values\n"),
        "{:?}",
        String::from_utf8_lossy(&stdout)
    );
}

/// Brief §3: a whole second request pipelined behind the first (both KEEP_CONN) is silently
/// dropped: the first is answered, then nothing, and the connection stays open.
#[test]
fn fcgiwrap_drops_a_pipelined_second_request() {
    let mut stream = connect(&fcgiwrap().socket);
    let mut wire = BytesMut::new();
    request(&mut wire, 1, true, &cgi_params("hello.sh", "first"), b"");
    request(&mut wire, 2, true, &cgi_params("hello.sh", "second"), b"");
    stream.write_all(&wire).unwrap();
    let records = read_until_ends(&mut stream, &[1]);
    let (stdout, status) = reply_of(&records, 1);
    assert_eq!(status, Some(ProtocolStatus::REQUEST_COMPLETE));
    assert!(ends_with_body(&stdout, b"QUERY_STRING=first\n"));
    assert!(records.iter().all(|r| r.request_id != RequestId(2)), "{records:?}");
    assert_silent(&mut stream, "fcgiwrap after the first of two pipelined requests");
}

/// Measured, and not in the brief's table: libfcgi answers a BEGIN_REQUEST for another id that
/// arrives while it is still reading the current request's streams with CANT_MPX_CONN, and then
/// serves the current request.
#[test]
fn fcgiwrap_refuses_a_second_begin_request_mid_request_with_cant_mpx_conn() {
    let mut stream = connect(&fcgiwrap().socket);
    let mut wire = BytesMut::new();
    begin(&mut wire, 1, false);
    begin(&mut wire, 2, false);
    params_and_stdin(&mut wire, 1, &cgi_params("hello.sh", "first"), b"");
    stream.write_all(&wire).unwrap();
    let records = read_until_ends(&mut stream, &[1, 2]);
    let (stdout, status) = reply_of(&records, 2);
    assert_eq!(status, Some(ProtocolStatus::CANT_MPX_CONN));
    assert!(stdout.is_empty());
    let (stdout, status) = reply_of(&records, 1);
    assert_eq!(status, Some(ProtocolStatus::REQUEST_COMPLETE));
    assert!(ends_with_body(&stdout, b"QUERY_STRING=first\n"), "{:?}", String::from_utf8_lossy(&stdout));
}
