//! The `fcgi` binary's integration tests, one test binary: a module per area, and `common`,
//! the helpers they share (running the binary, fake servers).

mod bench;
mod common;
mod curl_habits;
mod dump;
mod errors;
mod exporter;
mod generated;
mod health;
mod messages;
mod mount;
mod output;
mod peer_matrix;
mod php_fpm_healthcheck;
mod probe;
mod requests;
mod roles;
mod serve_browser;
mod serve_limits;
mod serve_php;
mod serve_support;
mod serve_tls;
mod signals;
mod status_pools;
