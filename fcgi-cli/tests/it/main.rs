//! The `fcgi` binary's integration tests, one test binary: a module per area, and `common`,
//! the helpers they share (running the binary, fake servers).

mod bench;
mod common;
mod dump;
mod errors;
mod generated;
mod health;
mod mount;
mod output;
mod probe;
mod requests;
mod serve_browser;
mod serve_limits;
mod serve_php;
mod serve_support;
mod serve_tls;
mod signals;
