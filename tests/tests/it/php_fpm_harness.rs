//! End-to-end proof of the harness: the synchronous test client against the php-fpm that
//! `cargo xtask test` starts, over both listeners, plus the measured php-fpm behaviours the
//! codec is built around (BRIEF §3), so that a change in the peer shows up here first.

use bytes::BytesMut;
use fcgi_proto::{
    NameValuePair, Padding, ParamsOptions, ProtocolStatus, Record, RecordBody, RecordType, RequestId, Role,
    encode_end_of_stream, encode_params, encode_record, encode_stream,
};
use fcgi_tests::backends::{PhpFpm, php_fpm};
use fcgi_tests::client::{self, Reply, Target};

fn targets(fpm: &PhpFpm) -> [Target; 2] {
    [Target::Unix(fpm.socket.clone()), Target::Tcp(fpm.tcp)]
}

fn script_params(fpm: &PhpFpm, script: &str, method: &str, query: &str) -> Vec<(String, String)> {
    vec![
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("REQUEST_METHOD".into(), method.into()),
        ("SCRIPT_NAME".into(), format!("/{script}")),
        ("SCRIPT_FILENAME".into(), fpm.script_path(script).display().to_string()),
        ("DOCUMENT_ROOT".into(), fpm.docroot.display().to_string()),
        ("REQUEST_URI".into(), format!("/{script}?{query}")),
        ("QUERY_STRING".into(), query.into()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
    ]
}

fn get(target: &Target, fpm: &PhpFpm, script: &str, query: &str) -> Reply {
    client::request(target, &script_params(fpm, script, "GET", query), b"")
        .unwrap_or_else(|err| panic!("GET /{script}?{query} over {target:?}: {err}"))
}

#[test]
fn hello_world_over_unix_socket_and_tcp() {
    let fpm = php_fpm();
    for target in targets(&fpm) {
        let reply = get(&target, &fpm, "hello.php", "");
        assert_eq!(reply.status(), 200, "{target:?}");
        assert_eq!(reply.body(), b"Hello, world!", "{target:?}");
        assert_eq!(reply.protocol_status, ProtocolStatus::REQUEST_COMPLETE.0);
        assert!(reply.stderr.is_empty());
    }
}

#[test]
fn ping_needs_only_script_name_and_a_script_filename() {
    let fpm = php_fpm();
    for target in targets(&fpm) {
        let params = [("SCRIPT_NAME", "/ping"), ("SCRIPT_FILENAME", "/ping"), ("REQUEST_METHOD", "GET")];
        let reply = client::request(&target, &params, b"").unwrap();
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.body(), b"pong");
    }
}

#[test]
fn get_values_answers_only_mpxs_conns_0() {
    let fpm = php_fpm();
    let pairs = client::get_values(&Target::Unix(fpm.socket.clone())).unwrap();
    assert_eq!(pairs, vec![NameValuePair::new("FCGI_MPXS_CONNS", "0")]);
}

#[test]
fn post_body_spanning_many_stdin_records_is_echoed_exactly() {
    let fpm = php_fpm();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut params = script_params(&fpm, "echo.php", "POST", "");
    params.push(("CONTENT_LENGTH".into(), body.len().to_string()));
    params.push(("CONTENT_TYPE".into(), "application/octet-stream".into()));
    let reply = client::request(&Target::Tcp(fpm.tcp), &params, &body).unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.header("X-Body-Length").as_deref(), Some("300000"));
    assert_eq!(reply.body(), &body[..]);
}

#[test]
fn stderr_arrives_on_its_own_stream() {
    let fpm = php_fpm();
    let reply = get(&Target::Unix(fpm.socket.clone()), &fpm, "stderr.php", "msg=kept%20apart");
    assert_eq!(reply.body(), b"body");
    let stderr = String::from_utf8_lossy(&reply.stderr);
    assert!(stderr.contains("kept apart"), "stderr was {stderr:?}");
    assert!(!String::from_utf8_lossy(&reply.stdout).contains("kept apart"));
}

#[test]
fn large_params_packed_as_whole_pairs_reach_php() {
    // ~1 MiB of params in many records: every record holds whole pairs, as php-fpm needs.
    let fpm = php_fpm();
    let mut params = script_params(&fpm, "env.php", "GET", "");
    for i in 0..20 {
        params.push((format!("HTTP_X_BIG_{i}"), format!("{i}:{}", "v".repeat(50_000))));
    }
    let reply = client::request(&Target::Unix(fpm.socket.clone()), &params, b"").unwrap();
    assert_eq!(reply.status(), 200);
    let env: serde_json::Value = serde_json::from_slice(reply.body()).expect("env.php prints JSON");
    for i in 0..20 {
        let value =
            env[format!("HTTP_X_BIG_{i}")].as_str().unwrap_or_else(|| panic!("HTTP_X_BIG_{i} missing"));
        assert_eq!(value.len(), format!("{i}:").len() + 50_000);
        assert!(value.starts_with(&format!("{i}:")));
    }
}

/// Measured on php-fpm 8.2: a pair split across two PARAMS records makes it reset the
/// connection. This is why the encoder never splits pairs by default; if this test starts
/// failing, php-fpm learned to reassemble pairs and the default could be revisited.
#[test]
fn php_fpm_cannot_read_a_pair_split_across_records() {
    let fpm = php_fpm();
    let id = RequestId(1);
    let big = "x".repeat(70_000);
    let mut params = script_params(&fpm, "hello.php", "GET", "");
    params.push(("HTTP_X_HUGE".into(), big));
    let mut wire = BytesMut::new();
    encode_record(&mut wire, &Record::begin_request(id, Role::RESPONDER, false), Padding::None).unwrap();
    let spanning = ParamsOptions::default().with_spanning_pairs(true);
    encode_params(&mut wire, id, params.iter().map(|(n, v)| (n, v)), spanning).unwrap();
    encode_stream(&mut wire, RecordType::STDIN, id, b"", Padding::None);
    encode_end_of_stream(&mut wire, RecordType::STDIN, id);
    let outcome = client::exchange(&Target::Unix(fpm.socket.clone()), &wire);
    let completed = matches!(&outcome, Ok(records) if records.iter().any(|r| matches!(r.body, RecordBody::EndRequest(_))));
    assert!(!completed, "php-fpm answered a request whose pair spans records: {outcome:?}");
}

#[test]
fn the_same_oversized_pair_is_refused_by_the_default_encoder() {
    let mut wire = BytesMut::new();
    let big = "x".repeat(70_000);
    let err =
        encode_params(&mut wire, RequestId(1), [("HTTP_X_HUGE", big.as_str())], ParamsOptions::default())
            .unwrap_err();
    assert!(err.to_string().contains("HTTP_X_HUGE"), "{err}");
    assert!(wire.is_empty());
}
