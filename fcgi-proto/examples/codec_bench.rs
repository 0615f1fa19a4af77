//! Codec throughput benchmark, run by `cargo xtask bench codec` (release build).
//!
//! Measures, on synthetic streams shaped like what php-fpm sends and what a web server sends
//! to it, how fast the decoder and encoder go next to a plain `memcpy` of the same bytes
//! (the ceiling for any codec that hands out owned buffers). Prints one tab-separated line
//! per case: `case  bytes  records  median_seconds  runs`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fcgi_proto::{
    Decoder, Padding, ParamsOptions, ProtocolStatus, Record, RecordType, RequestId, Role,
    encode_end_of_stream, encode_params, encode_record, encode_stream,
};

/// Bytes handed to the decoder per call, like one socket read.
const READ_SIZE: usize = 64 * 1024;
const RUNS: usize = 15;

fn main() {
    let big = big_response(64 * 1024 * 1024);
    let small = many_small_responses(20_000);
    report("decode: 64 MiB response (php-fpm record sizes)", big.len(), RUNS, || decode(&big));
    report("decode: 20k hello-world responses", small.len(), RUNS, || decode(&small));
    report("memcpy: 64 MiB response (ceiling)", big.len(), RUNS, || copy(&big));
    let body = vec![b'y'; 64 * 1024 * 1024];
    let mut dst = BytesMut::new();
    report("encode: 64 MiB STDIN body", body.len(), RUNS, || encode_body(&body, &mut dst));
    let (request_bytes, _) = encode_requests(1);
    report("encode: 20k requests (nginx-like params)", request_bytes * 20_000, RUNS, || {
        encode_requests(20_000).1
    });
}

/// A response as php-fpm sends a big one: a small padded STDOUT with the headers, 65528-byte
/// unpadded records, a STDERR line, END_REQUEST with dirty reserved bytes.
fn big_response(body_len: usize) -> Vec<u8> {
    let id = RequestId(1);
    let mut wire = BytesMut::new();
    encode_stream(
        &mut wire,
        RecordType::STDOUT,
        id,
        b"Content-type: application/octet-stream\r\n\r\n",
        Padding::Align8,
    );
    encode_stream(&mut wire, RecordType::STDERR, id, b"PHP Notice: something", Padding::Align8);
    let body = vec![b'x'; body_len];
    encode_stream(&mut wire, RecordType::STDOUT, id, &body, Padding::Align8);
    encode_record(&mut wire, &Record::end_request(id, 0, ProtocolStatus::REQUEST_COMPLETE), Padding::None)
        .expect("fixed body");
    wire.to_vec()
}

fn many_small_responses(count: usize) -> Vec<u8> {
    let mut wire = BytesMut::new();
    for i in 0..count {
        let id = RequestId((i % 8 + 1) as u16);
        encode_stream(
            &mut wire,
            RecordType::STDOUT,
            id,
            b"X-Powered-By: PHP/8.2.36\r\nContent-type: text/html; charset=UTF-8\r\n\r\nHello, world!",
            Padding::Align8,
        );
        encode_record(
            &mut wire,
            &Record::end_request(id, 0, ProtocolStatus::REQUEST_COMPLETE),
            Padding::None,
        )
        .expect("fixed body");
    }
    wire.to_vec()
}

fn decode(wire: &[u8]) -> usize {
    let mut decoder = Decoder::new();
    let mut src = BytesMut::with_capacity(2 * READ_SIZE);
    let mut records = 0;
    for chunk in wire.chunks(READ_SIZE) {
        src.extend_from_slice(chunk);
        while let Some(record) = decoder.decode(&mut src).expect("valid stream") {
            black_box(&record);
            records += 1;
        }
    }
    decoder.finish(&src).expect("whole records");
    records
}

fn copy(wire: &[u8]) -> usize {
    let mut dst = BytesMut::with_capacity(2 * READ_SIZE);
    for chunk in wire.chunks(READ_SIZE) {
        dst.extend_from_slice(chunk);
        black_box(dst.split().freeze());
    }
    wire.len() / READ_SIZE
}

/// Encodes into a reused buffer, as a connection's write buffer is reused.
fn encode_body(body: &[u8], dst: &mut BytesMut) -> usize {
    dst.clear();
    encode_stream(dst, RecordType::STDIN, RequestId(1), body, Padding::None);
    black_box(&dst);
    body.len().div_ceil(fcgi_proto::MAX_CONTENT_LEN)
}

/// The params nginx's stock fastcgi_params plus a few headers produce for a GET.
const PARAMS: &[(&str, &str)] = &[
    ("QUERY_STRING", "page=2&sort=desc"),
    ("REQUEST_METHOD", "GET"),
    ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", ""),
    ("SCRIPT_NAME", "/index.php"),
    ("SCRIPT_FILENAME", "/var/www/app/public/index.php"),
    ("REQUEST_URI", "/index.php?page=2&sort=desc"),
    ("DOCUMENT_URI", "/index.php"),
    ("DOCUMENT_ROOT", "/var/www/app/public"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "https"),
    ("HTTPS", "on"),
    ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "nginx/1.22.1"),
    ("REMOTE_ADDR", "203.0.113.7"),
    ("REMOTE_PORT", "53122"),
    ("SERVER_ADDR", "10.0.0.2"),
    ("SERVER_PORT", "443"),
    ("SERVER_NAME", "app.example.com"),
    ("REDIRECT_STATUS", "200"),
    ("HTTP_HOST", "app.example.com"),
    (
        "HTTP_USER_AGENT",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    ),
    ("HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"),
    ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br"),
    ("HTTP_COOKIE", "session=0123456789abcdef0123456789abcdef; theme=dark"),
];

fn encode_requests(count: usize) -> (usize, usize) {
    let mut dst = BytesMut::with_capacity(2048);
    let mut total = 0;
    for i in 0..count {
        dst.clear();
        let id = RequestId((i % 8 + 1) as u16);
        encode_record(&mut dst, &Record::begin_request(id, Role::RESPONDER, true), Padding::None)
            .expect("fixed body");
        encode_params(&mut dst, id, PARAMS.iter().copied(), ParamsOptions::default()).expect("small params");
        encode_end_of_stream(&mut dst, RecordType::STDIN, id);
        total += dst.len();
        black_box(&dst);
    }
    (total / count.max(1), count)
}

fn report(case: &str, bytes: usize, runs: usize, mut work: impl FnMut() -> usize) {
    work();
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut records = 0;
    for _ in 0..runs {
        let start = Instant::now();
        records = work();
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[runs / 2].as_secs_f64();
    #[allow(clippy::print_stdout)]
    {
        println!("{case}\t{bytes}\t{records}\t{median:.6}\t{runs}");
    }
}
