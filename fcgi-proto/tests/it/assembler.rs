//! PARAMS reassembly on the receiving side: spanning pairs, limits and truncated streams.

use bytes::Bytes;
use fcgi_proto::{NameValuePair, PairPart, ParamsAssembler, ParamsError, write_pair};

fn flat(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in pairs {
        write_pair(&mut out, n, v).unwrap();
    }
    out
}

#[test]
fn pairs_split_at_every_byte_reassemble() {
    let stream = flat(&[(b"SCRIPT_FILENAME", b"/srv/www/index.php"), (b"LONG", &[b'x'; 300]), (b"E", b"")]);
    for split in 1..stream.len() {
        let mut assembler = ParamsAssembler::new();
        assert_eq!(assembler.push(Bytes::copy_from_slice(&stream[..split])).unwrap(), None);
        assert_eq!(assembler.push(Bytes::copy_from_slice(&stream[split..])).unwrap(), None);
        let pairs = assembler.push(Bytes::new()).unwrap().unwrap();
        assert_eq!(pairs[0], NameValuePair::new("SCRIPT_FILENAME", "/srv/www/index.php"), "split {split}");
        assert_eq!(pairs[1].value.len(), 300);
        assert_eq!(pairs[2], NameValuePair::new("E", ""));
    }
}

#[test]
fn a_stream_ending_inside_a_pair_is_an_error() {
    let stream = flat(&[(b"NAME", b"value")]);
    let mut assembler = ParamsAssembler::new();
    assembler.push(Bytes::copy_from_slice(&stream[..7])).unwrap();
    assert_eq!(
        assembler.push(Bytes::new()),
        Err(ParamsError::EndsInsidePair { part: PairPart::Value, have: 7 })
    );
    assert_eq!(assembler.push(Bytes::from_static(b"x")), Err(ParamsError::AfterEnd));
}

#[test]
fn limits_apply_to_the_stream_and_to_declared_lengths() {
    let mut assembler = ParamsAssembler::with_limit(100);
    assert!(matches!(
        assembler.push(Bytes::from(vec![0u8; 101])),
        Err(ParamsError::TooLarge { limit: 100, .. })
    ));
    // A pair declaring 2^31-1 bytes fails at once instead of waiting for them.
    let mut assembler = ParamsAssembler::with_limit(1 << 20);
    let err = assembler.push(Bytes::from_static(b"\x01\xff\xff\xff\xffN")).unwrap_err();
    assert_eq!(err, ParamsError::TooLarge { len: 6 + 0x7fff_ffff, limit: 1 << 20 });
}
