//! `FCGI_GET_VALUES` on a connection of its own: what does the server say about itself?
//!
//! Real servers differ (measured): php-fpm answers only `FCGI_MPXS_CONNS=0`; flup always
//! answers an empty result; fcgiwrap answers only once another record arrives, so a lone
//! query gets no answer in time (so do libfcgi's other users and uWSGI, and php-fpm with every
//! worker busy); a server that is not FastCGI answers with bytes that are not records (nginx's
//! HTTP 400, a TLS alert, an SSH banner), or waits for a line end and says nothing. The outcome
//! keeps these apart: foreign first bytes are reported as soon as they arrive, a FastCGI server
//! whose answer is malformed is a protocol error, silence is "no answer".

use std::time::{Duration, Instant};

use bytes::BytesMut;
use fcgi_proto::{
    DecodeError, Decoder, NameValuePair, Padding, Record, RecordBody, RecordType, RequestId, ServerValues,
    encode_record,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::address::Address;
use crate::error::Error;
use crate::observer::{Direction, Observer, observe};

/// What the server did with the query.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeOutcome {
    /// It answered with at least one variable.
    Answered {
        /// The pairs as sent.
        pairs: Vec<NameValuePair>,
        /// The standard variables, typed.
        values: ServerValues,
    },
    /// It answered FCGI_GET_VALUES_RESULT without any variable (flup does).
    AnsweredEmpty,
    /// It answered FCGI_UNKNOWN_TYPE: a FastCGI server that does not support the query.
    UnknownType,
    /// No answer within the timeout: fcgiwrap, libfcgi and uWSGI answer only during a request
    /// (or never), php-fpm with every worker busy accepts and waits, a line-based server
    /// (Python's `http.server`, SMTP-like protocols) waits for a line end that never comes.
    NoAnswer,
    /// The server closed the connection without answering.
    Closed,
    /// The server's first bytes are not a FastCGI record header (the first byte of one is the
    /// version, 1). Reported as soon as they arrive, without waiting for the timeout.
    NotFastCgi {
        /// What the bytes look like: `"an HTTP server"`, `"a TLS server"`, `"an SSH server"`,
        /// `"a text (line-based) protocol"` or `"not a FastCGI record"`.
        looks_like: &'static str,
        /// The first bytes received (at most 64).
        first_bytes: Vec<u8>,
    },
    /// The framing is FastCGI (version-1 record headers) but the records are malformed: a
    /// FCGI_GET_VALUES_RESULT pair that runs past its record, a management record on a request
    /// id, a fixed-size body of the wrong size, or a connection closed inside a record. A
    /// FastCGI server with a bug: a protocol error, not "not FastCGI".
    Malformed(DecodeError),
}

/// How many of a foreign server's first bytes [`ProbeOutcome::NotFastCgi`] keeps.
pub(crate) const FIRST_BYTES: usize = 64;

/// Names what a server that is not FastCGI seems to speak, from its first bytes.
fn looks_like(first: &[u8]) -> &'static str {
    let text_like = |bytes: &[u8]| {
        !bytes.is_empty()
            && bytes.iter().all(|b| b.is_ascii_graphic() || matches!(b, b' ' | b'\r' | b'\n' | b'\t'))
    };
    match first {
        [b'H', b'T', b'T', b'P', b'/', ..] => "an HTTP server",
        [0x14..=0x17, 0x03, ..] => "a TLS server",
        [b'S', b'S', b'H', b'-', ..] => "an SSH server",
        _ if text_like(&first[..first.len().min(16)]) => "a text (line-based) protocol",
        _ => "not a FastCGI record",
    }
}

/// The outcome and how long each step took.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeReport {
    /// What happened.
    pub outcome: ProbeOutcome,
    /// Time to connect.
    pub connect_time: Duration,
    /// Time from sending the query to the outcome.
    pub answer_time: Duration,
}

impl ProbeReport {
    /// A report of no answer after `waited` (for callers enforcing their own deadline).
    pub fn no_answer(waited: Duration) -> Self {
        Self { outcome: ProbeOutcome::NoAnswer, connect_time: Duration::ZERO, answer_time: waited }
    }
}

/// Settings of a probe.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProbeConfig {
    /// Time to connect. Default 2 s.
    pub connect_timeout: Duration,
    /// Time to wait for the answer. Default 1 s.
    pub answer_timeout: Duration,
    /// Sees the query and whatever comes back.
    pub observer: Option<Observer>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            answer_timeout: Duration::from_secs(1),
            observer: None,
        }
    }
}

impl ProbeConfig {
    /// Sets [`ProbeConfig::connect_timeout`].
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ProbeConfig::answer_timeout`].
    #[must_use]
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self
    }

    /// Sets [`ProbeConfig::observer`].
    #[must_use]
    pub fn observer(mut self, observer: Option<Observer>) -> Self {
        self.observer = observer;
        self
    }
}

/// Connects to `address`, asks FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS, and reports
/// what came back. Only failing to connect (or to send the query) is an error.
pub async fn probe(address: &Address, config: &ProbeConfig) -> Result<ProbeReport, Error> {
    let started = Instant::now();
    let mut io = address.connect(config.connect_timeout).await?;
    let connect_time = started.elapsed();
    let wire = get_values_query(config.observer.as_ref())?;
    let sent = Instant::now();
    io.write_all(&wire).await.map_err(Error::io)?;
    let wait = async {
        let mut decoder = Decoder::new();
        let mut input = BytesMut::new();
        let mut checked_first = false;
        loop {
            if !checked_first && !input.is_empty() {
                checked_first = true;
                if input[0] != fcgi_proto::VERSION_1 {
                    return not_fastcgi(&mut io, input).await;
                }
            }
            loop {
                let frame = match decoder.decode_frame(&mut input) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(error) => return ProbeOutcome::Malformed(error),
                };
                observe(config.observer.as_ref(), Direction::Received, frame.header, &frame.record);
                match frame.record.body {
                    RecordBody::GetValuesResult(pairs) if pairs.is_empty() => {
                        return ProbeOutcome::AnsweredEmpty;
                    }
                    RecordBody::GetValuesResult(pairs) => {
                        let values = ServerValues::from_pairs(&pairs);
                        return ProbeOutcome::Answered { pairs, values };
                    }
                    RecordBody::UnknownType(RecordType::GET_VALUES) => return ProbeOutcome::UnknownType,
                    _ => {}
                }
            }
            input.reserve(4096);
            match io.read_buf(&mut input).await {
                Ok(0) => {
                    return match decoder.finish(&input) {
                        Err(error) => ProbeOutcome::Malformed(error),
                        Ok(()) => ProbeOutcome::Closed,
                    };
                }
                Ok(_) => {}
                Err(_) => return ProbeOutcome::Closed,
            }
        }
    };
    let outcome = tokio::time::timeout(config.answer_timeout, wait).await.unwrap_or(ProbeOutcome::NoAnswer);
    Ok(ProbeReport { outcome, connect_time, answer_time: sent.elapsed() })
}

/// The first byte is not a record's version: not FastCGI. A short first read (a TLS alert is 7
/// bytes, a banner may come in pieces) gets up to [`NAMING_WAIT`] more for naming it.
async fn not_fastcgi<S: tokio::io::AsyncRead + Unpin>(io: &mut S, mut input: BytesMut) -> ProbeOutcome {
    let more = async {
        while input.len() < 8 {
            input.reserve(FIRST_BYTES);
            match io.read_buf(&mut input).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(NAMING_WAIT, more).await;
    let first_bytes = input[..input.len().min(FIRST_BYTES)].to_vec();
    ProbeOutcome::NotFastCgi { looks_like: looks_like(&first_bytes), first_bytes }
}

/// How long a probe waits for more of a foreign server's first bytes, only to name them.
const NAMING_WAIT: Duration = Duration::from_millis(50);

/// The FCGI_GET_VALUES query for the three standard names, encoded and shown to `observer`.
pub(crate) fn get_values_query(observer: Option<&Observer>) -> Result<BytesMut, Error> {
    let query = Record::new(RequestId::MANAGEMENT, RecordBody::GetValues(fcgi_proto::standard_query()));
    let mut wire = BytesMut::new();
    encode_record(&mut wire, &query, Padding::None).map_err(|err| Error::InvalidRequest(err.to_string()))?;
    let content_length = (wire.len() - fcgi_proto::HEADER_LEN) as u16;
    let header = fcgi_proto::RecordHeader::new(query.record_type(), RequestId::MANAGEMENT, content_length, 0);
    observe(observer, Direction::Sent, header, &query);
    Ok(wire)
}

#[cfg(test)]
mod tests {
    use super::looks_like;

    #[test]
    fn foreign_first_bytes_are_named() {
        #[rustfmt::skip]
        let cases: &[(&[u8], &str)] = &[
            (b"HTTP/1.1 400 Bad Request\r\n", "an HTTP server"),
            (b"HTTP/1.0 400 Bad request", "an HTTP server"),
            (&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46], "a TLS server"),
            (&[0x16, 0x03, 0x03, 0x00, 0x31], "a TLS server"),
            (b"SSH-2.0-OpenSSH_9.2p1\r\n", "an SSH server"),
            (b"220 smtp.example ESMTP\r\n", "a text (line-based) protocol"),
            (b"-ERR unknown command\r\n", "a text (line-based) protocol"),
            (&[0x00, 0x00, 0x00, 0x10], "not a FastCGI record"),
            (&[0xff], "not a FastCGI record"),
        ];
        for (bytes, want) in cases {
            assert_eq!(looks_like(bytes), *want, "{bytes:?}");
        }
    }
}
