//! Async FastCGI client on tokio: connections, multiplexing, a pool, CGI responses.
//!
//! Built for how real servers behave (measured on php-fpm 8.2, php-cgi, fcgiwrap, flup), not
//! only for what the FastCGI specification allows.
//!
//! # Using it
//!
//! ```no_run
//! use fcgi_mux::{Address, Outcome, Pool, PoolConfig};
//! use http_body_util::{BodyExt, Empty};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::new("unix:/run/php/php-fpm.sock".parse::<Address>()?, PoolConfig::default());
//! let params = [
//!     ("REQUEST_METHOD", "GET"),
//!     ("SCRIPT_NAME", "/index.php"),
//!     ("SCRIPT_FILENAME", "/var/www/index.php"),
//! ];
//! let request = http::Request::get("/index.php").body(Empty::<bytes::Bytes>::new())?;
//! let response = pool.request(request, params).await?;
//! println!("{}", response.status());
//! // STDERR and END_REQUEST's status stay reachable after the body is taken whole.
//! let outcome: Outcome = response.body().outcome();
//! let body = response.into_body().collect().await?.to_bytes();
//! println!("{} bytes, stderr {:?}", body.len(), outcome.stderr().kept);
//! # Ok(()) }
//! ```
//!
//! Parameters are any pairs whose parts convert into `Bytes` (`&'static str`, `String`,
//! `Vec<u8>`...): `fcgi-cgi-env`'s `CgiParams` goes in as it is. This crate only makes
//! `CONTENT_LENGTH` agree with the body.
//!
//! # Layout
//!
//! Four layers, each in its own place:
//!
//! | layer | module | what it owns |
//! |---|---|---|
//! | state machine | [`machine`] | every protocol rule of one connection, sans I/O: ids, record order, multiplexing, cancellation, deadlines, bounded buffers, the CGI head. Inputs are bytes, instants and commands; outputs are bytes, events and the next deadline |
//! | driver | `conn` | [`Connection`] (the handle) and [`ConnectionDriver`] (the future that pumps a machine over any `AsyncRead + AsyncWrite` stream and resolves to why the connection ended) |
//! | pool | `pool` | [`Pool`]: connections to one backend, a fair queue, resends of requests that never ran, guards for every count |
//! | service | `service` | `FcgiService` / `FcgiGateway` (feature `tower`): the pool as a `tower::Service` |
//!
//! Beside them: `address` ([`Address`] parsing and connecting), `config` ([`ConnectionConfig`],
//! [`PoolConfig`], [`Multiplexing`]: every default is a number), `request` (bodies of known
//! length, CONTENT_LENGTH, encoding the head; [`EncodedParams`]), `response` (the caller's
//! side: waiting for the head, the streaming [`ResponseBody`], [`Outcome`]), [`cgi`] (the CGI
//! head parser), `probe` ([`probe`]: FCGI_GET_VALUES on a connection of its own), `observer`
//! ([`Observer`]: every record, for `fcgi dump`), `error` ([`Error`]).
//!
//! # The pool next to bb8 and deadpool
//!
//! | | this pool | bb8 / deadpool |
//! |---|---|---|
//! | what is pooled | request slots: one per connection, more when it multiplexes | whole connections, one user at a time |
//! | a checked-out connection | never handed out: the pool sends the request and hands back the response | handed to the caller, returned on drop |
//! | broken connections | noticed by the driver (EOF, protocol errors) and dropped at once; a request none of whose bytes were sent goes elsewhere | checked on checkout (`is_valid`/`recycle`), or by the caller's error |
//! | deadlines | one per request from the caller's ask, covering the wait for a connection, the connect and the response | a checkout timeout; the rest is the caller's |
//! | cancellation | every count is a guard: a future dropped at any await point gives back its slot, its connect permit or its place in the queue | the same for checkouts (connections return on drop) |
//! | idle / lifetime | idle timeout (5 s: an idle php-fpm connection pins a worker) and maximum lifetime | both |
//! | a server closing kept connections | noticed (uWSGI): one request per connection from then on | the next checkout finds it broken |
//! | shutdown | [`Pool::close`] lets requests finish within a deadline | dropping the pool |
//!
//! //! # Rules it follows, and why
//!
//! - **One request at a time unless told otherwise.** php-fpm, php-cgi and fcgiwrap never
//!   multiplex; a second BEGIN_REQUEST mid-request corrupts php-fpm's stream and fcgiwrap
//!   silently drops it. So by default ([`Multiplexing::Off`]) a connection carries one request,
//!   and the next BEGIN_REQUEST goes out only after the previous END_REQUEST was read.
//!   [`Multiplexing::Auto`] asks FCGI_GET_VALUES first (no answer or an empty one means
//!   "unknown", i.e. no multiplexing); [`Multiplexing::Force`] multiplexes anyway (flup answers
//!   empty although it multiplexes). A server answering CANT_MPX_CONN drops the connection to
//!   one request at a time and the refused request is sent again.
//! - **Strict record order:** BEGIN_REQUEST, PARAMS records each holding whole name-value
//!   pairs, the empty PARAMS, STDIN records, the empty STDIN (also for an empty body).
//!   CONTENT_LENGTH always equals the bytes sent: php-fpm hangs on a short body and resets on
//!   a long one. A body of unknown length is buffered up to
//!   [`ConnectionConfig::max_buffered_body`] (8 MiB) to learn its length, else refused.
//! - **Request ids** are allocated when a request starts on the connection and reused only
//!   after its END_REQUEST was read.
//! - **Responses**: STDOUT is a CGI response (`Status:` sets the status, `Location:` alone
//!   gives 302, strict header syntax, header block ≤ 64 KiB); the body streams as an
//!   [`http_body::Body`]. STDERR is kept apart, up to 64 KiB per request. END_REQUEST ends the
//!   response; a protocol status other than REQUEST_COMPLETE is an [`Error::Refused`].
//! - **Timeouts**: connect (2 s), first byte (30 s, mandatory: php-fpm accepts connections even
//!   when every worker is busy and lets the request wait silently), total (300 s, counted from
//!   the caller's ask: the wait for a pooled connection is part of it), pool queue (10 s), pool
//!   idle connection (5 s), connection lifetime (none).
//! - **Cancellation**: dropping a request's future or its response body before the end
//!   cancels it. On a connection that does not multiplex the connection is closed (no measured
//!   server stops a script on ABORT_REQUEST, and php-fpm closes after it anyway); on a
//!   multiplexed one ABORT_REQUEST is sent and the id is drained until its END_REQUEST or
//!   for 5 s, the other requests carrying on.
//! - **Bounded memory**: per request, 256 KiB of response body ([`ConnectionConfig::response_buffer`])
//!   and 64 KiB of STDERR; per connection, a 64 KiB write buffer plus one record being read.
//!   FastCGI has no flow control, so when one request's buffer is full the connection stops
//!   reading the socket: its neighbours on a multiplexed connection wait too (head-of-line
//!   blocking). If that lasts longer than [`ConnectionConfig::stall_timeout`] (10 s), the
//!   stalled request is aborted with [`Error::Stalled`] so the others finish.
//! - **Writers are interleaved fairly**, one record per request per round.
//! - **Broken peers**: malformed records, records only a client may send, or more than 1 MiB
//!   of records for ids not in progress break the connection, failing every request on it
//!   with a clear error; such a connection is never reused. A request none of whose bytes
//!   were written when its connection failed is sent again by the pool.
//! - **Secrets**: parameter values (Authorization, Cookie...) are never logged.

#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod address;
pub mod cgi;
mod config;
mod conn;
mod error;
pub mod machine;
mod observer;
mod pool;
mod probe;
mod request;
mod response;
#[cfg(feature = "tower")]
mod service;
#[cfg(test)]
mod test_backend;

pub use address::{Address, AddressError};
pub use config::{ConnectionConfig, Multiplexing, PoolConfig};
pub use conn::shared::Stderr;
pub use conn::{Connection, ConnectionDriver};
pub use error::{BoxError, Error, ProtocolViolation, TimeoutKind};
pub use machine::EndStatus;
pub use observer::{Direction, Observer, RecordEvent};
pub use pool::{Pool, PoolStats};
pub use probe::{ProbeConfig, ProbeOutcome, ProbeReport, probe};
pub use request::EncodedParams;
pub use response::{Outcome, ReasonPhrase, ResponseBody, StatusGiven, Variables};

/// The wire codec, whose types ([`ProtocolStatus`](fcgi_proto::ProtocolStatus),
/// [`ServerValues`](fcgi_proto::ServerValues), [`Padding`](fcgi_proto::Padding), records)
/// appear in this API.
pub use fcgi_proto;
/// The `http` crate, whose types this API takes and returns.
pub use http;
#[cfg(feature = "tower")]
pub use service::{FcgiGateway, FcgiService, GatewayBody};
