//! Decoder behaviour on split, large and malformed input (the regression list of the
//! foundation issue, and the measured quirks of real peers).

use bytes::{BufMut, BytesMut};
use fcgi_proto::{
    DecodeErrorKind, Decoder, DecoderLimits, EndRequest, PairPart, ProtocolStatus, RecordBody, RecordHeader,
    RecordType, RequestId,
};

fn record(record_type: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let mut out = RecordHeader::new(RecordType(record_type), RequestId(id), content.len() as u16, padding)
        .to_bytes()
        .to_vec();
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0xAA, usize::from(padding)));
    out
}

fn decode_one(bytes: &[u8]) -> Result<RecordBody, fcgi_proto::DecodeError> {
    let mut src = BytesMut::from(bytes);
    let mut decoder = Decoder::new();
    let record = decoder.decode(&mut src)?.expect("a whole record");
    assert!(src.is_empty(), "the record and its padding are consumed");
    Ok(record.body)
}

#[test]
fn max_content_with_no_padding_and_with_255_bytes_of_padding() {
    let content = vec![b'x'; 65535];
    for padding in [0u8, 1, 255] {
        let body = decode_one(&record(6, 1, &content, padding)).unwrap();
        assert_eq!(body.stream_data().unwrap().len(), 65535, "padding {padding}");
    }
}

#[test]
fn end_request_with_non_zero_reserved_bytes_as_php_fpm_sends_it() {
    let mut bytes = record(3, 1, &[0, 0, 0, 0, 0, b'm', b'l', b';'], 0);
    bytes[7] = 0x5a; // reserved byte of the header too
    assert_eq!(
        decode_one(&bytes).unwrap(),
        RecordBody::EndRequest(EndRequest {
            app_status: 0,
            protocol_status: ProtocolStatus::REQUEST_COMPLETE
        })
    );
}

#[test]
fn application_records_on_id_0_are_refused_at_the_id_field() {
    for record_type in 1..=8u8 {
        let body_len = match record_type {
            1 | 3 => 8,
            _ => 0,
        };
        let err = decode_one(&record(record_type, 0, &vec![0; body_len], 0)).unwrap_err();
        assert_eq!(err.offset(), 2);
        assert_eq!(err.kind(), &DecodeErrorKind::ApplicationRecordOnManagementId(RecordType(record_type)));
    }
}

#[test]
fn management_records_on_a_request_id_are_refused() {
    let err = decode_one(&record(10, 3, b"", 0)).unwrap_err();
    assert_eq!(
        err.kind(),
        &DecodeErrorKind::ManagementRecordOnRequestId {
            record_type: RecordType::GET_VALUES_RESULT,
            request_id: RequestId(3)
        }
    );
}

#[test]
fn a_pair_length_of_0x7fffffff_is_an_overrun_with_its_offset() {
    let mut content = vec![0xff, 0xff, 0xff, 0xff, 0x00];
    content.extend_from_slice(b"FCGI");
    let err = decode_one(&record(10, 0, &content, 0)).unwrap_err();
    assert_eq!(err.offset(), 8, "the pair starts right after the header");
    match err.kind() {
        DecodeErrorKind::PairOverrun { record_type, overrun } => {
            assert_eq!(*record_type, RecordType::GET_VALUES_RESULT);
            assert_eq!(overrun.part, PairPart::Name);
            assert_eq!(overrun.needed, Some(5 + 0x7fff_ffff));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_header_split_across_reads() {
    let bytes = record(6, 1, b"hello", 3);
    for split in 1..bytes.len() {
        let mut decoder = Decoder::new();
        let mut src = BytesMut::from(&bytes[..split]);
        assert_eq!(decoder.decode(&mut src).unwrap(), None, "split at {split}");
        src.put_slice(&bytes[split..]);
        let record = decoder.decode(&mut src).unwrap().unwrap();
        assert_eq!(record.body.stream_data().unwrap().as_ref(), b"hello");
    }
}

#[test]
fn end_of_input_mid_record_is_truncation() {
    let bytes = record(6, 1, b"hello", 3);
    for cut in 1..bytes.len() {
        let mut decoder = Decoder::new();
        let mut src = BytesMut::from(&bytes[..cut]);
        assert_eq!(decoder.decode(&mut src).unwrap(), None);
        let err = decoder.finish(&src).unwrap_err();
        let need = if cut < 8 { 8 } else { 16 };
        assert_eq!(err.kind(), &DecodeErrorKind::Truncated { have: cut, need }, "cut at {cut}");
        assert_eq!(err.offset(), 0);
    }
    let mut decoder = Decoder::new();
    assert_eq!(decoder.finish(&BytesMut::new()), Ok(()), "a clean end is not an error");
}

#[test]
fn bad_version_is_reported_at_the_record_start_and_sticks() {
    let mut bytes = record(6, 1, b"ok", 0);
    bytes.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    let mut src = BytesMut::from(&bytes[..]);
    let mut decoder = Decoder::new();
    assert!(decoder.decode(&mut src).unwrap().is_some());
    let err = decoder.decode(&mut src).unwrap_err();
    assert_eq!(err.offset(), 10);
    assert_eq!(err.kind(), &DecodeErrorKind::BadVersion(b'H'));
    assert!(err.to_string().contains("at byte 10"), "{err}");
    src.clear();
    src.put_slice(&record(6, 1, b"fine", 0));
    assert_eq!(decoder.decode(&mut src).unwrap_err(), err, "a failed decoder stays failed");
    assert_eq!(decoder.finish(&src).unwrap_err(), err);
}

#[test]
fn fixed_bodies_of_the_wrong_length() {
    let cases: &[(u8, u16, usize, u16)] =
        &[(1, 1, 7, 8), (1, 1, 9, 8), (2, 1, 1, 0), (3, 1, 4, 8), (11, 0, 0, 8)];
    for &(record_type, id, len, expected) in cases {
        let err = decode_one(&record(record_type, id, &vec![0; len], 0)).unwrap_err();
        assert_eq!(err.offset(), 4, "type {record_type}");
        assert_eq!(
            err.kind(),
            &DecodeErrorKind::BadBodyLength {
                record_type: RecordType(record_type),
                expected,
                actual: len as u16
            }
        );
    }
}

#[test]
fn the_content_limit_is_checked_before_the_content_arrives() {
    let mut decoder = Decoder::with_limits(DecoderLimits::with_max_content_len(1024));
    let mut src =
        BytesMut::from(&RecordHeader::new(RecordType::STDOUT, RequestId(1), 1025, 0).to_bytes()[..]);
    let err = decoder.decode(&mut src).unwrap_err();
    assert_eq!(
        err.kind(),
        &DecodeErrorKind::ContentTooLong { record_type: RecordType::STDOUT, len: 1025, limit: 1024 }
    );
    assert_eq!(DecoderLimits::with_max_content_len(1024).max_record_len(), 8 + 1024 + 255);
}

#[test]
fn unknown_types_keep_their_content_without_padding() {
    let body = decode_one(&record(200, 9, b"abc", 5)).unwrap();
    assert_eq!(
        body,
        RecordBody::Unknown { record_type: RecordType(200), content: bytes::Bytes::from_static(b"abc") }
    );
}

#[test]
fn offsets_and_bytes_needed_track_the_stream() {
    let mut bytes = record(6, 1, b"12345", 3);
    bytes.extend(record(7, 1, b"", 0));
    let mut decoder = Decoder::new();
    let mut src = BytesMut::new();
    assert_eq!(decoder.bytes_needed(&src), 8);
    src.put_slice(&bytes[..8]);
    assert_eq!(decoder.bytes_needed(&src), 8);
    src.put_slice(&bytes[8..]);
    let frame = decoder.decode_frame(&mut src).unwrap().unwrap();
    assert_eq!((frame.header.content_length, frame.header.padding_length), (5, 3));
    assert_eq!(decoder.bytes_consumed(), 16);
    assert!(decoder.decode(&mut src).unwrap().is_some());
    assert_eq!(decoder.bytes_consumed(), 24);
}
