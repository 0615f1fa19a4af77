//! The incremental, sans-I/O record decoder.
//!
//! The caller owns the input buffer: it appends whatever bytes arrived, in any split, and
//! calls [`Decoder::decode`] until it returns `Ok(None)` ("need more bytes"). Complete
//! records are split off the front of the buffer without copying. Header-level problems
//! (version, type/id mismatch, fixed body length, size limit) are reported as soon as the 8
//! header bytes are in, without waiting for the content.

use bytes::{Buf, Bytes, BytesMut};

use crate::body::{BeginRequest, EndRequest, FIXED_BODY_LEN};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::header::{HEADER_LEN, MAX_CONTENT_LEN, RecordHeader, RecordType, VERSION_1};
use crate::pairs::decode_pairs;
use crate::record::{Record, RecordBody};

/// Offset of the request id within a header.
const REQUEST_ID_FIELD: u64 = 2;
/// Offset of the content length within a header.
const CONTENT_LENGTH_FIELD: u64 = 4;

/// Limits on what the decoder accepts, and so on how much a caller must buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecoderLimits {
    /// Records whose content is longer are refused. The default accepts every length the
    /// protocol allows (65535), so a caller buffers at most 8 + 65535 + 255 bytes per record.
    pub max_content_len: u16,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        Self { max_content_len: MAX_CONTENT_LEN as u16 }
    }
}

impl DecoderLimits {
    /// The default limits with a different content limit.
    pub fn with_max_content_len(max_content_len: u16) -> Self {
        Self { max_content_len }
    }

    /// The most bytes one record can occupy under these limits.
    pub fn max_record_len(&self) -> usize {
        HEADER_LEN + usize::from(self.max_content_len) + usize::from(u8::MAX)
    }
}

/// A decoded record with the header it came with (lengths, padding), for observers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The header as it was on the wire.
    pub header: RecordHeader,
    /// The decoded record.
    pub record: Record,
}

/// Turns a byte stream into records. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    limits: DecoderLimits,
    consumed: u64,
    failure: Option<DecodeError>,
}

impl Decoder {
    /// A decoder with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder with the given limits.
    pub fn with_limits(limits: DecoderLimits) -> Self {
        Self { limits, ..Self::default() }
    }

    /// Bytes consumed so far: the stream offset of the next record.
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    /// The next record, `Ok(None)` when `src` does not hold a whole one yet.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Record>, DecodeError> {
        Ok(self.decode_frame(src)?.map(|frame| frame.record))
    }

    /// Like [`decode`](Self::decode), also returning the header as it was on the wire.
    pub fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let result = self.decode_unchecked(src);
        if let Err(err) = &result {
            self.failure = Some(err.clone());
        }
        result
    }

    /// To call once the input has ended: an error when `src` holds part of a record.
    pub fn finish(&mut self, src: &BytesMut) -> Result<(), DecodeError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        if src.is_empty() {
            return Ok(());
        }
        let need = match header_of(src) {
            Some(header) => header.record_len(),
            None => HEADER_LEN,
        };
        let err = DecodeError::new(self.consumed, DecodeErrorKind::Truncated { have: src.len(), need });
        self.failure = Some(err.clone());
        Err(err)
    }

    /// How many more bytes `src` needs before the next record is complete (0 when it is).
    pub fn bytes_needed(&self, src: &BytesMut) -> usize {
        let total = header_of(src).map_or(HEADER_LEN, |header| header.record_len());
        total.saturating_sub(src.len())
    }

    fn decode_unchecked(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let Some(header) = header_of(src) else {
            return Ok(None);
        };
        self.check_header(&header)?;
        if src.len() < header.record_len() {
            return Ok(None);
        }
        let mut content = src.split_to(header.record_len());
        content.advance(HEADER_LEN);
        content.truncate(usize::from(header.content_length));
        let body = self.body(&header, content.freeze())?;
        self.consumed += header.record_len() as u64;
        Ok(Some(Frame { header, record: Record::new(header.request_id, body) }))
    }

    fn check_header(&self, header: &RecordHeader) -> Result<(), DecodeError> {
        let start = self.consumed;
        if header.version != VERSION_1 {
            return Err(DecodeError::new(start, DecodeErrorKind::BadVersion(header.version)));
        }
        let record_type = header.record_type;
        if record_type.is_application() && header.request_id.is_management() {
            return Err(DecodeError::new(
                start + REQUEST_ID_FIELD,
                DecodeErrorKind::ApplicationRecordOnManagementId(record_type),
            ));
        }
        if record_type.is_management() && !header.request_id.is_management() {
            return Err(DecodeError::new(
                start + REQUEST_ID_FIELD,
                DecodeErrorKind::ManagementRecordOnRequestId { record_type, request_id: header.request_id },
            ));
        }
        if let Some(expected) = fixed_body_len(record_type) {
            if header.content_length != expected {
                return Err(DecodeError::new(
                    start + CONTENT_LENGTH_FIELD,
                    DecodeErrorKind::BadBodyLength { record_type, expected, actual: header.content_length },
                ));
            }
        }
        if header.content_length > self.limits.max_content_len {
            return Err(DecodeError::new(
                start + CONTENT_LENGTH_FIELD,
                DecodeErrorKind::ContentTooLong {
                    record_type,
                    len: header.content_length,
                    limit: self.limits.max_content_len,
                },
            ));
        }
        Ok(())
    }

    fn body(&self, header: &RecordHeader, content: Bytes) -> Result<RecordBody, DecodeError> {
        let record_type = header.record_type;
        Ok(match record_type {
            RecordType::BEGIN_REQUEST => RecordBody::BeginRequest(BeginRequest::parse(&fixed(&content))),
            RecordType::ABORT_REQUEST => RecordBody::AbortRequest,
            RecordType::END_REQUEST => RecordBody::EndRequest(EndRequest::parse(&fixed(&content))),
            RecordType::UNKNOWN_TYPE => RecordBody::UnknownType(RecordType(content[0])),
            RecordType::GET_VALUES | RecordType::GET_VALUES_RESULT => {
                let pairs = decode_pairs(&content).map_err(|overrun| {
                    let offset = self.consumed + (HEADER_LEN + overrun.offset) as u64;
                    DecodeError::new(offset, DecodeErrorKind::PairOverrun { record_type, overrun })
                })?;
                if record_type == RecordType::GET_VALUES {
                    RecordBody::GetValues(pairs)
                } else {
                    RecordBody::GetValuesResult(pairs)
                }
            }
            _ => RecordBody::stream_or_unknown(record_type, content),
        })
    }
}

fn header_of(src: &[u8]) -> Option<RecordHeader> {
    let bytes: &[u8; HEADER_LEN] = src.get(..HEADER_LEN)?.try_into().ok()?;
    Some(RecordHeader::parse(bytes))
}

fn fixed_body_len(record_type: RecordType) -> Option<u16> {
    match record_type {
        RecordType::BEGIN_REQUEST | RecordType::END_REQUEST | RecordType::UNKNOWN_TYPE => {
            Some(FIXED_BODY_LEN as u16)
        }
        RecordType::ABORT_REQUEST => Some(0),
        _ => None,
    }
}

/// The content of a fixed-size body, whose length `check_header` has already verified.
fn fixed(content: &[u8]) -> [u8; FIXED_BODY_LEN] {
    let mut body = [0; FIXED_BODY_LEN];
    body.copy_from_slice(&content[..FIXED_BODY_LEN]);
    body
}
