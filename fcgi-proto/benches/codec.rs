//! Codec throughput, `cargo bench -p fcgi-proto` (divan), on streams shaped like what php-fpm
//! sends and what a web server sends to it. Decoding is fed [`READ_SIZE`] bytes at a time, as
//! from a socket read. `memcpy` moves the same 64 MiB through the same buffer: the ceiling for
//! any codec that hands out owned buffers, and the peer figure. Encoding reuses its buffer, as a
//! connection reuses its write buffer.

use std::hint::black_box;

use bytes::BytesMut;
use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use fcgi_proto::{
    Decoder, Padding, ParamsOptions, ProtocolStatus, Record, RecordType, RequestId, Role,
    encode_end_of_stream, encode_params, encode_record, encode_stream,
};

/// Bytes handed to the decoder per call, like one socket read.
const READ_SIZE: usize = 64 * 1024;
const BIG: usize = 64 * 1024 * 1024;

fn main() {
    divan::main();
}

/// A 64 MiB response with php-fpm's record sizes.
#[divan::bench(sample_count = 15)]
fn decode_64_mib_response(bencher: Bencher<'_, '_>) {
    let wire = big_response(BIG);
    bencher.counter(BytesCount::of_slice(&wire)).bench(|| decode(&wire));
}

/// 20,000 hello-world responses: small padded STDOUT records, each followed by END_REQUEST.
#[divan::bench(sample_count = 15)]
fn decode_20k_small_responses(bencher: Bencher<'_, '_>) {
    let wire = many_small_responses(20_000);
    bencher.counter(ItemsCount::new(40_000usize)).bench(|| decode(&wire));
}

/// The ceiling: the same 64 MiB copied through the same 64 KiB buffer.
#[divan::bench(sample_count = 15)]
fn memcpy_64_mib_response(bencher: Bencher<'_, '_>) {
    let wire = big_response(BIG);
    bencher.counter(BytesCount::of_slice(&wire)).bench(|| {
        let mut dst = BytesMut::with_capacity(2 * READ_SIZE);
        for chunk in wire.chunks(READ_SIZE) {
            dst.extend_from_slice(chunk);
            black_box(dst.split().freeze());
        }
    });
}

/// A 64 MiB STDIN body split into records.
#[divan::bench(sample_count = 15)]
fn encode_64_mib_stdin(bencher: Bencher<'_, '_>) {
    let body = vec![b'y'; BIG];
    let mut dst = BytesMut::new();
    bencher.counter(BytesCount::of_slice(&body)).bench_local(|| {
        dst.clear();
        encode_stream(&mut dst, RecordType::STDIN, RequestId(1), &body, Padding::None);
        black_box(&dst);
    });
}

/// One request: BEGIN_REQUEST, 26 nginx-like parameters, empty STDIN.
#[divan::bench]
fn encode_request(bencher: Bencher<'_, '_>) {
    let mut dst = BytesMut::with_capacity(2048);
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        dst.clear();
        let id = RequestId(1);
        encode_record(&mut dst, &Record::begin_request(id, Role::RESPONDER, true), Padding::None)
            .expect("fixed body");
        encode_params(&mut dst, id, PARAMS.iter().copied(), ParamsOptions::default()).expect("small params");
        encode_end_of_stream(&mut dst, RecordType::STDIN, id);
        black_box(&dst);
    });
}

/// A response as php-fpm sends a big one: a small padded STDOUT with the headers, 65528-byte
/// unpadded records, a STDERR line, END_REQUEST with dirty reserved bytes.
fn big_response(body_len: usize) -> Vec<u8> {
    let (id, mut wire) = (RequestId(1), BytesMut::new());
    let head: &[u8] = b"Content-type: application/octet-stream\r\n\r\n";
    encode_stream(&mut wire, RecordType::STDOUT, id, head, Padding::Align8);
    encode_stream(&mut wire, RecordType::STDERR, id, b"PHP Notice: something", Padding::Align8);
    encode_stream(&mut wire, RecordType::STDOUT, id, &vec![b'x'; body_len], Padding::Align8);
    end_request(&mut wire, id);
    wire.to_vec()
}

fn end_request(wire: &mut BytesMut, id: RequestId) {
    let record = Record::end_request(id, 0, ProtocolStatus::REQUEST_COMPLETE);
    encode_record(wire, &record, Padding::None).expect("fixed body");
}

/// `count` hello-world responses on request ids 1 to 8.
fn many_small_responses(count: usize) -> Vec<u8> {
    const HELLO: &[u8] =
        b"X-Powered-By: PHP/8.2.36\r\nContent-type: text/html; charset=UTF-8\r\n\r\nHello, world!";
    let mut wire = BytesMut::new();
    for i in 0..count {
        let id = RequestId((i % 8 + 1) as u16);
        encode_stream(&mut wire, RecordType::STDOUT, id, HELLO, Padding::Align8);
        end_request(&mut wire, id);
    }
    wire.to_vec()
}

/// Decodes `wire` fed [`READ_SIZE`] bytes at a time; returns the record count.
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
