//! The machine driven by scripted peers: bytes and instants in, records and events out. No
//! socket, no sleeping. The peers replay behaviour measured on real servers (php-fpm,
//! fcgiwrap, flup, Go's net/http/fcgi, uWSGI).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fcgi_proto::{
    Decoder, NameValuePair, Padding, ProtocolStatus, Record, RecordBody, RecordType, RequestId, encode_record,
};
use proptest::prelude::*;

use super::*;
use crate::error::ProtocolViolation;

fn config() -> ConnectionConfig {
    ConnectionConfig::default().keep_conn(true)
}

fn mpx_config() -> ConnectionConfig {
    config().multiplexing(Multiplexing::Force).max_concurrent_requests(8)
}

/// A test bench: the machine, a start instant and what it produced so far.
struct Bench {
    m: ConnectionMachine,
    t0: Instant,
    events: Vec<Event>,
}

impl Bench {
    fn new(config: ConnectionConfig) -> Self {
        let t0 = Instant::now();
        Self { m: ConnectionMachine::new(config, t0), t0, events: Vec::new() }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn start(&mut self, body: &'static [u8]) -> RequestKey {
        self.start_with(body, StartOptions::default())
    }

    fn start_with(&mut self, body: &'static [u8], options: StartOptions) -> RequestKey {
        let params = [("SCRIPT_FILENAME", "/srv/index.php"), ("REQUEST_METHOD", "POST")];
        let head = RequestHead::new(params, body.len() as u64, &self.m.config).unwrap();
        let now = self.t0;
        let key = self.m.start(head, body.len() as u64, options, now);
        if !body.is_empty() {
            self.m.send_body(key, Bytes::from_static(body), now);
        }
        self.m.finish_body(key, now);
        key
    }

    /// Every record the machine wants to send now.
    fn sent(&mut self) -> Vec<Record> {
        let mut wire = BytesMut::new();
        let now = self.t0;
        self.m.poll_transmit(&mut wire, now);
        decode_all(&mut wire)
    }

    fn feed(&mut self, bytes: &[u8], now: Instant) {
        self.m.receive(bytes, now);
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(event) = self.m.poll_event() {
            self.events.push(event);
        }
    }

    /// The events so far as short strings, for readable assertions.
    fn log(&mut self) -> Vec<String> {
        self.collect();
        self.events.drain(..).map(|e| describe(&e)).collect()
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::Head { key, head } => format!("{} head {}", key.0, head.status.as_u16()),
        Event::Body { key, data } => format!("{} body {}", key.0, String::from_utf8_lossy(data)),
        Event::Stderr { key, data, dropped } => {
            format!("{} stderr {} +{dropped}", key.0, String::from_utf8_lossy(data))
        }
        Event::End { key, result: Ok(status), .. } => format!("{} end {}", key.0, status.app_status),
        Event::End { key, result: Err(error), returned } => {
            format!("{} error {}{}", key.0, short(error), if returned.is_some() { " (returned)" } else { "" })
        }
        Event::Released { key } => format!("{} released", key.0),
    }
}

fn short(error: &Error) -> String {
    match error {
        Error::ConnectionClosed { sent_nothing } => format!("closed sent_nothing={sent_nothing}"),
        Error::Timeout { kind, .. } => format!("timeout {kind:?}"),
        Error::Protocol(_) => "protocol".into(),
        Error::Cgi(_) => "cgi".into(),
        Error::Refused { status, .. } => format!("refused {status}"),
        Error::Stalled { .. } => "stalled".into(),
        Error::Body(_) => "body".into(),
        other => other.to_string(),
    }
}

fn decode_all(wire: &mut BytesMut) -> Vec<Record> {
    let mut decoder = Decoder::new();
    let mut records = Vec::new();
    while let Some(record) = decoder.decode(wire).unwrap() {
        records.push(record);
    }
    assert!(wire.is_empty(), "the machine wrote a partial record");
    records
}

fn kinds(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let empty = r.body.stream_data().is_some_and(|d| d.is_empty());
            format!(
                "{}{}{}",
                r.record_type().name().unwrap_or("?").trim_start_matches("FCGI_"),
                if empty { "/empty" } else { "" },
                format_args!("#{}", r.request_id.0)
            )
        })
        .collect()
}

fn wire(records: &[Record]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for record in records {
        encode_record(&mut out, record, Padding::None).unwrap();
    }
    out.to_vec()
}

fn stdout(id: u16, data: &str) -> Record {
    Record::stream(RecordType::STDOUT, RequestId(id), Bytes::from(data.to_owned())).unwrap()
}

fn stderr(id: u16, data: &str) -> Record {
    Record::stream(RecordType::STDERR, RequestId(id), Bytes::from(data.to_owned())).unwrap()
}

fn end(id: u16, status: ProtocolStatus) -> Record {
    Record::end_request(RequestId(id), 0, status)
}

fn complete(id: u16) -> Record {
    end(id, ProtocolStatus::REQUEST_COMPLETE)
}

/// php-fpm's answer: small records padded to 8, reserved bytes of END_REQUEST not zeroed,
/// STDERR before STDOUT, no empty STDOUT before END_REQUEST.
fn php_fpm_reply(id: u16, body: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    for record in [stderr(id, "PHP Notice: x"), stdout(id, &format!("Content-type: text/html\r\n\r\n{body}"))]
    {
        encode_record(&mut out, &record, Padding::Align8).unwrap();
    }
    let mut end_bytes = BytesMut::new();
    encode_record(&mut end_bytes, &complete(id), Padding::None).unwrap();
    end_bytes[13..16].copy_from_slice(b"ml;");
    out.extend_from_slice(&end_bytes);
    out.to_vec()
}

#[test]
fn records_go_out_in_strict_order_and_the_reply_becomes_events() {
    let mut b = Bench::new(config());
    let key = b.start(b"abc");
    assert_eq!(
        kinds(&b.sent()),
        ["BEGIN_REQUEST#1", "PARAMS#1", "PARAMS/empty#1", "STDIN#1", "STDIN/empty#1"]
    );
    let reply = php_fpm_reply(1, "hello");
    b.feed(&reply, b.t0);
    assert_eq!(b.log(), ["0 stderr PHP Notice: x +0", "0 head 200", "0 body hello", "0 end 0", "0 released"]);
    assert_eq!(key, RequestKey(0));
    assert!(b.m.accepts_requests(), "kept alive");
}

#[test]
fn an_empty_body_still_gets_the_empty_stdin_and_params_carry_content_length() {
    let mut b = Bench::new(config());
    b.start(b"");
    let sent = b.sent();
    assert_eq!(kinds(&sent), ["BEGIN_REQUEST#1", "PARAMS#1", "PARAMS/empty#1", "STDIN/empty#1"]);
    let RecordBody::Params(data) = &sent[1].body else { panic!() };
    let pairs = fcgi_proto::decode_pairs(data).unwrap();
    assert!(
        !pairs.iter().any(|p: &NameValuePair| p.name.as_ref() == b"CONTENT_LENGTH"),
        "none invented for an empty body"
    );
}

#[test]
fn every_split_of_the_reply_gives_the_same_events() {
    let reply = php_fpm_reply(1, "split me");
    for split in 0..=reply.len() {
        let mut b = Bench::new(config());
        b.start(b"");
        b.sent();
        b.feed(&reply[..split], b.t0);
        b.feed(&reply[split..], b.t0);
        let log = b.log();
        let body: String = log.iter().filter_map(|l| l.strip_prefix("0 body ")).collect();
        assert_eq!(body, "split me", "split at {split}");
        assert_eq!(log.last().map(String::as_str), Some("0 released"), "split at {split}");
        assert!(log.contains(&"0 end 0".to_string()), "split at {split}: {log:?}");
    }
}

#[test]
fn a_head_spanning_records_is_parsed_and_status_and_location_apply() {
    let mut b = Bench::new(config());
    b.start(b"");
    b.sent();
    let records = [
        stdout(1, "Status: 404 Not"),
        stdout(1, " Found\nLocation: /x\n"),
        stdout(1, "\nmissing"),
        complete(1),
    ];
    b.feed(&wire(&records), b.t0);
    assert_eq!(b.log(), ["0 head 404", "0 body missing", "0 end 0", "0 released"]);
}

#[test]
fn one_request_at_a_time_without_multiplexing() {
    let mut b = Bench::new(config());
    b.start(b"");
    b.start(b"");
    assert_eq!(kinds(&b.sent()), ["BEGIN_REQUEST#1", "PARAMS#1", "PARAMS/empty#1", "STDIN/empty#1"]);
    assert!(b.sent().is_empty(), "the second waits for END_REQUEST");
    b.feed(&wire(&[stdout(1, "\r\n"), complete(1)]), b.t0);
    assert_eq!(kinds(&b.sent())[0], "BEGIN_REQUEST#2", "a fresh id, not reused at once");
}

#[test]
fn cancelling_without_multiplexing_closes_and_returns_queued_requests() {
    let mut b = Bench::new(config());
    let first = b.start(b"");
    b.start(b"body");
    b.sent();
    b.m.cancel(first, b.t0);
    assert!(b.m.is_closed());
    assert!(matches!(b.m.close_reason(), Some(Ok(()))));
    assert_eq!(b.log(), ["0 released", "1 error closed sent_nothing=true (returned)", "1 released"]);
}

#[test]
fn after_a_failed_write_what_the_server_sent_still_answers_the_request() {
    let mut b = Bench::new(config());
    b.start(b"abc");
    b.start(b"queued");
    b.sent();
    b.m.handle_write_error(std::io::ErrorKind::BrokenPipe.into(), true, b.t0);
    // The queued request sent nothing: it can go elsewhere at once.
    assert_eq!(b.log(), ["1 error closed sent_nothing=true (returned)", "1 released"]);
    assert!(!b.m.accepts_requests());
    assert!(!b.m.is_closed(), "still reading what the server sent");
    assert!(b.m.wants_read());
    assert!(b.sent().is_empty(), "nothing more is written");
    let reply = php_fpm_reply(1, "early");
    b.feed(&reply, b.t0);
    b.m.handle_eof(b.t0);
    assert_eq!(b.log(), ["0 stderr PHP Notice: x +0", "0 head 200", "0 body early", "0 end 0", "0 released"]);
    assert!(b.m.is_closed());
}

#[test]
fn after_a_failed_write_without_an_answer_the_request_fails_with_the_write_error() {
    let mut b = Bench::new(config());
    b.start(b"abc");
    b.sent();
    b.m.handle_write_error(std::io::ErrorKind::BrokenPipe.into(), true, b.t0);
    assert!(b.log().is_empty());
    b.m.handle_eof(b.t0);
    let log = b.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].starts_with("0 error ") && !log[0].contains("sent_nothing"), "{log:?}");
    assert!(
        matches!(b.m.close_reason(), Some(Err(Error::Io(e))) if e.kind() == std::io::ErrorKind::BrokenPipe)
    );

    // With nothing in progress, a failed write closes the connection at once.
    let mut b = Bench::new(config());
    b.m.handle_write_error(std::io::ErrorKind::BrokenPipe.into(), true, b.t0);
    assert!(b.m.is_closed());
}

#[test]
fn a_request_none_of_whose_bytes_were_written_goes_back_after_a_failed_write() {
    // A kept-alive connection the server closed just as the next request was written to it:
    // the write failed before any byte of that request went out, so it can go elsewhere.
    let mut b = Bench::new(config());
    b.start(b"");
    b.sent();
    b.feed(&php_fpm_reply(1, "first"), b.t0);
    b.log();
    b.start(b"next");
    b.sent();
    b.m.handle_write_error(std::io::ErrorKind::BrokenPipe.into(), false, b.t0);
    assert_eq!(b.log(), ["1 error closed sent_nothing=true (returned)", "1 released"]);
    assert!(b.m.is_closed());
    assert!(b.m.peer_closed_idle(), "a pool learns the server closes kept connections");
}

#[test]
fn cancelling_a_request_not_yet_written_needs_no_close() {
    let mut b = Bench::new(config());
    let key = b.start(b"");
    b.m.cancel(key, b.t0);
    assert_eq!(b.log(), ["0 released"]);
    assert!(b.m.accepts_requests());
    assert!(b.sent().is_empty());
}

#[test]
fn cancelling_when_multiplexing_aborts_and_drains_the_id() {
    let mut b = Bench::new(mpx_config());
    let first = b.start(b"");
    b.start(b"");
    assert_eq!(b.sent().len(), 8, "both requests go out");
    b.m.cancel(first, b.t0);
    assert_eq!(kinds(&b.sent()), ["ABORT_REQUEST#1"]);
    // Late output for the aborted id is dropped; its END_REQUEST frees it.
    b.feed(&wire(&[stdout(1, "\r\nlate"), stdout(2, "\r\nok"), complete(1), complete(2)]), b.t0);
    assert_eq!(b.log(), ["1 head 200", "1 body ok", "0 released", "1 end 0", "1 released"]);
}

#[test]
fn an_aborted_id_that_never_ends_retires_the_connection_after_the_drain_deadline() {
    let mut b = Bench::new(mpx_config().abort_drain_timeout(Duration::from_secs(5)));
    let key = b.start(b"");
    b.sent();
    b.m.cancel(key, b.t0);
    b.sent();
    assert_eq!(b.m.next_deadline(), Some(b.at(5000)));
    b.m.handle_timeout(b.at(5000));
    assert!(b.m.is_closed(), "retired with nothing live left");
    assert_eq!(b.log(), ["0 released"]);
}

#[test]
fn the_first_byte_deadline_fails_a_silent_request() {
    let mut b = Bench::new(config().first_byte_timeout(Duration::from_millis(300)));
    b.start(b"");
    b.sent();
    assert_eq!(b.m.next_deadline(), Some(b.at(300)));
    b.m.handle_timeout(b.at(299));
    assert!(b.log().is_empty());
    b.m.handle_timeout(b.at(300));
    assert_eq!(b.log(), ["0 error timeout FirstByte", "0 released"]);
    assert!(b.m.is_closed(), "no multiplexing: the connection goes with it");
}

#[test]
fn the_total_deadline_counts_from_when_the_caller_asked() {
    let mut b = Bench::new(config());
    let asked = b.t0 - Duration::from_millis(400);
    let options = StartOptions {
        deadline: Some((asked + Duration::from_millis(500), Duration::from_millis(500))),
        ..Default::default()
    };
    b.start_with(b"", options);
    b.sent();
    b.feed(&wire(&[stdout(1, "\r\nstreaming")]), b.t0);
    assert_eq!(b.m.next_deadline(), Some(b.at(100)));
    b.m.handle_timeout(b.at(100));
    assert_eq!(b.log(), ["0 head 200", "0 body streaming", "0 error timeout Total", "0 released"]);
}

#[test]
fn a_full_receive_buffer_stops_reading_until_released() {
    let mut b = Bench::new(config().response_buffer(10));
    let key = b.start(b"");
    b.sent();
    b.feed(&wire(&[stdout(1, "\r\n0123456789"), stdout(1, "abc"), complete(1)]), b.t0);
    assert!(!b.m.wants_read());
    assert_eq!(b.log(), ["0 head 200", "0 body 0123456789"]);
    b.m.release(key, 10);
    b.m.handle_input(b.t0);
    assert_eq!(b.log(), ["0 body abc", "0 end 0", "0 released"]);
    assert!(b.m.wants_read());
}

#[test]
fn a_stalled_reader_is_aborted_only_when_it_holds_up_others() {
    let mut b = Bench::new(mpx_config().response_buffer(4).stall_timeout(Duration::from_secs(10)));
    b.start(b"");
    b.start(b"");
    b.sent();
    b.feed(&wire(&[stdout(1, "\r\n12345"), stdout(2, "\r\nx"), complete(2)]), b.t0);
    assert_eq!(b.m.next_deadline(), Some(b.at(10_000)));
    b.m.handle_timeout(b.at(10_000));
    b.m.handle_input(b.at(10_000));
    let log = b.log();
    assert!(log.contains(&"0 error stalled".to_string()), "{log:?}");
    assert!(log.contains(&"1 end 0".to_string()), "the other request finished: {log:?}");
}

#[test]
fn head_requests_drop_the_body() {
    let mut b = Bench::new(config());
    b.start_with(b"", StartOptions { head_only: true, ..Default::default() });
    b.sent();
    b.feed(&wire(&[stdout(1, "X: 1\r\n\r\nbody"), complete(1)]), b.t0);
    assert_eq!(b.log(), ["0 head 200", "0 end 0", "0 released"]);
}

#[test]
fn a_malformed_cgi_head_fails_the_request() {
    let mut b = Bench::new(config());
    b.start(b"");
    b.sent();
    b.feed(&wire(&[stdout(1, "no colon here\r\n\r\n")]), b.t0);
    assert_eq!(b.log(), ["0 error cgi", "0 released"]);
}

#[test]
fn end_before_a_complete_head_is_a_cgi_error() {
    let mut b = Bench::new(config());
    b.start(b"");
    b.sent();
    b.feed(&wire(&[stdout(1, "X: 1\r\n"), complete(1)]), b.t0);
    assert_eq!(b.log(), ["0 error cgi", "0 released"]);
}

#[test]
fn stderr_is_kept_up_to_its_limit() {
    let mut b = Bench::new(config().stderr_limit(4));
    b.start(b"");
    b.sent();
    b.feed(&wire(&[stderr(1, "abc"), stderr(1, "defg"), stdout(1, "\r\n"), complete(1)]), b.t0);
    assert_eq!(b.log(), ["0 stderr abc +0", "0 stderr d +3", "0 head 200", "0 end 0", "0 released"]);
}

#[test]
fn cant_mpx_conn_drops_to_one_at_a_time_and_returns_the_request() {
    let mut b = Bench::new(mpx_config());
    b.start(b"");
    b.start(b"");
    b.sent();
    // flup without multiplexing refuses the second.
    b.feed(&wire(&[end(2, ProtocolStatus::CANT_MPX_CONN)]), b.t0);
    assert_eq!(b.m.limit(), 1);
    assert_eq!(b.log(), ["1 error refused FCGI_CANT_MPX_CONN (returned)", "1 released"]);
}

#[test]
fn overloaded_retires_the_connection_and_returns_the_request() {
    let mut b = Bench::new(config());
    b.start(b"");
    b.sent();
    b.feed(&wire(&[end(1, ProtocolStatus::OVERLOADED)]), b.t0);
    assert_eq!(b.log(), ["0 error refused FCGI_OVERLOADED (returned)", "0 released"]);
    assert!(b.m.is_closed());
}

#[test]
fn without_keep_conn_the_connection_closes_after_end_request() {
    let mut b = Bench::new(ConnectionConfig::default());
    b.start(b"");
    let sent = b.sent();
    assert!(matches!(sent[0].body, RecordBody::BeginRequest(begin) if !begin.keep_conn));
    b.feed(&wire(&[stdout(1, "\r\n"), complete(1)]), b.t0);
    assert!(b.m.is_closed());
    assert!(matches!(b.m.close_reason(), Some(Ok(()))));
}

#[test]
fn eof_after_end_request_is_a_clean_close_noticed_for_the_pool() {
    // uWSGI closes after every END_REQUEST although KEEP_CONN was set.
    let mut b = Bench::new(config());
    b.start(b"");
    b.sent();
    b.feed(&wire(&[stdout(1, "\r\n"), complete(1)]), b.t0);
    b.m.handle_eof(b.t0);
    assert!(matches!(b.m.close_reason(), Some(Ok(()))));
    assert!(b.m.peer_closed_idle());
}

#[test]
fn what_arrived_before_eof_is_delivered_before_the_failure() {
    let mut b = Bench::new(config());
    b.start(b"");
    b.sent();
    b.m.recv_buffer().extend_from_slice(&wire(&[stdout(1, "\r\npartial")]));
    b.m.handle_eof(b.t0);
    assert_eq!(b.log(), ["0 head 200", "0 body partial", "0 error closed sent_nothing=false", "0 released"]);
}

#[test]
fn eof_inside_a_record_is_a_protocol_error() {
    let mut b = Bench::new(config());
    b.start(b"");
    b.sent();
    let bytes = wire(&[stdout(1, "\r\nabc")]);
    b.feed(&bytes[..bytes.len() - 1], b.t0);
    b.m.handle_eof(b.t0);
    assert_eq!(b.log(), ["0 error protocol", "0 released"]);
}

#[test]
fn a_request_arriving_when_the_server_already_closed_was_not_sent() {
    let mut b = Bench::new(config());
    b.m.handle_eof(b.t0);
    b.start(b"x");
    assert_eq!(b.log(), ["0 error closed sent_nothing=true (returned)", "0 released"]);
}

#[test]
fn malformed_bytes_fail_every_request() {
    let mut b = Bench::new(mpx_config());
    b.start(b"");
    b.start(b"");
    b.sent();
    b.feed(b"HTTP/1.1 400 Bad Request\r\n", b.t0);
    assert_eq!(b.log(), ["0 error protocol", "0 released", "1 error protocol", "1 released"]);
    assert!(matches!(b.m.close_reason(), Some(Err(Error::Protocol(ProtocolViolation::Malformed(_))))));
}

#[test]
fn records_only_a_client_sends_fail_the_connection() {
    let mut b = Bench::new(config());
    b.start(b"");
    b.sent();
    b.feed(&wire(&[Record::begin_request(RequestId(1), fcgi_proto::Role::RESPONDER, true)]), b.t0);
    assert!(matches!(b.m.close_reason(), Some(Err(Error::Protocol(ProtocolViolation::ClientRecord(_))))));
}

#[test]
fn records_for_unknown_ids_are_dropped_within_a_bound() {
    let mut b = Bench::new(config().stray_limit(100));
    b.start(b"");
    b.sent();
    b.feed(&wire(&[stdout(9, "stray"), complete(9)]), b.t0);
    assert!(!b.m.is_closed());
    b.feed(&wire(&[stdout(9, &"x".repeat(100))]), b.t0);
    assert!(matches!(
        b.m.close_reason(),
        Some(Err(Error::Protocol(ProtocolViolation::TooManyStrayRecords { .. })))
    ));
}

#[test]
fn records_held_from_before_an_id_was_given_out_do_not_reach_its_request() {
    // Found by the random exchanges: while request 1's full buffer holds reading up, the
    // server's stray records for id 2 wait in the receive buffer; the request that gets id 2
    // afterwards must not take them as its answer.
    let mut b = Bench::new(mpx_config().response_buffer(4));
    let first = b.start(b"");
    b.sent();
    b.feed(&wire(&[stdout(1, "\r\nfull"), stdout(2, "X-Stale: 1\r\n\r\nstale"), complete(2)]), b.t0);
    assert_eq!(b.log(), ["0 head 200", "0 body full"]);
    b.start(b"");
    assert_eq!(b.sent()[0].request_id.0, 2, "the second request gets id 2");
    b.m.release(first, 4);
    b.m.handle_input(b.t0);
    assert_eq!(b.log(), Vec::<String>::new(), "nothing of the stale answer is delivered");
    b.feed(&wire(&[stdout(2, "\r\nnew"), complete(2)]), b.t0);
    assert_eq!(b.log(), ["1 head 200", "1 body new", "1 end 0", "1 released"]);
}

#[test]
fn a_body_must_match_its_declared_length() {
    let mut b = Bench::new(config());
    let params = [("A", "1")];
    let head = RequestHead::new(params, 5, &b.m.config).unwrap();
    let key = b.m.start(head, 5, StartOptions::default(), b.t0);
    b.sent();
    assert!(b.m.wants_body(key));
    b.m.send_body(key, Bytes::from_static(b"abc"), b.t0);
    b.m.finish_body(key, b.t0);
    assert_eq!(b.log(), ["0 error body", "0 released"]);
    let head = RequestHead::new(params, 2, &b.m.config).unwrap();
    let mut b = Bench::new(config());
    let key = b.m.start(head, 2, StartOptions::default(), b.t0);
    b.sent();
    b.m.send_body(key, Bytes::from_static(b"abc"), b.t0);
    assert_eq!(b.log(), ["0 error body", "0 released"]);
}

#[test]
fn a_large_body_is_split_into_records_and_writers_take_turns() {
    let mut b = Bench::new(mpx_config());
    static BIG: [u8; 150_000] = [7; 150_000];
    b.start(&BIG);
    b.start(&BIG);
    let mut wire = BytesMut::new();
    let mut order = Vec::new();
    loop {
        wire.clear();
        b.m.poll_transmit(&mut wire, b.t0);
        if wire.is_empty() {
            break;
        }
        for record in decode_all(&mut wire) {
            if record.record_type() == RecordType::STDIN {
                order.push(record.request_id.0);
                assert!(record.body.stream_data().unwrap().len() <= 65535);
            }
        }
    }
    // Three STDIN records each, interleaved, then the empty ones.
    assert_eq!(order, [1, 2, 1, 2, 1, 2, 1, 2]);
}

#[test]
fn go_net_http_fcgi_answers_abort_at_once_and_sends_more_later() {
    // Go answers GET_VALUES with MPXS_CONNS=1 and an extra empty GET_VALUES_RESULT, ends an
    // aborted request at once and may still send STDOUT and a second END_REQUEST for it.
    let mut b = Bench::new(config().multiplexing(Multiplexing::Auto));
    assert_eq!(kinds(&b.sent()), ["GET_VALUES#0"]);
    let first = b.start(b"");
    assert!(b.sent().is_empty(), "requests wait for the answer");
    let answer = Record::new(
        RequestId::MANAGEMENT,
        RecordBody::GetValuesResult(vec![NameValuePair::new("FCGI_MPXS_CONNS", "1")]),
    );
    let empty = Record::new(RequestId::MANAGEMENT, RecordBody::GetValuesResult(Vec::new()));
    b.feed(&wire(&[answer, empty]), b.t0);
    assert!(b.m.limit() > 1);
    b.start(b"");
    assert_eq!(b.sent().len(), 8);
    b.m.cancel(first, b.t0);
    b.sent();
    b.feed(&wire(&[complete(1), stdout(1, "late"), complete(1), stdout(2, "\r\nfine"), complete(2)]), b.t0);
    assert_eq!(b.log(), ["0 released", "1 head 200", "1 body fine", "1 end 0", "1 released"]);
    assert!(!b.m.is_closed());
}

#[test]
fn no_answer_to_get_values_means_one_at_a_time() {
    // fcgiwrap answers only during a request; uWSGI never.
    let mut b =
        Bench::new(config().multiplexing(Multiplexing::Auto).get_values_timeout(Duration::from_millis(500)));
    b.sent();
    assert_eq!(b.m.next_deadline(), Some(b.at(500)));
    b.m.handle_timeout(b.at(500));
    assert!(!b.m.is_negotiating());
    assert_eq!(b.m.limit(), 1);
    assert_eq!(b.m.server_values(), None);
}

#[test]
fn an_empty_get_values_answer_is_unknown_but_force_still_multiplexes() {
    // flup answers an empty result even though it multiplexes.
    let mut b = Bench::new(config().multiplexing(Multiplexing::Auto));
    b.sent();
    b.feed(&wire(&[Record::new(RequestId::MANAGEMENT, RecordBody::GetValuesResult(Vec::new()))]), b.t0);
    assert_eq!((b.m.limit(), b.m.server_values()), (1, None));
    let b = Bench::new(mpx_config());
    assert_eq!(b.m.limit(), 8);
}

#[test]
fn idle_and_lifetime_deadlines() {
    let mut b = Bench::new(config());
    b.m = ConnectionMachine::new(config(), b.t0).with_idle_timeout(Some(Duration::from_secs(5)));
    assert_eq!(b.m.next_deadline(), Some(b.at(5000)));
    b.m.handle_timeout(b.at(5000));
    assert!(matches!(b.m.close_reason(), Some(Ok(()))));

    let mut b = Bench::new(config());
    b.m = ConnectionMachine::new(config(), b.t0).with_max_lifetime(Some(Duration::from_secs(20)), b.t0);
    b.start(b"");
    b.sent();
    b.m.handle_timeout(b.at(20_000));
    assert!(!b.m.accepts_requests() && !b.m.is_closed(), "retiring, the request still runs");
    b.feed(&wire(&[stdout(1, "\r\n"), complete(1)]), b.at(20_001));
    assert!(b.m.is_closed());
}

/// One step of a random exchange.
#[derive(Clone, Debug)]
enum Step {
    Start,
    Cancel(usize),
    Release(usize),
    Stdout(u16, usize),
    Stderr(u16),
    End(u16, u8),
    Stray(u16),
    Time(u64),
    Eof,
    /// A failed write; whether any byte of the last transmit went out.
    WriteError(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Start),
        1 => (0..6usize).prop_map(Step::Cancel),
        2 => (0..6usize).prop_map(Step::Release),
        4 => (1..5u16, 0..300usize).prop_map(|(id, n)| Step::Stdout(id, n)),
        1 => (1..5u16).prop_map(Step::Stderr),
        2 => (1..5u16, 0..4u8).prop_map(|(id, s)| Step::End(id, s)),
        1 => (5..9u16).prop_map(Step::Stray),
        2 => (0..3000u64).prop_map(Step::Time),
        1 => Just(Step::Eof),
        1 => any::<bool>().prop_map(Step::WriteError),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    /// Whatever the server sends and whenever the application cancels: every request gets at
    /// most one End and exactly one Released by the time the machine closes, nothing is
    /// reported for a request after its Released, no id is used by two live requests, body
    /// bytes go only to the request whose id they came with, and it never panics.
    #[test]
    fn random_exchanges_keep_the_invariants(multiplex in any::<bool>(), steps in prop::collection::vec(step(), 1..60)) {
        let config = if multiplex { mpx_config().response_buffer(256) } else { config().response_buffer(256) };
        let mut b = Bench::new(config);
        let mut keys: Vec<RequestKey> = Vec::new();
        let mut ended = std::collections::HashSet::new();
        let mut released = std::collections::HashSet::new();
        let mut now = b.t0;
        let mut wire_out = BytesMut::new();
        // id → key, from what the machine wrote.
        let mut by_id: std::collections::HashMap<u16, RequestKey> = std::collections::HashMap::new();
        // Ids whose answer has begun with a head since they were last given out.
        let mut heads_sent = std::collections::HashSet::new();
        for step in steps {
            match step {
                Step::Start => {
                    let head = RequestHead::new([("A", "1")], 0, &b.m.config).unwrap();
                    let key = b.m.start(head, 0, StartOptions::default(), now);
                    b.m.finish_body(key, now);
                    keys.push(key);
                }
                Step::Cancel(i) => if let Some(&key) = keys.get(i) { b.m.cancel(key, now) },
                Step::Release(i) => if let Some(&key) = keys.get(i) { b.m.release(key, 100) },
                // The first answer on an id starts with a head naming the id, and every body byte
                // is the id's letter, so misrouted bytes show.
                Step::Stdout(id, n) => {
                    let head = if heads_sent.insert(id) { format!("X-Id: {id}\r\n\r\n") } else { String::new() };
                    b.m.receive(&wire(&[stdout(id, &format!("{head}{}", id_letter(id).to_string().repeat(n)))]), now)
                }
                Step::Stderr(id) => b.m.receive(&wire(&[stderr(id, "e")]), now),
                Step::End(id, s) => b.m.receive(&wire(&[end(id, ProtocolStatus(s))]), now),
                Step::Stray(id) => b.m.receive(&wire(&[stdout(id, &id_letter(id).to_string())]), now),
                Step::Time(ms) => { now += Duration::from_millis(ms); b.m.handle_timeout(now) }
                Step::Eof => b.m.handle_eof(now),
                Step::WriteError(transmitted_any) => {
                    b.m.handle_write_error(std::io::ErrorKind::BrokenPipe.into(), transmitted_any, now)
                }
            }
            wire_out.clear();
            b.m.poll_transmit(&mut wire_out, now);
            for record in decode_all(&mut wire_out) {
                if let RecordBody::BeginRequest(_) = record.body {
                    // Which key got this id: the oldest started request without an id yet.
                    let live_ids: Vec<RequestKey> = by_id.values().copied().collect();
                    let key = keys.iter().copied().find(|k| !live_ids.contains(k) && !released.contains(k) && !ended.contains(k));
                    prop_assert!(!by_id.contains_key(&record.request_id.0), "id {} reused while in use", record.request_id.0);
                    if let Some(key) = key { by_id.insert(record.request_id.0, key); }
                    heads_sent.remove(&record.request_id.0);
                }
            }
            while let Some(event) = b.m.poll_event() {
                match &event {
                    Event::End { key, .. } => {
                        prop_assert!(!released.contains(key), "End after Released");
                        prop_assert!(ended.insert(*key), "two Ends for {key:?}");
                    }
                    Event::Released { key } => {
                        prop_assert!(released.insert(*key), "two Released for {key:?}");
                        if let Some(id) = id_of(&by_id, *key) {
                            heads_sent.remove(&id);
                        }
                        by_id.retain(|_, k| k != key);
                    }
                    Event::Body { key, data } => {
                        prop_assert!(!released.contains(key) && !ended.contains(key), "data after the end");
                        let id = id_of(&by_id, *key);
                        prop_assert!(data.iter().all(|&byte| Some(byte as char) == id.map(id_letter)), "body bytes of another id: {key:?} has id {id:?}, got {:?}", String::from_utf8_lossy(data));
                    }
                    Event::Stderr { key, .. } => {
                        prop_assert!(!released.contains(key) && !ended.contains(key), "data after the end");
                    }
                    Event::Head { key, head } => {
                        prop_assert!(!released.contains(key));
                        let named = head.headers.get("x-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
                        prop_assert_eq!(named, id_of(&by_id, *key).map(|id| id.to_string()), "a head of another id");
                    }
                }
            }
            prop_assert!(b.m.in_flight() <= keys.len());
            if b.m.is_closed() {
                prop_assert_eq!(released.len(), keys.len(), "a closed machine released everything");
            }
        }
    }
}

fn id_letter(id: u16) -> char {
    char::from(b'a' + (id % 26) as u8)
}

/// The request id the machine gave `key`, from what it wrote.
fn id_of(by_id: &std::collections::HashMap<u16, RequestKey>, key: RequestKey) -> Option<u16> {
    by_id.iter().find(|(_, k)| **k == key).map(|(id, _)| *id)
}

fn param_names(record: &Record) -> Vec<String> {
    let RecordBody::Params(data) = &record.body else { panic!("{record:?}") };
    fcgi_proto::decode_pairs(data)
        .unwrap()
        .iter()
        .map(|p| String::from_utf8_lossy(&p.name).into_owned())
        .collect()
}

#[test]
fn a_filter_sends_its_data_after_the_whole_body() {
    let mut b = Bench::new(config());
    let params = [("SCRIPT_NAME", "/f"), ("FCGI_DATA_LAST_MOD", "1700000000")];
    let head = RequestHead::for_role(Role::FILTER, params, 2, Some(5), &b.m.config).unwrap();
    let key = b.m.start(head, 2, StartOptions::default().data_len(5), b.t0);
    let mut sent = b.sent();
    assert!(b.m.wants_body(key) && !b.m.wants_data(key), "the data waits for the body");
    b.m.send_body(key, Bytes::from_static(b"ab"), b.t0);
    b.m.finish_body(key, b.t0);
    assert!(b.m.wants_data(key));
    b.m.send_data(key, Bytes::from_static(b"hello"), b.t0);
    b.m.finish_data(key, b.t0);
    sent.extend(b.sent());
    assert_eq!(
        kinds(&sent),
        [
            "BEGIN_REQUEST#1",
            "PARAMS#1",
            "PARAMS/empty#1",
            "STDIN#1",
            "STDIN/empty#1",
            "DATA#1",
            "DATA/empty#1"
        ]
    );
    assert!(matches!(sent[0].body, RecordBody::BeginRequest(begin) if begin.role == Role::FILTER));
    let names = param_names(&sent[1]);
    assert!(
        names.contains(&"FCGI_DATA_LENGTH".to_string()) && names.contains(&"CONTENT_LENGTH".to_string()),
        "{names:?}"
    );
    b.feed(&wire(&[stdout(1, "\r\nfiltered"), complete(1)]), b.t0);
    assert_eq!(b.log(), ["0 head 200", "0 body filtered", "0 end 0", "0 released"]);
}

#[test]
fn filter_data_must_match_its_length() {
    let mut b = Bench::new(config());
    let head = RequestHead::for_role(Role::FILTER, [("A", "1")], 0, Some(3), &b.m.config).unwrap();
    let key = b.m.start(head, 0, StartOptions::default().data_len(3), b.t0);
    b.m.finish_body(key, b.t0);
    b.m.send_data(key, Bytes::from_static(b"ab"), b.t0);
    b.m.finish_data(key, b.t0);
    assert_eq!(b.log(), ["0 error body", "0 released"]);
    let err =
        RequestHead::for_role(Role::FILTER, [("FCGI_DATA_LENGTH", "9")], 0, Some(3), &config()).unwrap_err();
    assert!(err.to_string().contains("FCGI_DATA_LENGTH"), "{err}");
}

#[test]
fn an_authorizer_leaves_out_what_the_specification_says_and_sends_no_body() {
    let mut b = Bench::new(config());
    let params = [
        ("SCRIPT_NAME", "/x"),
        ("PATH_INFO", "/y"),
        ("PATH_TRANSLATED", "/z"),
        ("CONTENT_LENGTH", "0"),
        ("REMOTE_USER", "u"),
    ];
    let head = RequestHead::for_role(Role::AUTHORIZER, params, 0, None, &b.m.config).unwrap();
    let key = b.m.start(head, 0, StartOptions::default(), b.t0);
    b.m.finish_body(key, b.t0);
    let sent = b.sent();
    assert!(matches!(sent[0].body, RecordBody::BeginRequest(begin) if begin.role == Role::AUTHORIZER));
    assert_eq!(param_names(&sent[1]), ["REMOTE_USER"]);
    assert_eq!(kinds(&sent)[3], "STDIN/empty#1");
    assert!(RequestHead::for_role(Role::AUTHORIZER, [("A", "1")], 4, None, &config()).is_err(), "no body");
}

#[test]
fn input_can_be_dispatched_a_few_records_at_a_time() {
    let mut b = Bench::new(mpx_config());
    for _ in 0..3 {
        b.start(b"");
    }
    b.sent();
    b.m.recv_buffer().extend_from_slice(&wire(&[
        stdout(1, "\r\n"),
        complete(1),
        stdout(2, "\r\n"),
        complete(2),
        stdout(3, "\r\n"),
        complete(3),
    ]));
    assert!(b.m.handle_input_limited(b.t0, 2), "records are left");
    assert!(!b.m.wants_read() && b.m.has_input_pending());
    assert!(!b.m.handle_input_limited(b.t0, 10));
    assert!(b.m.wants_read() && !b.m.has_input_pending());
    assert_eq!(b.log().iter().filter(|l| l.ends_with("end 0")).count(), 3);
}
