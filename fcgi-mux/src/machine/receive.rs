//! The receiving side: decoding what arrived and dispatching each record to its request.
//!
//! Records for ids not in progress (never used, finished, or aborted and draining) are dropped
//! within a bound; records only a client may send, or malformed bytes, fail the connection.
//! Whatever arrived before the connection closed is delivered before the close is reported.

use std::io;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use fcgi_proto::{EndRequest, Frame, ProtocolStatus, RecordBody, RequestId, ServerValues};

use super::request::{Phase, Response};
use super::{Closed, ConnectionMachine, EndStatus, Event, RequestHead};
use crate::cgi::{self, HeadParse};
use crate::error::{Error, ProtocolViolation};

impl ConnectionMachine {
    /// Where to put received bytes (then call [`handle_input`](Self::handle_input)): the
    /// driver reads straight into it, so received data is never copied.
    pub fn recv_buffer(&mut self) -> &mut BytesMut {
        &mut self.received
    }

    /// Decodes and dispatches what [`recv_buffer`](Self::recv_buffer) holds, as far as the
    /// receive buffers allow.
    pub fn handle_input(&mut self, now: Instant) {
        self.handle_input_limited(now, usize::MAX);
    }

    /// [`handle_input`](Self::handle_input) for at most `max_records` records; true when whole
    /// records are still buffered (call again, [`wants_read`](Self::wants_read) is false till
    /// then). A driver uses it to let the callers of the requests that just ended queue their
    /// next ones while the rest of a large batch of answers is dispatched, so that client and
    /// server work at the same time on a multiplexed connection.
    pub fn handle_input_limited(&mut self, now: Instant, max_records: usize) -> bool {
        let mut dispatched = 0;
        while self.closed.is_none() {
            if dispatched == max_records {
                return self.has_buffered_record();
            }
            dispatched += 1;
            if self.paused() {
                self.paused_since.get_or_insert(now);
                return false;
            }
            let offset = self.decoder.bytes_consumed();
            match self.decoder.decode_frame(&mut self.received) {
                Ok(Some(frame)) => {
                    if let Err(violation) = self.dispatch(frame, offset, now) {
                        self.fail_all(Closed::Failed(Error::Protocol(violation)));
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    self.fail_all(Closed::Failed(Error::Protocol(ProtocolViolation::Malformed(error))))
                }
            }
        }
        if self.eof && self.closed.is_none() {
            self.finish_input(now);
        }
        false
    }

    /// True when whole records wait to be dispatched and nothing holds them back: after a
    /// limited [`handle_input_limited`](Self::handle_input_limited), or once
    /// [`release`](Self::release) made room again. Call [`handle_input`](Self::handle_input).
    pub fn has_input_pending(&self) -> bool {
        self.closed.is_none() && !self.paused() && self.has_buffered_record()
    }

    /// True when a whole record waits in the receive buffer.
    pub(super) fn has_buffered_record(&self) -> bool {
        !self.received.is_empty() && self.decoder.bytes_needed(&self.received) == 0
    }

    /// [`recv_buffer`](Self::recv_buffer) and [`handle_input`](Self::handle_input) in one: for
    /// tests and drivers that read into their own buffers.
    pub fn receive(&mut self, data: &[u8], now: Instant) {
        self.received.extend_from_slice(data);
        self.handle_input(now);
    }

    /// The server closed its side. What is buffered is delivered first.
    pub fn handle_eof(&mut self, now: Instant) {
        self.eof = true;
        self.handle_input(now);
    }

    /// Reading failed: the connection is gone.
    pub fn handle_io_error(&mut self, error: io::Error) {
        self.fail_all(Closed::Failed(Error::io(error)));
    }

    /// Writing failed (`EPIPE`, `ECONNRESET`): the server closed the connection, possibly
    /// after answering without reading all of a request, as uWSGI does with a Filter's data.
    /// `transmitted_any`: whether any byte of the last [`poll_transmit`](Self::poll_transmit)
    /// reached the stream.
    ///
    /// Nothing more is sent and no request starts. Requests that sent nothing (none of their
    /// bytes reached the stream) are handed back at once, to go elsewhere: a kept-alive
    /// connection the server closed just as a new request was written to it. The rest keep
    /// what the server already sent: reading goes on to the end of input, where those still
    /// unanswered fail with this error.
    pub fn handle_write_error(&mut self, error: io::Error, transmitted_any: bool, now: Instant) {
        if self.closed.is_some() || self.write_failed.is_some() {
            return;
        }
        self.control.clear();
        let was_retiring = std::mem::replace(&mut self.retiring, true);
        let first_sent = std::mem::take(&mut self.first_sent);
        let mut at = 0;
        while at < self.requests.len() {
            let request = &self.requests[at];
            let sent_nothing =
                !request.out.wrote_any || (!transmitted_any && first_sent.contains(&request.key));
            if !request.is_live() || !sent_nothing {
                at += 1;
                continue;
            }
            let mut request = self.requests.remove(at);
            let returned = request.out.head.take().map(|head| Box::new(RequestHead(head)));
            let result = Err(Error::ConnectionClosed { sent_nothing: true });
            self.events.push_back(Event::End { key: request.key, result, returned });
            self.events.push_back(Event::Released { key: request.key });
        }
        let error = Error::io(error);
        if self.requests.is_empty() {
            // No byte of any request got through: the server closed the connection between
            // requests, which a pool should know as it would from an end of input.
            self.peer_closed_idle =
                !transmitted_any && self.config.keep_conn && self.completed > 0 && !was_retiring;
        }
        if self.live() == 0 {
            self.fail_all(Closed::Failed(error));
            return;
        }
        self.write_failed = Some(error);
        self.after_removal(now);
    }

    /// After EOF, once every whole record was dispatched.
    fn finish_input(&mut self, now: Instant) {
        if self.paused() {
            // Records are still waiting for room; the close comes after them.
            self.paused_since.get_or_insert(now);
            return;
        }
        if let Err(error) = self.decoder.finish(&self.received) {
            self.fail_all(Closed::Failed(Error::Protocol(error.into())));
            return;
        }
        if self.live() == 0 {
            self.peer_closed_idle = self.config.keep_conn && self.completed > 0 && !self.retiring;
            self.fail_all(Closed::Clean);
        } else {
            let error = self.write_failed.take().unwrap_or(Error::ConnectionClosed { sent_nothing: false });
            self.fail_all(Closed::Failed(error));
        }
    }

    /// `offset`: where the record starts in the stream.
    fn dispatch(&mut self, frame: Frame, offset: u64, now: Instant) -> Result<(), ProtocolViolation> {
        self.observe_received(&frame);
        let id = frame.record.request_id;
        let record_len = frame.header.record_len();
        match frame.record.body {
            RecordBody::BeginRequest(_)
            | RecordBody::AbortRequest
            | RecordBody::Params(_)
            | RecordBody::Stdin(_)
            | RecordBody::Data(_)
            | RecordBody::GetValues(_) => Err(ProtocolViolation::ClientRecord(frame.header.record_type)),
            RecordBody::GetValuesResult(pairs) => {
                // A late answer (fcgiwrap answers only once a request arrives) is ignored.
                if self.negotiating.is_some() {
                    let values = ServerValues::from_pairs(&pairs);
                    self.negotiated((!values.is_empty()).then_some(values));
                }
                Ok(())
            }
            RecordBody::UnknownType(_) => {
                if self.negotiating.is_some() {
                    self.negotiated(None);
                }
                Ok(())
            }
            RecordBody::Unknown { .. } => self.stray(record_len),
            RecordBody::Stdout(data) => {
                self.on_record(id, offset, record_len, |m, at| m.on_stdout(at, data, now))
            }
            RecordBody::Stderr(data) => self.on_record(id, offset, record_len, |m, at| m.on_stderr(at, data)),
            RecordBody::EndRequest(end) => {
                let Some(at) = self.position_of_id(id) else { return self.stray(record_len) };
                if offset < self.requests[at].answers_from {
                    return self.stray(record_len);
                }
                if let Phase::Draining { .. } = self.requests[at].phase {
                    let key = self.requests.remove(at).key;
                    self.events.push_back(Event::Released { key });
                    self.after_removal(now);
                } else {
                    self.on_end(at, end, now);
                }
                Ok(())
            }
        }
    }

    /// Runs `deliver` for a STDOUT or STDERR record of a request in progress.
    fn on_record(
        &mut self,
        id: RequestId,
        offset: u64,
        record_len: usize,
        deliver: impl FnOnce(&mut Self, usize),
    ) -> Result<(), ProtocolViolation> {
        let Some(at) = self.position_of_id(id) else { return self.stray(record_len) };
        if offset < self.requests[at].answers_from {
            // Held in the receive buffer since before this request had its id (the id of a
            // request that ended, or never used): not an answer to it.
            return self.stray(record_len);
        }
        if !self.requests[at].is_live() {
            return Ok(());
        }
        self.requests[at].first_byte = None;
        deliver(self, at);
        Ok(())
    }

    fn stray(&mut self, len: usize) -> Result<(), ProtocolViolation> {
        self.stray_bytes += len;
        if self.stray_bytes > self.config.stray_limit {
            return Err(ProtocolViolation::TooManyStrayRecords { limit: self.config.stray_limit });
        }
        Ok(())
    }

    /// GET_VALUES answered (or not): multiplex only on `FCGI_MPXS_CONNS=1`, up to MAX_REQS.
    pub(super) fn negotiated(&mut self, values: Option<ServerValues>) {
        self.negotiating = None;
        self.server_values = values;
        self.limit = match values {
            Some(v) if v.mpxs_conns == Some(true) => {
                let server_max = v.max_reqs.map_or(usize::MAX, |n| n as usize);
                self.max_requests().min(server_max).max(1)
            }
            _ => 1,
        };
    }

    fn on_stdout(&mut self, at: usize, data: Bytes, now: Instant) {
        let request = &mut self.requests[at];
        let key = request.key;
        let body = match &mut request.response {
            Response::Body => data,
            Response::Head { scanner, buffered } => {
                let parsed = if buffered.is_empty() {
                    // Usually the whole head is in the first record: parse it in place.
                    match scanner.parse(&data) {
                        Ok(HeadParse::Complete { head, body_offset }) => {
                            Ok(Some((head, data.slice(body_offset..))))
                        }
                        Ok(HeadParse::Incomplete) => {
                            buffered.extend_from_slice(&data);
                            Ok(None)
                        }
                        Err(error) => Err(error),
                    }
                } else {
                    buffered.extend_from_slice(&data);
                    match scanner.parse(buffered) {
                        Ok(HeadParse::Complete { head, body_offset }) => {
                            Ok(Some((head, buffered.split_off(body_offset).freeze())))
                        }
                        Ok(HeadParse::Incomplete) => Ok(None),
                        Err(error) => Err(error),
                    }
                };
                match parsed {
                    Ok(None) => return,
                    Ok(Some((head, rest))) => {
                        request.response = Response::Body;
                        self.events.push_back(Event::Head { key, head: Box::new(head) });
                        rest
                    }
                    Err(error) => {
                        self.abort(at, Some(Error::Cgi(error)), now);
                        return;
                    }
                }
            }
        };
        let request = &mut self.requests[at];
        if !request.head_only && !body.is_empty() {
            request.buffered += body.len();
            self.events.push_back(Event::Body { key, data: body });
        }
    }

    fn on_stderr(&mut self, at: usize, data: Bytes) {
        let limit = self.config.stderr_limit;
        let request = &mut self.requests[at];
        let room = limit.saturating_sub(request.stderr_kept);
        let kept = data.len().min(room);
        request.stderr_kept += kept;
        if !data.is_empty() {
            let key = request.key;
            self.events.push_back(Event::Stderr {
                key,
                data: data.slice(..kept),
                dropped: data.len() - kept,
            });
        }
    }

    /// END_REQUEST for a request in progress: report how it ended and free its id.
    fn on_end(&mut self, at: usize, end: EndRequest, now: Instant) {
        let mut request = self.requests.remove(at);
        let key = request.key;
        let status = EndStatus { app_status: end.app_status, protocol_status: end.protocol_status };
        let refused = Error::Refused { status: end.protocol_status, app_status: end.app_status };
        let (result, returned) = match end.protocol_status {
            ProtocolStatus::REQUEST_COMPLETE => match &request.response {
                Response::Body => (Ok(status), None),
                Response::Head { buffered, .. } => {
                    (Err(Error::Cgi(cgi::head_incomplete_at_end(buffered))), None)
                }
            },
            // The application never ran it: it may be sent again, here one at a time.
            ProtocolStatus::CANT_MPX_CONN => {
                self.limit = 1;
                (Err(refused), request.out.head.take().map(|head| Box::new(RequestHead(head))))
            }
            ProtocolStatus::OVERLOADED => {
                self.retiring = true;
                (Err(refused), request.out.head.take().map(|head| Box::new(RequestHead(head))))
            }
            _ => (Err(refused), None),
        };
        if !request.out.all_written() {
            // Ended before reading all of the request: what the server makes of the rest of
            // its records is unknown, so this connection takes no more requests.
            self.retiring = true;
        }
        if !self.config.keep_conn {
            self.retiring = true;
        }
        self.completed += 1;
        self.events.push_back(Event::End { key, result, returned });
        self.events.push_back(Event::Released { key });
        self.after_removal(now);
    }
}
