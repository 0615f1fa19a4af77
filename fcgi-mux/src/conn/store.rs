//! Per-request state on the driver side, keyed by request id, and id allocation.
//!
//! An id is taken when the request starts on the connection and given back only when its
//! END_REQUEST has been read (or the connection is gone). Ids are handed out in rotation
//! rather than lowest-first, so that a record a server sends late for a finished request
//! (STDOUT after END_REQUEST) finds no request under that id and is dropped, instead of
//! landing in the next request, as it would if the id were reused at once.

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
    /// When the request fails if nothing has arrived for it; `None` once something has.
    pub(crate) first_byte: Option<Instant>,
    pub(crate) out: Outgoing,
    pub(crate) span: tracing::Span,
}

/// Requests in progress, by id.
///
/// Two parallel vectors in no particular order: a connection carries one request (every
/// server that does not multiplex) or at most a few hundred, so scanning a short list of ids
/// beats a map, and it allocates nothing once the vectors have grown.
pub(crate) struct Store {
    ids: Vec<u16>,
    entries: Vec<Entry>,
    /// The id the next allocation tries first.
    next: u16,
}

impl Default for Store {
    fn default() -> Self {
        Self { ids: Vec::new(), entries: Vec::new(), next: 1 }
    }
}

impl Store {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Stores `entry` under the next free id in rotation. The caller keeps fewer than
    /// 65535 requests, so a free id always exists.
    pub(crate) fn insert(&mut self, entry: Entry) -> RequestId {
        let mut id = self.next;
        while self.ids.contains(&id) {
            id = following(id);
        }
        self.next = following(id);
        self.ids.push(id);
        self.entries.push(entry);
        RequestId(id)
    }

    fn position(&self, id: RequestId) -> Option<usize> {
        self.ids.iter().position(|&stored| stored == id.0)
    }

    pub(crate) fn get_mut(&mut self, id: RequestId) -> Option<&mut Entry> {
        let at = self.position(id)?;
        Some(&mut self.entries[at])
    }

    pub(crate) fn remove(&mut self, id: RequestId) -> Option<Entry> {
        let at = self.position(id)?;
        self.ids.swap_remove(at);
        Some(self.entries.swap_remove(at))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// The ids of the entries matching `predicate`, in id order.
    pub(crate) fn ids_where(&self, predicate: impl Fn(&Entry) -> bool) -> Vec<RequestId> {
        let mut ids: Vec<RequestId> = self
            .ids
            .iter()
            .zip(&self.entries)
            .filter(|(_, entry)| predicate(entry))
            .map(|(&id, _)| RequestId(id))
            .collect();
        ids.sort_unstable_by_key(|id| id.0);
        ids
    }

    /// Every entry, in id order; the store is left empty.
    pub(crate) fn drain(&mut self) -> Vec<(RequestId, Entry)> {
        let ids = std::mem::take(&mut self.ids).into_iter().map(RequestId);
        let mut all: Vec<(RequestId, Entry)> = ids.zip(std::mem::take(&mut self.entries)).collect();
        all.sort_unstable_by_key(|(id, _)| id.0);
        all
    }

    /// The first request still sending whose id comes after `after`, wrapping around: the
    /// next turn in the round-robin of writers.
    pub(crate) fn next_sending(&self, after: u16) -> Option<RequestId> {
        let sending =
            self.ids.iter().zip(&self.entries).filter(|(_, e)| e.phase == Phase::Sending).map(|(&id, _)| id);
        // The smallest sending id above `after` if there is one, else the smallest of all.
        let next = sending.min_by_key(|&id| (id <= after, id))?;
        Some(RequestId(next))
    }

    /// Number of requests that are not being drained.
    pub(crate) fn live(&self) -> usize {
        self.entries.iter().filter(|e| !matches!(e.phase, Phase::Draining { .. })).count()
    }
}

/// The id after `id`, skipping 0 (the management id).
fn following(id: u16) -> u16 {
    if id == u16::MAX { 1 } else { id + 1 }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::request::{Head, RequestBody};

    fn entry(phase: Phase) -> Entry {
        Entry {
            shared: Arc::new(RequestShared::new(Arc::default(), &Default::default(), Instant::now())),
            phase,
            first_byte: None,
            out: Outgoing::new(Head::Encoded(Bytes::new()), RequestBody::Full(Bytes::new())),
            span: tracing::Span::none(),
        }
    }

    #[test]
    fn ids_rotate_and_skip_the_management_id() {
        assert_eq!(following(1), 2);
        assert_eq!(following(u16::MAX), 1);
        let mut store = Store::default();
        assert_eq!(store.insert(entry(Phase::Sending)), RequestId(1));
        assert_eq!(store.insert(entry(Phase::Sending)), RequestId(2));
        store.remove(RequestId(1));
        assert_eq!(store.insert(entry(Phase::Sending)), RequestId(3), "ids are not reused at once");
    }

    #[test]
    fn writers_take_turns_in_id_order_and_wrap_around() {
        let mut store = Store::default();
        for phase in [Phase::Sending, Phase::Waiting, Phase::Sending, Phase::Sending] {
            store.insert(entry(phase));
        }
        store.remove(RequestId(3));
        store.insert(entry(Phase::Sending)); // id 5, stored where id 3 was
        let turns: Vec<u16> =
            [0, 1, 2, 4, 5].iter().map(|&after| store.next_sending(after).unwrap().0).collect();
        assert_eq!(turns, [1, 4, 4, 5, 1]);
        let ids: Vec<u16> = store.drain().into_iter().map(|(id, _)| id.0).collect();
        assert_eq!(ids, [1, 2, 4, 5]);
        assert!(store.is_empty());
        assert_eq!(store.next_sending(0), None);
    }
}
