//! fcgi-mux's integration tests, one test binary: a module per area. The tests against real
//! backends and misbehaving peers are in the `fcgi-tests` package (`tests/`).

mod cgi_head;
