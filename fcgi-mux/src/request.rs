//! Preparing a request for the wire: its body (known length, or buffered to learn it), the
//! CONTENT_LENGTH parameter, and the encoded head (BEGIN_REQUEST and the PARAMS stream).

use bytes::{Buf, Bytes, BytesMut};
use fcgi_proto::{Padding, ParamsOptions, Record, RequestId, Role, encode_params, encode_record};
use http_body::Body;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::config::ConnectionConfig;
use crate::error::{BoxError, Error};

/// A request body ready to send: its exact length is known.
pub(crate) enum RequestBody {
    /// The whole body in memory (can be sent again if the request must be retried).
    Full(Bytes),
    /// A stream that must yield exactly `length` bytes.
    Stream {
        /// The stream.
        body: UnsyncBoxBody<Bytes, BoxError>,
        /// Its declared length, sent as CONTENT_LENGTH.
        length: u64,
    },
}

/// A streamed body on the driver's side, polled when the connection machine wants bytes.
pub(crate) struct StreamBody {
    pub(crate) body: UnsyncBoxBody<Bytes, BoxError>,
    pub(crate) length: u64,
}

impl StreamBody {
    /// A stream of one in-memory chunk.
    pub(crate) fn full(bytes: Bytes) -> Self {
        use http_body_util::{BodyExt, Full};
        let length = bytes.len() as u64;
        StreamBody { body: Full::new(bytes).map_err(|never| match never {}).boxed_unsync(), length }
    }
}

impl RequestBody {
    /// The number of bytes the body will send.
    pub(crate) fn len(&self) -> u64 {
        match self {
            RequestBody::Full(bytes) => bytes.len() as u64,
            RequestBody::Stream { length, .. } => *length,
        }
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestBody::Full(bytes) => write!(f, "RequestBody::Full({} bytes)", bytes.len()),
            RequestBody::Stream { length, .. } => write!(f, "RequestBody::Stream({length} bytes)"),
        }
    }
}

/// Turns any `http_body::Body` into a body of known length. A body whose length is neither
/// exact in its size hint nor given by `content_length` is read into memory, up to
/// `config.max_buffered_body`, to learn it: php-fpm needs CONTENT_LENGTH to be exact.
pub(crate) async fn prepare_body<B>(
    body: B,
    content_length: Option<u64>,
    config: &ConnectionConfig,
) -> Result<RequestBody, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let exact = body.size_hint().exact();
    if exact == Some(0) && content_length.unwrap_or(0) == 0 {
        return Ok(RequestBody::Full(Bytes::new()));
    }
    let boxed: UnsyncBoxBody<Bytes, BoxError> = body
        .map_frame(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
        .map_err(Into::into)
        .boxed_unsync();
    match (exact, content_length) {
        (Some(a), Some(b)) if a != b => {
            Err(Error::InvalidRequest(format!("Content-Length says {b} bytes but the body has exactly {a}")))
        }
        (Some(length), _) | (None, Some(length)) => Ok(RequestBody::Stream { body: boxed, length }),
        (None, None) => buffer(boxed, config.max_buffered_body).await.map(RequestBody::Full),
    }
}

async fn buffer(mut body: UnsyncBoxBody<Bytes, BoxError>, limit: usize) -> Result<Bytes, Error> {
    let mut buffered = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| Error::Body(std::sync::Arc::new(err)))?;
        if let Ok(data) = frame.into_data() {
            if buffered.len() + data.len() > limit {
                return Err(Error::InvalidRequest(format!(
                    "the request body has no declared length and is larger than the {limit}-byte buffer \
                     used to learn it; give its length (Content-Length) or raise the limit"
                )));
            }
            buffered.extend_from_slice(&data);
        }
    }
    Ok(buffered.freeze())
}

/// Makes CONTENT_LENGTH agree with the body: added when missing (and the body is not empty),
/// refused when it says something else. An empty value counts as 0 (nginx sends one for GET).
pub(crate) fn check_content_length(params: &mut Vec<(Bytes, Bytes)>, body_len: u64) -> Result<(), Error> {
    check_length(params, "CONTENT_LENGTH", "body", body_len)
}

/// Makes the length parameter `name` agree with a stream of `len` bytes, as
/// [`check_content_length`] does for CONTENT_LENGTH.
pub(crate) fn check_length(
    params: &mut Vec<(Bytes, Bytes)>,
    name: &'static str,
    what: &str,
    body_len: u64,
) -> Result<(), Error> {
    match params.iter().find(|(n, _)| n.as_ref() == name.as_bytes()) {
        Some((_, value)) => {
            let declared = if value.is_empty() {
                Some(0)
            } else {
                std::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok())
            };
            if declared != Some(body_len) {
                return Err(Error::InvalidRequest(format!(
                    "{name} is {:?} but the {what} has {body_len} bytes (php-fpm hangs or resets on a mismatch)",
                    String::from_utf8_lossy(value)
                )));
            }
        }
        None if body_len > 0 => {
            params.push((Bytes::from_static(name.as_bytes()), Bytes::from(body_len.to_string())));
        }
        None => {}
    }
    Ok(())
}

/// A request's parameters checked and encoded once, for sending many requests with the same
/// parameters and body length (a load generator repeating one request): each request then
/// copies the encoded records instead of encoding every pair again. Made by
/// [`Pool::encode_params`](crate::Pool::encode_params), sent by
/// [`Pool::request_encoded`](crate::Pool::request_encoded). Cheap to clone.
#[derive(Clone, Debug)]
pub struct EncodedParams {
    /// BEGIN_REQUEST, the PARAMS records and the empty PARAMS record, with [`PLACEHOLDER_ID`].
    head: Bytes,
    /// The body length its CONTENT_LENGTH declares.
    body_len: u64,
    /// The connection settings it was encoded with (BEGIN_REQUEST's KEEP_CONN, padding).
    keep_conn: bool,
    padding: Padding,
}

impl EncodedParams {
    /// Checks CONTENT_LENGTH against `body_len` (adding it when missing) and encodes.
    pub(crate) fn new(
        mut pairs: Vec<(Bytes, Bytes)>,
        body_len: u64,
        config: &ConnectionConfig,
    ) -> Result<EncodedParams, Error> {
        check_content_length(&mut pairs, body_len)?;
        let mut head = BytesMut::new();
        encode_head(&mut head, PLACEHOLDER_ID, &pairs, Role::RESPONDER, config.keep_conn, config.padding)?;
        Ok(EncodedParams {
            head: head.freeze(),
            body_len,
            keep_conn: config.keep_conn,
            padding: config.padding,
        })
    }

    /// The body length every request sent with these parameters must have.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// The head of one request, after checking that it fits `config` and a `body_len` body.
    pub(crate) fn head_for(&self, body_len: u64, config: &ConnectionConfig) -> Result<Head, Error> {
        if body_len != self.body_len {
            return Err(Error::InvalidRequest(format!(
                "the parameters were encoded for a {}-byte body but this request's body has {body_len} bytes",
                self.body_len
            )));
        }
        if (self.keep_conn, self.padding) != (config.keep_conn, config.padding) {
            return Err(Error::InvalidRequest(
                "the parameters were encoded for another connection configuration (keep-conn, padding)"
                    .into(),
            ));
        }
        Ok(Head::Encoded(self.head.clone()))
    }
}

/// Heads whose PARAMS take at most this many bytes are encoded by the connection driver
/// straight into its write buffer, in one turn. Larger ones are encoded beforehand and
/// written one record per turn, so that a huge head does not hold up the other requests of
/// a multiplexed connection.
pub(crate) const DIRECT_HEAD_LIMIT: usize = 16 * 1024;

/// The id a pre-encoded head carries; the driver rewrites it to the allocated id.
pub(crate) const PLACEHOLDER_ID: RequestId = RequestId(1);

/// A request's BEGIN_REQUEST, PARAMS records and empty PARAMS record, ready to send.
pub(crate) enum Head {
    /// Small enough to encode at send time (see [`DIRECT_HEAD_LIMIT`]); the parameters were
    /// checked to fit.
    Params {
        /// The parameters.
        pairs: Vec<(Bytes, Bytes)>,
        /// BEGIN_REQUEST's role.
        role: Role,
        /// BEGIN_REQUEST's KEEP_CONN flag.
        keep_conn: bool,
    },
    /// The records, encoded with [`PLACEHOLDER_ID`].
    Encoded(Bytes),
}

impl Head {
    /// Checks the parameters and, for a large head, encodes it.
    pub(crate) fn new(
        pairs: Vec<(Bytes, Bytes)>,
        role: Role,
        config: &ConnectionConfig,
    ) -> Result<Head, Error> {
        // Each length takes 1 or 4 bytes: counting 4 gives an upper bound, cheaply.
        let params_len_bound: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 8).sum();
        if params_len_bound <= DIRECT_HEAD_LIMIT {
            // Within one record: no pair can be too large for php-fpm or the protocol.
            return Ok(Head::Params { pairs, role, keep_conn: config.keep_conn });
        }
        let mut head = BytesMut::with_capacity(64 + params_len_bound);
        encode_head(&mut head, PLACEHOLDER_ID, &pairs, role, config.keep_conn, config.padding)?;
        Ok(Head::Encoded(head.freeze()))
    }
}

/// Appends BEGIN_REQUEST, the PARAMS records (whole pairs) and the empty PARAMS record of
/// request `id`. On error nothing is appended.
pub(crate) fn encode_head(
    dst: &mut BytesMut,
    id: RequestId,
    params: &[(Bytes, Bytes)],
    role: Role,
    keep_conn: bool,
    padding: Padding,
) -> Result<(), Error> {
    let start = dst.len();
    let begin = Record::begin_request(id, role, keep_conn);
    encode_record(dst, &begin, padding).map_err(|err| Error::InvalidRequest(err.to_string()))?;
    let options = ParamsOptions::default().with_padding(padding);
    encode_params(dst, id, params.iter().map(|(n, v)| (n, v)), options).map_err(|err| {
        dst.truncate(start);
        Error::InvalidRequest(err.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&'static str, &'static str)]) -> Vec<(Bytes, Bytes)> {
        list.iter()
            .map(|(n, v)| (Bytes::from_static(n.as_bytes()), Bytes::from_static(v.as_bytes())))
            .collect()
    }

    #[test]
    fn content_length_is_added_checked_or_refused() {
        let mut p = params(&[("A", "1")]);
        check_content_length(&mut p, 5).unwrap();
        assert_eq!(p.last().unwrap(), &(Bytes::from_static(b"CONTENT_LENGTH"), Bytes::from_static(b"5")));
        let mut p = params(&[("A", "1")]);
        check_content_length(&mut p, 0).unwrap();
        assert_eq!(p.len(), 1, "no CONTENT_LENGTH invented for an empty body");
        check_content_length(&mut params(&[("CONTENT_LENGTH", "")]), 0).unwrap();
        check_content_length(&mut params(&[("CONTENT_LENGTH", "0")]), 0).unwrap();
        check_content_length(&mut params(&[("CONTENT_LENGTH", "7")]), 7).unwrap();
        for (value, len) in [("8", 7), ("", 7), ("x", 0), ("-1", 0)] {
            let err = check_content_length(&mut params(&[("CONTENT_LENGTH", value)]), len).unwrap_err();
            assert!(matches!(err, Error::InvalidRequest(_)), "{value} vs {len}");
        }
    }

    /// A body of chunks whose size hint is unknown, like a chunked upload.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|chunk| Ok(http_body::Frame::data(chunk))))
        }
    }

    fn chunks(n: usize) -> Chunks {
        Chunks((0..n).map(|_| Bytes::from_static(b"abcd")).collect())
    }

    #[tokio::test]
    async fn bodies_of_unknown_length_are_buffered_up_to_the_limit() {
        let config = ConnectionConfig { max_buffered_body: 10, ..ConnectionConfig::default() };
        match prepare_body(chunks(2), None, &config).await.unwrap() {
            RequestBody::Full(bytes) => assert_eq!(&bytes[..], b"abcdabcd"),
            other => panic!("{other:?}"),
        }
        let err = prepare_body(chunks(3), None, &config).await.unwrap_err();
        assert!(err.to_string().contains("10-byte buffer"), "{err}");
        match prepare_body(chunks(3), Some(12), &config).await.unwrap() {
            RequestBody::Stream { length, .. } => assert_eq!(length, 12),
            other => panic!("{other:?}"),
        }
        let err = prepare_body(http_body_util::Full::new(Bytes::from_static(b"abc")), Some(4), &config)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Content-Length says 4"), "{err}");
    }
}
