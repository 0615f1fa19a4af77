//! Async FastCGI client: connections, multiplexing, pool and CGI response parsing.
//!
//! Skeleton: the client lands with the fcgi-mux issue. It will own the single-connection
//! driver, per-request state keyed by request id, the pool above it, and the CGI response
//! parser. It depends on `fcgi-proto` for the wire format and knows nothing of the CLI.
