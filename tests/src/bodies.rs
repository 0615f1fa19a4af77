//! Request bodies for client tests: streams of known or unknown length, and a failing one.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;

/// Error type of the test bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body that yields `chunks` one by one. Its size hint is exact only when built with
/// [`ChunkedBody::with_exact_hint`]; otherwise its length is unknown, like a chunked upload.
pub struct ChunkedBody {
    chunks: VecDeque<Bytes>,
    exact: Option<u64>,
    fail_after: Option<usize>,
}

impl ChunkedBody {
    /// `count` chunks of `size` bytes; byte `i` of the whole body is `(i % 251) as u8`.
    pub fn pattern(size: usize, count: usize) -> Self {
        let total = size * count;
        let all: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let bytes = Bytes::from(all);
        let chunks = (0..count).map(|i| bytes.slice(i * size..(i + 1) * size)).collect();
        Self { chunks, exact: None, fail_after: None }
    }

    /// The whole body as one vector (what the server must receive).
    pub fn expected(size: usize, count: usize) -> Vec<u8> {
        (0..size * count).map(|i| (i % 251) as u8).collect()
    }

    /// Reports an exact size hint.
    pub fn with_exact_hint(mut self) -> Self {
        self.exact = Some(self.chunks.iter().map(|c| c.len() as u64).sum());
        self
    }

    /// Fails with an error after yielding `n` chunks.
    pub fn failing_after(mut self, n: usize) -> Self {
        self.fail_after = Some(n);
        self
    }
}

impl http_body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        if let Some(n) = self.fail_after.as_mut() {
            if *n == 0 {
                return Poll::Ready(Some(Err("the upload source failed".into())));
            }
            *n -= 1;
        }
        Poll::Ready(self.chunks.pop_front().map(|chunk| Ok(http_body::Frame::data(chunk))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.exact {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}
