//! The sending side of a connection: one writer task that owns the socket's write half, and
//! the runner that turns a script's actions into queued writes.
//!
//! Everything queued is a whole unit (a record, a few records encoded together, or a raw
//! chunk), so concurrent scripts interleave at record boundaries and never tear a record. The
//! queue is bounded: a script producing a large stream waits for the socket.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use fcgi_proto::{
    HEADER_LEN, Padding, ProtocolStatus, Record, RecordBody, RecordHeader, RecordType, RequestId,
    encode_record, write_header,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};

use super::script::{Action, pattern_chunk};

/// Units the writer queue holds before a sender waits.
pub(super) const QUEUE_LEN: usize = 16;

/// A unit of output.
#[derive(Debug)]
pub(super) enum Out {
    /// Bytes to write as one unit.
    Bytes(Bytes),
    /// Stop writing and shut the write side down; the connection then closes.
    Close,
}

/// Encodes a record into one unit of output.
pub(super) fn encoded(record: &Record) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    match encode_record(&mut buf, record, Padding::None) {
        Ok(()) => Some(buf.freeze()),
        Err(err) => {
            eprintln!("responder: cannot encode {record:?}: {err}");
            None
        }
    }
}

/// Writes queued units until the queue closes, a [`Out::Close`] arrives or the peer is
/// gone, then shuts the write side down. Its end is the connection's end.
pub(super) async fn write_loop<W: AsyncWrite>(
    writer: W,
    mut queue: mpsc::Receiver<Out>,
    drip: Option<Duration>,
) {
    let mut writer = std::pin::pin!(writer);
    while let Some(out) = queue.recv().await {
        let bytes = match out {
            Out::Bytes(bytes) => bytes,
            Out::Close => break,
        };
        let written = match drip {
            None => writer.write_all(&bytes).await,
            Some(delay) => {
                let mut result = Ok(());
                for byte in bytes.iter() {
                    result = writer.write_all(&[*byte]).await;
                    if result.is_err() {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                }
                result
            }
        };
        if written.is_err() {
            // The client is gone: nothing more to say.
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Runs the actions of one request (or of a connection's `on_connect`).
pub(super) struct Runner {
    /// The request the actions answer ([`RequestId::MANAGEMENT`] for `on_connect`).
    pub(super) id: RequestId,
    pub(super) out: mpsc::Sender<Out>,
    /// Set (before it is queued) when END_REQUEST for `id` is sent: the id is free again.
    pub(super) ended: Arc<AtomicBool>,
    /// Signalled by the connection on ABORT_REQUEST under [`AbortPolicy::End`](super::AbortPolicy::End).
    pub(super) abort: Arc<Notify>,
    /// Becomes true when the client has closed its side.
    pub(super) peer_closed: watch::Receiver<bool>,
}

impl Runner {
    pub(super) async fn run(mut self, actions: Vec<Action>) {
        let abort = self.abort.clone();
        for action in actions {
            let ended = self.ended.load(Ordering::SeqCst);
            tokio::select! {
                biased;
                () = abort.notified(), if !ended => {
                    // Whatever was queued before goes first; the action in progress is dropped
                    // between two whole units.
                    let _ = self.record(&Record::end_request(self.id, 0, ProtocolStatus::REQUEST_COMPLETE)).await;
                    return;
                }
                flow = self.perform(action) => {
                    if flow.is_break() {
                        return;
                    }
                }
            }
        }
    }

    async fn perform(&mut self, action: Action) -> ControlFlow<()> {
        match action {
            Action::Record(record) => self.record(&record).await,
            Action::Raw(bytes) => self.send(Out::Bytes(bytes)).await,
            Action::Pattern { record_type, id, len } => self.pattern(record_type, id, len).await,
            Action::Sleep(delay) => {
                tokio::time::sleep(delay).await;
                ControlFlow::Continue(())
            }
            Action::Hold => {
                let _ = self.peer_closed.wait_for(|closed| *closed).await;
                ControlFlow::Break(())
            }
            Action::Close => {
                let _ = self.send(Out::Close).await;
                ControlFlow::Break(())
            }
        }
    }

    async fn record(&mut self, record: &Record) -> ControlFlow<()> {
        let Some(bytes) = encoded(record) else {
            return ControlFlow::Continue(());
        };
        if record.request_id == self.id && matches!(record.body, RecordBody::EndRequest(_)) {
            self.ended.store(true, Ordering::SeqCst);
        }
        self.send(Out::Bytes(bytes)).await
    }

    async fn pattern(&mut self, record_type: RecordType, id: RequestId, len: u64) -> ControlFlow<()> {
        let mut offset = 0;
        while offset < len {
            let content = pattern_chunk(offset, usize::try_from(len - offset).unwrap_or(usize::MAX));
            let mut unit = BytesMut::with_capacity(HEADER_LEN + content.len());
            write_header(&mut unit, &RecordHeader::new(record_type, id, content.len() as u16, 0));
            unit.put_slice(&content);
            self.send(Out::Bytes(unit.freeze())).await?;
            offset += content.len() as u64;
        }
        ControlFlow::Continue(())
    }

    async fn send(&mut self, out: Out) -> ControlFlow<()> {
        let sent = self.out.send(out).await;
        // Let other requests' units in between ours.
        tokio::task::yield_now().await;
        if sent.is_ok() { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    }
}
