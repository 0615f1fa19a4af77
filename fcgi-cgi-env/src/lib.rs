//! Derive a correct and safe CGI/1.1 environment (the FastCGI PARAMS) from an HTTP request.
//!
//! The environment is what the application sees: php-fpm builds `$_SERVER` from it, and
//! mistakes here have broken applications and let attackers run code (httpoxy, CVE-2019-11043,
//! path traversal). This crate does one thing: from an `http` request head, the body length,
//! connection facts and an application configuration, it produces the ordered name/value pairs
//! to send. It knows nothing of the FastCGI wire format, of I/O or of async runtimes.
//!
//! # Layout
//!
//! - [`config`](AppConfig): the kind of application ([`AppKind`]: a directory of scripts, or an
//!   application mounted at a prefix such as a WSGI or Go one), document root, index, path-info split ([`PathInfo`]), script
//!   extension allow-list, header policy, server identity, parameter overrides.
//! - [`connection`](ConnectionInfo): the request head ([`RequestHead`]) and the connection facts
//!   ([`ConnectionInfo`], [`Endpoint`], unix sockets included).
//! - `path`: percent-decoding exactly once, forbidden bytes, dot-segments, document-root
//!   containment.
//! - `path_info`: the SCRIPT_NAME / PATH_INFO split, the index, the extension allow-list.
//! - `headers`: `HTTP_*` names, hidden headers, httpoxy, name collisions, joined repeats.
//! - [`params`](CgiParams): the output type, overrides, the one-record size limit
//!   ([`MAX_PAIR_LEN`]) and redacted printing.
//! - [`error`](Error): one typed error whose variants name the rule that refused the request.
//!
//! Every parameter, its source and how to override it is listed in `docs/CGI-ENV.md`; every
//! security rule and its test in `docs/SECURITY.md`.
//!
//! # Example
//!
//! ```
//! use fcgi_cgi_env::{AppConfig, ConnectionInfo, derive};
//!
//! let request = http::Request::get("/index.php/users/42?page=2")
//!     .header("Host", "example.com")
//!     .header("Authorization", "Basic dXNlcjpwYXNz")
//!     .header("Proxy", "http://evil.example:8080") // httpoxy: never becomes HTTP_PROXY
//!     .body(())?;
//! let connection = ConnectionInfo::new()
//!     .client("192.0.2.7:51234".parse::<std::net::SocketAddr>()?)
//!     .server("192.0.2.1:80".parse::<std::net::SocketAddr>()?);
//! let config = AppConfig::new("/var/www/app");
//!
//! let params = derive(&request, None, &connection, &config)?;
//! assert_eq!(params.get_str("SCRIPT_NAME"), Some("/index.php"));
//! assert_eq!(params.get_str("PATH_INFO"), Some("/users/42"));
//! assert_eq!(params.get_str("SCRIPT_FILENAME"), Some("/var/www/app/index.php"));
//! assert_eq!(params.get_str("QUERY_STRING"), Some("page=2"));
//! assert_eq!(params.get_str("CONTENT_LENGTH"), Some("0"));
//! assert!(!params.contains("HTTP_PROXY"));
//!
//! // Safe to log: credentials are masked.
//! let printed = params.redacted().to_string();
//! assert!(printed.contains("HTTP_AUTHORIZATION=<redacted, 18 bytes>"));
//! assert!(!printed.contains("dXNlcjpwYXNz"));
//!
//! // Send the pairs, in order, as FastCGI PARAMS.
//! for (name, value) in &params {
//!     let _ = (name, value);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod config;
mod connection;
mod derive;
mod error;
mod headers;
mod params;
mod path;
mod path_info;

/// The `http` crate this API is built on, re-exported so callers name the same version.
pub use http;

pub use config::{AppConfig, AppKind, DEFAULT_SERVER_SOFTWARE, ExtensionCheck, PathInfo, UnusualHeaderNames};
pub use connection::{ConnectionInfo, Endpoint, RequestHead};

/// The former name of [`ConnectionInfo`] (it clashed with `fcgi_mux::Connection`, a different
/// thing).
#[deprecated(since = "0.2.0", note = "renamed to ConnectionInfo")]
pub type Connection = ConnectionInfo;
pub use derive::derive;
pub use error::Error;
pub use headers::{HIDDEN_BY_DEFAULT, HOP_BY_HOP, NEVER_PASSED};
pub use params::{
    CgiParams, Iter, MAX_PAIR_LEN, ParamName, ParamValue, Redacted, SENSITIVE_PARAMS, is_sensitive, pair_len,
};

/// The request path as [`derive`] sees it (its DOCUMENT_URI): percent-decoded exactly once,
/// control bytes refused, slashes merged, `.` and `..` segments resolved, never above the root.
/// For a front end that routes on the same path it sends (static files beside scripts).
///
/// ```
/// assert_eq!(fcgi_cgi_env::normalize_path("/a/./b/../%2e%2e/c//d/").unwrap(), b"/c/d/");
/// assert!(fcgi_cgi_env::normalize_path("/../etc/passwd").is_err());
/// assert!(fcgi_cgi_env::normalize_path("/a%0ab").is_err());
/// ```
pub fn normalize_path(raw_path: &str) -> Result<Vec<u8>, Error> {
    path::normalize(raw_path)
}
