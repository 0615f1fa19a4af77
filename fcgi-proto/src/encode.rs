//! Record encoding into a caller's buffer, and zero-copy splitting of stream payloads.
//!
//! Every record written here has zero reserved and padding bytes, and content plus padding
//! of at most 65535 bytes: php-fpm resets the connection on a record with 65535 bytes of
//! content and 1 byte of padding, although the protocol allows it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::body::unknown_type_bytes;
use crate::error::EncodeError;
use crate::header::{HEADER_LEN, MAX_CONTENT_LEN, RecordHeader, RecordType, RequestId};
use crate::pairs::encode_pairs;
use crate::record::{Record, RecordBody};

static ZEROS: [u8; 8] = [0; 8];

/// Padding policy for the records the encoder writes.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    /// No padding (the default: nothing requires it and it costs bytes).
    #[default]
    None,
    /// Pad content to a multiple of 8 bytes, as the spec recommends. Empty records are never
    /// padded (php-fpm does not consume the padding of an empty PARAMS and loses the body).
    Align8,
}

impl Padding {
    /// Padding bytes for a record with `content_len` bytes of content.
    pub const fn for_content(self, content_len: usize) -> u8 {
        match self {
            Padding::None => 0,
            Padding::Align8 if content_len == 0 => 0,
            Padding::Align8 => ((8 - content_len % 8) % 8) as u8,
        }
    }

    /// The most content one record may carry under this policy so that content plus padding
    /// stays within 65535 bytes.
    pub const fn max_content_len(self) -> usize {
        match self {
            Padding::None => MAX_CONTENT_LEN,
            Padding::Align8 => MAX_CONTENT_LEN - MAX_CONTENT_LEN % 8,
        }
    }
}

/// Appends a record header.
pub fn write_header(dst: &mut impl BufMut, header: &RecordHeader) {
    dst.put_slice(&header.to_bytes());
}

/// Appends one record whose content fits a record, padded by the policy.
fn write_single(
    dst: &mut BytesMut,
    record_type: RecordType,
    id: RequestId,
    content: &[u8],
    padding: Padding,
) {
    debug_assert!(content.len() <= padding.max_content_len());
    let pad = padding.for_content(content.len());
    write_header(dst, &RecordHeader::new(record_type, id, content.len() as u16, pad));
    dst.put_slice(content);
    dst.put_slice(&ZEROS[..usize::from(pad)]);
}

/// Appends `data` as records of `record_type`, split so that no record exceeds the limit.
/// Writes nothing for empty data: the end of a stream is [`encode_end_of_stream`].
pub fn encode_stream(
    dst: &mut BytesMut,
    record_type: RecordType,
    id: RequestId,
    data: &[u8],
    padding: Padding,
) {
    let records = data.len().div_ceil(padding.max_content_len());
    dst.reserve(data.len() + records * (HEADER_LEN + 7));
    for chunk in data.chunks(padding.max_content_len()) {
        write_single(dst, record_type, id, chunk, padding);
    }
}

/// Appends the empty record that ends a stream (never padded).
pub fn encode_end_of_stream(dst: &mut impl BufMut, record_type: RecordType, id: RequestId) {
    write_header(dst, &RecordHeader::new(record_type, id, 0, 0));
}

/// Appends a whole record.
///
/// A stream body longer than one record becomes several records; an empty stream body is the
/// end-of-stream record. Other bodies must fit one record. On error nothing is appended.
pub fn encode_record(dst: &mut BytesMut, record: &Record, padding: Padding) -> Result<(), EncodeError> {
    let id = record.request_id;
    let record_type = record.record_type();
    match &record.body {
        RecordBody::BeginRequest(begin) => write_single(dst, record_type, id, &begin.to_bytes(), padding),
        RecordBody::EndRequest(end) => write_single(dst, record_type, id, &end.to_bytes(), padding),
        RecordBody::AbortRequest => write_single(dst, record_type, id, &[], padding),
        RecordBody::UnknownType(unknown) => {
            write_single(dst, record_type, id, &unknown_type_bytes(*unknown), padding)
        }
        RecordBody::Params(data)
        | RecordBody::Stdin(data)
        | RecordBody::Stdout(data)
        | RecordBody::Stderr(data)
        | RecordBody::Data(data) => {
            if data.is_empty() {
                encode_end_of_stream(dst, record_type, id);
            } else {
                encode_stream(dst, record_type, id, data, padding);
            }
        }
        RecordBody::GetValues(pairs) | RecordBody::GetValuesResult(pairs) => {
            let mut content = BytesMut::new();
            encode_pairs(&mut content, pairs)?;
            check_fits(record_type, content.len(), padding)?;
            write_single(dst, record_type, id, &content, padding);
        }
        RecordBody::Unknown { content, .. } => {
            check_fits(record_type, content.len(), padding)?;
            write_single(dst, record_type, id, content, padding);
        }
    }
    Ok(())
}

fn check_fits(record_type: RecordType, len: usize, padding: Padding) -> Result<(), EncodeError> {
    if len > padding.max_content_len() {
        return Err(EncodeError::ContentTooLong { record_type, len });
    }
    Ok(())
}

/// One record of a split stream: header bytes and a slice of the caller's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRecord {
    /// The header, lengths filled in.
    pub header: RecordHeader,
    /// The content: a slice of the original payload, not a copy.
    pub content: Bytes,
}

impl EncodedRecord {
    /// Bytes this record takes on the wire.
    pub fn len(&self) -> usize {
        self.header.record_len()
    }

    /// Always false: a record has at least a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Header, content and zero padding as one `Buf`, ready for a vectored write.
    pub fn into_buf(self) -> impl Buf + Send + Sync + 'static {
        let pad = usize::from(self.header.padding_length);
        Bytes::copy_from_slice(&self.header.to_bytes())
            .chain(self.content)
            .chain(Bytes::from_static(&ZEROS[..pad]))
    }
}

/// Splits `data` into records of `record_type` without copying it (see [`stream_records`]).
#[derive(Clone, Debug)]
pub struct StreamRecords {
    record_type: RecordType,
    id: RequestId,
    rest: Bytes,
    padding: Padding,
}

/// The records that carry `data` on a stream, each holding a slice of `data`.
/// Yields nothing for empty data (the end of a stream is [`encode_end_of_stream`]).
pub fn stream_records(
    record_type: RecordType,
    id: RequestId,
    data: Bytes,
    padding: Padding,
) -> StreamRecords {
    StreamRecords { record_type, id, rest: data, padding }
}

impl Iterator for StreamRecords {
    type Item = EncodedRecord;

    fn next(&mut self) -> Option<EncodedRecord> {
        if self.rest.is_empty() {
            return None;
        }
        let len = self.rest.len().min(self.padding.max_content_len());
        let content = self.rest.split_to(len);
        let header = RecordHeader::new(self.record_type, self.id, len as u16, self.padding.for_content(len));
        Some(EncodedRecord { header, content })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len().div_ceil(self.padding.max_content_len());
        (n, Some(n))
    }
}

impl ExactSizeIterator for StreamRecords {}
