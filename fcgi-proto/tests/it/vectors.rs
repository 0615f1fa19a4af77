//! Byte-exact vectors for every record type, written out by hand from the FastCGI 1.0
//! specification: each decodes to the expected record and the expected record encodes back
//! to exactly these bytes.

use bytes::{Bytes, BytesMut};
use fcgi_proto::{
    Decoder, EndRequest, NameValuePair, Padding, ProtocolStatus, Record, RecordBody, RecordType, RequestId,
    Role, encode_record,
};

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
}

fn decode_all(bytes: &[u8]) -> Vec<Record> {
    let mut decoder = Decoder::new();
    let mut src = BytesMut::from(bytes);
    let mut records = Vec::new();
    while let Some(record) = decoder.decode(&mut src).unwrap() {
        records.push(record);
    }
    decoder.finish(&src).unwrap();
    records
}

fn encode(record: &Record, padding: Padding) -> Vec<u8> {
    let mut dst = BytesMut::new();
    encode_record(&mut dst, record, padding).unwrap();
    dst.to_vec()
}

fn check(wire: &str, record: Record) {
    let bytes = hex(wire);
    assert_eq!(decode_all(&bytes), vec![record.clone()], "decoding {wire}");
    assert_eq!(encode(&record, Padding::None), bytes, "encoding {record:?}");
}

fn pairs(list: &[(&'static str, &'static str)]) -> Vec<NameValuePair> {
    list.iter().map(|(n, v)| NameValuePair::new(*n, *v)).collect()
}

#[test]
fn begin_request_responder_keep_conn() {
    check(
        "01 01 0001 0008 00 00  0001 01 0000000000",
        Record::begin_request(RequestId(1), Role::RESPONDER, true),
    );
}

#[test]
fn begin_request_authorizer_and_filter() {
    check(
        "01 01 0002 0008 00 00  0002 00 0000000000",
        Record::begin_request(RequestId(2), Role::AUTHORIZER, false),
    );
    check(
        "01 01 ffff 0008 00 00  0003 01 0000000000",
        Record::begin_request(RequestId(0xffff), Role::FILTER, true),
    );
}

#[test]
fn abort_request() {
    check("01 02 0102 0000 00 00", Record::new(RequestId(0x0102), RecordBody::AbortRequest));
}

#[test]
fn end_request_each_protocol_status() {
    for (status, byte) in [
        (ProtocolStatus::REQUEST_COMPLETE, "00"),
        (ProtocolStatus::CANT_MPX_CONN, "01"),
        (ProtocolStatus::OVERLOADED, "02"),
        (ProtocolStatus::UNKNOWN_ROLE, "03"),
    ] {
        check(
            &format!("01 03 0001 0008 00 00  0000012c {byte} 000000"),
            Record::end_request(RequestId(1), 300, status),
        );
    }
}

#[test]
fn params_pair_and_end_of_stream() {
    // "A" = "bc": name length 1, value length 2.
    check(
        "01 04 0001 0005 00 00  01 02 41 62 63",
        Record::new(RequestId(1), RecordBody::Params(Bytes::from_static(b"\x01\x02Abc"))),
    );
    check("01 04 0001 0000 00 00", Record::new(RequestId(1), RecordBody::Params(Bytes::new())));
}

#[test]
fn stdin_stdout_stderr_data() {
    let hello = "68656c6c6f";
    check(
        &format!("01 05 0001 0005 00 00 {hello}"),
        Record::stream(RecordType::STDIN, RequestId(1), "hello").unwrap(),
    );
    check(
        &format!("01 06 0001 0005 00 00 {hello}"),
        Record::stream(RecordType::STDOUT, RequestId(1), "hello").unwrap(),
    );
    check(
        &format!("01 07 0001 0005 00 00 {hello}"),
        Record::stream(RecordType::STDERR, RequestId(1), "hello").unwrap(),
    );
    check(
        &format!("01 08 0001 0005 00 00 {hello}"),
        Record::stream(RecordType::DATA, RequestId(1), "hello").unwrap(),
    );
}

#[test]
fn stdout_aligned_to_8_is_padded_with_zeros() {
    let record = Record::stream(RecordType::STDOUT, RequestId(1), "hello").unwrap();
    assert_eq!(encode(&record, Padding::Align8), hex("01 06 0001 0005 03 00 68656c6c6f 000000"));
    let aligned = Record::stream(RecordType::STDOUT, RequestId(1), "12345678").unwrap();
    assert_eq!(encode(&aligned, Padding::Align8), hex("01 06 0001 0008 00 00 3132333435363738"));
    let end = Record::stream(RecordType::STDOUT, RequestId(1), "").unwrap();
    assert_eq!(encode(&end, Padding::Align8), hex("01 06 0001 0000 00 00"), "empty records are never padded");
}

#[test]
fn get_values_standard_query() {
    // 48 bytes: FCGI_MAX_CONNS (14), FCGI_MAX_REQS (13), FCGI_MPXS_CONNS (15), empty values.
    let wire = "01 09 0000 0030 00 00  0e00 464347495f4d41585f434f4e4e53  0d00 464347495f4d41585f52455153  \
                0f00 464347495f4d5058535f434f4e4e53";
    check(wire, Record::new(RequestId::MANAGEMENT, RecordBody::GetValues(fcgi_proto::standard_query())));
}

#[test]
fn get_values_result_as_php_fpm_sends_it() {
    // php-fpm pads its 18-byte answer to 24.
    let wire = hex("01 0a 0000 0012 06 00  0f01 464347495f4d5058535f434f4e4e53 30  000000000000");
    assert_eq!(
        decode_all(&wire),
        vec![Record::new(
            RequestId::MANAGEMENT,
            RecordBody::GetValuesResult(pairs(&[("FCGI_MPXS_CONNS", "0")]))
        )]
    );
    check(
        "01 0a 0000 0012 00 00  0f01 464347495f4d5058535f434f4e4e53 30",
        Record::new(RequestId::MANAGEMENT, RecordBody::GetValuesResult(pairs(&[("FCGI_MPXS_CONNS", "0")]))),
    );
}

#[test]
fn empty_get_values_result_as_flup_sends_it() {
    check("01 0a 0000 0000 00 00", Record::new(RequestId::MANAGEMENT, RecordBody::GetValuesResult(vec![])));
}

#[test]
fn unknown_type_answer() {
    check(
        "01 0b 0000 0008 00 00  2a 00000000000000",
        Record::new(RequestId::MANAGEMENT, RecordBody::UnknownType(RecordType(42))),
    );
}

#[test]
fn records_of_unknown_types_are_preserved() {
    check(
        "01 2a 0000 0003 00 00  010203",
        Record::new(
            RequestId::MANAGEMENT,
            RecordBody::Unknown { record_type: RecordType(42), content: Bytes::from_static(&[1, 2, 3]) },
        ),
    );
    check(
        "01 ff 0007 0000 00 00",
        Record::new(
            RequestId(7),
            RecordBody::Unknown { record_type: RecordType(255), content: Bytes::new() },
        ),
    );
}

#[test]
fn end_request_record_struct() {
    let records = decode_all(&hex("01 03 0005 0008 00 00  ffffffff 03 000000"));
    assert_eq!(
        records[0].body,
        RecordBody::EndRequest(EndRequest {
            app_status: u32::MAX,
            protocol_status: ProtocolStatus::UNKNOWN_ROLE
        })
    );
}
