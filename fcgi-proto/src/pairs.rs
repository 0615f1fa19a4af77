//! Name-value pairs: the payload of `FCGI_PARAMS`, `FCGI_GET_VALUES` and
//! `FCGI_GET_VALUES_RESULT`.
//!
//! Each length is one byte when below 128, otherwise four bytes big-endian with the top bit
//! set, giving 31 bits. All length arithmetic is done in `u64` so that hostile lengths near
//! 2^31 cannot overflow.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes};

/// Largest name or value length a pair can declare (31 bits).
pub const MAX_PAIR_PART_LEN: usize = 0x7fff_ffff;

/// Lengths below this take one byte on the wire.
const SHORT_LENGTH_LIMIT: usize = 128;
const LONG_LENGTH_FLAG: u32 = 0x8000_0000;

/// One name-value pair. Both sides are raw bytes: FastCGI does not define an encoding.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NameValuePair {
    /// The name.
    pub name: Bytes,
    /// The value.
    pub value: Bytes,
}

impl NameValuePair {
    /// A pair from anything convertible into `Bytes` (`&'static str`, `String`, `Vec<u8>`...).
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self { name: name.into(), value: value.into() }
    }

    /// How many bytes this pair takes once encoded.
    pub fn encoded_len(&self) -> usize {
        encoded_pair_len(self.name.len(), self.value.len())
    }
}

impl fmt::Debug for NameValuePair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}",
            String::from_utf8_lossy(&self.name).escape_debug(),
            String::from_utf8_lossy(&self.value).escape_debug()
        )
    }
}

/// Bytes taken by the length prefix of a name or value of `len` bytes.
pub const fn length_prefix_len(len: usize) -> usize {
    if len < SHORT_LENGTH_LIMIT { 1 } else { 4 }
}

/// Bytes taken by an encoded pair with the given name and value lengths.
pub const fn encoded_pair_len(name_len: usize, value_len: usize) -> usize {
    length_prefix_len(name_len) + length_prefix_len(value_len) + name_len + value_len
}

/// A name or value longer than [`MAX_PAIR_PART_LEN`]: it cannot be encoded at all.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a name-value pair {part} of {len} bytes exceeds the protocol's 2^31-1 byte limit")]
pub struct PairLengthOverflow {
    /// `"name"` or `"value"`.
    pub part: &'static str,
    /// The length that was asked for.
    pub len: usize,
}

/// Checks that a pair's lengths are encodable.
pub fn check_pair_lengths(name_len: usize, value_len: usize) -> Result<(), PairLengthOverflow> {
    if name_len > MAX_PAIR_PART_LEN {
        return Err(PairLengthOverflow { part: "name", len: name_len });
    }
    if value_len > MAX_PAIR_PART_LEN {
        return Err(PairLengthOverflow { part: "value", len: value_len });
    }
    Ok(())
}

/// Appends one encoded pair to `dst`.
pub fn write_pair(dst: &mut impl BufMut, name: &[u8], value: &[u8]) -> Result<(), PairLengthOverflow> {
    check_pair_lengths(name.len(), value.len())?;
    write_length(dst, name.len());
    write_length(dst, value.len());
    dst.put_slice(name);
    dst.put_slice(value);
    Ok(())
}

fn write_length(dst: &mut impl BufMut, len: usize) {
    if len < SHORT_LENGTH_LIMIT {
        dst.put_u8(len as u8);
    } else {
        dst.put_u32(len as u32 | LONG_LENGTH_FLAG);
    }
}

/// Which part of a pair a parse stopped in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PairPart {
    /// The name's length prefix.
    NameLength,
    /// The value's length prefix.
    ValueLength,
    /// The name bytes.
    Name,
    /// The value bytes.
    Value,
}

impl fmt::Display for PairPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PairPart::NameLength => "name length",
            PairPart::ValueLength => "value length",
            PairPart::Name => "name",
            PairPart::Value => "value",
        })
    }
}

/// Where the first pair of a buffer lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PairParse {
    /// A whole pair: its name and value ranges and the bytes it took.
    Complete { name: Range<usize>, value: Range<usize>, len: usize },
    /// The buffer ends inside the pair.
    Incomplete {
        /// The part the buffer ends in.
        part: PairPart,
        /// Total bytes the pair needs, once both lengths are known.
        needed: Option<u64>,
    },
}

fn read_length(buf: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *buf.get(at)?;
    if first & 0x80 == 0 {
        return Some((u64::from(first), 1));
    }
    let bytes = buf.get(at..at + 4)?;
    let raw = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Some((u64::from(raw & !LONG_LENGTH_FLAG), 4))
}

/// Parses the pair at the start of `buf` without copying.
pub(crate) fn parse_pair(buf: &[u8]) -> PairParse {
    let Some((name_len, name_prefix)) = read_length(buf, 0) else {
        return PairParse::Incomplete { part: PairPart::NameLength, needed: None };
    };
    let Some((value_len, value_prefix)) = read_length(buf, name_prefix) else {
        return PairParse::Incomplete { part: PairPart::ValueLength, needed: None };
    };
    let head = (name_prefix + value_prefix) as u64;
    let needed = head + name_len + value_len;
    let available = buf.len() as u64;
    if available < head + name_len {
        return PairParse::Incomplete { part: PairPart::Name, needed: Some(needed) };
    }
    if available < needed {
        return PairParse::Incomplete { part: PairPart::Value, needed: Some(needed) };
    }
    // Both lengths fit in the buffer, so they fit in usize.
    let name_start = head as usize;
    let value_start = name_start + name_len as usize;
    let end = value_start + value_len as usize;
    PairParse::Complete { name: name_start..value_start, value: value_start..end, len: end }
}

/// A pair that runs past the end of the content holding it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("name-value pair at content offset {offset} runs past the end of its record (in its {part}{})",
    match .needed { Some(n) => format!(": needs {n} bytes, {available} left"), None => String::new() })]
pub struct PairOverrun {
    /// Offset of the pair within the content.
    pub offset: usize,
    /// The part that was cut.
    pub part: PairPart,
    /// Bytes the pair declared, when both lengths could be read.
    pub needed: Option<u64>,
    /// Bytes that were left from the pair's start.
    pub available: usize,
}

/// Decodes every pair of a complete buffer (one management record's content, or a fully
/// reassembled PARAMS stream). Names and values share `content`'s memory.
pub fn decode_pairs(content: &Bytes) -> Result<Vec<NameValuePair>, PairOverrun> {
    let mut pairs = Vec::new();
    let mut offset = 0;
    while offset < content.len() {
        match parse_pair(&content[offset..]) {
            PairParse::Complete { name, value, len } => {
                pairs.push(NameValuePair {
                    name: content.slice(offset + name.start..offset + name.end),
                    value: content.slice(offset + value.start..offset + value.end),
                });
                offset += len;
            }
            PairParse::Incomplete { part, needed } => {
                return Err(PairOverrun { offset, part, needed, available: content.len() - offset });
            }
        }
    }
    Ok(pairs)
}

/// Encodes pairs back to back, for tests and for management records.
pub fn encode_pairs<'a>(
    dst: &mut impl BufMut,
    pairs: impl IntoIterator<Item = &'a NameValuePair>,
) -> Result<(), PairLengthOverflow> {
    for pair in pairs {
        write_pair(dst, &pair.name, &pair.value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn encode(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        write_pair(&mut buf, name, value).unwrap();
        buf
    }

    #[test]
    fn short_lengths_take_one_byte() {
        assert_eq!(encode(b"A", b"bc"), b"\x01\x02Abc");
        assert_eq!(encode(b"", b""), b"\x00\x00");
        let name = vec![b'n'; 127];
        let encoded = encode(&name, b"");
        assert_eq!(&encoded[..2], &[127, 0]);
        assert_eq!(encoded.len(), 129);
    }

    #[test]
    fn long_lengths_take_four_bytes_with_top_bit() {
        let value = vec![b'v'; 128];
        let encoded = encode(b"N", &value);
        assert_eq!(&encoded[..6], &[1, 0x80, 0, 0, 128, b'N']);
        assert_eq!(encoded.len(), 1 + 4 + 1 + 128);
        assert_eq!(encoded_pair_len(1, 128), encoded.len());
        let value = vec![b'v'; 0x1_0203];
        let encoded = encode(b"", &value);
        assert_eq!(&encoded[..5], &[0, 0x80, 0x01, 0x02, 0x03]);
    }

    #[test]
    fn overlong_parts_are_refused_before_writing() {
        assert_eq!(check_pair_lengths(MAX_PAIR_PART_LEN, 0), Ok(()));
        assert_eq!(
            check_pair_lengths(MAX_PAIR_PART_LEN + 1, 0),
            Err(PairLengthOverflow { part: "name", len: MAX_PAIR_PART_LEN + 1 })
        );
        assert_eq!(
            check_pair_lengths(0, usize::MAX),
            Err(PairLengthOverflow { part: "value", len: usize::MAX })
        );
    }

    #[test]
    fn decode_round_trip_shares_memory() {
        let mut buf = BytesMut::new();
        write_pair(&mut buf, b"SCRIPT_NAME", b"/index.php").unwrap();
        write_pair(&mut buf, b"EMPTY", b"").unwrap();
        write_pair(&mut buf, &[b'x'; 200], &[b'y'; 300]).unwrap();
        let content = buf.freeze();
        let pairs = decode_pairs(&content).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0], NameValuePair::new("SCRIPT_NAME", "/index.php"));
        assert_eq!(pairs[1], NameValuePair::new("EMPTY", ""));
        assert_eq!(pairs[2].name.len(), 200);
        assert_eq!(pairs[2].value.len(), 300);
        let start = content.as_ptr() as usize;
        let name_at = pairs[0].name.as_ptr() as usize;
        assert!(name_at >= start && name_at < start + content.len());
    }

    #[test]
    fn a_length_of_2_pow_31_minus_1_is_an_overrun_not_an_overflow() {
        let content = Bytes::from_static(b"\xff\xff\xff\xff\x01ab");
        let err = decode_pairs(&content).unwrap_err();
        assert_eq!(err.offset, 0);
        assert_eq!(err.part, PairPart::Name);
        assert_eq!(err.needed, Some(4 + 1 + 0x7fff_ffff + 1));
        assert_eq!(err.available, 7);
        let content = Bytes::from_static(b"\x01\xff\xff\xff\xffa");
        let err = decode_pairs(&content).unwrap_err();
        assert_eq!(err.part, PairPart::Value);
        assert_eq!(err.needed, Some(1 + 4 + 1 + 0x7fff_ffff));
    }

    #[test]
    fn overruns_name_the_part_and_the_offset() {
        let cases: &[(&[u8], usize, PairPart)] = &[
            (b"\x01\x01ab\x80", 4, PairPart::NameLength),
            (b"\x01\x01ab\x01", 4, PairPart::ValueLength),
            (b"\x01\x01ab\x01\x80\x00", 4, PairPart::ValueLength),
            (b"\x05\x00abc", 0, PairPart::Name),
            (b"\x01\x05abc", 0, PairPart::Value),
        ];
        for (input, offset, part) in cases {
            let err = decode_pairs(&Bytes::copy_from_slice(input)).unwrap_err();
            assert_eq!((err.offset, err.part), (*offset, *part), "input {input:?}");
        }
    }

    #[test]
    fn debug_escapes_control_bytes() {
        let pair = NameValuePair::new("A", "line\r\nbreak");
        assert_eq!(format!("{pair:?}"), "A=line\\r\\nbreak");
    }
}
