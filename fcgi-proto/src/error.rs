//! Typed errors of the decoder and encoder.

use std::fmt;

use crate::header::{RecordType, RequestId};
use crate::pairs::{PairLengthOverflow, PairOverrun};

/// Malformed input: what was wrong and at which byte of the stream.
///
/// Offsets count from the first byte ever given to the decoder. A decoder that returned a
/// `DecodeError` returns the same error from then on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed FastCGI input at byte {offset}: {kind}")]
pub struct DecodeError {
    offset: u64,
    kind: DecodeErrorKind,
}

impl DecodeError {
    pub(crate) fn new(offset: u64, kind: DecodeErrorKind) -> Self {
        Self { offset, kind }
    }

    /// Offset of the first offending byte, counted from the start of the stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What was wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }
}

/// The ways input can be malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The version byte is not 1 (often: the peer does not speak FastCGI at all).
    #[error("version byte is {0}, expected 1 (is the peer speaking FastCGI?)")]
    BadVersion(u8),
    /// An application record (BEGIN_REQUEST ... DATA) on request id 0.
    #[error("{0} record on request id 0, which is reserved for management records")]
    ApplicationRecordOnManagementId(RecordType),
    /// A management record on a request id other than 0.
    #[error("{record_type} record on request id {request_id}; management records use id 0")]
    ManagementRecordOnRequestId {
        /// The management type.
        record_type: RecordType,
        /// The id it came with.
        request_id: RequestId,
    },
    /// A fixed-size body with the wrong length.
    #[error("{record_type} content is {actual} bytes, the protocol fixes it at {expected}")]
    BadBodyLength {
        /// The type with a fixed-size body.
        record_type: RecordType,
        /// Its fixed length.
        expected: u16,
        /// The length on the wire.
        actual: u16,
    },
    /// A record longer than the decoder's configured limit.
    #[error("{record_type} content of {len} bytes exceeds the configured limit of {limit}")]
    ContentTooLong {
        /// The record's type.
        record_type: RecordType,
        /// Its content length.
        len: u16,
        /// The configured limit.
        limit: u16,
    },
    /// A name-value pair of a management record runs past the record's end.
    #[error("{record_type}: {overrun}")]
    PairOverrun {
        /// The management type.
        record_type: RecordType,
        /// Where and how the pair overran.
        overrun: PairOverrun,
    },
    /// The input ended inside a record.
    #[error("input ends inside a record: {have} of its {need} bytes are present")]
    Truncated {
        /// Bytes of the record that arrived.
        have: usize,
        /// Bytes the record needs (header, content and padding).
        need: usize,
    },
}

/// What the encoder cannot produce.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A non-stream body that does not fit one record.
    #[error("{record_type} content of {len} bytes does not fit one record (at most 65535)")]
    ContentTooLong {
        /// The record type.
        record_type: RecordType,
        /// The content length asked for.
        len: usize,
    },
    /// A name-value pair larger than one PARAMS record, with splitting not allowed.
    #[error(
        "parameter {name} takes {len} bytes encoded, more than one FCGI_PARAMS record holds \
         ({max}); php-fpm cannot read a pair split across records"
    )]
    PairTooLarge {
        /// The pair's name, shortened and escaped for display.
        name: ShownName,
        /// Its encoded length.
        len: usize,
        /// The most one record holds.
        max: usize,
    },
    /// A name or value longer than 2^31-1 bytes.
    #[error(transparent)]
    PairLength(#[from] PairLengthOverflow),
}

/// A parameter name prepared for an error message: lossy UTF-8, escaped, at most 64 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct ShownName(String);

impl ShownName {
    const MAX_CHARS: usize = 64;

    pub(crate) fn new(name: &[u8]) -> Self {
        let text = String::from_utf8_lossy(name);
        let mut shown: String = text.escape_debug().take(Self::MAX_CHARS).collect();
        if text.escape_debug().nth(Self::MAX_CHARS).is_some() {
            shown.push('…');
        }
        Self(shown)
    }

    /// The shortened, escaped name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

impl fmt::Debug for ShownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_name_is_short_and_escaped() {
        assert_eq!(ShownName::new(b"HTTP_X\r\n").to_string(), "\"HTTP_X\\r\\n\"");
        let long = ShownName::new(&[b'A'; 100]);
        assert_eq!(long.as_str().chars().count(), 65);
        assert!(long.as_str().ends_with('…'));
    }

    #[test]
    fn messages_say_what_and_where() {
        let err = DecodeError::new(16, DecodeErrorKind::BadVersion(72));
        assert_eq!(
            err.to_string(),
            "malformed FastCGI input at byte 16: version byte is 72, expected 1 (is the peer speaking FastCGI?)"
        );
        let err = DecodeErrorKind::ApplicationRecordOnManagementId(RecordType::STDOUT);
        assert_eq!(
            err.to_string(),
            "FCGI_STDOUT record on request id 0, which is reserved for management records"
        );
    }
}
