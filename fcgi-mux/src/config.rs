//! Connection and pool settings, with the defaults documented as numbers.
//!
//! The defaults follow what php-fpm needs (see the crate docs): it never multiplexes, pins a
//! worker to every open connection, and accepts connections even when every worker is busy.

use std::time::Duration;

use fcgi_proto::Padding;

use crate::observer::Observer;

/// Whether requests share a connection.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Multiplexing {
    /// One request at a time per connection, without asking the server (the default:
    /// php-fpm, php-cgi and fcgiwrap never multiplex). No FCGI_GET_VALUES is sent.
    #[default]
    Off,
    /// Ask FCGI_GET_VALUES before the first request; multiplex only when the server answers
    /// `FCGI_MPXS_CONNS=1`, up to its `FCGI_MAX_REQS`.
    Auto,
    /// Multiplex whatever the server says (flup answers an empty result although it
    /// multiplexes). A server that refuses with CANT_MPX_CONN drops the connection to one
    /// request at a time.
    Force,
}

/// Settings of one connection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// Time to establish the connection. Default 2 s.
    pub connect_timeout: Duration,
    /// Time from sending a request to its first response record. Default 30 s. Cannot be
    /// turned off: php-fpm accepts connections even when every worker is busy and then lets
    /// the request wait silently.
    pub first_byte_timeout: Duration,
    /// Time for a whole request, response body included. Default 300 s; `None` for none.
    pub total_timeout: Option<Duration>,
    /// Multiplexing policy. Default [`Multiplexing::Off`].
    pub multiplexing: Multiplexing,
    /// Time to wait for FCGI_GET_VALUES_RESULT before the first request ([`Multiplexing::Auto`]
    /// only). No answer in time means "unknown". Default 500 ms.
    pub get_values_timeout: Duration,
    /// Most requests in flight on one multiplexed connection (the server's FCGI_MAX_REQS
    /// lowers it). Default 100.
    pub max_concurrent_requests: usize,
    /// Ask the server to keep the connection open after each request (FCGI_KEEP_CONN).
    /// Default false for a lone connection, which then serves one request (the server closes
    /// it after END_REQUEST; later requests fail with [`Error::ConnectionClosed`] and nothing
    /// sent); a pool always sets it.
    ///
    /// [`Error::ConnectionClosed`]: crate::Error::ConnectionClosed
    pub keep_conn: bool,
    /// Bytes of response body buffered per request before the connection stops reading.
    /// Default 256 KiB.
    pub response_buffer: usize,
    /// Bytes of the application's STDERR kept per request; the rest is counted and dropped.
    /// Default 64 KiB.
    pub stderr_limit: usize,
    /// Largest CGI header block accepted. Default 64 KiB.
    pub max_head_len: usize,
    /// Largest request body of unknown length that is buffered to learn its length (php-fpm
    /// needs CONTENT_LENGTH to be exact). Default 8 MiB.
    pub max_buffered_body: usize,
    /// On a multiplexed connection, how long one request's full buffer may hold up reading
    /// before that request is aborted so the others proceed. Default 10 s.
    pub stall_timeout: Duration,
    /// How long an aborted request's id is drained, waiting for its END_REQUEST, before the
    /// connection is retired. Default 5 s.
    pub abort_drain_timeout: Duration,
    /// Bytes of records for unknown or finished request ids tolerated before the connection
    /// is declared broken. Default 1 MiB.
    pub stray_limit: usize,
    /// Padding of the records sent. Default none.
    pub padding: Padding,
    /// Called for every record sent and received. Default none.
    pub observer: Option<Observer>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(30),
            total_timeout: Some(Duration::from_secs(300)),
            multiplexing: Multiplexing::Off,
            get_values_timeout: Duration::from_millis(500),
            max_concurrent_requests: 100,
            keep_conn: false,
            response_buffer: 256 * 1024,
            stderr_limit: 64 * 1024,
            max_head_len: 64 * 1024,
            max_buffered_body: 8 * 1024 * 1024,
            stall_timeout: Duration::from_secs(10),
            abort_drain_timeout: Duration::from_secs(5),
            stray_limit: 1024 * 1024,
            padding: Padding::None,
            observer: None,
        }
    }
}

/// Settings of a pool of connections to one backend.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Settings of each connection (its `keep_conn` is set from [`PoolConfig::keep_alive`]).
    pub connection: ConnectionConfig,
    /// Reuse connections for later requests (FCGI_KEEP_CONN). Default true. Off, every request
    /// gets a connection of its own, closed after END_REQUEST: what many php-fpm setups want,
    /// since each kept connection pins a worker for as long as it stays open.
    pub keep_alive: bool,
    /// Most open connections. Default 4. Keep it below the backend's worker count: php-fpm
    /// pins a worker to every open connection for as long as it stays open.
    pub max_connections: usize,
    /// An idle connection is closed after this long. Default 5 s (an idle connection to
    /// php-fpm holds a worker).
    pub idle_timeout: Duration,
    /// Longest wait for a free connection. Default 10 s. The request's total timeout
    /// ([`ConnectionConfig::total_timeout`]) counts the wait too.
    pub queue_timeout: Duration,
    /// A connection takes no new requests after this long, and closes once its last one
    /// ended. Default none.
    pub max_lifetime: Option<Duration>,
    /// Retry a request refused with FCGI_OVERLOADED once, on a new connection. Default false.
    pub retry_overloaded: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            connection: ConnectionConfig { keep_conn: true, ..ConnectionConfig::default() },
            keep_alive: true,
            max_connections: 4,
            idle_timeout: Duration::from_secs(5),
            queue_timeout: Duration::from_secs(10),
            max_lifetime: None,
            retry_overloaded: false,
        }
    }
}

/// Builder-style setters: `ConnectionConfig::default().keep_conn(true)`.
macro_rules! setters {
    ($ty:ty { $($(#[$doc:meta])* $field:ident: $field_ty:ty,)* }) => {
        impl $ty {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $field(mut self, $field: $field_ty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}

setters!(ConnectionConfig {
    /// Sets [`ConnectionConfig::connect_timeout`].
    connect_timeout: Duration,
    /// Sets [`ConnectionConfig::first_byte_timeout`].
    first_byte_timeout: Duration,
    /// Sets [`ConnectionConfig::total_timeout`].
    total_timeout: Option<Duration>,
    /// Sets [`ConnectionConfig::multiplexing`].
    multiplexing: Multiplexing,
    /// Sets [`ConnectionConfig::get_values_timeout`].
    get_values_timeout: Duration,
    /// Sets [`ConnectionConfig::max_concurrent_requests`].
    max_concurrent_requests: usize,
    /// Sets [`ConnectionConfig::keep_conn`].
    keep_conn: bool,
    /// Sets [`ConnectionConfig::response_buffer`].
    response_buffer: usize,
    /// Sets [`ConnectionConfig::stderr_limit`].
    stderr_limit: usize,
    /// Sets [`ConnectionConfig::max_head_len`].
    max_head_len: usize,
    /// Sets [`ConnectionConfig::max_buffered_body`].
    max_buffered_body: usize,
    /// Sets [`ConnectionConfig::stall_timeout`].
    stall_timeout: Duration,
    /// Sets [`ConnectionConfig::abort_drain_timeout`].
    abort_drain_timeout: Duration,
    /// Sets [`ConnectionConfig::stray_limit`].
    stray_limit: usize,
    /// Sets [`ConnectionConfig::padding`].
    padding: Padding,
    /// Sets [`ConnectionConfig::observer`].
    observer: Option<Observer>,
});

setters!(PoolConfig {
    /// Sets [`PoolConfig::connection`] (its `keep_conn` is set from `keep_alive`).
    connection: ConnectionConfig,
    /// Sets [`PoolConfig::keep_alive`].
    keep_alive: bool,
    /// Sets [`PoolConfig::max_lifetime`].
    max_lifetime: Option<Duration>,
    /// Sets [`PoolConfig::max_connections`].
    max_connections: usize,
    /// Sets [`PoolConfig::idle_timeout`].
    idle_timeout: Duration,
    /// Sets [`PoolConfig::queue_timeout`].
    queue_timeout: Duration,
    /// Sets [`PoolConfig::retry_overloaded`].
    retry_overloaded: bool,
});
