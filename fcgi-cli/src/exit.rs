//! The exit-code table: the interface scripts and health checks depend on.
//!
//! Numbers follow curl where curl has one (6, 7, 8, 23, 26, 28, 56) and xh/HTTPie for HTTP
//! statuses (4, 5). Status checking is on by default, unlike curl: a health check that
//! exits 0 on HTTP 500 (as `cgi-fcgi` does) is the failure this tool exists to fix.
//! `--no-fail` turns it off.

use std::fmt;

use fcgi_mux::Error as MuxError;

/// Why `fcgi` exits with something other than 0.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// 0: the request succeeded (HTTP status below 400, or `--no-fail`).
    Success = 0,
    /// 1: an unexpected error (a bug, or an environment problem not covered below).
    Failure = 1,
    /// 2: bad command line, or a request that cannot be sent as asked (e.g. a path outside the
    /// document root, a parameter too large for php-fpm).
    Usage = 2,
    /// 4: the application answered with an HTTP 4xx status.
    Http4xx = 4,
    /// 5: the application answered with an HTTP 5xx status.
    Http5xx = 5,
    /// 6: the host name did not resolve.
    Resolve = 6,
    /// 7: could not connect (refused, no such socket, permission denied).
    Connect = 7,
    /// 8: the server broke the FastCGI protocol or sent a malformed CGI response; `dump --input`
    /// found a malformed record.
    Protocol = 8,
    /// 9: the server ended the request with a FastCGI protocol status other than
    /// REQUEST_COMPLETE (OVERLOADED, CANT_MPX_CONN, UNKNOWN_ROLE).
    FcgiStatus = 9,
    /// 10: `probe`: no answer to FCGI_GET_VALUES in time (or the connection closed without one).
    ProbeNoAnswer = 10,
    /// 11: `probe`: the server does not speak FastCGI.
    ProbeNotFastCgi = 11,
    /// 12: `ping` / `status`: the check failed (unexpected ping answer, threshold crossed).
    CheckFailed = 12,
    /// 23: writing the output failed.
    Write = 23,
    /// 26: reading an input file (`-d @file`, `--input`) failed.
    Read = 26,
    /// 28: a timeout expired (connect, first byte, `--max-time`).
    Timeout = 28,
    /// 56: the connection broke or closed before the response ended.
    ConnectionLost = 56,
}

impl Exit {
    /// Every code with its meaning: what `fcgi --help` lists (`cli::AFTER_LONG_HELP`, a literal
    /// a test keeps equal to this table) and docs/CLI.md documents.
    #[cfg(test)]
    pub const TABLE: &'static [(Exit, &'static str)] = &[
        (Exit::Success, "success (HTTP status < 400, or --no-fail)"),
        (Exit::Failure, "unexpected error"),
        (Exit::Usage, "bad command line, or a request that cannot be sent as asked"),
        (Exit::Http4xx, "HTTP 4xx from the application"),
        (Exit::Http5xx, "HTTP 5xx from the application (503 from php-fpm: busy)"),
        (Exit::Resolve, "host name did not resolve"),
        (Exit::Connect, "could not connect (refused, no such socket, permission denied)"),
        (Exit::Protocol, "FastCGI protocol violation or malformed CGI response; malformed --input"),
        (Exit::FcgiStatus, "FastCGI protocol status other than REQUEST_COMPLETE"),
        (Exit::ProbeNoAnswer, "probe: no FCGI_GET_VALUES answer in time"),
        (Exit::ProbeNotFastCgi, "probe: the server does not speak FastCGI"),
        (Exit::CheckFailed, "ping/status check failed"),
        (Exit::Write, "could not write the output"),
        (Exit::Read, "could not read an input file"),
        (Exit::Timeout, "timeout (connect, first byte, --max-time)"),
        (Exit::ConnectionLost, "connection lost before the response ended"),
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit code for an HTTP status (`Success` below 400).
    pub fn for_status(status: http::StatusCode) -> Exit {
        match status.as_u16() {
            400..=499 => Exit::Http4xx,
            500.. => Exit::Http5xx,
            _ => Exit::Success,
        }
    }

    /// The exit code for a client library error.
    pub fn for_mux_error(error: &MuxError) -> Exit {
        match error {
            MuxError::Resolve { .. } => Exit::Resolve,
            MuxError::Connect { .. } => Exit::Connect,
            MuxError::Timeout { .. } | MuxError::Stalled { .. } => Exit::Timeout,
            MuxError::Io(_) | MuxError::ConnectionClosed { .. } | MuxError::Closed => Exit::ConnectionLost,
            MuxError::Protocol(_) | MuxError::Cgi(_) => Exit::Protocol,
            MuxError::Refused { .. } => Exit::FcgiStatus,
            MuxError::Body(_) => Exit::Read,
            MuxError::InvalidRequest(_) => Exit::Usage,
            _ => Exit::Failure,
        }
    }

    /// A short machine-readable name, used in `--json` output.
    pub fn kind(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "failure",
            Exit::Usage => "usage",
            Exit::Http4xx => "http_4xx",
            Exit::Http5xx => "http_5xx",
            Exit::Resolve => "resolve",
            Exit::Connect => "connect",
            Exit::Protocol => "protocol",
            Exit::FcgiStatus => "fastcgi_status",
            Exit::ProbeNoAnswer => "no_answer",
            Exit::ProbeNotFastCgi => "not_fastcgi",
            Exit::CheckFailed => "check_failed",
            Exit::Write => "write",
            Exit::Read => "read",
            Exit::Timeout => "timeout",
            Exit::ConnectionLost => "connection_lost",
        }
    }
}

/// An error that knows its exit code. Commands return it (inside `anyhow::Error`) when the
/// code matters; `main` prints its message as one line.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// One line: what, where, why.
    pub message: String,
}

impl Failure {
    /// A failure with a message.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self { exit, message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The exit code and one-line message for any error a command returned.
pub fn classify(error: &anyhow::Error) -> (Exit, String) {
    if let Some(failure) = error.downcast_ref::<Failure>() {
        return (failure.exit, failure.message.clone());
    }
    if let Some(mux) = error.downcast_ref::<MuxError>() {
        return (Exit::for_mux_error(mux), one_line(&chain_text(error)));
    }
    if error.downcast_ref::<fcgi_cgi_env::Error>().is_some() {
        return (Exit::Usage, one_line(&chain_text(error)));
    }
    (Exit::Failure, one_line(&chain_text(error)))
}

/// The error and its causes joined with `": "`, skipping a cause whose text the message
/// already ends with: library errors often print their source *and* return it from
/// `source()`, which `{:#}` would show twice ("refused: refused").
fn chain_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Joins lines and escapes control characters, so that an error is always one line.
pub fn one_line(text: &str) -> String {
    let joined =
        text.split(['\r', '\n']).filter(|part| !part.trim().is_empty()).collect::<Vec<_>>().join(" ");
    crate::records::escape(joined.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_documented() {
        let mut codes: Vec<u8> = Exit::TABLE.iter().map(|(e, _)| e.code()).collect();
        let len = codes.len();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), len);
    }

    #[test]
    fn statuses() {
        assert_eq!(Exit::for_status(http::StatusCode::OK), Exit::Success);
        assert_eq!(Exit::for_status(http::StatusCode::FOUND), Exit::Success);
        assert_eq!(Exit::for_status(http::StatusCode::NOT_FOUND), Exit::Http4xx);
        assert_eq!(Exit::for_status(http::StatusCode::SERVICE_UNAVAILABLE), Exit::Http5xx);
    }

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = anyhow::Error::new(MuxError::Connect {
            address: "unix:/nowhere".into(),
            source: std::sync::Arc::new(io),
        })
        .context("request");
        let (exit, message) = classify(&error);
        assert_eq!(exit, Exit::Connect);
        assert_eq!(message, "request: cannot connect to unix:/nowhere: refused");
    }

    #[test]
    fn one_line_escapes() {
        assert_eq!(one_line("a\nb\r\nc\u{1b}[31m"), "a b c\\u{1b}[31m");
    }
}
