//! The one error type: every variant names the rule that refused the request.

/// Why no environment could be derived.
///
/// Variants fall in two groups: the request broke a rule (a client can cause these; answer them
/// with an HTTP 400-class status) and the configuration is unusable (a caller bug; see
/// [`Error::is_config_error`]). Values quoted in variants are cut to a short, printable prefix so
/// that the error itself is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request target is not a path (`*` or authority-form): there is no script to run.
    #[error("request target {target:?} is not an absolute path")]
    UnsupportedRequestTarget {
        /// The target as received (shortened).
        target: String,
    },

    /// A `%` in the path is not followed by two hex digits.
    #[error("invalid percent-encoding in the request path at byte {offset}")]
    InvalidPercentEncoding {
        /// Offset of the `%` in the raw path.
        offset: usize,
    },

    /// The decoded path contains a control byte (NUL, CR, LF, any other C0 control or DEL).
    ///
    /// This is also the rule that stops CVE-2019-11043, where `%0a` made nginx's path-info pattern
    /// fail and php-fpm underflow a buffer.
    #[error("forbidden byte 0x{byte:02x} in the decoded request path")]
    ForbiddenByteInPath {
        /// The offending byte.
        byte: u8,
    },

    /// Resolving `.` and `..` segments would climb above the document root.
    #[error("request path escapes the document root")]
    PathEscapesDocumentRoot,

    /// The request path is not under the mount prefix of a mounted application
    /// ([`crate::AppKind::Mounted`]); prefixes match whole segments (`/appx` is not under `/app`).
    #[error("request path {path:?} is not under the mount prefix {prefix:?}")]
    OutsideMount {
        /// The mount prefix as configured (shortened).
        prefix: String,
        /// The decoded, normalised request path (shortened).
        path: String,
    },

    /// The script part of the path does not end in an allowed script extension.
    #[error("script {script_name:?} does not end in an allowed script extension")]
    ScriptExtensionNotAllowed {
        /// The script name that was refused (shortened).
        script_name: String,
    },

    /// The path-info pattern produced a script name that does not start with `/`, or a path info
    /// that is neither empty nor starts with `/`.
    #[error("path-info pattern split the path into unusable parts")]
    PathInfoSplitInvalid,

    /// A header that must appear at most once (Host, Content-Type) appears with several values,
    /// or Content-Length headers disagree.
    #[error("conflicting {name} headers")]
    ConflictingHeader {
        /// The header name.
        name: &'static str,
    },

    /// The Host header (or the URI authority) is not a valid host.
    #[error("invalid host {value:?}")]
    InvalidHost {
        /// The host as received (shortened).
        value: String,
    },

    /// A Content-Length header is not a decimal number.
    #[error("invalid Content-Length header")]
    InvalidContentLength,

    /// The Content-Length header disagrees with the body length the caller will send.
    #[error("Content-Length header says {header} but the body is {body} bytes")]
    ContentLengthMismatch {
        /// Value of the Content-Length header.
        header: u64,
        /// Body length given by the caller.
        body: u64,
    },

    /// A configured CONTENT_LENGTH override differs from the body length: php-fpm would lose
    /// the body or hang.
    #[error("CONTENT_LENGTH override {given:?} differs from the body length {body}")]
    ContentLengthOverride {
        /// The configured value (shortened).
        given: String,
        /// Body length given by the caller.
        body: u64,
    },

    /// A header value contains NUL, CR or LF.
    #[error("forbidden byte in the value of header {name}")]
    ForbiddenByteInHeader {
        /// The header name.
        name: String,
    },

    /// One name-value pair does not fit in one FastCGI record (see [`crate::MAX_PAIR_LEN`]);
    /// php-fpm cannot read a pair split across records.
    #[error("parameter {name} is too large: {len} bytes encoded, at most {max} fit one record", max = crate::MAX_PAIR_LEN)]
    ParamTooLarge {
        /// Parameter name (shortened).
        name: String,
        /// Encoded size of the pair (length prefixes + name + value).
        len: usize,
    },

    /// A configured parameter name is empty or contains a control byte or `=`.
    #[error("invalid parameter name {name:?}")]
    InvalidParamName {
        /// The name (shortened).
        name: String,
    },

    /// The configured index file name is empty or contains `/` or a control byte, or is `.`/`..`.
    #[error("invalid index file name {index:?}")]
    InvalidIndex {
        /// The configured index (shortened).
        index: String,
    },

    /// The mount prefix is not a decoded absolute path of ordinary segments (it must start with
    /// `/` and contain no control byte and no empty, `.` or `..` segment).
    #[error("invalid mount prefix {prefix:?}: it must be an absolute path such as / or /app")]
    InvalidMountPrefix {
        /// The configured prefix (shortened).
        prefix: String,
    },

    /// The path-info pattern does not compile.
    #[error("invalid path-info pattern: {message}")]
    InvalidPathInfoPattern {
        /// The compiler's message.
        message: String,
    },

    /// The path-info pattern has fewer than two capture groups.
    #[error("path-info pattern needs two capture groups (script name, path info), it has {found}")]
    PathInfoPatternCaptures {
        /// Number of capture groups found.
        found: usize,
    },
}

impl Error {
    /// True when the error comes from the configuration rather than from the request.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            Error::ContentLengthOverride { .. }
                | Error::InvalidParamName { .. }
                | Error::InvalidIndex { .. }
                | Error::InvalidMountPrefix { .. }
                | Error::InvalidPathInfoPattern { .. }
                | Error::PathInfoPatternCaptures { .. }
        )
    }
}

/// A short, printable rendering of untrusted bytes for error messages.
pub(crate) fn shorten(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let cut = bytes.len() > MAX;
    let mut s = bytes[..bytes.len().min(MAX)].escape_ascii().to_string();
    if cut {
        s.push_str("...");
    }
    s
}
