//! `cargo xtask demo`: a few requests to the php-fpm the demo started, every record shown.
//!
//! Until the `fcgi` command-line tool lands this shows the codec at work through the test
//! client: GET_VALUES, php-fpm's ping page, and a PHP script, with each record sent and
//! received printed as `direction type id content+padding preview`.

#![allow(clippy::print_stdout)]

use std::error::Error;

use bytes::BytesMut;
use fcgi_proto::{Decoder, Padding, Record, RecordBody, RequestId, encode_record};
use fcgi_tests::backends::php_fpm;
use fcgi_tests::client::{self, Target};

fn main() -> Result<(), Box<dyn Error>> {
    let fpm = php_fpm();
    let target = Target::Unix(fpm.socket.clone());
    println!("php-fpm {} workers, unix socket {}, tcp {}\n", fpm.workers, fpm.socket.display(), fpm.tcp);

    println!("== FCGI_GET_VALUES (what does the server say about multiplexing?)");
    let mut query = BytesMut::new();
    let get_values = Record::new(RequestId::MANAGEMENT, RecordBody::GetValues(fcgi_proto::standard_query()));
    encode_record(&mut query, &get_values, Padding::None)?;
    show_exchange(&target, &query, |r| matches!(r.body, RecordBody::GetValuesResult(_)))?;

    println!("\n== GET /ping (php-fpm's ping page: SCRIPT_NAME and any SCRIPT_FILENAME)");
    let ping = client::encode_request(
        &[("SCRIPT_NAME", "/ping"), ("SCRIPT_FILENAME", "/ping"), ("REQUEST_METHOD", "GET")],
        b"",
    )?;
    show_exchange(&target, &ping, |r| matches!(r.body, RecordBody::EndRequest(_)))?;

    println!("\n== GET /hello.php");
    let script = fpm.script_path("hello.php").display().to_string();
    let hello = client::encode_request(
        &[("SCRIPT_NAME", "/hello.php"), ("SCRIPT_FILENAME", script.as_str()), ("REQUEST_METHOD", "GET")],
        b"",
    )?;
    show_exchange(&target, &hello, |r| matches!(r.body, RecordBody::EndRequest(_)))?;
    Ok(())
}

fn show_exchange(target: &Target, wire: &[u8], last: impl Fn(&Record) -> bool) -> Result<(), Box<dyn Error>> {
    let mut sent = BytesMut::from(wire);
    let mut decoder = Decoder::new();
    while let Some(frame) = decoder.decode_frame(&mut sent)? {
        show("->", &frame);
    }
    let mut stream = target.connect()?;
    std::io::Write::write_all(&mut stream, wire)?;
    let mut input = BytesMut::new();
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(frame) = decoder.decode_frame(&mut input)? {
            show("<-", &frame);
            if last(&frame.record) {
                return Ok(());
            }
        }
        let n = std::io::Read::read(&mut stream, &mut buf)?;
        if n == 0 {
            decoder.finish(&input)?;
            println!("<- (connection closed)");
            return Ok(());
        }
        input.extend_from_slice(&buf[..n]);
    }
}

fn show(direction: &str, frame: &fcgi_proto::Frame) {
    let h = frame.header;
    let detail = match &frame.record.body {
        RecordBody::BeginRequest(b) => format!("role={} keep_conn={}", b.role, b.keep_conn),
        RecordBody::EndRequest(e) => format!("app_status={} {}", e.app_status, e.protocol_status),
        RecordBody::GetValues(p) | RecordBody::GetValuesResult(p) => format!("{p:?}"),
        RecordBody::Params(data) if !data.is_empty() => match fcgi_proto::decode_pairs(data) {
            Ok(pairs) => format!("{pairs:?}"),
            Err(err) => format!("({err})"),
        },
        body => body.stream_data().map(|d| preview(d)).unwrap_or_default(),
    };
    println!(
        "{direction} {:<22} id={:<3} len={:<5} pad={:<3} {detail}",
        h.record_type.to_string(),
        h.request_id,
        h.content_length,
        h.padding_length
    );
}

fn preview(data: &[u8]) -> String {
    const MAX: usize = 72;
    let text: String = String::from_utf8_lossy(&data[..data.len().min(MAX)]).escape_debug().collect();
    if data.len() > MAX { format!("\"{text}\"…") } else { format!("\"{text}\"") }
}
