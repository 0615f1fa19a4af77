//! The deadlines of a connection: first byte and total per request, draining aborted ids,
//! the stall of a full receive buffer, idle and maximum lifetime, the GET_VALUES exchange.
//! The machine has no clock: the driver asks for [`ConnectionMachine::next_deadline`], sleeps
//! until then and calls [`ConnectionMachine::handle_timeout`] with the time it woke.

use std::time::Instant;

use super::request::Phase;
use super::{Closed, ConnectionMachine};
use crate::error::{Error, TimeoutKind};

impl ConnectionMachine {
    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let mut next: Option<Instant> = self.negotiating;
        let mut consider = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        for request in &self.requests {
            match request.phase {
                Phase::Draining { deadline } => consider(deadline),
                _ => {
                    if let Some(at) = request.first_byte {
                        consider(at);
                    }
                    if let Some((at, _)) = request.total {
                        consider(at);
                    }
                }
            }
        }
        if let Some(since) = self.paused_since {
            if self.stall_applies() {
                consider(since + self.config.stall_timeout);
            }
        }
        if let (Some(since), Some(idle)) = (self.idle_since, self.idle_timeout) {
            if self.requests.is_empty() {
                consider(since + idle);
            }
        }
        if let Some(at) = self.retire_at {
            if !self.retiring {
                consider(at);
            }
        }
        next
    }

    /// Applies every deadline that has passed at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.negotiating.is_some_and(|at| at <= now) {
            tracing::debug!(after = ?self.config.get_values_timeout, "{} (treated as unknown)", TimeoutKind::GetValues);
            self.negotiated(None);
        }
        self.expire_requests(now);
        if self.closed.is_some() {
            return;
        }
        let drain_expired =
            self.requests.iter().any(|r| matches!(r.phase, Phase::Draining { deadline } if deadline <= now));
        if drain_expired && !self.retiring {
            tracing::debug!("an aborted request was not ended in time; retiring the connection");
            self.retire();
        }
        if let Some(since) = self.paused_since {
            if self.stall_applies() && since + self.config.stall_timeout <= now {
                self.abort_stalled(now);
            }
        }
        if let (Some(since), Some(idle)) = (self.idle_since, self.idle_timeout) {
            if self.requests.is_empty() && since + idle <= now {
                tracing::debug!("idle timeout");
                self.fail_all(Closed::Clean);
                return;
            }
        }
        if self.retire_at.is_some_and(|at| at <= now) && !self.retiring {
            tracing::debug!("maximum lifetime reached; retiring the connection");
            self.retire();
        }
    }

    /// A full buffer is aborted only where it holds up other requests.
    fn stall_applies(&self) -> bool {
        self.multiplexed() && self.live() > 1
    }

    /// Fails the requests whose total or first-byte deadline has passed.
    fn expire_requests(&mut self, now: Instant) {
        while let Some((at, error)) = self.requests.iter().enumerate().find_map(|(at, r)| {
            if !r.is_live() {
                return None;
            }
            if let Some((deadline, after)) = r.total {
                if deadline <= now {
                    return Some((at, Error::timeout(TimeoutKind::Total, after)));
                }
            }
            r.first_byte
                .filter(|&deadline| deadline <= now)
                .map(|_| (at, Error::timeout(TimeoutKind::FirstByte, self.config.first_byte_timeout)))
        }) {
            tracing::debug!(%error, "aborting the request");
            self.abort(at, Some(error), now);
            if self.closed.is_some() {
                return;
            }
        }
    }

    fn abort_stalled(&mut self, now: Instant) {
        let limit = self.config.response_buffer;
        while let Some(at) = self.requests.iter().position(|r| r.is_full(limit)) {
            tracing::debug!("response not read in time; aborting the request");
            self.abort(at, Some(Error::Stalled { after: self.config.stall_timeout }), now);
        }
        self.paused_since = None;
    }
}
