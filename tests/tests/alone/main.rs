//! The tests that need the process, and php-fpm, to themselves: a second test binary, since a
//! test cannot keep the other tests of its own binary from running beside it, while cargo runs
//! test binaries one after another. Within this one, each test holds [`ONE_AT_A_TIME`].
//!
//! - `mux_memory` watches the resident set size of the process: any other test allocating
//!   meanwhile would show up in it.
//! - `mux_logging` installs the process's global tracing subscriber and needs no other test
//!   registering callsites while it does.
//! - `mux_php_fpm_restart` reloads the harness's php-fpm, which disturbs every connection to it.

mod mux_logging;
mod mux_memory;
mod mux_php_fpm_restart;

/// Held by each test of this binary for its whole run: they never overlap.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
