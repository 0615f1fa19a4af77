//! The exit-code table: the interface scripts and health checks depend on.
//!
//! Numbers follow curl where curl has one (6, 7, 8, 23, 26, 28, 56, 63), xh/HTTPie for HTTP
//! statuses (4, 5), and the shell's 128 + signal number for signals (129, 130, 143). Status
//! checking is on by default, unlike curl: a health check that exits 0 on HTTP 500 (as
//! `cgi-fcgi` does) is the failure this tool exists to fix. `--no-fail` turns it off.

use std::fmt;

use fcgi_mux::Error as MuxError;

/// Writes the exit-code table once: each row is a variant of [`Exit`] with its documentation,
/// its code, its machine name ([`Exit::kind`]: `error.kind` in JSON documents) and the one-line
/// meaning that `fcgi --help` and the man page list ([`Exit::meaning`], [`help`]). docs/CLI.md
/// documents the same codes and names in its own words (test `docs_cli_md_lists_every_code`).
macro_rules! exit_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal, $kind:literal, $meaning:literal;)+) => {
        /// Why `fcgi` exits with something other than 0.
        #[derive(Copy, Clone, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Exit {
            $($(#[doc = $doc])+ $variant = $code,)+
        }

        impl Exit {
            /// Every exit code, in the order of the table (increasing).
            pub const ALL: &'static [Exit] = &[$(Exit::$variant),+];

            /// A short machine-readable name, used in `--json` output.
            pub const fn kind(self) -> &'static str {
                match self {
                    $(Exit::$variant => $kind,)+
                }
            }

            /// What the code means, in one line (`fcgi --help`, the man page).
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Exit::$variant => $meaning,)+
                }
            }
        }
    };
}

exit_codes! {
    /// 0: the request succeeded (HTTP status below 400, or `--no-fail`).
    Success = 0, "success", "success (HTTP status < 400, or --no-fail)";
    /// 1: an unexpected error (a bug, or an environment problem not covered below, such as a
    /// local limit: too many open files).
    Failure = 1, "failure", "unexpected error, or a local limit (too many open files)";
    /// 2: bad command line, or a request that cannot be sent as asked (e.g. a path outside the
    /// document root, a parameter too large for php-fpm).
    Usage = 2, "usage", "bad command line, or a request that cannot be sent as asked";
    /// 3: `--role authorizer`: the application denied access with a status below 400 other than
    /// 200 (a redirect to a login page, say); 4xx and 5xx give 4 and 5 as for any request.
    Denied = 3, "denied", "authorizer: access denied with a status below 400 (e.g. a redirect)";
    /// 4: the application answered with an HTTP 4xx status.
    Http4xx = 4, "http_4xx", "HTTP 4xx from the application";
    /// 5: the application answered with an HTTP 5xx status.
    Http5xx = 5, "http_5xx", "HTTP 5xx from the application (503 from php-fpm: busy)";
    /// 6: the host name did not resolve.
    Resolve = 6, "resolve", "host name did not resolve";
    /// 7: could not connect (refused, no such socket, permission denied).
    Connect = 7, "connect", "could not connect (refused, no such socket, permission denied)";
    /// 8: the server broke the FastCGI protocol or sent a malformed CGI response; `dump --input`
    /// found a malformed record.
    Protocol = 8, "protocol", "FastCGI protocol violation or malformed CGI response; malformed --input";
    /// 9: the server ended the request with a FastCGI protocol status other than
    /// REQUEST_COMPLETE (OVERLOADED, CANT_MPX_CONN, UNKNOWN_ROLE).
    FcgiStatus = 9, "fastcgi_status", "FastCGI protocol status other than REQUEST_COMPLETE";
    /// 10: `probe`: no answer to FCGI_GET_VALUES in time (or the connection closed without one).
    ProbeNoAnswer = 10, "no_answer", "probe: no FCGI_GET_VALUES answer in time";
    /// 11: `probe`: the server does not speak FastCGI.
    ProbeNotFastCgi = 11, "not_fastcgi", "probe: the server does not speak FastCGI";
    /// 12: `ping` / `status`: the check failed (unexpected ping answer, threshold crossed).
    CheckFailed = 12, "check_failed", "ping/status check failed";
    /// 23: writing the output failed.
    Write = 23, "write", "could not write the output";
    /// 26: reading an input file (`-d @file`, `--input`) failed.
    Read = 26, "read", "could not read an input file";
    /// 28: a timeout expired (connect, first byte, `--max-time`).
    Timeout = 28, "timeout", "timeout (connect, first byte, --max-time)";
    /// 56: the connection broke or closed before the response ended.
    ConnectionLost = 56, "connection_lost", "connection lost before the response ended";
    /// 63: the response body is larger than `--max-filesize` (16 MiB by default with `--json`).
    MaxFilesize = 63, "max_filesize", "the response body exceeds --max-filesize (16 MiB with --json)";
    /// 129: SIGHUP arrived while `-o FILE` was being written; the partial file was removed.
    Hangup = 129, "sighup", "SIGHUP during -o FILE (the partial file removed)";
    /// 130: SIGINT (Ctrl-C) arrived while `-o FILE` was being written; the partial file was
    /// removed.
    Interrupted = 130, "sigint", "SIGINT during -o FILE (the partial file removed)";
    /// 143: SIGTERM arrived while `-o FILE` was being written; the partial file was removed.
    Terminated = 143, "sigterm", "SIGTERM during -o FILE (the partial file removed)";
}

/// The title line of the exit-code list in `fcgi --help`.
const HELP_TITLE: &str = "Exit codes:\n";

/// Length of [`help`]`(tail)`.
pub const fn help_len(tail: &str) -> usize {
    let mut len = HELP_TITLE.len() + tail.len();
    let mut i = 0;
    while i < Exit::ALL.len() {
        // "  ", the code in 3 columns, "  ", the meaning, "\n"
        len += 2 + 3 + 2 + Exit::ALL[i].meaning().len() + 1;
        i += 1;
    }
    len
}

/// `Exit codes:` and a line per code, as in `   10  probe: no FCGI_GET_VALUES answer in time`,
/// then `tail`: the end of `fcgi --help` and the man page's extra section. Built at compile
/// time (a `const`), because formatting it on every start was 6% of the instructions of a
/// one-shot `fcgi get`. `N` must be [`help_len`]`(tail)`.
pub const fn help<const N: usize>(tail: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = copy(&mut out, 0, HELP_TITLE.as_bytes());
    let mut i = 0;
    while i < Exit::ALL.len() {
        let exit = Exit::ALL[i];
        let code = exit.code();
        at = copy(&mut out, at, &[b' ', b' ', digit(code, 100), digit(code, 10), b'0' + code % 10]);
        at = copy(&mut out, at, b"  ");
        at = copy(&mut out, at, exit.meaning().as_bytes());
        at = copy(&mut out, at, b"\n");
        i += 1;
    }
    at = copy(&mut out, at, tail.as_bytes());
    assert!(at == N, "the length is not help_len(tail)");
    out
}

/// The decimal digit of `code` at `place` (100 or 10), a space for a leading zero.
const fn digit(code: u8, place: u8) -> u8 {
    if code < place { b' ' } else { b'0' + (code / place) % 10 }
}

/// Copies `bytes` into `out` at `at`; returns where they end.
const fn copy<const N: usize>(out: &mut [u8; N], at: usize, bytes: &[u8]) -> usize {
    let mut i = 0;
    while i < bytes.len() {
        out[at + i] = bytes[i];
        i += 1;
    }
    at + bytes.len()
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> u8 {
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
            MuxError::Connect { address, source } => crate::messages::connect_failed(address, source).0,
            MuxError::Timeout { .. } | MuxError::Stalled { .. } => Exit::Timeout,
            MuxError::Io(_) | MuxError::ConnectionClosed { .. } | MuxError::Closed => Exit::ConnectionLost,
            MuxError::Protocol(_) | MuxError::Cgi(_) => Exit::Protocol,
            MuxError::Refused { .. } => Exit::FcgiStatus,
            MuxError::Body(_) => Exit::Read,
            MuxError::InvalidRequest(_) => Exit::Usage,
            _ => Exit::Failure,
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
        if let MuxError::Connect { address, source } = mux {
            // One wording for a failed connect, whichever command (crate::messages), after
            // the context that callers added.
            let (exit, message) = crate::messages::connect_failed(address, source);
            let mut parts: Vec<String> = error
                .chain()
                .take_while(|cause| cause.downcast_ref::<MuxError>().is_none())
                .map(ToString::to_string)
                .collect();
            parts.push(message);
            return (exit, one_line(&parts.join(": ")));
        }
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

/// Longest error line, in bytes of the message (values in it are cut well before).
const LINE_MAX: usize = 2048;

/// Joins lines, escapes control and bidirectional characters and cuts the message at
/// [`LINE_MAX`], so that an error is always one short line. The backslash is left alone: the
/// values quoted in messages were escaped where they were quoted
/// ([`records::escape_controls_cut`](crate::records::escape_controls_cut)).
pub fn one_line(text: &str) -> String {
    let joined =
        text.split(['\r', '\n']).filter(|part| !part.trim().is_empty()).collect::<Vec<_>>().join(" ");
    crate::records::escape_controls_cut(&joined, LINE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_order() {
        for pair in Exit::ALL.windows(2) {
            assert!(pair[0].code() < pair[1].code(), "{pair:?}");
        }
        let mut kinds: Vec<&str> = Exit::ALL.iter().map(|e| e.kind()).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), Exit::ALL.len(), "distinct kinds");
    }

    #[test]
    fn help_is_the_table_formatted() {
        const TAIL: &str = "\nmore\n";
        const BYTES: [u8; help_len(TAIL)] = help(TAIL);
        let mut expected = String::from("Exit codes:\n");
        for exit in Exit::ALL {
            expected.push_str(&format!("  {:>3}  {}\n", exit.code(), exit.meaning()));
        }
        expected.push_str(TAIL);
        assert_eq!(std::str::from_utf8(&BYTES).unwrap(), expected);
    }

    /// docs/CLI.md's table ("## Exit codes": `| code | name | meaning |`) has every code with
    /// its name, in order, and nothing else.
    #[test]
    fn docs_cli_md_lists_every_code() {
        let manual = include_str!("../../docs/CLI.md");
        let section = manual.split("\n## Exit codes\n").nth(1).expect("docs/CLI.md has ## Exit codes");
        let rows: Vec<(u8, String)> = section
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2) // the header and the |---| line
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells[1].parse().unwrap_or_else(|_| panic!("a code in {line:?}"));
                (code, cells[2].trim_matches('`').to_string())
            })
            .collect();
        let expected: Vec<(u8, String)> =
            Exit::ALL.iter().map(|e| (e.code(), e.kind().to_string())).collect();
        assert_eq!(rows, expected, "docs/CLI.md's exit-code table and exit.rs differ");
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
        assert_eq!(
            message,
            "request: cannot connect to unix:/nowhere: connection refused: nothing listens on the socket \
             (a stale socket file left by a stopped server?)"
        );
        let io = std::io::Error::other("reset");
        let error = anyhow::Error::new(io).context("reading: reset").context("request");
        assert_eq!(classify(&error).1, "request: reading: reset");
    }

    #[test]
    fn one_line_escapes() {
        assert_eq!(one_line("a\nb\r\nc\u{1b}[31m"), "a b c\\u{1b}[31m");
        assert_eq!(one_line("\u{9b}2J \u{202e}x\tz"), "\\u{9b}2J \\u{202e}x\\tz");
        // Already escaped by whoever quoted the value: not escaped twice.
        assert_eq!(one_line(r#"bad header "X\r\n""#), r#"bad header "X\r\n""#);
        assert!(one_line(&"y".repeat(10_000)).ends_with("…(7952 more bytes)"));
    }
}
