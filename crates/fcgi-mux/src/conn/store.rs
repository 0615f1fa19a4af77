//! Per-request state on the driver side, keyed by request id, and id allocation.
//!
//! An id is taken when the request's first record is written and given back only when its
//! END_REQUEST has been read (or the connection is gone), so a late record can never be
//! mistaken for a newer request's.

use std::sync::Arc;
use std::time::Instant;

use fcgi_proto::RequestId;

use crate::conn::send::Outgoing;
use crate::conn::shared::RequestShared;

/// Where a request is in its life on the connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Records are still being sent (head or body).
    Sending,
    /// Everything was sent; waiting for the response to end.
    Waiting,
    /// Aborted on a multiplexed connection: records for it are dropped until its
    /// END_REQUEST arrives or the deadline passes.
    Draining { deadline: Instant },
}

/// One request in progress.
pub(crate) struct Entry {
    pub(crate) shared: Arc<RequestShared>,
    pub(crate) phase: Phase,
    pub(crate) out: Outgoing,
    pub(crate) span: tracing::Span,
}

/// Requests in progress, by id.
#[derive(Default)]
pub(crate) struct Store {
    /// Index `i` holds request id `i + 1`.
    slots: Vec<Option<Entry>>,
    len: usize,
}

impl Store {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `entry` under the lowest free id.
    pub(crate) fn insert(&mut self, entry: Entry) -> RequestId {
        let index = match self.slots.iter().position(Option::is_none) {
            Some(index) => index,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.slots[index] = Some(entry);
        self.len += 1;
        id_of(index)
    }

    pub(crate) fn get_mut(&mut self, id: RequestId) -> Option<&mut Entry> {
        let index = usize::from(id.0).checked_sub(1)?;
        self.slots.get_mut(index)?.as_mut()
    }

    pub(crate) fn remove(&mut self, id: RequestId) -> Option<Entry> {
        let index = usize::from(id.0).checked_sub(1)?;
        let entry = self.slots.get_mut(index)?.take();
        if entry.is_some() {
            self.len -= 1;
            while matches!(self.slots.last(), Some(None)) {
                self.slots.pop();
            }
        }
        entry
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (RequestId, &mut Entry)> {
        self.slots.iter_mut().enumerate().filter_map(|(index, slot)| slot.as_mut().map(|e| (id_of(index), e)))
    }

    pub(crate) fn drain(&mut self) -> Vec<(RequestId, Entry)> {
        let entries =
            self.slots.drain(..).enumerate().filter_map(|(i, slot)| slot.map(|e| (id_of(i), e))).collect();
        self.len = 0;
        entries
    }

    /// Number of requests that are not being drained.
    pub(crate) fn live(&self) -> usize {
        self.slots.iter().flatten().filter(|e| !matches!(e.phase, Phase::Draining { .. })).count()
    }
}

fn id_of(index: usize) -> RequestId {
    RequestId((index + 1) as u16)
}
