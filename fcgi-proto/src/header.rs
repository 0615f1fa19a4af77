//! The fixed 8-byte record header and the small identifier types it carries.

use std::fmt;

/// The only protocol version FastCGI defines.
pub const VERSION_1: u8 = 1;
/// Length of a record header on the wire.
pub const HEADER_LEN: usize = 8;
/// Largest content a single record can carry (`contentLength` is 16 bits).
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;
/// Largest padding a record can carry (`paddingLength` is 8 bits).
pub const MAX_PADDING_LEN: usize = u8::MAX as usize;

/// A record type byte. Any byte is representable, so records of types this crate does not
/// know are preserved (a server side answers them with `FCGI_UNKNOWN_TYPE`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordType(pub u8);

impl RecordType {
    /// `FCGI_BEGIN_REQUEST` (1): starts a request; 8-byte body.
    pub const BEGIN_REQUEST: Self = Self(1);
    /// `FCGI_ABORT_REQUEST` (2): asks the application to abort a request; empty body.
    pub const ABORT_REQUEST: Self = Self(2);
    /// `FCGI_END_REQUEST` (3): the application finished a request; 8-byte body.
    pub const END_REQUEST: Self = Self(3);
    /// `FCGI_PARAMS` (4): name-value pair stream, client to application.
    pub const PARAMS: Self = Self(4);
    /// `FCGI_STDIN` (5): request body stream, client to application.
    pub const STDIN: Self = Self(5);
    /// `FCGI_STDOUT` (6): response stream, application to client.
    pub const STDOUT: Self = Self(6);
    /// `FCGI_STDERR` (7): error stream, application to client.
    pub const STDERR: Self = Self(7);
    /// `FCGI_DATA` (8): extra data stream for the FILTER role.
    pub const DATA: Self = Self(8);
    /// `FCGI_GET_VALUES` (9): management query of the application's variables.
    pub const GET_VALUES: Self = Self(9);
    /// `FCGI_GET_VALUES_RESULT` (10): the answer to `FCGI_GET_VALUES`.
    pub const GET_VALUES_RESULT: Self = Self(10);
    /// `FCGI_UNKNOWN_TYPE` (11): answer to a management record of an unknown type.
    pub const UNKNOWN_TYPE: Self = Self(11);

    /// The largest type number FastCGI 1.0 defines (`FCGI_MAXTYPE`).
    pub const MAX_KNOWN: u8 = 11;

    /// True for the types FastCGI 1.0 defines.
    pub const fn is_known(self) -> bool {
        self.0 >= 1 && self.0 <= Self::MAX_KNOWN
    }

    /// True for the management types, which always travel on request id 0.
    pub const fn is_management(self) -> bool {
        matches!(self.0, 9..=11)
    }

    /// True for the known types bound to a request (request id other than 0).
    pub const fn is_application(self) -> bool {
        matches!(self.0, 1..=8)
    }

    /// True for the stream types, whose data ends with an empty record.
    pub const fn is_stream(self) -> bool {
        matches!(self.0, 4..=8)
    }

    /// The spec's name (`FCGI_STDOUT`), or `None` for an unknown type.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "FCGI_BEGIN_REQUEST",
            2 => "FCGI_ABORT_REQUEST",
            3 => "FCGI_END_REQUEST",
            4 => "FCGI_PARAMS",
            5 => "FCGI_STDIN",
            6 => "FCGI_STDOUT",
            7 => "FCGI_STDERR",
            8 => "FCGI_DATA",
            9 => "FCGI_GET_VALUES",
            10 => "FCGI_GET_VALUES_RESULT",
            11 => "FCGI_UNKNOWN_TYPE",
            _ => return None,
        })
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown record type {}", self.0),
        }
    }
}

impl From<u8> for RecordType {
    fn from(byte: u8) -> Self {
        Self(byte)
    }
}

impl From<RecordType> for u8 {
    fn from(record_type: RecordType) -> Self {
        record_type.0
    }
}

/// A request id. Id 0 ([`RequestId::MANAGEMENT`]) is reserved for management records.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u16);

impl RequestId {
    /// `FCGI_NULL_REQUEST_ID`: the id of management records.
    pub const MANAGEMENT: Self = Self(0);

    /// True for id 0.
    pub const fn is_management(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u16> for RequestId {
    fn from(id: u16) -> Self {
        Self(id)
    }
}

/// The 8-byte header that starts every record, exactly as on the wire.
///
/// The reserved byte is not kept: it is written as zero and ignored on input.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// Protocol version; [`VERSION_1`] for every valid record.
    pub version: u8,
    /// The record's type.
    pub record_type: RecordType,
    /// The request the record belongs to (0 for management records).
    pub request_id: RequestId,
    /// Bytes of content following the header.
    pub content_length: u16,
    /// Bytes of padding following the content.
    pub padding_length: u8,
}

impl RecordHeader {
    /// A version-1 header.
    pub const fn new(
        record_type: RecordType,
        request_id: RequestId,
        content_length: u16,
        padding_length: u8,
    ) -> Self {
        Self { version: VERSION_1, record_type, request_id, content_length, padding_length }
    }

    /// Reads a header from its 8 wire bytes. Never fails: validation is the decoder's job.
    pub const fn parse(bytes: &[u8; HEADER_LEN]) -> Self {
        Self {
            version: bytes[0],
            record_type: RecordType(bytes[1]),
            request_id: RequestId(u16::from_be_bytes([bytes[2], bytes[3]])),
            content_length: u16::from_be_bytes([bytes[4], bytes[5]]),
            padding_length: bytes[6],
        }
    }

    /// The 8 wire bytes of this header, reserved byte zero.
    pub const fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let id = self.request_id.0.to_be_bytes();
        let len = self.content_length.to_be_bytes();
        [self.version, self.record_type.0, id[0], id[1], len[0], len[1], self.padding_length, 0]
    }

    /// Content plus padding, computed in `usize` so that it cannot wrap
    /// (a 16-bit sum of the two desynchronised HAProxy's parser).
    pub const fn body_len(&self) -> usize {
        self.content_length as usize + self.padding_length as usize
    }

    /// Header, content and padding together.
    pub const fn record_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_round_trip_and_reserved_is_zero() {
        let header = RecordHeader::new(RecordType::STDOUT, RequestId(0x0102), 0x0304, 5);
        let bytes = header.to_bytes();
        assert_eq!(bytes, [1, 6, 0x01, 0x02, 0x03, 0x04, 5, 0]);
        assert_eq!(RecordHeader::parse(&bytes), header);
    }

    #[test]
    fn parse_ignores_a_non_zero_reserved_byte() {
        let header = RecordHeader::parse(&[1, 3, 0, 1, 0, 8, 0, 0xff]);
        assert_eq!(header, RecordHeader::new(RecordType::END_REQUEST, RequestId(1), 8, 0));
    }

    #[test]
    fn body_len_does_not_wrap_at_16_bits() {
        let header = RecordHeader::new(RecordType::STDOUT, RequestId(1), u16::MAX, u8::MAX);
        assert_eq!(header.body_len(), 65535 + 255);
        assert_eq!(header.record_len(), 8 + 65535 + 255);
    }

    #[test]
    fn record_type_classes() {
        for byte in 0..=255u8 {
            let t = RecordType(byte);
            assert_eq!(t.is_known(), t.name().is_some(), "type {byte}");
            assert_eq!(t.is_known(), t.is_application() || t.is_management(), "type {byte}");
            assert!(!(t.is_application() && t.is_management()), "type {byte}");
            if t.is_stream() {
                assert!(t.is_application(), "type {byte}");
            }
        }
        assert_eq!(RecordType::GET_VALUES.to_string(), "FCGI_GET_VALUES");
        assert_eq!(RecordType(200).to_string(), "unknown record type 200");
    }
}
