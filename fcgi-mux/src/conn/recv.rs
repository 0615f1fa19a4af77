//! The receiving side of the driver: decoding what the socket delivered and dispatching each
//! record to its request.
//!
//! Records for ids that are not in progress (never used, finished, or aborted and draining)
//! are dropped, within a bound; records only a client may send, or malformed bytes, break the
//! connection.

use fcgi_proto::{EndRequest, Frame, ProtocolStatus, RecordBody, RequestId};

use crate::conn::driver::Driver;
use crate::conn::shared::EndStatus;
use crate::conn::store::Phase;
use crate::error::{Error, ProtocolViolation};
use crate::observer::{Direction, observe};

impl Driver {
    /// Decodes and dispatches up to `budget` whole records of the read buffer; true when
    /// whole records are still buffered after that.
    pub(super) fn decode_buffered(&mut self, budget: usize) -> bool {
        let mut dispatched = 0;
        while self.closing.is_none() {
            if dispatched == budget {
                return self.decoder.bytes_needed(&self.read_buf) == 0;
            }
            match self.decoder.decode_frame(&mut self.read_buf) {
                Ok(Some(frame)) => {
                    dispatched += 1;
                    if let Err(violation) = self.dispatch(frame) {
                        self.closing = Some(Error::Protocol(violation));
                    }
                }
                Ok(None) => break,
                Err(err) => self.closing = Some(Error::Protocol(ProtocolViolation::Malformed(err))),
            }
        }
        false
    }

    fn dispatch(&mut self, frame: Frame) -> Result<(), ProtocolViolation> {
        observe(self.config.observer.as_ref(), Direction::Received, frame.header, &frame.record);
        let id = frame.record.request_id;
        let record_len = frame.header.record_len();
        match frame.record.body {
            RecordBody::BeginRequest(_)
            | RecordBody::AbortRequest
            | RecordBody::Params(_)
            | RecordBody::Stdin(_)
            | RecordBody::Data(_)
            | RecordBody::GetValues(_) => {
                return Err(ProtocolViolation::ClientRecord(frame.header.record_type));
            }
            // A late GET_VALUES answer (fcgiwrap answers only once a request arrives) or an
            // UNKNOWN_TYPE: nothing waits for them any more.
            RecordBody::GetValuesResult(_) | RecordBody::UnknownType(_) => return Ok(()),
            RecordBody::Unknown { .. } => return self.stray(id, record_len),
            RecordBody::Stdout(_) | RecordBody::Stderr(_) | RecordBody::EndRequest(_) => {}
        }
        let Some(entry) = self.store.get_mut(id) else {
            return self.stray(id, record_len);
        };
        if let Phase::Draining { .. } = entry.phase {
            if let RecordBody::EndRequest(_) = frame.record.body {
                self.store.remove(id);
                self.conn.release_slot();
            }
            return Ok(());
        }
        entry.first_byte = None;
        match frame.record.body {
            RecordBody::Stdout(data) => {
                entry.shared.push_stdout(data);
            }
            RecordBody::Stderr(data) => entry.shared.push_stderr(&data),
            RecordBody::EndRequest(end) => self.end(id, end),
            _ => {}
        }
        Ok(())
    }

    fn stray(&mut self, id: RequestId, len: usize) -> Result<(), ProtocolViolation> {
        self.stray_bytes += len;
        tracing::trace!(parent: &self.span, request_id = id.0, len, "record for a request not in progress, dropped");
        if self.stray_bytes > self.config.stray_limit {
            return Err(ProtocolViolation::TooManyStrayRecords { limit: self.config.stray_limit });
        }
        Ok(())
    }

    /// END_REQUEST for a request in progress: report how it ended and free its id.
    fn end(&mut self, id: RequestId, end: EndRequest) {
        let Some(mut entry) = self.store.remove(id) else { return };
        let _enter = entry.span.enter();
        let status = EndStatus { app_status: end.app_status, protocol_status: end.protocol_status };
        let result = match end.protocol_status {
            ProtocolStatus::REQUEST_COMPLETE => Ok(status),
            ProtocolStatus::CANT_MPX_CONN => {
                tracing::debug!(
                    "server refused a concurrent request (CANT_MPX_CONN); one at a time from now on"
                );
                self.conn.stop_multiplexing();
                if let Some(replay) = entry.out.take_replay() {
                    entry.shared.return_request(replay);
                }
                Err(Error::Refused { status: end.protocol_status, app_status: end.app_status })
            }
            other => {
                if other == ProtocolStatus::OVERLOADED {
                    // The application never ran the request: it may go to another connection.
                    self.retire();
                    if let Some(replay) = entry.out.take_replay() {
                        entry.shared.return_request(replay);
                    }
                }
                Err(Error::Refused { status: other, app_status: end.app_status })
            }
        };
        if !entry.out.is_done() {
            // The server ended the request before reading all of it: what it makes of the
            // rest of our records is unknown, so this connection takes no more requests.
            self.retire();
        }
        tracing::debug!(app_status = end.app_status, protocol_status = %end.protocol_status, "request ended");
        drop(_enter);
        entry.shared.finish(result);
        self.conn.release_slot();
        if !self.config.keep_conn {
            self.retire();
        }
    }
}
