//! Test support for the fcgi workspace.
//!
//! - `backend_env`: the names of the `FCGI_TEST_*` variables through which `cargo xtask test`
//!   tells the tests where its backends listen (xtask compiles the same file in).
//! - `backends`: where the backends started by `cargo xtask test` listen (php-fpm, flup,
//!   fcgiwrap). A test that needs a backend panics when it is not configured: it never skips.
//! - `bodies`: request bodies for client tests (chunked, exact or unknown length, failing).
//! - `client`: a small synchronous FastCGI client on `fcgi-proto`, to reach real backends
//!   without the async client.
//! - `responder`: a fault-injecting FastCGI server on tokio, to test the async client against
//!   peers that misbehave in ways no real backend does.
//!
//! Integration tests live in `tests/tests/it/`, one module per area, all in one test binary;
//! `tests/tests/alone/` holds the few that need the process and php-fpm to themselves.

pub mod backend_env;
pub mod backends;
pub mod bodies;
pub mod client;
pub mod responder;
