//! Async FastCGI client on tokio: connections, multiplexing, a pool, CGI responses.
//!
//! Built for how real servers behave (measured on php-fpm 8.2, php-cgi, fcgiwrap, flup), not
//! only for what the FastCGI specification allows.
//!
//! # Using it
//!
//! ```no_run
//! use bytes::Bytes;
//! use fcgi_mux::{Address, Pool, PoolConfig};
//! use http_body_util::{BodyExt, Empty};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::new("unix:/run/php/php-fpm.sock".parse::<Address>()?, PoolConfig::default());
//! let params = vec![
//!     (Bytes::from_static(b"REQUEST_METHOD"), Bytes::from_static(b"GET")),
//!     (Bytes::from_static(b"SCRIPT_NAME"), Bytes::from_static(b"/index.php")),
//!     (Bytes::from_static(b"SCRIPT_FILENAME"), Bytes::from_static(b"/var/www/index.php")),
//! ];
//! let request = http::Request::get("/index.php").body(Empty::<Bytes>::new())?;
//! let response = pool.request(request, params).await?;
//! println!("{}", response.status());
//! let body = response.into_body().collect().await?.to_bytes();
//! # Ok(()) }
//! ```
//!
//! Parameters usually come from `fcgi-cgi-env`; this crate only makes `CONTENT_LENGTH`
//! agree with the body.
//!
//! # Layout
//!
//! | module | concern |
//! |---|---|
//! | `address` | [`Address`] parsing (`unix:/path`, `host:port`, `[::1]:9000`), connecting |
//! | `config` | [`ConnectionConfig`], [`PoolConfig`], [`Multiplexing`]: every default is a number |
//! | `conn` | one connection: the handle, the driver task, per-request state (see its docs) |
//! | `request` | request bodies of known length, CONTENT_LENGTH, encoding the head; [`EncodedParams`] (encoded once, sent many times) |
//! | `response` | first-byte and total timeouts, the CGI head, the streaming [`ResponseBody`] |
//! | [`cgi`] | the CGI response head parser |
//! | `pool` | [`Pool`]: connections to one backend, a fair waiting queue, resends |
//! | `probe` | [`probe`]: FCGI_GET_VALUES on a connection of its own |
//! | `observer` | [`Observer`]: every record sent and received, for `fcgi dump` |
//! | `error` | [`Error`]: connect / resolve / timeout / I/O / protocol / refused / caller misuse |
//! | `service` | `FcgiService` (feature `tower`): the pool as a `tower::Service<http::Request<B>>` |
//!
//! # Rules it follows, and why
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
//!   when every worker is busy and lets the request wait silently), total (300 s), pool queue
//!   (10 s), pool idle connection (5 s).
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
pub use response::{Outcome, ReasonPhrase, ResponseBody};

/// The wire codec, whose types ([`ProtocolStatus`](fcgi_proto::ProtocolStatus),
/// [`ServerValues`](fcgi_proto::ServerValues), [`Padding`](fcgi_proto::Padding), records)
/// appear in this API.
pub use fcgi_proto;
/// The `http` crate, whose types this API takes and returns.
pub use http;
#[cfg(feature = "tower")]
pub use service::{FcgiGateway, FcgiService, GatewayBody};
