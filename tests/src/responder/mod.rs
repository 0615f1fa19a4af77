//! An in-tree FastCGI *server* for tests that injects faults no real server produces.
//!
//! The async client must survive peers that send garbage, close mid-record, answer requests
//! nobody asked for, stream 64 MiB of STDERR, or never answer at all. Real backends (php-fpm,
//! flup, fcgiwrap) are used for the behaviours they really have (BRIEF §7); this responder is
//! for everything else. It runs on the current tokio runtime, listens on a unix socket in a
//! fresh temporary directory (or on `127.0.0.1:0`), and records everything it receives.
//!
//! # Choosing a behaviour
//!
//! A [`Behaviour`] says how every request is answered: a script (a closure from the
//! [`RequestInfo`] to a list of [`Action`]s) plus a few connection-level switches
//! (multiplexing, ABORT_REQUEST handling, GET_VALUES answer, dripping). Presets cover the
//! usual faults, modifiers combine them:
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use fcgi_tests::responder::{Behaviour, GetValues, Responder};
//!
//! let server = Responder::start(Behaviour::echo().delay(Duration::from_millis(50)).single_request()).await;
//! let address = server.address_string(); // "unix:/tmp/fcgi-responder-.../s.sock"
//! // ... drive the client at `address` ...
//! assert!(server.errors().is_empty(), "the client broke a protocol rule: {:?}", server.errors());
//! server.shutdown().await;
//! # let _ = (address, GetValues::Empty);
//! # }
//! ```
//!
//! The normal answer ([`Behaviour::echo`], see [`script::echo`]) is a proper RESPONDER reply
//! whose body names the request (`id=3 conn=0 script=/x query=a=1 stdin=12`), so a test can
//! tell which answer belongs to which request.
//!
//! # What the responder checks
//!
//! Every record the client sends is kept, per connection, in [`Responder::received`]. Client
//! rule violations are listed by [`Responder::errors`]: framing errors, records out of order
//! (STDIN before the end of PARAMS, PARAMS for a request not begun, BEGIN_REQUEST for an id in
//! progress), server-side record types sent by the client, a CONTENT_LENGTH that differs from
//! the STDIN bytes, and, on a non-multiplexing responder, management records mid-request.
//! Framing and order errors also close the connection (as php-fpm resets it); the others are
//! only noted. Malformed input never panics the server.
//!
//! Records are kept whole, STDIN content included: keep request bodies in tests to a few MiB.
//! Scripts see at most [`script::STDIN_KEPT`] bytes of a body (and its full length).
//!
//! # Layout
//!
//! | module | concern |
//! |---|---|
//! | [`behaviour`] | [`Behaviour`]: presets, modifiers, [`GetValues`], [`AbortPolicy`] |
//! | [`script`] | [`RequestInfo`], [`Action`], the standard answers and the data pattern |
//! | `conn` | one connection: decoding, per-request state, management records |
//! | `output` | the connection's writer task and the per-request script runner |
//!
//! Each connection has one writer task fed by a bounded queue of whole records, so concurrent
//! requests interleave record by record and a large stream is produced only as fast as the
//! socket accepts it (backpressure reaches the script).

pub mod behaviour;
mod conn;
mod output;
pub mod script;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fcgi_proto::Record;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use behaviour::{AbortPolicy, Behaviour, GetValues};
pub use script::{Action, RequestInfo};

use crate::client::Target;

/// How long a shut-down responder lets connections finish on their own before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A test FastCGI server listening on a unix socket in a temporary directory (or on TCP
/// `127.0.0.1:0`), spawned on the current tokio runtime.
///
/// Dropping it stops the listener and every connection and removes the socket and its
/// directory; [`shutdown`](Self::shutdown) does the same and waits for the tasks to end.
pub struct Responder {
    endpoint: Endpoint,
    log: Arc<Log>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

enum Endpoint {
    Unix { dir: PathBuf, path: PathBuf },
    Tcp(SocketAddr),
}

impl Responder {
    /// Starts a responder on a unix socket (`s.sock` in a fresh temporary directory).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or when the socket cannot be created.
    pub async fn start(behaviour: Behaviour) -> Responder {
        let dir = make_temp_dir().unwrap_or_else(|err| panic!("responder: cannot create a temp dir: {err}"));
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path)
            .unwrap_or_else(|err| panic!("responder: cannot bind {}: {err}", path.display()));
        Self::spawn(Listener::Unix(listener), Endpoint::Unix { dir, path }, behaviour)
    }

    /// Starts a responder on TCP `127.0.0.1`, on a port chosen by the system.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or when no port can be bound.
    pub async fn start_tcp(behaviour: Behaviour) -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|err| panic!("responder: cannot bind 127.0.0.1:0: {err}"));
        let addr = listener.local_addr().expect("a bound listener has an address");
        Self::spawn(Listener::Tcp(listener), Endpoint::Tcp(addr), behaviour)
    }

    fn spawn(listener: Listener, endpoint: Endpoint, behaviour: Behaviour) -> Responder {
        let log = Arc::new(Log::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::new(behaviour), log.clone(), shutdown_rx));
        Responder { endpoint, log, shutdown, task: Some(task) }
    }

    /// The unix socket path, for a unix responder.
    pub fn socket_path(&self) -> Option<&Path> {
        match &self.endpoint {
            Endpoint::Unix { path, .. } => Some(path),
            Endpoint::Tcp(_) => None,
        }
    }

    /// The TCP address, for a TCP responder.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match &self.endpoint {
            Endpoint::Unix { .. } => None,
            Endpoint::Tcp(addr) => Some(*addr),
        }
    }

    /// `unix:/tmp/.../s.sock` or `127.0.0.1:PORT`, as the client and the CLI parse addresses.
    pub fn address_string(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix { path, .. } => format!("unix:{}", path.display()),
            Endpoint::Tcp(addr) => addr.to_string(),
        }
    }

    /// The address for the synchronous test client ([`crate::client`]).
    pub fn target(&self) -> Target {
        match &self.endpoint {
            Endpoint::Unix { path, .. } => Target::Unix(path.clone()),
            Endpoint::Tcp(addr) => Target::Tcp(*addr),
        }
    }

    /// Every record received so far, decoded, per connection in the order they were
    /// accepted (the index is [`RequestInfo::connection`]).
    pub fn received(&self) -> Vec<Vec<Record>> {
        self.log.connections().clone()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.log.connections().len()
    }

    /// Client rule violations seen so far, each prefixed with its connection
    /// (`"connection 0: FCGI_STDIN for request 1 before the end of its FCGI_PARAMS"`).
    pub fn errors(&self) -> Vec<String> {
        self.log.errors().clone()
    }

    /// Polls [`received`](Self::received) until `condition` holds or `timeout` passes;
    /// returns whether it held. For records that arrive after the client's call returned
    /// (an ABORT_REQUEST sent on cancellation, a close).
    pub async fn wait_until(&self, timeout: Duration, condition: impl Fn(&[Vec<Record>]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(&self.log.connections()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops accepting, ends every connection (after a short grace period) and waits for the
    /// tasks to finish; then removes the socket and its directory.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        // The tasks see the signal and end on their own; nothing here may block.
        self.shutdown.send_replace(true);
        if let Endpoint::Unix { dir, path } = &self.endpoint {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").field("address", &self.address_string()).finish_non_exhaustive()
    }
}

/// What all connections of one responder saw.
#[derive(Default)]
struct Log {
    connections: Mutex<Vec<Vec<Record>>>,
    errors: Mutex<Vec<String>>,
}

impl Log {
    fn connections(&self) -> MutexGuard<'_, Vec<Vec<Record>>> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn errors(&self) -> MutexGuard<'_, Vec<String>> {
        self.errors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection and returns its index.
    fn open_connection(&self) -> usize {
        let mut connections = self.connections();
        connections.push(Vec::new());
        connections.len() - 1
    }

    fn record(&self, connection: usize, record: Record) {
        if let Some(records) = self.connections().get_mut(connection) {
            records.push(record);
        }
    }

    /// Notes a client rule violation (also printed, to show up in a failing test's output).
    fn error(&self, connection: usize, message: impl std::fmt::Display) {
        let line = format!("connection {connection}: {message}");
        eprintln!("responder: {line}");
        self.errors().push(line);
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

enum Accepted {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Listener {
    async fn accept(&self) -> io::Result<Accepted> {
        Ok(match self {
            Listener::Unix(listener) => Accepted::Unix(listener.accept().await?.0),
            Listener::Tcp(listener) => {
                let stream = listener.accept().await?.0;
                // Dripped bytes must leave one by one.
                stream.set_nodelay(true)?;
                Accepted::Tcp(stream)
            }
        })
    }
}

async fn accept_loop(
    listener: Listener,
    behaviour: Arc<Behaviour>,
    log: Arc<Log>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    let context = conn::Context {
                        index: log.open_connection(),
                        behaviour: behaviour.clone(),
                        log: log.clone(),
                        shutdown: shutdown.clone(),
                    };
                    match stream {
                        Accepted::Unix(stream) => connections.spawn(conn::serve(stream, context)),
                        Accepted::Tcp(stream) => connections.spawn(conn::serve(stream, context)),
                    };
                }
                Err(err) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    eprintln!("responder: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, drain).await;
    connections.shutdown().await;
}

/// Resolves once the responder is shutting down (or gone). The `watch::Ref` a plain
/// `wait_for` returns is not `Send`, so it must not live in a `select!`.
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A fresh, empty directory under the system temp dir, for the socket.
fn make_temp_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fcgi-responder-{}-{n}-{nanos:08x}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
}
