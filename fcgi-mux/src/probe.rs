//! `FCGI_GET_VALUES` on a connection of its own: what does the server say about itself?
//!
//! Real servers differ (measured): php-fpm answers only `FCGI_MPXS_CONNS=0`; flup always
//! answers an empty result; fcgiwrap answers only once another record arrives, so a lone
//! query gets no answer in time; a server that is not FastCGI answers with bytes that are not
//! records. The outcome keeps these apart.

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
    /// No answer within the timeout (fcgiwrap answers only once a request arrives).
    NoAnswer,
    /// The server closed the connection without answering.
    Closed,
    /// The server sent bytes that are not FastCGI records.
    NotFastCgi(DecodeError),
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
        loop {
            loop {
                let frame = match decoder.decode_frame(&mut input) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(error) => return ProbeOutcome::NotFastCgi(error),
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
                        Err(error) => ProbeOutcome::NotFastCgi(error),
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
