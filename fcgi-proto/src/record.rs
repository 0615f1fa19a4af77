//! A whole record with its body decoded according to its type.

use bytes::Bytes;

use crate::body::{BeginRequest, EndRequest, ProtocolStatus, Role};
use crate::header::{RecordType, RequestId};
use crate::pairs::NameValuePair;

/// A record: the request it belongs to and its typed body.
///
/// Stream bodies share memory with the buffer they were decoded from. An empty stream body is
/// the end-of-stream record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The request id (0 for management records).
    pub request_id: RequestId,
    /// The typed body.
    pub body: RecordBody,
}

/// The body of a record, by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordBody {
    /// `FCGI_BEGIN_REQUEST`.
    BeginRequest(BeginRequest),
    /// `FCGI_ABORT_REQUEST`.
    AbortRequest,
    /// `FCGI_END_REQUEST`.
    EndRequest(EndRequest),
    /// A chunk of the `FCGI_PARAMS` stream (pairs may span chunks: see
    /// [`ParamsAssembler`](crate::ParamsAssembler)).
    Params(Bytes),
    /// A chunk of the request body.
    Stdin(Bytes),
    /// A chunk of the response.
    Stdout(Bytes),
    /// A chunk of the application's error output.
    Stderr(Bytes),
    /// A chunk of the FILTER role's extra data.
    Data(Bytes),
    /// `FCGI_GET_VALUES`: the names asked for (values empty).
    GetValues(Vec<NameValuePair>),
    /// `FCGI_GET_VALUES_RESULT`: the variables the application chose to answer.
    GetValuesResult(Vec<NameValuePair>),
    /// `FCGI_UNKNOWN_TYPE`: the application did not understand a record of this type.
    UnknownType(RecordType),
    /// A record of a type FastCGI 1.0 does not define, kept as it came.
    Unknown {
        /// Its type byte.
        record_type: RecordType,
        /// Its content, padding removed.
        content: Bytes,
    },
}

impl RecordBody {
    /// The type byte this body travels under.
    pub fn record_type(&self) -> RecordType {
        match self {
            RecordBody::BeginRequest(_) => RecordType::BEGIN_REQUEST,
            RecordBody::AbortRequest => RecordType::ABORT_REQUEST,
            RecordBody::EndRequest(_) => RecordType::END_REQUEST,
            RecordBody::Params(_) => RecordType::PARAMS,
            RecordBody::Stdin(_) => RecordType::STDIN,
            RecordBody::Stdout(_) => RecordType::STDOUT,
            RecordBody::Stderr(_) => RecordType::STDERR,
            RecordBody::Data(_) => RecordType::DATA,
            RecordBody::GetValues(_) => RecordType::GET_VALUES,
            RecordBody::GetValuesResult(_) => RecordType::GET_VALUES_RESULT,
            RecordBody::UnknownType(_) => RecordType::UNKNOWN_TYPE,
            RecordBody::Unknown { record_type, .. } => *record_type,
        }
    }

    /// The data of a stream record, or `None` for the other types.
    pub fn stream_data(&self) -> Option<&Bytes> {
        match self {
            RecordBody::Params(data)
            | RecordBody::Stdin(data)
            | RecordBody::Stdout(data)
            | RecordBody::Stderr(data)
            | RecordBody::Data(data) => Some(data),
            _ => None,
        }
    }

    /// A stream body of the given type, or `None` when the type is not a stream.
    pub fn stream(record_type: RecordType, data: Bytes) -> Option<Self> {
        record_type.is_stream().then(|| Self::stream_or_unknown(record_type, data))
    }

    /// A stream body of the given type, or [`RecordBody::Unknown`] for any other type.
    pub(crate) fn stream_or_unknown(record_type: RecordType, data: Bytes) -> Self {
        match record_type {
            RecordType::PARAMS => RecordBody::Params(data),
            RecordType::STDIN => RecordBody::Stdin(data),
            RecordType::STDOUT => RecordBody::Stdout(data),
            RecordType::STDERR => RecordBody::Stderr(data),
            RecordType::DATA => RecordBody::Data(data),
            _ => RecordBody::Unknown { record_type, content: data },
        }
    }
}

impl Record {
    /// A record of the given id and body.
    pub fn new(request_id: RequestId, body: RecordBody) -> Self {
        Self { request_id, body }
    }

    /// The type byte this record travels under.
    pub fn record_type(&self) -> RecordType {
        self.body.record_type()
    }

    /// `FCGI_BEGIN_REQUEST` for the given role.
    pub fn begin_request(request_id: RequestId, role: Role, keep_conn: bool) -> Self {
        Self::new(request_id, RecordBody::BeginRequest(BeginRequest { role, keep_conn }))
    }

    /// `FCGI_END_REQUEST`.
    pub fn end_request(request_id: RequestId, app_status: u32, protocol_status: ProtocolStatus) -> Self {
        Self::new(request_id, RecordBody::EndRequest(EndRequest { app_status, protocol_status }))
    }

    /// A stream record; `data` may be empty (end of stream) or larger than one record
    /// (the encoder splits it).
    pub fn stream(record_type: RecordType, request_id: RequestId, data: impl Into<Bytes>) -> Option<Self> {
        RecordBody::stream(record_type, data.into()).map(|body| Self::new(request_id, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_bodies_know_their_type() {
        for byte in 0..=255u8 {
            let record_type = RecordType(byte);
            let body = RecordBody::stream(record_type, Bytes::from_static(b"x"));
            assert_eq!(body.is_some(), record_type.is_stream());
            if let Some(body) = body {
                assert_eq!(body.record_type(), record_type);
                assert_eq!(body.stream_data().unwrap().as_ref(), b"x");
            }
        }
    }
}
