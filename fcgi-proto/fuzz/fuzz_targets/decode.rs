//! Fuzz target `decode`: arbitrary bytes through the fcgi-proto decoder.
//!
//! Checks, for any input: no panic; the same outcome whether the bytes arrive whole or in
//! pieces (the first input byte picks the piece size); every decoded record re-encodes and
//! decodes back to itself; PARAMS contents go through the reassembler without panicking.
//! Run with `cargo xtask fuzz decode --time 60`.

#![no_main]

use bytes::BytesMut;
use fcgi_proto::{DecodeError, Decoder, Padding, ParamsAssembler, Record, RecordBody, encode_record};
use libfuzzer_sys::fuzz_target;

fn decode(data: &[u8], piece: usize) -> (Vec<Record>, Option<DecodeError>) {
    let mut decoder = Decoder::new();
    let mut src = BytesMut::new();
    let mut records = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        src.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => break,
                Err(err) => return (records, Some(err)),
            }
        }
    }
    let end = decoder.finish(&src).err();
    (records, end)
}

fuzz_target!(|data: &[u8]| {
    let Some((&piece, rest)) = data.split_first() else { return };
    let whole = decode(rest, rest.len());
    let pieces = decode(rest, usize::from(piece));
    assert_eq!(whole, pieces, "the split changed the outcome");

    let mut assembler = ParamsAssembler::with_limit(1 << 20);
    for record in &whole.0 {
        if let RecordBody::Params(content) = &record.body {
            if assembler.push(content.clone()).is_err() {
                assembler = ParamsAssembler::with_limit(1 << 20);
            }
        }
        let mut wire = BytesMut::new();
        encode_record(&mut wire, record, Padding::None).expect("a decoded record re-encodes");
        let (again, err) = decode(&wire, wire.len());
        assert_eq!(err, None);
        assert_eq!(again, vec![record.clone()], "round trip");
    }
});
