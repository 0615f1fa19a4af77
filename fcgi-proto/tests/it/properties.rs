//! Property tests: encode/decode round trips under random split points, PARAMS packing, and
//! the decoder on arbitrary bytes (never panics; the split does not change the outcome).

use bytes::{Bytes, BytesMut};
use fcgi_proto::{
    BeginRequest, Decoder, EndRequest, NameValuePair, Padding, ParamsAssembler, ParamsOptions,
    ProtocolStatus, Record, RecordBody, RecordType, RequestId, Role, decode_pairs, encode_params,
    encode_record, write_pair,
};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn pair() -> impl Strategy<Value = NameValuePair> {
    (bytes(140), bytes(300)).prop_map(|(name, value)| NameValuePair { name, value })
}

fn app_id() -> impl Strategy<Value = RequestId> {
    (1..=u16::MAX).prop_map(RequestId)
}

/// Records whose encoding is exactly one record, so that decoding gives them back as they are.
fn record() -> impl Strategy<Value = Record> {
    let stream = (4u8..=8, app_id(), bytes(3000))
        .prop_map(|(t, id, data)| Record::stream(RecordType(t), id, data).expect("stream type"));
    let begin = (app_id(), any::<u16>(), any::<bool>()).prop_map(|(id, role, keep_conn)| {
        Record::new(id, RecordBody::BeginRequest(BeginRequest { role: Role(role), keep_conn }))
    });
    let end = (app_id(), any::<u32>(), any::<u8>()).prop_map(|(id, app_status, status)| {
        Record::new(
            id,
            RecordBody::EndRequest(EndRequest { app_status, protocol_status: ProtocolStatus(status) }),
        )
    });
    let abort = app_id().prop_map(|id| Record::new(id, RecordBody::AbortRequest));
    let values =
        prop::collection::vec(pair(), 0..8).prop_map(|p| Record::new(RequestId(0), RecordBody::GetValues(p)));
    let result = prop::collection::vec(pair(), 0..8)
        .prop_map(|p| Record::new(RequestId(0), RecordBody::GetValuesResult(p)));
    let unknown_type =
        any::<u8>().prop_map(|t| Record::new(RequestId(0), RecordBody::UnknownType(RecordType(t))));
    let unknown = (12u8..=255, any::<u16>(), bytes(500)).prop_map(|(t, id, content)| {
        Record::new(RequestId(id), RecordBody::Unknown { record_type: RecordType(t), content })
    });
    prop_oneof![stream, begin, end, abort, values, result, unknown_type, unknown]
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![Just(Padding::None), Just(Padding::Align8)]
}

/// Feeds `wire` to a decoder in pieces of the given sizes (cycled), collecting records.
fn decode_in_pieces(wire: &[u8], sizes: &[usize]) -> Result<Vec<Record>, fcgi_proto::DecodeError> {
    let mut decoder = Decoder::new();
    let mut src = BytesMut::new();
    let mut records = Vec::new();
    let mut at = 0;
    let mut sizes = sizes.iter().cycle();
    while at < wire.len() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, wire.len() - at);
        src.extend_from_slice(&wire[at..at + n]);
        at += n;
        while let Some(record) = decoder.decode(&mut src)? {
            records.push(record);
        }
    }
    decoder.finish(&src)?;
    Ok(records)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn records_round_trip_under_any_split(
        records in prop::collection::vec(record(), 1..20),
        padding in padding(),
        sizes in prop::collection::vec(1usize..300, 1..10),
    ) {
        let mut wire = BytesMut::new();
        for record in &records {
            encode_record(&mut wire, record, padding).unwrap();
        }
        prop_assert_eq!(decode_in_pieces(&wire, &sizes).unwrap(), records.clone());
        prop_assert_eq!(decode_in_pieces(&wire, &[1]).unwrap(), records);
    }

    #[test]
    fn large_streams_reassemble(len in 0usize..200_000, padding in padding(), split in 1usize..70_000) {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
        let mut wire = BytesMut::new();
        let record = Record::stream(RecordType::STDOUT, RequestId(1), data.clone()).unwrap();
        encode_record(&mut wire, &record, padding).unwrap();
        let mut joined = Vec::new();
        for record in decode_in_pieces(&wire, &[split]).unwrap() {
            let chunk = record.body.stream_data().unwrap();
            prop_assert!(chunk.len() <= 65535);
            joined.extend_from_slice(chunk);
        }
        prop_assert_eq!(joined, data);
    }

    #[test]
    fn params_pack_whole_pairs(
        pairs in prop::collection::vec(pair(), 0..400),
        padding in padding(),
    ) {
        let mut wire = BytesMut::new();
        let as_tuples = pairs.iter().map(|p| (&p.name, &p.value));
        encode_params(&mut wire, RequestId(7), as_tuples, ParamsOptions::default().with_padding(padding)).unwrap();
        let records = decode_in_pieces(&wire, &[4096]).unwrap();
        let mut decoded = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let content = record.body.stream_data().unwrap();
            prop_assert_eq!(record.request_id, RequestId(7));
            prop_assert_eq!(content.is_empty(), i == records.len() - 1, "only the last record is empty");
            decoded.extend(decode_pairs(content).unwrap());
        }
        prop_assert_eq!(decoded, pairs);
    }

    #[test]
    fn assembler_accepts_any_record_boundaries(
        pairs in prop::collection::vec(pair(), 0..50),
        cuts in prop::collection::vec(1usize..500, 1..10),
    ) {
        let mut stream = Vec::new();
        for p in &pairs {
            write_pair(&mut stream, &p.name, &p.value).unwrap();
        }
        let mut assembler = ParamsAssembler::new();
        let mut at = 0;
        let mut cuts = cuts.iter().cycle();
        while at < stream.len() {
            let n = (*cuts.next().unwrap()).min(stream.len() - at);
            prop_assert_eq!(assembler.push(Bytes::copy_from_slice(&stream[at..at + n])).unwrap(), None);
            at += n;
        }
        prop_assert_eq!(assembler.push(Bytes::new()).unwrap(), Some(pairs));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_the_split_does_not_matter(
        wire in prop::collection::vec(any::<u8>(), 0..600),
        sizes in prop::collection::vec(1usize..64, 1..8),
    ) {
        let whole = decode_in_pieces(&wire, &[wire.len().max(1)]);
        let pieces = decode_in_pieces(&wire, &sizes);
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn mostly_valid_streams_with_one_corrupted_byte_never_panic(
        records in prop::collection::vec(record(), 1..6),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut wire = BytesMut::new();
        for record in &records {
            encode_record(&mut wire, record, Padding::None).unwrap();
        }
        let at = position.index(wire.len());
        wire[at] = byte;
        let whole = decode_in_pieces(&wire, &[wire.len()]);
        prop_assert_eq!(whole, decode_in_pieces(&wire, &[1]));
    }
}
