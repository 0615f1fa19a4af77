//! A hook that sees every record sent and received on a connection (for `fcgi dump`,
//! debugging and tests).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use fcgi_proto::{Record, RecordHeader};

/// Which way a record went.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From this client to the server.
    Sent,
    /// From the server to this client.
    Received,
}

/// One record, as it went over the wire.
#[derive(Debug)]
#[non_exhaustive]
pub struct RecordEvent<'a> {
    /// Which way.
    pub direction: Direction,
    /// When it was handed to the socket or decoded.
    pub at: SystemTime,
    /// The header as on the wire (lengths, padding).
    pub header: RecordHeader,
    /// The decoded record.
    pub record: &'a Record,
}

/// A callback for every record on a connection. It runs on the connection's driver task:
/// keep it quick.
#[derive(Clone)]
pub struct Observer(Arc<dyn Fn(&RecordEvent<'_>) + Send + Sync>);

impl Observer {
    /// Wraps a callback.
    pub fn new(callback: impl Fn(&RecordEvent<'_>) + Send + Sync + 'static) -> Self {
        Self(Arc::new(callback))
    }

    pub(crate) fn notify(&self, event: &RecordEvent<'_>) {
        (self.0)(event);
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer")
    }
}

/// Tells `observer`, if there is one, about a record.
pub(crate) fn observe(
    observer: Option<&Observer>,
    direction: Direction,
    header: RecordHeader,
    record: &Record,
) {
    if let Some(observer) = observer {
        observer.notify(&RecordEvent { direction, at: SystemTime::now(), header, record });
    }
}

/// Shows the records just written (`written` holds whole records) to `observer`.
pub(crate) fn observe_written(observer: &Observer, written: &[u8]) {
    let mut bytes = bytes::BytesMut::from(written);
    let mut decoder = fcgi_proto::Decoder::new();
    while let Ok(Some(frame)) = decoder.decode_frame(&mut bytes) {
        observe(Some(observer), Direction::Sent, frame.header, &frame.record);
    }
}
