//! The workspace's integration tests against real backends (php-fpm, flup, fcgiwrap started by
//! `cargo xtask test`) and the fault-injecting responder, one test binary: a module per area.
//! The few tests that need the process and php-fpm to themselves are in `tests/alone/`.

mod backends_smoke;
mod cgi_env_php;
mod mux_faults;
mod mux_php_fpm;
mod mux_real_peers;
mod php_fpm_harness;
mod responder_selftest;
