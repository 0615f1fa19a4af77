//! FastCGI 1.0 wire codec, without I/O.
//!
//! This crate turns bytes into FastCGI records and records into bytes. It never touches a
//! socket and knows nothing of tokio: the async client (`fcgi-mux`), the CLI's `dump`, test
//! responders and the fuzzer all drive it with whatever bytes they have.
//!
//! # Layout
//!
//! | module | concern |
//! |---|---|
//! | `header` | the 8-byte record header, [`RecordType`], [`RequestId`], protocol constants |
//! | `body` | the fixed-size bodies: [`BeginRequest`] / [`Role`], [`EndRequest`] / [`ProtocolStatus`] |
//! | `pairs` | name-value pair lengths, [`NameValuePair`], [`decode_pairs`] |
//! | `record` | [`Record`] and its typed [`RecordBody`] |
//! | `decoder` | the incremental [`Decoder`]: bytes in any split → records, typed [`DecodeError`]s |
//! | `encode` | writing records into a caller's `BytesMut`; zero-copy [`stream_records`] |
//! | `params` | [`encode_params`]: whole pairs packed per `FCGI_PARAMS` record |
//! | `assemble` | [`ParamsAssembler`]: PARAMS reassembly on the receiving side |
//! | `management` | `FCGI_GET_VALUES` names and the typed [`ServerValues`] answer |
//! | `error` | [`DecodeError`], [`EncodeError`] |
//!
//! # Rules the codec enforces, and why
//!
//! - Decoding: incomplete input is never an error (`Ok(None)`); malformed input is a typed
//!   error carrying the stream offset, and the decoder stays failed. Reserved bytes and
//!   padding content are ignored (php-fpm sends non-zero reserved bytes). Content plus
//!   padding is computed in `usize`.
//! - Encoding: reserved and padding bytes are zero; no record's content plus padding exceeds
//!   65535 (php-fpm resets on 65535 + 1 byte of padding); padding is off by default and an
//!   empty record is never padded; a name-value pair is never split across PARAMS records
//!   unless asked for (php-fpm resets the connection when one is).
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use fcgi_proto::{Decoder, ParamsOptions, Padding, Record, RecordBody, RecordType, RequestId, Role};
//!
//! // A client writes a request...
//! let id = RequestId(1);
//! let mut wire = BytesMut::new();
//! fcgi_proto::encode_record(&mut wire, &Record::begin_request(id, Role::RESPONDER, false), Padding::None)?;
//! fcgi_proto::encode_params(&mut wire, id, [("SCRIPT_NAME", "/ping")], ParamsOptions::default())?;
//! fcgi_proto::encode_end_of_stream(&mut wire, RecordType::STDIN, id);
//!
//! // ...and the other side decodes it, whatever way the bytes arrive.
//! let mut decoder = Decoder::new();
//! let mut input = BytesMut::new();
//! let mut records = Vec::new();
//! for byte in wire.iter() {
//!     input.extend_from_slice(&[*byte]);
//!     while let Some(record) = decoder.decode(&mut input)? {
//!         records.push(record);
//!     }
//! }
//! assert_eq!(records.len(), 4);
//! assert!(matches!(records[3].body, RecordBody::Stdin(ref data) if data.is_empty()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs, unreachable_pub)]

mod assemble;
mod body;
mod decoder;
mod encode;
mod error;
mod header;
mod management;
mod pairs;
mod params;
mod record;

pub use assemble::{DEFAULT_MAX_PARAMS_LEN, ParamsAssembler, ParamsError};
pub use body::{BeginRequest, EndRequest, FIXED_BODY_LEN, ProtocolStatus, Role};
pub use decoder::{Decoder, DecoderLimits, Frame};
pub use encode::{
    EncodedRecord, Padding, StreamRecords, encode_end_of_stream, encode_record, encode_stream,
    stream_records, write_header,
};
pub use error::{DecodeError, DecodeErrorKind, EncodeError, ShownName};
pub use header::{
    HEADER_LEN, MAX_CONTENT_LEN, MAX_PADDING_LEN, RecordHeader, RecordType, RequestId, VERSION_1,
};
pub use management::{FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS, ServerValues, standard_query};
pub use pairs::{
    MAX_PAIR_PART_LEN, NameValuePair, PairLengthOverflow, PairOverrun, PairPart, check_pair_lengths,
    decode_pairs, encode_pairs, encoded_pair_len, length_prefix_len, write_pair,
};
pub use params::{ParamsOptions, encode_params};
pub use record::{Record, RecordBody};
