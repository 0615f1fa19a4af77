//! `fcgi dump`: every record of a live request both ways (text and `--json`), secrets masked;
//! and `--input`: decoding a capture file or standard input, with the byte offset of a
//! malformed record.

use crate::common::*;
use bytes::BytesMut;
use fcgi_proto::{Padding, ParamsOptions, ProtocolStatus, Record, RecordType, RequestId, Role};

const SECRET: &str = "Bearer hunter2-token";

#[test]
fn a_live_request_shows_every_record_both_ways() {
    let output = php_get(&["dump", "/hello.php", "-H", &format!("Authorization: {SECRET}")]);
    assert_code(&output, 0);
    assert_eq!(stderr(&output), "");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 6, "{text}");
    assert!(lines[0].starts_with("-> FCGI_BEGIN_REQUEST ") && lines[0].contains("role=RESPONDER"), "{text}");
    let params = lines.iter().find(|l| l.starts_with("-> FCGI_PARAMS") && l.contains("SCRIPT_NAME")).unwrap();
    assert!(params.contains("SCRIPT_NAME=/hello.php"), "PARAMS pairs are decoded: {params}");
    assert!(params.contains("REQUEST_METHOD=GET"), "{params}");
    assert!(params.contains(&format!("HTTP_AUTHORIZATION=<masked, {} bytes>", SECRET.len())), "{params}");
    assert!(!text.contains("hunter2"), "secret leaked: {text}");
    assert!(
        lines.iter().any(|l| l.starts_with("-> FCGI_PARAMS") && l.ends_with("(end of stream)")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.starts_with("-> FCGI_STDIN") && l.ends_with("(end of stream)")), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("<- FCGI_STDOUT") && l.contains("Hello, world!")), "{text}");
    let last = lines.last().unwrap();
    assert!(last.starts_with("<- FCGI_END_REQUEST") && last.contains("FCGI_REQUEST_COMPLETE"), "{text}");
    assert!(text.contains("id=1 "), "{text}");
}

#[test]
fn show_secrets_shows_them() {
    let output =
        php_get(&["dump", "/hello.php", "--show-secrets", "-H", &format!("Authorization: {SECRET}")]);
    assert_code(&output, 0);
    assert!(stdout(&output).contains(&format!("HTTP_AUTHORIZATION={SECRET}")), "{}", stdout(&output));
}

#[test]
fn a_live_request_as_json_lines() {
    let output = php_get(&["dump", "/hello.php", "--json", "-H", &format!("Authorization: {SECRET}")]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(!text.contains("hunter2"), "secret leaked: {text}");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("invalid JSON line ({err}): {line}"))
        })
        .collect();
    assert!(records.len() >= 6, "{text}");
    for record in &records {
        assert!(record["direction"] == "sent" || record["direction"] == "received", "{record}");
        assert!(record["type"].as_str().unwrap().starts_with("FCGI_"), "{record}");
        assert_eq!(record["request_id"], 1, "{record}");
        for key in ["type_code", "content_length", "padding_length"] {
            assert!(record[key].is_u64(), "{key}: {record}");
        }
        assert!(record["time_ms"].is_f64() || record["time_ms"].is_u64(), "{record}");
        assert!(record.get("offset").is_none(), "offsets are for captures: {record}");
    }
    let first = &records[0];
    assert_eq!(first["type"], "FCGI_BEGIN_REQUEST");
    assert_eq!(first["type_code"], 1);
    assert_eq!(first["direction"], "sent");
    assert_eq!(first["role"], "RESPONDER");
    assert_eq!(first["keep_conn"], false);
    let params = records.iter().find(|r| r["type"] == "FCGI_PARAMS" && r["pairs"].is_array()).unwrap();
    let pairs = params["pairs"].as_array().unwrap();
    assert!(pairs.iter().any(|p| p["name"] == "SCRIPT_NAME" && p["value"] == "/hello.php"), "{params}");
    assert!(
        pairs.iter().any(|p| p["name"] == "HTTP_AUTHORIZATION"
            && p["value"] == format!("<masked, {} bytes>", SECRET.len())),
        "{params}"
    );
    let stdout_record = records.iter().find(|r| r["type"] == "FCGI_STDOUT").unwrap();
    assert_eq!(stdout_record["direction"], "received");
    assert!(stdout_record["preview"].as_str().unwrap().contains("Hello, world!"), "{stdout_record}");
    let last = records.last().unwrap();
    assert_eq!(last["type"], "FCGI_END_REQUEST");
    assert_eq!(last["app_status"], 0);
    assert_eq!(last["protocol_status"], "FCGI_REQUEST_COMPLETE");
}

#[test]
fn a_dump_exits_0_whatever_the_http_status() {
    let output = php_get(&["dump", "/status.php?code=500"]);
    assert_code(&output, 0);
    assert!(stdout(&output).contains("Status: 500"), "{}", stdout(&output));
}

#[test]
fn a_dump_of_a_post_shows_the_body() {
    let output = php_get(&["dump", "/echo.php", "-X", "POST", "--data-binary", "the body"]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("CONTENT_LENGTH=8"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("-> FCGI_STDIN") && l.contains("\"the body\"")), "{text}");
}

#[test]
fn a_dump_fails_like_get_on_connection_errors() {
    let output =
        run(fcgi().args(["dump", "/x.php", "--connect"]).arg(format!("127.0.0.1:{}", closed_port())));
    assert_error(&output, 7);
    let server = FakeServer::http();
    let output = run(fcgi().args(["dump", "/x.php", "--socket"]).arg(&server.path));
    assert_error(&output, 8);
}

/// A capture: a whole request and its answer, and the offset of each record.
fn capture() -> (Vec<u8>, Vec<usize>) {
    let id = RequestId(1);
    let mut wire = BytesMut::new();
    let mut offsets = Vec::new();
    offsets.push(wire.len());
    fcgi_proto::encode_record(&mut wire, &Record::begin_request(id, Role::RESPONDER, false), Padding::None)
        .unwrap();
    offsets.push(wire.len());
    // One PARAMS record with both pairs, then the empty PARAMS ending the stream (8 bytes).
    fcgi_proto::encode_params(
        &mut wire,
        id,
        [("SCRIPT_NAME", "/index.php"), ("HTTP_AUTHORIZATION", SECRET)],
        ParamsOptions::default(),
    )
    .unwrap();
    offsets.push(wire.len() - 8);
    offsets.push(wire.len());
    fcgi_proto::encode_end_of_stream(&mut wire, RecordType::STDIN, id);
    offsets.push(wire.len());
    let stdout = Record::stream(RecordType::STDOUT, id, &b"Status: 200 OK\r\n\r\nhi"[..]).unwrap();
    fcgi_proto::encode_record(&mut wire, &stdout, Padding::None).unwrap();
    offsets.push(wire.len());
    let end = Record::end_request(id, 0, ProtocolStatus::REQUEST_COMPLETE);
    fcgi_proto::encode_record(&mut wire, &end, Padding::None).unwrap();
    (wire.to_vec(), offsets)
}

fn write_capture(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = temp_dir();
    let path = dir.path().join("capture.bin");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn input_decodes_a_capture_with_offsets() {
    let (bytes, offsets) = capture();
    let (_dir, path) = write_capture(&bytes);
    let output = run(fcgi().args(["dump", "--input"]).arg(&path));
    assert_code(&output, 0);
    assert_eq!(stderr(&output), "");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    let types =
        ["FCGI_BEGIN_REQUEST", "FCGI_PARAMS", "FCGI_PARAMS", "FCGI_STDIN", "FCGI_STDOUT", "FCGI_END_REQUEST"];
    for ((line, offset), kind) in lines.iter().zip(&offsets).zip(types) {
        let prefix = format!("@{offset} ");
        assert!(line.starts_with(&prefix), "offset {offset}: {line}");
        assert!(line[prefix.len()..].trim_start().starts_with(kind), "{kind}: {line}");
    }
    assert!(lines[1].contains("SCRIPT_NAME=/index.php"), "{}", lines[1]);
    assert!(
        lines[1].contains(&format!("HTTP_AUTHORIZATION=<masked, {} bytes>", SECRET.len())),
        "{}",
        lines[1]
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(lines[5].contains("FCGI_REQUEST_COMPLETE"), "{}", lines[5]);
}

#[test]
fn input_as_json_has_offsets_and_no_direction() {
    let (bytes, offsets) = capture();
    let (_dir, path) = write_capture(&bytes);
    let output = run(fcgi().args(["dump", "--json", "--input"]).arg(&path));
    assert_code(&output, 0);
    let records: Vec<serde_json::Value> =
        stdout(&output).lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect();
    assert_eq!(records.len(), 6);
    for (record, offset) in records.iter().zip(&offsets) {
        assert_eq!(record["offset"], *offset, "{record}");
        assert!(record["direction"].is_null(), "a capture does not know directions: {record}");
        assert_eq!(record["request_id"], 1);
        assert!(record.get("time_ms").is_none(), "{record}");
    }
    assert_eq!(records[1]["pairs"][0]["name"], "SCRIPT_NAME");
    assert_eq!(records[1]["pairs"][0]["value"], "/index.php");
    assert_eq!(records[1]["pairs"][1]["value"], format!("<masked, {} bytes>", SECRET.len()));
}

#[test]
fn input_from_stdin() {
    let (bytes, _) = capture();
    let output = run(fcgi().args(["dump", "--input", "-"]).write_stdin(bytes));
    assert_code(&output, 0);
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.starts_with("@0 "), "{text}");
    // An empty capture is no records, not an error.
    let output = run(fcgi().args(["dump", "--input", "-"]).write_stdin(Vec::new()));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "");
}

#[test]
fn input_with_a_malformed_record_names_its_offset() {
    let (mut bytes, offsets) = capture();
    let bad_at = offsets[4]; // the STDOUT record
    bytes[bad_at] = 2; // version 2
    let (_dir, path) = write_capture(&bytes);
    let output = run(fcgi().args(["dump", "--input"]).arg(&path));
    let line = assert_error(&output, 8);
    assert!(line.contains(&format!("malformed record at byte {bad_at}")), "{line}");
    assert!(line.contains("version byte is 2"), "the reason: {line}");
    assert!(line.contains(path.to_str().unwrap()), "the file: {line}");
    // The records before it were shown.
    assert_eq!(stdout(&output).lines().count(), 4, "{}", stdout(&output));
}

#[test]
fn input_ending_inside_a_record() {
    let (bytes, offsets) = capture();
    let cut = offsets[5] + 3; // three bytes into END_REQUEST
    let output = run(fcgi().args(["dump", "--input", "-"]).write_stdin(bytes[..cut].to_vec()));
    let line = assert_error(&output, 8);
    assert!(line.contains(&format!("at byte {}", offsets[5])), "{line}");
    assert!(line.contains("input ends inside a record"), "{line}");
    assert!(line.contains("standard input"), "{line}");
    assert_eq!(stdout(&output).lines().count(), 5);
}

#[test]
fn input_that_is_not_fastcgi() {
    let output = run(fcgi().args(["dump", "--input", "-"]).write_stdin("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    let line = assert_error(&output, 8);
    assert!(line.contains("at byte 0") && line.contains("version byte is 71"), "{line}");
}

#[test]
fn unreadable_input_exits_26() {
    let output = run(fcgi().args(["dump", "--input", "/nonexistent/capture.bin"]));
    let line = assert_error(&output, 26);
    assert!(line.contains("/nonexistent/capture.bin"), "{line}");
    let dir = temp_dir();
    let output = run(fcgi().args(["dump", "--input"]).arg(dir.path()));
    assert_error(&output, 26);
}
