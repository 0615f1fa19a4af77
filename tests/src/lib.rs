//! Test support for the fcgi workspace.
//!
//! - `backends`: where the backends started by `cargo xtask test` listen (php-fpm today).
//!   A test that needs a backend panics when it is not configured: it never skips.
//! - `bodies`: request bodies for client tests (chunked, exact or unknown length, failing).
//! - `client`: a small synchronous FastCGI client on `fcgi-proto`, to reach real backends
//!   without the async client.
//! - `responder`: a fault-injecting FastCGI server on tokio, to test the async client against
//!   peers that misbehave in ways no real backend does.
//!
//! Integration tests live in `tests/tests/`, one file per area.

pub mod backends;
pub mod bodies;
pub mod client;
pub mod responder;
