//! Per-request state on the driver side, keyed by request id, and id allocation.
//!
//! An id is taken when the request starts on the connection and given back only when its
//! END_REQUEST has been read (or the connection is gone). Ids are handed out in rotation
//! rather than lowest-first, so that a record a server sends late for a finished request
//! (STDOUT after END_REQUEST) finds no request under that id and is dropped, instead of
//! landing in the next request, as it would if the id were reused at once.

use std::collections::BTreeMap;
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
pub(crate) struct Store {
    entries: BTreeMap<u16, Entry>,
    /// The id the next allocation tries first.
    next: u16,
}

impl Default for Store {
    fn default() -> Self {
        Self { entries: BTreeMap::new(), next: 1 }
    }
}

impl Store {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Stores `entry` under the next free id in rotation. The caller keeps fewer than
    /// 65535 requests, so a free id always exists.
    pub(crate) fn insert(&mut self, entry: Entry) -> RequestId {
        let mut id = self.next;
        while self.entries.contains_key(&id) {
            id = following(id);
        }
        self.next = following(id);
        self.entries.insert(id, entry);
        RequestId(id)
    }

    pub(crate) fn get_mut(&mut self, id: RequestId) -> Option<&mut Entry> {
        self.entries.get_mut(&id.0)
    }

    pub(crate) fn remove(&mut self, id: RequestId) -> Option<Entry> {
        self.entries.remove(&id.0)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// In id order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (RequestId, &mut Entry)> {
        self.entries.iter_mut().map(|(id, entry)| (RequestId(*id), entry))
    }

    pub(crate) fn drain(&mut self) -> Vec<(RequestId, Entry)> {
        std::mem::take(&mut self.entries).into_iter().map(|(id, entry)| (RequestId(id), entry)).collect()
    }

    /// The first request still sending whose id comes after `after`, wrapping around: the
    /// next turn in the round-robin of writers.
    pub(crate) fn next_sending(&self, after: u16) -> Option<RequestId> {
        if self.entries.len() == 1 {
            // One request at a time (every connection that does not multiplex).
            let (id, entry) = self.entries.iter().next()?;
            return (entry.phase == Phase::Sending).then_some(RequestId(*id));
        }
        let sending = |(id, entry): (&u16, &Entry)| (entry.phase == Phase::Sending).then_some(RequestId(*id));
        let later = self.entries.range(after.saturating_add(1)..).find_map(sending);
        later.or_else(|| self.entries.range(..=after).find_map(sending))
    }

    /// Number of requests that are not being drained.
    pub(crate) fn live(&self) -> usize {
        self.entries.values().filter(|e| !matches!(e.phase, Phase::Draining { .. })).count()
    }
}

/// The id after `id`, skipping 0 (the management id).
fn following(id: u16) -> u16 {
    if id == u16::MAX { 1 } else { id + 1 }
}

#[cfg(test)]
mod tests {
    use super::following;

    #[test]
    fn ids_rotate_and_skip_the_management_id() {
        assert_eq!(following(1), 2);
        assert_eq!(following(u16::MAX), 1);
    }
}
