//! One connection: reads and decodes the client's records, keeps each request's state from
//! BEGIN_REQUEST to the empty STDIN, starts its script, and answers management records.
//!
//! Client rule violations are noted in the responder's log; framing and ordering errors also
//! close the connection (php-fpm resets it), never panicking.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use fcgi_proto::{
    BeginRequest, Decoder, FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS, NameValuePair, ParamsAssembler,
    ProtocolStatus, Record, RecordBody, RecordType, RequestId,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{self, JoinError, JoinHandle, JoinSet};

use super::behaviour::{AbortPolicy, Behaviour, GetValues, STANDARD_MAX_CONNS, STANDARD_MAX_REQS};
use super::output::{self, Out, Runner};
use super::script::{RequestInfo, STDIN_KEPT};
use super::{Log, stop_requested};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// What a connection task needs from its responder.
pub(super) struct Context {
    pub(super) index: usize,
    pub(super) behaviour: Arc<Behaviour>,
    pub(super) log: Arc<Log>,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// Serves one accepted connection until the client is done, the connection is closed (by a
/// script or a violation), or the responder shuts down.
pub(super) async fn serve<S>(stream: S, mut context: Context)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let (out, queue) = mpsc::channel(output::QUEUE_LEN);
    let mut writer =
        AbortOnDrop(Some(tokio::spawn(output::write_loop(writer, queue, context.behaviour.drip))));
    let (peer_closed, _) = watch::channel(false);
    let mut conn = Connection {
        index: context.index,
        behaviour: context.behaviour.clone(),
        log: context.log.clone(),
        out,
        requests: HashMap::new(),
        tasks: JoinSet::new(),
        completed: 0,
        peer_closed,
    };
    conn.start_on_connect();
    let end = conn.run(reader, &mut writer, &mut context.shutdown).await;
    conn.tasks.shutdown().await;
    drop(conn);
    if let (End::PeerDone, Some(handle)) = (end, writer.0.as_mut()) {
        // Every script is done: the writer flushes what is queued and shuts the write side.
        tokio::select! {
            _ = handle => {}
            () = stop_requested(&mut context.shutdown) => {}
        }
        writer.0 = None;
    }
    // Otherwise `writer` is aborted when dropped, which closes the socket.
}

/// Why [`Connection::run`] returned.
enum End {
    /// The client closed its side and every script has finished.
    PeerDone,
    /// Close now: a violation, a script's [`Action::Close`](super::Action::Close), a dead
    /// socket, or shutdown.
    Close,
}

/// A task handle that aborts the task when dropped (a `JoinHandle` alone detaches it).
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

struct Connection {
    index: usize,
    behaviour: Arc<Behaviour>,
    log: Arc<Log>,
    out: mpsc::Sender<Out>,
    requests: HashMap<RequestId, Slot>,
    tasks: JoinSet<()>,
    completed: usize,
    peer_closed: watch::Sender<bool>,
}

/// Where a request id stands on this connection.
enum Slot {
    /// Between BEGIN_REQUEST and the empty STDIN.
    Reading(Box<Incoming>),
    /// Its script runs. `ended` is set once it has queued END_REQUEST for its id.
    Answering { ended: Arc<AtomicBool>, task: task::Id, abort: Arc<Notify> },
    /// Refused (CANT_MPX_CONN) or aborted while reading: its remaining PARAMS, STDIN and DATA
    /// are ignored.
    Discarded,
}

struct Incoming {
    begin: BeginRequest,
    params: ParamsAssembler,
    pairs: Option<Vec<NameValuePair>>,
    stdin: BytesMut,
    stdin_len: u64,
}

/// Whether to go on reading after a record.
enum Flow {
    Continue,
    Close,
}

impl Connection {
    async fn run<R: AsyncRead>(
        &mut self,
        reader: R,
        writer: &mut AbortOnDrop,
        shutdown: &mut watch::Receiver<bool>,
    ) -> End {
        let mut reader = std::pin::pin!(reader);
        let Some(writer) = writer.0.as_mut() else { return End::Close };
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut reading = true;
        loop {
            if !reading && self.tasks.is_empty() {
                return End::PeerDone;
            }
            buf.reserve(READ_CHUNK);
            tokio::select! {
                read = reader.read_buf(&mut buf), if reading => match read {
                    Ok(0) => {
                        if let Err(err) = decoder.finish(&buf) {
                            self.log.error(self.index, format_args!("the client closed inside a record: {err}"));
                        }
                        reading = false;
                        self.requests.retain(|_, slot| matches!(slot, Slot::Answering { .. }));
                        self.peer_closed.send_replace(true);
                    }
                    Ok(_) => loop {
                        match decoder.decode(&mut buf) {
                            Ok(Some(record)) => {
                                self.log.record(self.index, record.clone());
                                if let Flow::Close = self.on_record(record).await {
                                    return End::Close;
                                }
                            }
                            Ok(None) => break,
                            Err(err) => {
                                self.log.error(self.index, format_args!("framing error, closing: {err}"));
                                return End::Close;
                            }
                        }
                    },
                    Err(err) => {
                        eprintln!("responder: connection {}: read failed: {err}", self.index);
                        return End::Close;
                    }
                },
                Some(done) = self.tasks.join_next_with_id() => self.task_done(done),
                _ = &mut *writer => return End::Close,
                () = stop_requested(shutdown) => return End::Close,
            }
        }
    }

    fn start_on_connect(&mut self) {
        if self.behaviour.on_connect.is_empty() {
            return;
        }
        let runner = self.runner(RequestId::MANAGEMENT, Arc::default(), Arc::default());
        self.tasks.spawn(runner.run(self.behaviour.on_connect.clone()));
    }

    fn runner(&self, id: RequestId, ended: Arc<AtomicBool>, abort: Arc<Notify>) -> Runner {
        Runner { id, out: self.out.clone(), ended, abort, peer_closed: self.peer_closed.subscribe() }
    }

    async fn on_record(&mut self, record: Record) -> Flow {
        let id = record.request_id;
        match record.body {
            RecordBody::BeginRequest(begin) => self.on_begin(id, begin).await,
            RecordBody::Params(data) => self.on_params(id, data),
            RecordBody::Stdin(data) => self.on_stdin(id, data),
            RecordBody::Data(_) => match self.requests.get(&id) {
                // FILTER data: accepted and not used.
                Some(Slot::Reading(_) | Slot::Discarded) => Flow::Continue,
                _ => self
                    .violation(format_args!("FCGI_DATA for request {id}, which is not reading its request")),
            },
            RecordBody::AbortRequest => self.on_abort(id).await,
            RecordBody::GetValues(names) => self.on_get_values(&names).await,
            RecordBody::Unknown { record_type, .. } => self.on_unknown_type(record_type).await,
            body @ (RecordBody::EndRequest(_)
            | RecordBody::Stdout(_)
            | RecordBody::Stderr(_)
            | RecordBody::GetValuesResult(_)
            | RecordBody::UnknownType(_)) => self.violation(format_args!(
                "{} (request {id}) is a record applications send, not clients",
                body.record_type()
            )),
        }
    }

    async fn on_begin(&mut self, id: RequestId, begin: BeginRequest) -> Flow {
        if self.in_progress(id) {
            return self.violation(format_args!("FCGI_BEGIN_REQUEST for request {id}, which is in progress"));
        }
        if !self.behaviour.multiplex && self.requests.keys().any(|other| self.in_progress(*other)) {
            self.requests.insert(id, Slot::Discarded);
            return self.send(&Record::end_request(id, 0, ProtocolStatus::CANT_MPX_CONN)).await;
        }
        let incoming = Incoming {
            begin,
            params: ParamsAssembler::new(),
            pairs: None,
            stdin: BytesMut::new(),
            stdin_len: 0,
        };
        self.requests.insert(id, Slot::Reading(Box::new(incoming)));
        Flow::Continue
    }

    fn on_params(&mut self, id: RequestId, data: Bytes) -> Flow {
        let incoming = match self.requests.get_mut(&id) {
            Some(Slot::Reading(incoming)) => incoming,
            Some(Slot::Discarded) => return Flow::Continue,
            _ => {
                return self.violation(format_args!(
                    "FCGI_PARAMS for request {id}, which is not reading its request"
                ));
            }
        };
        if incoming.pairs.is_some() {
            return self
                .violation(format_args!("FCGI_PARAMS for request {id} after the end of its FCGI_PARAMS"));
        }
        match incoming.params.push(data) {
            Ok(Some(pairs)) => incoming.pairs = Some(pairs),
            Ok(None) => {}
            Err(err) => return self.violation(format_args!("request {id}: {err}")),
        }
        Flow::Continue
    }

    fn on_stdin(&mut self, id: RequestId, data: Bytes) -> Flow {
        let incoming = match self.requests.get_mut(&id) {
            Some(Slot::Reading(incoming)) => incoming,
            Some(Slot::Discarded) => {
                if data.is_empty() {
                    self.requests.remove(&id);
                }
                return Flow::Continue;
            }
            _ => {
                return self.violation(format_args!(
                    "FCGI_STDIN for request {id}, which is not reading its request"
                ));
            }
        };
        if incoming.pairs.is_none() {
            return self.violation(format_args!(
                "FCGI_STDIN for request {id} before the end of its FCGI_PARAMS (php-fpm loses the body)"
            ));
        }
        if !data.is_empty() {
            incoming.stdin_len += data.len() as u64;
            let room = STDIN_KEPT.saturating_sub(incoming.stdin.len());
            incoming.stdin.extend_from_slice(&data[..data.len().min(room)]);
            return Flow::Continue;
        }
        let Some(Slot::Reading(incoming)) = self.requests.remove(&id) else {
            unreachable!("the slot was just matched as Reading");
        };
        self.start_answer(id, *incoming);
        Flow::Continue
    }

    fn start_answer(&mut self, id: RequestId, incoming: Incoming) {
        let request = RequestInfo {
            connection: self.index,
            sequence: self.completed,
            id,
            role: incoming.begin.role,
            keep_conn: incoming.begin.keep_conn,
            params: incoming.pairs.unwrap_or_default(),
            stdin: incoming.stdin.freeze(),
            stdin_len: incoming.stdin_len,
        };
        self.completed += 1;
        self.check_content_length(&request);
        let ended = Arc::new(AtomicBool::new(false));
        let abort = Arc::new(Notify::new());
        let runner = self.runner(id, ended.clone(), abort.clone());
        let behaviour = self.behaviour.clone();
        // The script runs inside the task: a panicking script is reported, not fatal here.
        let handle = self.tasks.spawn(async move {
            let actions = (behaviour.answer)(&request);
            runner.run(actions).await;
        });
        self.requests.insert(id, Slot::Answering { ended, task: handle.id(), abort });
    }

    /// CONTENT_LENGTH must be the exact STDIN byte count (php-fpm hangs or resets otherwise).
    fn check_content_length(&self, request: &RequestInfo) {
        let declared = request.param("CONTENT_LENGTH");
        let ok = match declared {
            None | Some(b"") => request.stdin_len == 0,
            Some(value) => {
                std::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok()) == Some(request.stdin_len)
            }
        };
        if !ok {
            let declared = declared.map(String::from_utf8_lossy);
            self.log.error(
                self.index,
                format_args!(
                    "request {}: CONTENT_LENGTH {declared:?} but {} bytes of STDIN",
                    request.id, request.stdin_len
                ),
            );
        }
    }

    async fn on_abort(&mut self, id: RequestId) -> Flow {
        let policy = self.behaviour.on_abort;
        if policy == AbortPolicy::Ignore || !self.in_progress(id) {
            return Flow::Continue;
        }
        match self.requests.get(&id) {
            Some(Slot::Reading(_)) => {
                if policy == AbortPolicy::End {
                    self.requests.insert(id, Slot::Discarded);
                }
                self.send(&Record::end_request(id, 0, ProtocolStatus::REQUEST_COMPLETE)).await
            }
            Some(Slot::Answering { ended, abort, .. }) => {
                if policy == AbortPolicy::End {
                    // The script sends END_REQUEST itself, after what it already queued.
                    abort.notify_one();
                    return Flow::Continue;
                }
                ended.store(true, Ordering::SeqCst);
                self.send(&Record::end_request(id, 0, ProtocolStatus::REQUEST_COMPLETE)).await
            }
            Some(Slot::Discarded) | None => Flow::Continue,
        }
    }

    async fn on_get_values(&mut self, names: &[NameValuePair]) -> Flow {
        self.check_management_allowed(RecordType::GET_VALUES);
        let multiplex = self.behaviour.multiplex;
        let pairs = match &self.behaviour.get_values {
            GetValues::Ignore => return Flow::Continue,
            GetValues::Empty => Vec::new(),
            GetValues::Pairs(pairs) => pairs
                .iter()
                .map(|(n, v)| NameValuePair::new(n.clone().into_bytes(), v.clone().into_bytes()))
                .collect(),
            GetValues::Standard => names
                .iter()
                .filter_map(|asked| {
                    let value = match &asked.name[..] {
                        name if name == FCGI_MAX_CONNS.as_bytes() => STANDARD_MAX_CONNS,
                        name if name == FCGI_MAX_REQS.as_bytes() && multiplex => STANDARD_MAX_REQS,
                        name if name == FCGI_MAX_REQS.as_bytes() => STANDARD_MAX_CONNS,
                        name if name == FCGI_MPXS_CONNS.as_bytes() => {
                            if multiplex {
                                "1"
                            } else {
                                "0"
                            }
                        }
                        _ => return None,
                    };
                    Some(NameValuePair::new(asked.name.clone(), value))
                })
                .collect(),
        };
        self.send(&Record::new(RequestId::MANAGEMENT, RecordBody::GetValuesResult(pairs))).await
    }

    async fn on_unknown_type(&mut self, record_type: RecordType) -> Flow {
        self.check_management_allowed(record_type);
        if !self.behaviour.unknown_type {
            return Flow::Continue;
        }
        self.send(&Record::new(RequestId::MANAGEMENT, RecordBody::UnknownType(record_type))).await
    }

    /// Without multiplexing, nothing may come between a request's BEGIN_REQUEST and its
    /// END_REQUEST (php-fpm reads a stray record as the end of PARAMS).
    fn check_management_allowed(&self, record_type: RecordType) {
        let busy = self.requests.keys().any(|id| self.in_progress(*id));
        if !self.behaviour.multiplex && busy {
            self.log.error(
                self.index,
                format_args!("{record_type} while a request is in progress on a non-multiplexed connection"),
            );
        }
    }

    /// True between BEGIN_REQUEST and the queuing of END_REQUEST.
    fn in_progress(&self, id: RequestId) -> bool {
        match self.requests.get(&id) {
            Some(Slot::Reading(_)) => true,
            Some(Slot::Answering { ended, .. }) => !ended.load(Ordering::SeqCst),
            Some(Slot::Discarded) | None => false,
        }
    }

    fn task_done(&mut self, done: Result<(task::Id, ()), JoinError>) {
        let task_id = match done {
            Ok((task_id, ())) => task_id,
            Err(err) => {
                if err.is_panic() {
                    self.log.error(self.index, format_args!("a script panicked: {err}"));
                }
                err.id()
            }
        };
        self.requests.retain(|_, slot| !matches!(slot, Slot::Answering { task, .. } if *task == task_id));
    }

    async fn send(&mut self, record: &Record) -> Flow {
        let Some(bytes) = output::encoded(record) else {
            return Flow::Continue;
        };
        match self.out.send(Out::Bytes(bytes)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    fn violation(&self, message: std::fmt::Arguments<'_>) -> Flow {
        self.log.error(self.index, format_args!("{message}; closing"));
        Flow::Close
    }
}
