//! Encoder limits: splitting, padding, packing of PARAMS, and that nothing is half-written.

use bytes::{Buf, Bytes, BytesMut};
use fcgi_proto::{
    Decoder, EncodeError, NameValuePair, Padding, ParamsAssembler, ParamsOptions, Record, RecordBody,
    RecordType, RequestId, decode_pairs, encode_params, encode_record, encode_stream, stream_records,
};

fn records(bytes: &[u8]) -> Vec<(fcgi_proto::RecordHeader, Record)> {
    let mut decoder = Decoder::new();
    let mut src = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode_frame(&mut src).unwrap() {
        out.push((frame.header, frame.record));
    }
    decoder.finish(&src).unwrap();
    out
}

#[test]
fn large_streams_are_split_and_never_exceed_65535() {
    let data: Vec<u8> = (0..65535 * 2 + 1).map(|i| (i % 251) as u8).collect();
    for (padding, sizes) in
        [(Padding::None, vec![65535, 65535, 1]), (Padding::Align8, vec![65528, 65528, 15])]
    {
        let mut dst = BytesMut::new();
        encode_stream(&mut dst, RecordType::STDIN, RequestId(3), &data, padding);
        let decoded = records(&dst);
        let got: Vec<usize> = decoded.iter().map(|(h, _)| usize::from(h.content_length)).collect();
        assert_eq!(got, sizes, "{padding:?}");
        let mut joined = Vec::new();
        for (header, record) in &decoded {
            assert!(header.body_len() <= 65535);
            joined.extend_from_slice(record.body.stream_data().unwrap());
        }
        assert_eq!(joined, data);
    }
}

#[test]
fn padding_bytes_are_zero_and_only_align_to_8() {
    let mut dst = BytesMut::new();
    encode_stream(&mut dst, RecordType::STDOUT, RequestId(1), b"abc", Padding::Align8);
    assert_eq!(&dst[..], b"\x01\x06\x00\x01\x00\x03\x05\x00abc\x00\x00\x00\x00\x00");
}

#[test]
fn stream_records_slice_the_payload_without_copying() {
    let payload = Bytes::from(vec![7u8; 150_000]);
    let parts: Vec<_> =
        stream_records(RecordType::STDIN, RequestId(1), payload.clone(), Padding::None).collect();
    assert_eq!(parts.len(), 3);
    let base = payload.as_ptr() as usize;
    let mut offset = 0;
    let mut wire = Vec::new();
    for part in parts {
        assert_eq!(part.content.as_ptr() as usize, base + offset, "a slice of the payload, not a copy");
        offset += part.content.len();
        let mut buf = part.into_buf();
        while buf.has_remaining() {
            let chunk = buf.chunk().to_vec();
            buf.advance(chunk.len());
            wire.extend(chunk);
        }
    }
    let data: Vec<u8> =
        records(&wire).iter().flat_map(|(_, r)| r.body.stream_data().unwrap().to_vec()).collect();
    assert_eq!(data.len(), 150_000);
    assert_eq!(stream_records(RecordType::STDIN, RequestId(1), Bytes::new(), Padding::None).count(), 0);
}

#[test]
fn oversized_management_content_is_refused_and_nothing_is_written() {
    let big = NameValuePair::new("X", vec![b'v'; 70_000]);
    let mut dst = BytesMut::from(&b"keep"[..]);
    let err = encode_record(
        &mut dst,
        &Record::new(RequestId(0), RecordBody::GetValuesResult(vec![big])),
        Padding::None,
    )
    .unwrap_err();
    assert!(
        matches!(err, EncodeError::ContentTooLong { record_type: RecordType::GET_VALUES_RESULT, .. }),
        "{err}"
    );
    assert_eq!(&dst[..], b"keep");
}

fn params_records(dst: &[u8]) -> Vec<Bytes> {
    records(dst).into_iter().map(|(_, r)| r.body.stream_data().unwrap().clone()).collect()
}

#[test]
fn params_are_packed_whole_and_each_record_parses_on_its_own() {
    let pairs: Vec<(String, String)> =
        (0..5000).map(|i| (format!("HTTP_X_HEADER_{i}"), "v".repeat(i % 300))).collect();
    let mut dst = BytesMut::new();
    encode_params(&mut dst, RequestId(1), pairs.iter().map(|(n, v)| (n, v)), ParamsOptions::default())
        .unwrap();
    let contents = params_records(&dst);
    assert!(contents.len() > 5, "spread over several records");
    assert!(contents.last().unwrap().is_empty(), "ends with the empty record");
    let mut decoded = Vec::new();
    for content in &contents {
        // Each record on its own, the way php-fpm reads it.
        decoded.extend(decode_pairs(content).expect("no pair straddles two records"));
    }
    let expected: Vec<NameValuePair> =
        pairs.iter().map(|(n, v)| NameValuePair::new(n.clone(), v.clone())).collect();
    assert_eq!(decoded, expected);
}

#[test]
fn a_pair_exactly_filling_one_record_fits() {
    // 1 + 4 + 10 + 65520 = 65535
    let value = vec![b'a'; 65520];
    let mut dst = BytesMut::new();
    encode_params(&mut dst, RequestId(1), [("NAME_OF_10", &value[..])], ParamsOptions::default()).unwrap();
    let contents = params_records(&dst);
    assert_eq!(contents.iter().map(Bytes::len).collect::<Vec<_>>(), vec![65535, 0]);
}

#[test]
fn a_pair_too_large_for_a_record_is_a_clear_error_and_nothing_is_written() {
    let value = vec![b'a'; 65521];
    let mut dst = BytesMut::from(&b"prefix"[..]);
    let err = encode_params(
        &mut dst,
        RequestId(1),
        [("SMALL", "x"), ("NAME_OF_10", std::str::from_utf8(&value).unwrap())],
        ParamsOptions::default(),
    )
    .unwrap_err();
    assert_eq!(&dst[..], b"prefix");
    assert!(matches!(err, EncodeError::PairTooLarge { len: 65536, max: 65535, .. }), "{err:?}");
    assert!(err.to_string().contains("\"NAME_OF_10\""), "{err}");
    assert!(err.to_string().contains("php-fpm"), "{err}");
    // With 8-byte alignment the limit is 65528.
    let err = encode_params(
        &mut dst,
        RequestId(1),
        [("N", vec![b'a'; 65523])],
        ParamsOptions::default().with_padding(Padding::Align8),
    )
    .unwrap_err();
    assert!(matches!(err, EncodeError::PairTooLarge { len: 65529, max: 65528, .. }), "{err:?}");
}

#[test]
fn spanning_pairs_when_asked_for_reassemble() {
    let big = vec![b'b'; 200_000];
    let pairs = [("BEFORE", &b"1"[..]), ("BIG", &big[..]), ("AFTER", &b"2"[..])];
    let mut dst = BytesMut::new();
    encode_params(&mut dst, RequestId(1), pairs, ParamsOptions::default().with_spanning_pairs(true)).unwrap();
    let mut assembler = ParamsAssembler::new();
    let mut result = None;
    for content in params_records(&dst) {
        assert!(content.len() <= 65535);
        result = assembler.push(content).unwrap();
    }
    let result = result.expect("the empty record ends the stream");
    assert_eq!(result.len(), 3);
    assert_eq!(result[1].value.len(), 200_000);
    assert_eq!(result[2], NameValuePair::new("AFTER", "2"));
}

#[test]
fn params_terminator_is_never_padded() {
    let mut dst = BytesMut::new();
    encode_params(
        &mut dst,
        RequestId(1),
        [("A", "b")],
        ParamsOptions::default().with_padding(Padding::Align8),
    )
    .unwrap();
    assert_eq!(
        &dst[..],
        b"\x01\x04\x00\x01\x00\x04\x04\x00\x01\x01Ab\x00\x00\x00\x00\x01\x04\x00\x01\x00\x00\x00\x00"
    );
    let mut dst = BytesMut::new();
    encode_params(&mut dst, RequestId(1), Vec::<(&str, &str)>::new(), ParamsOptions::default()).unwrap();
    assert_eq!(&dst[..], b"\x01\x04\x00\x01\x00\x00\x00\x00", "no pairs: only the end of the stream");
}
