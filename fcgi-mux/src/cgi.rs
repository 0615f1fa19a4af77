//! CGI response head parsing, sans-I/O.
//!
//! A FastCGI responder's STDOUT stream carries a CGI/1.1 response (RFC 3875 §6): header lines,
//! a blank line, then the body. The client accumulates STDOUT until the head is complete, turns
//! the head into an HTTP status and header map, and streams the rest as the body. This module
//! only looks at bytes: no I/O, no allocation per byte, nothing scanned past the size limit.
//!
//! # Rules, and why
//!
//! - Lines end in CRLF or a bare LF, mixed freely in one head: RFC 3875 only says "NL", and
//!   real applications (shell scripts, hand-written CGI programs) send bare LF. The head ends at
//!   the first empty line. A CR not followed by LF is an error, not a line end: peers that
//!   disagree on line ends are how header injection slips through proxies.
//! - Each line is `name: value`. The name is an RFC 9110 token (so no whitespace before the
//!   colon), matched case-insensitively. Whitespace (SP, HTAB) around the value is trimmed; NUL
//!   and other control bytes except HTAB are errors; bytes from 0x80 up are kept as they are.
//!   A line starting with whitespace (obsolete line folding) is refused, as RFC 9112 §5.2 lets a
//!   gateway do.
//! - `Status: 404 Not Found` sets the status (three digits, 100–999) and the optional reason
//!   phrase, and is removed from the headers. php-fpm sends it whenever a script sets a status
//!   other than 200, next to its `X-Powered-By`. Two `Status` lines are an error.
//! - `Location` without `Status` gives 302 Found (RFC 3875 §6.2.3, client redirect); with an
//!   explicit `Status`, that status is kept (HAProxy once overwrote it with 302). Neither gives
//!   200 OK. RFC 3875's local redirect (a path-only `Location` that the server would follow
//!   itself) is not done here: it is answered as a 302 like any other.
//! - Every other field goes to an [`http::HeaderMap`]; repeated names (`Set-Cookie`) stay separate
//!   values, in order per name.
//! - The head block, blank line included, may be at most `max_head_len` bytes
//!   ([`DEFAULT_MAX_HEAD_LEN`] by default). Bytes past the limit are never scanned, and a buffer
//!   that holds more than the limit without a complete head is an error at once.
//!
//! Errors say what was wrong and on which line, with control bytes escaped. They name the
//! header and the offending byte but never quote a header value (values carry cookies and
//! credentials); the only exceptions are a refused `Status` value and the start of a line that
//! has no colon at all, both cut short.
//!
//! [`parse_head`] is the simple entry point. [`HeadScanner`] gives the same answers but
//! remembers how far it got, so a client calling it after every STDOUT record looks at each
//! byte once.

use http::header::{HeaderName, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};
use std::fmt;

/// Default bound on the CGI header block (64 KiB).
pub const DEFAULT_MAX_HEAD_LEN: usize = 64 * 1024;

/// Bytes of received output shown in [`CgiError::IncompleteAtEnd`].
const OUTPUT_PREVIEW_LEN: usize = 64;
/// Bytes of a header name, status value or colon-less line shown in other errors.
const FIELD_PREVIEW_LEN: usize = 32;

/// The parsed head of a CGI response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiHead {
    /// From `Status:`, else 302 when `Location:` is present, else 200.
    pub status: StatusCode,
    /// Reason phrase given in `Status:` (e.g. "Not Found"), if any. Bytes that are not
    /// UTF-8 are replaced with U+FFFD.
    pub reason: Option<String>,
    /// All other header fields (`Status` removed). Repeated names such as `Set-Cookie` are
    /// kept as separate values, in the order received.
    pub headers: HeaderMap,
    /// True when a `Status:` line set [`status`](CgiHead::status) (false when it is the 200 or
    /// the 302 of a `Location:` that the rules above give): an Authorizer's answer without
    /// `Status:` means "authorized" whatever else it sends (lighttpd's reading).
    pub status_given: bool,
    /// The `Variable-NAME: value` fields (FastCGI specification §6.3, an Authorizer's
    /// variables), NAME with its case as sent ([`HeaderMap`] lowercases names, and the variables
    /// a web server passes on keep theirs), in the order received. They stay in
    /// [`headers`](CgiHead::headers) too. A bare `Variable-` (no NAME) is not one.
    pub variables: Vec<(String, HeaderValue)>,
}

/// What [`parse_head`] found so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadParse {
    /// No blank line yet; call again with more bytes (the buffer is within the limit).
    Incomplete,
    /// The head and where the body starts in the buffer.
    Complete {
        /// The parsed head.
        head: CgiHead,
        /// Length of the head block, blank line included: the body is `buf[body_offset..]`.
        body_offset: usize,
    },
}

/// Why a CGI response head was refused. `line` counts header lines from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CgiError {
    /// No blank line within the first `limit` bytes.
    #[error("CGI response header block is larger than the {limit}-byte limit (no blank line within it)")]
    HeadTooLarge {
        /// The `max_head_len` in force.
        limit: usize,
    },
    /// STDOUT ended before the blank line.
    #[error("{}", IncompleteMessage { received: *received, preview })]
    IncompleteAtEnd {
        /// Bytes of STDOUT received.
        received: usize,
        /// The start of them, escaped and cut to 64 bytes.
        preview: String,
    },
    /// A CR not followed by LF.
    #[error("CGI header line {line} contains a bare CR (0x0d not followed by LF)")]
    BareCr {
        /// The offending line.
        line: usize,
    },
    /// The line starts with SP or HTAB (obsolete line folding).
    #[error("CGI header line {line} starts with whitespace (obsolete line folding is not supported)")]
    FoldedLine {
        /// The offending line.
        line: usize,
    },
    /// The line has no colon.
    #[error("CGI header line {line} has no colon: \"{start}\"")]
    MissingColon {
        /// The offending line.
        line: usize,
        /// Its beginning, escaped and cut to 32 bytes.
        start: String,
    },
    /// The line starts with a colon.
    #[error("CGI header line {line} has an empty header name")]
    EmptyName {
        /// The offending line.
        line: usize,
    },
    /// The header name holds a byte that is not allowed in a token.
    #[error("CGI header name \"{name}\" on line {line} contains {}, not allowed in a name", ByteName(*byte))]
    InvalidNameByte {
        /// The offending line.
        line: usize,
        /// The name, escaped and cut to 32 bytes.
        name: String,
        /// The first byte not allowed.
        byte: u8,
    },
    /// The value of a header holds a control byte other than HTAB.
    #[error("value of CGI header {name} on line {line} contains {}", ByteName(*byte))]
    InvalidValueByte {
        /// The offending line.
        line: usize,
        /// The header's name as sent (the value is not shown).
        name: String,
        /// The first byte not allowed.
        byte: u8,
    },
    /// `Status` is not a three-digit code from 100 to 999.
    #[error(
        "invalid CGI Status \"{value}\" on line {line}: \
         expected a code from 100 to 999 and an optional reason"
    )]
    InvalidStatus {
        /// The offending line.
        line: usize,
        /// The `Status` value, escaped and cut to 32 bytes.
        value: String,
    },
    /// A second `Status` line.
    #[error("second CGI Status header on line {line} (the first is on line {first_line})")]
    DuplicateStatus {
        /// The second `Status` line.
        line: usize,
        /// The first one.
        first_line: usize,
    },
    /// More distinct names than [`http::HeaderMap`] can hold (24576 with http 1.x); only
    /// reachable with a limit far above the default.
    #[error("too many distinct CGI header names (the header map is full at line {line})")]
    TooManyHeaders {
        /// The line that did not fit.
        line: usize,
    },
    /// The http crate refused a field that passed the checks above (a name over 65535 bytes).
    #[error(
        "CGI header {name} on line {line} is refused by the http crate (names are limited to 65535 bytes)"
    )]
    HeaderRefused {
        /// The offending line.
        line: usize,
        /// The name, escaped and cut to 32 bytes.
        name: String,
    },
}

impl CgiError {
    /// The header line the error is about, if it is about one.
    #[must_use]
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::HeadTooLarge { .. } | Self::IncompleteAtEnd { .. } => None,
            Self::BareCr { line }
            | Self::FoldedLine { line }
            | Self::MissingColon { line, .. }
            | Self::EmptyName { line }
            | Self::InvalidNameByte { line, .. }
            | Self::InvalidValueByte { line, .. }
            | Self::InvalidStatus { line, .. }
            | Self::DuplicateStatus { line, .. }
            | Self::TooManyHeaders { line }
            | Self::HeaderRefused { line, .. } => Some(*line),
        }
    }
}

/// Parses the head at the start of `buf` (all STDOUT received so far).
///
/// Returns [`HeadParse::Incomplete`] while no blank line has arrived and `buf` is within
/// `max_head_len`.
///
/// # Errors
///
/// As soon as a complete line is malformed (see [`CgiError`]), or `buf` exceeds the limit
/// without a complete head ([`CgiError::HeadTooLarge`]).
pub fn parse_head(buf: &[u8], max_head_len: usize) -> Result<HeadParse, CgiError> {
    HeadScanner::new(max_head_len).scan(buf)
}

/// Called when STDOUT ended (`END_REQUEST`) before `parse_head` returned Complete.
#[must_use]
pub fn head_incomplete_at_end(buf: &[u8]) -> CgiError {
    CgiError::IncompleteAtEnd { received: buf.len(), preview: escaped(buf, OUTPUT_PREVIEW_LEN) }
}

/// [`parse_head`] for a buffer that grows between calls: it remembers the lines already parsed
/// and how far it searched for the next line end, so each byte is looked at once.
///
/// Pass the whole buffer each time, the previous bytes unchanged with new ones appended. An
/// error is sticky: later calls return it again. After `Complete` the scanner starts afresh,
/// ready for the next response. A buffer shorter than the last one also restarts it; other
/// changes to bytes already seen give unspecified (but never panicking) results.
#[derive(Debug)]
pub struct HeadScanner {
    max_head_len: usize,
    /// Start of the first line not yet parsed.
    line_start: usize,
    /// Bytes already searched for the LF that ends the line at `line_start`.
    searched: usize,
    /// Number of the line at `line_start`.
    line: usize,
    fields: Fields,
    failed: Option<CgiError>,
}

impl Default for HeadScanner {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HEAD_LEN)
    }
}

impl HeadScanner {
    /// A scanner for a head of at most `max_head_len` bytes, blank line included.
    #[must_use]
    pub fn new(max_head_len: usize) -> Self {
        Self { max_head_len, line_start: 0, searched: 0, line: 1, fields: Fields::default(), failed: None }
    }

    /// Same contract as [`parse_head`], for the buffer received so far.
    ///
    /// # Errors
    ///
    /// As [`parse_head`]; once an error is returned, every later call returns it too.
    pub fn parse(&mut self, buf: &[u8]) -> Result<HeadParse, CgiError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if buf.len() < self.searched {
            self.restart();
        }
        let result = self.scan(buf);
        match &result {
            Ok(HeadParse::Incomplete) => {}
            // `scan` has taken the fields already.
            Ok(HeadParse::Complete { .. }) => self.rewind(),
            Err(err) => self.failed = Some(err.clone()),
        }
        result
    }

    fn restart(&mut self) {
        self.fields = Fields::default();
        self.rewind();
    }

    fn rewind(&mut self) {
        self.line_start = 0;
        self.searched = 0;
        self.line = 1;
    }

    fn scan(&mut self, buf: &[u8]) -> Result<HeadParse, CgiError> {
        let window = &buf[..buf.len().min(self.max_head_len)];
        while let Some(lf) = find_lf(window, self.searched) {
            let line = strip_cr(&window[self.line_start..lf]);
            let next = lf + 1;
            if line.is_empty() {
                let head = std::mem::take(&mut self.fields).into_head();
                return Ok(HeadParse::Complete { head, body_offset: next });
            }
            self.fields.add_line(line, self.line)?;
            self.line += 1;
            self.line_start = next;
            self.searched = next;
        }
        self.searched = window.len();
        if buf.len() > self.max_head_len {
            return Err(CgiError::HeadTooLarge { limit: self.max_head_len });
        }
        Ok(HeadParse::Incomplete)
    }
}

/// The fields parsed so far.
#[derive(Debug, Default)]
struct Fields {
    headers: HeaderMap,
    status: Option<Status>,
    has_location: bool,
    variables: Vec<(String, HeaderValue)>,
}

/// The prefix of an Authorizer's variables (§6.3), matched case-insensitively.
const VARIABLE_PREFIX: &[u8] = b"variable-";

#[derive(Debug)]
struct Status {
    code: StatusCode,
    reason: Option<String>,
    line: usize,
}

impl Fields {
    /// Adds one non-empty line, without its line end.
    fn add_line(&mut self, line: &[u8], n: usize) -> Result<(), CgiError> {
        let (name, value) = split_field(line, n)?;
        if name.eq_ignore_ascii_case(b"status") {
            return self.set_status(value, n);
        }
        let header_name = HeaderName::from_bytes(name).map_err(|_| name_error(name, n))?;
        // HeaderValue checks the bytes itself; we only look for the culprit on failure.
        let header_value = HeaderValue::from_bytes(value).map_err(|_| value_error(name, value, n))?;
        self.has_location |= header_name == LOCATION;
        if name.len() > VARIABLE_PREFIX.len()
            && name[..VARIABLE_PREFIX.len()].eq_ignore_ascii_case(VARIABLE_PREFIX)
        {
            // A token is ASCII: the name is valid UTF-8.
            let variable = String::from_utf8_lossy(&name[VARIABLE_PREFIX.len()..]).into_owned();
            self.variables.push((variable, header_value.clone()));
        }
        self.headers
            .try_append(header_name, header_value)
            .map_err(|_| CgiError::TooManyHeaders { line: n })?;
        Ok(())
    }

    fn set_status(&mut self, value: &[u8], n: usize) -> Result<(), CgiError> {
        if let Some(first) = &self.status {
            return Err(CgiError::DuplicateStatus { line: n, first_line: first.line });
        }
        if first_bad_value_byte(value).is_some() {
            return Err(value_error(b"Status", value, n));
        }
        let (code, reason) = split_status(value);
        let code = StatusCode::from_bytes(code)
            .map_err(|_| CgiError::InvalidStatus { line: n, value: escaped(value, FIELD_PREVIEW_LEN) })?;
        let reason = (!reason.is_empty()).then(|| String::from_utf8_lossy(reason).into_owned());
        self.status = Some(Status { code, reason, line: n });
        Ok(())
    }

    fn into_head(self) -> CgiHead {
        let status_given = self.status.is_some();
        let (status, reason) = match self.status {
            Some(Status { code, reason, .. }) => (code, reason),
            None if self.has_location => (StatusCode::FOUND, None),
            None => (StatusCode::OK, None),
        };
        CgiHead { status, reason, headers: self.headers, status_given, variables: self.variables }
    }
}

/// Splits a header line into its raw name and trimmed value, checking the line's shape.
fn split_field(line: &[u8], n: usize) -> Result<(&[u8], &[u8]), CgiError> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(CgiError::FoldedLine { line: n });
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(missing_colon(line, n));
    };
    if colon == 0 {
        return Err(CgiError::EmptyName { line: n });
    }
    Ok((&line[..colon], trim_ows(&line[colon + 1..])))
}

/// Splits a `Status` value into the code and the (trimmed, possibly empty) reason phrase.
fn split_status(value: &[u8]) -> (&[u8], &[u8]) {
    match value.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(end) => (&value[..end], trim_ows(&value[end..])),
        None => (value, &[]),
    }
}

fn find_lf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?.iter().position(|&b| b == b'\n').map(|i| from + i)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Trims SP and HTAB only (`trim_ascii` would also drop CR and form feed).
fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

fn missing_colon(line: &[u8], n: usize) -> CgiError {
    if line.contains(&b'\r') {
        return CgiError::BareCr { line: n };
    }
    CgiError::MissingColon { line: n, start: escaped(line, FIELD_PREVIEW_LEN) }
}

fn name_error(name: &[u8], n: usize) -> CgiError {
    match name.iter().copied().find(|&b| !is_tchar(b)) {
        Some(b'\r') => CgiError::BareCr { line: n },
        Some(byte) => CgiError::InvalidNameByte { line: n, name: escaped(name, FIELD_PREVIEW_LEN), byte },
        None => CgiError::HeaderRefused { line: n, name: escaped(name, FIELD_PREVIEW_LEN) },
    }
}

fn value_error(name: &[u8], value: &[u8], n: usize) -> CgiError {
    let name = escaped(name, FIELD_PREVIEW_LEN);
    match first_bad_value_byte(value) {
        Some(b'\r') => CgiError::BareCr { line: n },
        Some(byte) => CgiError::InvalidValueByte { line: n, name, byte },
        None => CgiError::HeaderRefused { line: n, name },
    }
}

/// RFC 9110 field-value bytes, as [`HeaderValue::from_bytes`] accepts them: HTAB, visible
/// ASCII, SP and obs-text (0x80 and up).
fn first_bad_value_byte(value: &[u8]) -> Option<u8> {
    value.iter().copied().find(|&b| !(b == b'\t' || (b >= 0x20 && b != 0x7f)))
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `bytes` cut to `max`, with everything but printable ASCII escaped (`\r`, `\x00`, ...).
fn escaped(bytes: &[u8], max: usize) -> String {
    let shown = &bytes[..bytes.len().min(max)];
    let mut out = shown.escape_ascii().to_string();
    if shown.len() < bytes.len() {
        out.push_str("...");
    }
    out
}

/// A byte named for an error message: `NUL (0x00)`, `'@' (0x40)`, `byte 0xff`.
struct ByteName(u8);

impl fmt::Display for ByteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        match b {
            0 => f.write_str("NUL (0x00)"),
            b'\t' => f.write_str("a tab (0x09)"),
            b'\n' => f.write_str("LF (0x0a)"),
            b'\r' => f.write_str("CR (0x0d)"),
            b' ' => f.write_str("a space (0x20)"),
            0x21..=0x7e => write!(f, "'{}' (0x{b:02x})", char::from(b)),
            _ => write!(f, "byte 0x{b:02x}"),
        }
    }
}

struct IncompleteMessage<'a> {
    received: usize,
    preview: &'a str,
}

impl fmt::Display for IncompleteMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.received {
            0 => f.write_str("STDOUT ended before the CGI response head: the application sent no output"),
            n => write!(
                f,
                "STDOUT ended after {n} bytes without the blank line that ends the CGI response head; \
                 it began \"{}\"",
                self.preview
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields = &'static [(&'static str, &'static [u8])];

    /// Heads that parse: (head, status, reason, fields in map order). Each is followed by a body.
    const ACCEPTED: &[(&[u8], u16, Option<&str>, Fields)] = &[
        (b"\r\n", 200, None, &[]),
        (b"\n", 200, None, &[]),
        (b"Content-Type: text/html\r\n\r\n", 200, None, &[("content-type", b"text/html")]),
        (b"Content-Type: text/html\n\n", 200, None, &[("content-type", b"text/html")]),
        (b"A: 1\r\nB: 2\n\r\n", 200, None, &[("a", b"1"), ("b", b"2")]),
        (b"A: 1\nB: 2\r\n\n", 200, None, &[("a", b"1"), ("b", b"2")]),
        (
            b"X-Powered-By: PHP/8.2.36\r\nContent-type: text/html; charset=UTF-8\r\n\r\n",
            200,
            None,
            &[("x-powered-by", b"PHP/8.2.36"), ("content-type", b"text/html; charset=UTF-8")],
        ),
        (b"Status: 404 Not Found\r\nX-A: b\r\n\r\n", 404, Some("Not Found"), &[("x-a", b"b")]),
        (b"Status: 404\r\n\r\n", 404, None, &[]),
        (b"Status:404\r\n\r\n", 404, None, &[]),
        (b"status: 201 Created\r\n\r\n", 201, Some("Created"), &[]),
        (b"STATUS: 503 Service Unavailable\r\n\r\n", 503, Some("Service Unavailable"), &[]),
        (b"StAtUs: 200 OK\n\n", 200, Some("OK"), &[]),
        (b"Status: 100\r\n\r\n", 100, None, &[]),
        (b"Status: 999 Custom\r\n\r\n", 999, Some("Custom"), &[]),
        (b"Status:   418   I'm a teapot  \r\n\r\n", 418, Some("I'm a teapot"), &[]),
        (b"Status: 404\tNot Found\r\n\r\n", 404, Some("Not Found"), &[]),
        (b"Status: 500 Server   Error\r\n\r\n", 500, Some("Server   Error"), &[]),
        (b"Status: 500 Caf\xc3\xa9\r\n\r\n", 500, Some("Caf\u{e9}"), &[]),
        (b"Status: 500 Caf\xe9\r\n\r\n", 500, Some("Caf\u{fffd}"), &[]),
        (b"Location: /x\r\n\r\n", 302, None, &[("location", b"/x")]),
        (b"location: http://e.test/\n\n", 302, None, &[("location", b"http://e.test/")]),
        (
            b"Location: http://e.test/\r\nStatus: 301 Moved Permanently\r\n\r\n",
            301,
            Some("Moved Permanently"),
            &[("location", b"http://e.test/")],
        ),
        (b"Status: 201 Created\r\nLocation: /new\r\n\r\n", 201, Some("Created"), &[("location", b"/new")]),
        (b"Status: 200\r\nLocation: /x\r\n\r\n", 200, None, &[("location", b"/x")]),
        (
            b"Set-Cookie: a=1\r\nX: y\r\nSet-Cookie: b=2\r\n\r\n",
            200,
            None,
            &[("set-cookie", b"a=1"), ("set-cookie", b"b=2"), ("x", b"y")],
        ),
        (b"X-Empty:\r\n\r\n", 200, None, &[("x-empty", b"")]),
        (b"X-Empty: \t \r\n\r\n", 200, None, &[("x-empty", b"")]),
        (b"X-A:b\r\n\r\n", 200, None, &[("x-a", b"b")]),
        (b"X-Tab:\tv\t\r\n\r\n", 200, None, &[("x-tab", b"v")]),
        (b"X-Inner: a \t b\r\n\r\n", 200, None, &[("x-inner", b"a \t b")]),
        (b"X-Latin1: caf\xe9 \xff\r\n\r\n", 200, None, &[("x-latin1", b"caf\xe9 \xff")]),
        (b"X-Colon: a:b: c\r\n\r\n", 200, None, &[("x-colon", b"a:b: c")]),
        (b"X-Quote: \"q\" (c)\r\n\r\n", 200, None, &[("x-quote", b"\"q\" (c)")]),
        (b"X!#$%&'*+-.^_`|~Y9: v\r\n\r\n", 200, None, &[("x!#$%&'*+-.^_`|~y9", b"v")]),
    ];

    #[test]
    fn accepted_heads() {
        for &(head, status, reason, fields) in ACCEPTED {
            let mut buf = head.to_vec();
            buf.extend_from_slice(b"body\r\n\r\nStatus: 500\r\n");
            let Ok(HeadParse::Complete { head: parsed, body_offset }) =
                parse_head(&buf, DEFAULT_MAX_HEAD_LEN)
            else {
                panic!("{:?} did not parse", head.escape_ascii().to_string());
            };
            let shown = head.escape_ascii().to_string();
            assert_eq!(body_offset, head.len(), "{shown}");
            assert_eq!(parsed.status.as_u16(), status, "{shown}");
            assert_eq!(parsed.reason.as_deref(), reason, "{shown}");
            let got: Vec<(&str, &[u8])> =
                parsed.headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes())).collect();
            assert_eq!(got, fields, "{shown}");
        }
    }

    /// What an Authorizer's answer needs beyond the status: whether `Status:` was there, and
    /// the `Variable-*` fields with their names' case as sent.
    #[test]
    fn status_given_and_variables() {
        let complete = |head: &[u8]| match parse_head(head, DEFAULT_MAX_HEAD_LEN) {
            Ok(HeadParse::Complete { head, .. }) => head,
            other => panic!("{other:?}"),
        };
        let head = complete(b"Variable-REMOTE_USER: alice\r\nvariable-X-Mixed-Case:  v 1 \r\nVariable-: no\r\nVariables: no\r\n\r\n");
        assert!(!head.status_given);
        let got: Vec<(&str, &[u8])> =
            head.variables.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        assert_eq!(got, [("REMOTE_USER", &b"alice"[..]), ("X-Mixed-Case", &b"v 1"[..])]);
        assert_eq!(head.headers.get("variable-remote_user").unwrap(), "alice", "kept in headers too");
        // A Location alone gives 302 but no Status line: lighttpd still reads that as 200.
        let head = complete(b"Location: /login\r\n\r\n");
        assert_eq!((head.status.as_u16(), head.status_given), (302, false));
        let head = complete(b"Location: /login\r\nStatus: 302\r\n\r\n");
        assert_eq!((head.status.as_u16(), head.status_given), (302, true));
        assert!(complete(b"\r\n").variables.is_empty());
    }

    fn name(s: &str) -> String {
        s.to_owned()
    }

    /// Heads refused, with or without the blank line yet: (input, error).
    fn refused() -> Vec<(&'static [u8], CgiError)> {
        use CgiError::*;
        vec![
            (b"Bad\rName: x\r\n\r\n", BareCr { line: 1 }),
            (b"X: a\rb\r\n\r\n", BareCr { line: 1 }),
            (b"X: a\r\r\n\r\n", BareCr { line: 1 }),
            (b"X: a\r\n\r\r\n", BareCr { line: 2 }),
            (b"A: 1\r\nno colon\rhere\n", BareCr { line: 2 }),
            (b"Status: 200\r OK\r\n", BareCr { line: 1 }),
            (b"A: 1\r\nnocolon\r\n\r\n", MissingColon { line: 2, start: name("nocolon") }),
            (b"HTTP/1.1 200 OK\r\n", MissingColon { line: 1, start: name("HTTP/1.1 200 OK") }),
            (b"A: 1\nB: 2\r\n<html>\x01\n", MissingColon { line: 3, start: name("<html>\\x01") }),
            (b": v\r\n\r\n", EmptyName { line: 1 }),
            (b" X: y\r\n\r\n", FoldedLine { line: 1 }),
            (b"A: 1\r\n continued\r\n\r\n", FoldedLine { line: 2 }),
            (b"A: 1\r\n\tcontinued\r\n", FoldedLine { line: 2 }),
            (b" \r\n\r\n", FoldedLine { line: 1 }),
            (b"X Y: v\r\n", InvalidNameByte { line: 1, name: name("X Y"), byte: b' ' }),
            (b"Status : 200\r\n", InvalidNameByte { line: 1, name: name("Status "), byte: b' ' }),
            (
                b"PHP Warning:  oops in /x.php\n",
                InvalidNameByte { line: 1, name: name("PHP Warning"), byte: b' ' },
            ),
            (b"X\0: v\r\n", InvalidNameByte { line: 1, name: name("X\\x00"), byte: 0 }),
            (b"X\xff: v\r\n", InvalidNameByte { line: 1, name: name("X\\xff"), byte: 0xff }),
            (b"X(: v\r\n", InvalidNameByte { line: 1, name: name("X("), byte: b'(' }),
            (b"X: a\0b\r\n", InvalidValueByte { line: 1, name: name("X"), byte: 0 }),
            (b"A: 1\nX-Y: a\x01\r\n", InvalidValueByte { line: 2, name: name("X-Y"), byte: 1 }),
            (b"X: \x7f\r\n", InvalidValueByte { line: 1, name: name("X"), byte: 0x7f }),
            (b"X: a\x0cb\r\n", InvalidValueByte { line: 1, name: name("X"), byte: 0x0c }),
            (b"Status: 2\x000\r\n", InvalidValueByte { line: 1, name: name("Status"), byte: 0 }),
            (b"Status: abc\r\n\r\n", InvalidStatus { line: 1, value: name("abc") }),
            (b"Status:\r\n\r\n", InvalidStatus { line: 1, value: name("") }),
            (b"Status: 99\r\n", InvalidStatus { line: 1, value: name("99") }),
            (b"Status: 1000\r\n", InvalidStatus { line: 1, value: name("1000") }),
            (b"Status: 000\r\n", InvalidStatus { line: 1, value: name("000") }),
            (b"Status: 099 Low\r\n", InvalidStatus { line: 1, value: name("099 Low") }),
            (b"Status: 20O\r\n", InvalidStatus { line: 1, value: name("20O") }),
            (b"Status: +20\r\n", InvalidStatus { line: 1, value: name("+20") }),
            (b"Status: 404Not Found\r\n", InvalidStatus { line: 1, value: name("404Not Found") }),
            (b"Status: 4\xff4\r\n", InvalidStatus { line: 1, value: name("4\\xff4") }),
            (b"Status: 200\r\nX: y\nstatus: 404\r\n", DuplicateStatus { line: 3, first_line: 1 }),
        ]
    }

    #[test]
    fn refused_heads() {
        for (input, expected) in refused() {
            let shown = input.escape_ascii().to_string();
            assert_eq!(parse_head(input, DEFAULT_MAX_HEAD_LEN), Err(expected.clone()), "{shown}");
            assert!(expected.line().is_some(), "{shown}");
        }
    }

    #[test]
    fn error_messages_are_one_printable_line() {
        let mut errors: Vec<CgiError> = refused().into_iter().map(|(_, err)| err).collect();
        errors.push(CgiError::HeadTooLarge { limit: 10 });
        errors.push(head_incomplete_at_end(b""));
        errors.push(head_incomplete_at_end(b"\0\r\n\x1b[31m\xff"));
        for err in errors {
            let message = err.to_string();
            assert!(message.bytes().all(|b| (0x20..0x7f).contains(&b)), "{message:?}");
        }
    }

    #[test]
    fn error_messages_name_the_header_not_the_value() {
        let inputs: &[&[u8]] = &[
            b"Authorization: Bearer SECRET\0\r\n",
            b"Cookie: id=SECRET\x01\r\n",
            b"Set-Cookie: id=SECRET\rX: y\r\n",
            b"X-Api-Key: SECRET\x7f\n",
        ];
        for input in inputs {
            let message = parse_head(input, DEFAULT_MAX_HEAD_LEN).unwrap_err().to_string();
            assert!(!message.contains("SECRET"), "{message}");
        }
        let message = parse_head(b"Cookie: id=SECRET\x01\r\n", 100).unwrap_err().to_string();
        assert_eq!(message, "value of CGI header Cookie on line 1 contains byte 0x01");
    }

    #[test]
    fn error_message_examples() {
        const D: usize = DEFAULT_MAX_HEAD_LEN;
        let cases: &[(&[u8], usize, &str)] = &[
            (
                b"A: 1\r\nX\tY: 2\r\n",
                D,
                "CGI header name \"X\\tY\" on line 2 contains a tab (0x09), not allowed in a name",
            ),
            (b"X: a\0\r\n", D, "value of CGI header X on line 1 contains NUL (0x00)"),
            (b"X: a\rb\n", D, "CGI header line 1 contains a bare CR (0x0d not followed by LF)"),
            (
                b"Status: 2000 Big\n",
                D,
                "invalid CGI Status \"2000 Big\" on line 1: \
                 expected a code from 100 to 999 and an optional reason",
            ),
            (b"Status: 200\nStatus: 200\n", D, "second CGI Status header on line 2 (the first is on line 1)"),
            (b"<!DOCTYPE html>\n", D, "CGI header line 1 has no colon: \"<!DOCTYPE html>\""),
            (
                b"x: y\n  z\n",
                D,
                "CGI header line 2 starts with whitespace (obsolete line folding is not supported)",
            ),
            (b":x\n", D, "CGI header line 1 has an empty header name"),
            (
                &[b'a'; 11],
                10,
                "CGI response header block is larger than the 10-byte limit (no blank line within it)",
            ),
        ];
        for &(input, limit, message) in cases {
            assert_eq!(parse_head(input, limit).unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn long_previews_are_cut() {
        let line = [b"<html>".as_slice(), &[b'x'; 100], b"\n"].concat();
        let err = parse_head(&line, DEFAULT_MAX_HEAD_LEN).unwrap_err();
        let CgiError::MissingColon { start, .. } = &err else { panic!("{err:?}") };
        assert_eq!(start.len(), FIELD_PREVIEW_LEN + 3);
        assert!(start.ends_with("xxx..."));
    }

    #[test]
    fn incomplete_at_end() {
        assert_eq!(
            head_incomplete_at_end(b"").to_string(),
            "STDOUT ended before the CGI response head: the application sent no output"
        );
        let err = head_incomplete_at_end(b"Content-Type: text/html\r\n");
        assert_eq!(
            err,
            CgiError::IncompleteAtEnd { received: 25, preview: name("Content-Type: text/html\\r\\n") }
        );
        assert_eq!(
            err.to_string(),
            "STDOUT ended after 25 bytes without the blank line that ends the CGI response head; \
             it began \"Content-Type: text/html\\r\\n\""
        );
        assert_eq!(err.line(), None);
        let CgiError::IncompleteAtEnd { received, preview } = head_incomplete_at_end(&[0xfe; 300]) else {
            unreachable!()
        };
        assert_eq!(received, 300);
        assert_eq!(preview, format!("{}...", "\\xfe".repeat(OUTPUT_PREVIEW_LEN)));
    }

    #[test]
    fn limit_counts_the_blank_line() {
        let head = b"Content-Type: text/plain\r\n\r\n";
        let buf = [head.as_slice(), b"body"].concat();
        let at_limit = parse_head(&buf, head.len()).unwrap();
        assert!(matches!(at_limit, HeadParse::Complete { body_offset, .. } if body_offset == head.len()));
        // The blank line is in the buffer but past the limit: never looked at.
        assert_eq!(parse_head(&buf, head.len() - 1), Err(CgiError::HeadTooLarge { limit: head.len() - 1 }));
    }

    #[test]
    fn limit_on_an_incomplete_head() {
        let partial = b"Content-Type: text/plain\r\nX-Long: aaaa";
        assert_eq!(parse_head(partial, partial.len() + 1), Ok(HeadParse::Incomplete));
        assert_eq!(parse_head(partial, partial.len()), Ok(HeadParse::Incomplete));
        assert_eq!(
            parse_head(partial, partial.len() - 1),
            Err(CgiError::HeadTooLarge { limit: partial.len() - 1 })
        );
        assert_eq!(parse_head(b"", 0), Ok(HeadParse::Incomplete));
        assert_eq!(parse_head(b"\n", 0), Err(CgiError::HeadTooLarge { limit: 0 }));
        assert_eq!(DEFAULT_MAX_HEAD_LEN, 65536);
    }

    #[test]
    fn bad_line_within_the_limit_wins_over_the_limit() {
        let buf = [b"X: ok\r\nbad line\r\n".as_slice(), &[b'a'; 100]].concat();
        assert!(matches!(parse_head(&buf, 30), Err(CgiError::MissingColon { line: 2, .. })));
    }

    #[test]
    fn huge_unterminated_output_stops_at_the_limit() {
        let buf = vec![b'a'; 8 << 20];
        assert_eq!(
            parse_head(&buf, DEFAULT_MAX_HEAD_LEN),
            Err(CgiError::HeadTooLarge { limit: DEFAULT_MAX_HEAD_LEN })
        );
    }

    #[test]
    fn header_map_capacity_is_an_error() {
        let head: Vec<u8> = (0..40_000).flat_map(|i| format!("h{i}:\n").into_bytes()).collect();
        let err = parse_head(&head, usize::MAX).unwrap_err();
        assert!(matches!(err, CgiError::TooManyHeaders { line } if line > 20_000), "{err:?}");
    }

    #[test]
    fn repeated_names_do_not_fill_the_map() {
        let mut head = b"Set-Cookie: a\n".repeat(40_000);
        head.push(b'\n');
        let Ok(HeadParse::Complete { head: parsed, .. }) = parse_head(&head, usize::MAX) else { panic!() };
        assert_eq!(parsed.headers.get_all("set-cookie").iter().count(), 40_000);
    }

    #[test]
    fn name_too_long_for_http() {
        let head = [vec![b'n'; 70_000].as_slice(), b": v\n\n"].concat();
        let err = parse_head(&head, usize::MAX).unwrap_err();
        assert!(
            matches!(&err, CgiError::HeaderRefused { line: 1, name } if name.len() == FIELD_PREVIEW_LEN + 3)
        );
    }

    #[test]
    fn scanner_is_sticky_after_an_error() {
        let mut scanner = HeadScanner::new(100);
        assert_eq!(scanner.parse(b"X: 1\r\n"), Ok(HeadParse::Incomplete));
        let err = scanner.parse(b"X: 1\r\nbad\r\n").unwrap_err();
        assert_eq!(scanner.parse(b"X: 1\r\nbad\r\n\r\n"), Err(err.clone()));
        assert_eq!(scanner.parse(b""), Err(err));
    }

    #[test]
    fn scanner_restarts_after_complete_and_on_a_shorter_buffer() {
        let mut scanner = HeadScanner::default();
        let first = scanner.parse(b"Status: 404\n\nbody").unwrap();
        assert_eq!(scanner.parse(b"Status: 404\n\nbody"), Ok(first));
        assert_eq!(scanner.parse(b"X: 1\nY: 2\nZ: 3333333333"), Ok(HeadParse::Incomplete));
        let again = scanner.parse(b"Status: 201\n\n").unwrap();
        assert!(matches!(again, HeadParse::Complete { head, body_offset: 13 } if head.status == 201));
    }

    #[test]
    fn scanner_searches_each_byte_once() {
        let mut scanner = HeadScanner::new(1000);
        let buf = b"X-Long: aaaaaaaaaaaaaaaaaaaa\r\nY: b\r\n\r\n";
        for end in 0..buf.len() {
            assert_eq!(scanner.parse(&buf[..end]), Ok(HeadParse::Incomplete));
            assert_eq!(scanner.searched, end);
        }
    }

    #[test]
    fn trim_and_escape_helpers() {
        assert_eq!(trim_ows(b" \t a b \t "), b"a b");
        assert_eq!(trim_ows(b"\x0ca\r"), b"\x0ca\r");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(escaped(b"a\"\\\r\n\0\xff", 10), "a\\\"\\\\\\r\\n\\x00\\xff");
        assert_eq!(escaped(b"abcdef", 3), "abc...");
        assert_eq!(ByteName(b'@').to_string(), "'@' (0x40)");
        assert_eq!(ByteName(0x80).to_string(), "byte 0x80");
    }
}
