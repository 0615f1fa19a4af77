//! Reassembling the PARAMS stream on the receiving side (test responders, server sides).
//!
//! Unlike php-fpm, this accepts pairs that span records, as the spec allows.

use bytes::{Bytes, BytesMut};

use crate::pairs::{NameValuePair, PairParse, PairPart, parse_pair};

/// Default bound on a whole PARAMS stream (php-fpm accepted 16 MB in measurements).
pub const DEFAULT_MAX_PARAMS_LEN: usize = 16 * 1024 * 1024;

/// Why a PARAMS stream could not be reassembled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// The stream, or one pair in it, is larger than the configured bound.
    #[error("FCGI_PARAMS stream exceeds the limit of {limit} bytes (at least {len} bytes)")]
    TooLarge {
        /// Bytes the stream has or a pair declares.
        len: u64,
        /// The configured bound.
        limit: usize,
    },
    /// The stream ended inside a pair.
    #[error("FCGI_PARAMS stream ended inside a name-value pair ({have} bytes of it, cut in its {part})")]
    EndsInsidePair {
        /// The part the stream ended in.
        part: PairPart,
        /// Bytes of the pair that arrived.
        have: usize,
    },
    /// A record arrived after the empty record that ended the stream.
    #[error("FCGI_PARAMS record after the end of the stream")]
    AfterEnd,
}

/// Collects PARAMS record contents into pairs. Push each record's content in order; the
/// empty record returns the pairs.
#[derive(Debug)]
pub struct ParamsAssembler {
    pending: BytesMut,
    pairs: Vec<NameValuePair>,
    received: u64,
    limit: usize,
    ended: bool,
}

impl Default for ParamsAssembler {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_PARAMS_LEN)
    }
}

impl ParamsAssembler {
    /// An assembler bounded by [`DEFAULT_MAX_PARAMS_LEN`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An assembler that refuses streams longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self { pending: BytesMut::new(), pairs: Vec::new(), received: 0, limit, ended: false }
    }

    /// Pairs completed so far.
    pub fn pairs(&self) -> &[NameValuePair] {
        &self.pairs
    }

    /// Feeds one record's content. Returns the pairs once the empty record arrives.
    pub fn push(&mut self, content: Bytes) -> Result<Option<Vec<NameValuePair>>, ParamsError> {
        if self.ended {
            return Err(ParamsError::AfterEnd);
        }
        if content.is_empty() {
            return self.end().map(Some);
        }
        self.received += content.len() as u64;
        if self.received > self.limit as u64 {
            return Err(ParamsError::TooLarge { len: self.received, limit: self.limit });
        }
        if self.pending.is_empty() {
            let used = self.take_pairs(&content)?;
            self.pending.extend_from_slice(&content[used..]);
        } else {
            self.pending.extend_from_slice(&content);
            let joined = self.pending.split().freeze();
            let used = self.take_pairs(&joined)?;
            self.pending.extend_from_slice(&joined[used..]);
        }
        Ok(None)
    }

    fn take_pairs(&mut self, buf: &Bytes) -> Result<usize, ParamsError> {
        let mut at = 0;
        loop {
            match parse_pair(&buf[at..]) {
                PairParse::Complete { name, value, len } => {
                    self.pairs.push(NameValuePair {
                        name: buf.slice(at + name.start..at + name.end),
                        value: buf.slice(at + value.start..at + value.end),
                    });
                    at += len;
                }
                PairParse::Incomplete { needed: Some(needed), .. } if needed > self.limit as u64 => {
                    return Err(ParamsError::TooLarge { len: needed, limit: self.limit });
                }
                PairParse::Incomplete { .. } => return Ok(at),
            }
        }
    }

    fn end(&mut self) -> Result<Vec<NameValuePair>, ParamsError> {
        self.ended = true;
        if !self.pending.is_empty() {
            let part = match parse_pair(&self.pending) {
                PairParse::Incomplete { part, .. } => part,
                PairParse::Complete { .. } => PairPart::Value,
            };
            return Err(ParamsError::EndsInsidePair { part, have: self.pending.len() });
        }
        Ok(std::mem::take(&mut self.pairs))
    }
}
