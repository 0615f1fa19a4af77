//! Packing name-value pairs into `FCGI_PARAMS` records.
//!
//! php-fpm parses every PARAMS record on its own and resets the connection when a pair
//! straddles two records (measured on 8.2), although the spec allows it. So pairs are packed
//! whole, as many per record as fit; a pair too large for any record is an error unless the
//! caller opts into spec-style spanning for servers that support it.

use bytes::{BufMut, BytesMut};

use crate::encode::{Padding, encode_end_of_stream, encode_stream};
use crate::error::{EncodeError, ShownName};
use crate::header::{HEADER_LEN, RecordHeader, RecordType, RequestId};
use crate::pairs::{check_pair_lengths, encoded_pair_len, write_pair};

/// How [`encode_params`] lays out records.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParamsOptions {
    /// Padding of each record.
    pub padding: Padding,
    /// Let a pair larger than one record span several records, as the spec allows.
    /// Off by default: php-fpm cannot read such a pair.
    pub allow_spanning_pairs: bool,
}

impl ParamsOptions {
    /// The default options with the given padding.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// The default options, spanning pairs allowed or not.
    pub fn with_spanning_pairs(mut self, allow: bool) -> Self {
        self.allow_spanning_pairs = allow;
        self
    }
}

/// Appends the whole PARAMS stream of a request: records of whole pairs, then the empty
/// record that ends the stream. On error nothing is appended.
pub fn encode_params<I, N, V>(
    dst: &mut BytesMut,
    id: RequestId,
    pairs: I,
    options: ParamsOptions,
) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let start = dst.len();
    let result = write_params(dst, id, pairs, options);
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

fn write_params<I, N, V>(
    dst: &mut BytesMut,
    id: RequestId,
    pairs: I,
    options: ParamsOptions,
) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let max = options.padding.max_content_len();
    let mut open = OpenRecord::None;
    for (name, value) in pairs {
        let (name, value) = (name.as_ref(), value.as_ref());
        check_pair_lengths(name.len(), value.len())?;
        let len = encoded_pair_len(name.len(), value.len());
        if len > max {
            if !options.allow_spanning_pairs {
                return Err(EncodeError::PairTooLarge { name: ShownName::new(name), len, max });
            }
            open.close(dst, id, options.padding);
            let mut pair = Vec::with_capacity(len);
            write_pair(&mut pair, name, value)?;
            encode_stream(dst, RecordType::PARAMS, id, &pair, options.padding);
            continue;
        }
        if open.content_len(dst) + len > max {
            open.close(dst, id, options.padding);
        }
        open.ensure_open(dst);
        write_pair(dst, name, value)?;
    }
    open.close(dst, id, options.padding);
    encode_end_of_stream(dst, RecordType::PARAMS, id);
    Ok(())
}

/// The record being filled: the position of its header, whose lengths are written on close.
enum OpenRecord {
    None,
    At(usize),
}

impl OpenRecord {
    fn content_len(&self, dst: &BytesMut) -> usize {
        match self {
            OpenRecord::None => 0,
            OpenRecord::At(header_at) => dst.len() - header_at - HEADER_LEN,
        }
    }

    fn ensure_open(&mut self, dst: &mut BytesMut) {
        if let OpenRecord::None = self {
            *self = OpenRecord::At(dst.len());
            dst.put_bytes(0, HEADER_LEN);
        }
    }

    fn close(&mut self, dst: &mut BytesMut, id: RequestId, padding: Padding) {
        if let OpenRecord::At(header_at) = *self {
            let content_len = dst.len() - header_at - HEADER_LEN;
            let pad = padding.for_content(content_len);
            let header = RecordHeader::new(RecordType::PARAMS, id, content_len as u16, pad);
            dst[header_at..header_at + HEADER_LEN].copy_from_slice(&header.to_bytes());
            dst.put_bytes(0, usize::from(pad));
            *self = OpenRecord::None;
        }
    }
}
