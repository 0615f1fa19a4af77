//! curl's habits that make sense for FastCGI: the flags themselves (flattened into the request
//! and output flags of `cli`), and what they turn into: headers (`-A`, `-e`, `-b`, `-u`), body
//! parts (`--data-raw`, `--data-urlencode`), `-G` moving the data into the query string, and
//! `--retry` for failures that happened before the application saw the request.
//!
//! `-w/--write-out` has a module of its own (`write_out`). docs/CLI.md ("Coming from curl")
//! lists what curl has and `fcgi` does not, and why.

use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::Args;
use http::{HeaderName, HeaderValue};
use http_body_util::Full;

use crate::build::Built;
use crate::cli::parse_duration;
use crate::commands::exchange::{self, Exchange};
use crate::exit::{Exit, Failure};
use crate::target::Target;
use fcgi_mux::Observer;

/// The `User-Agent` sent when neither `-A` nor `-H 'User-Agent: ...'` is given.
pub const DEFAULT_USER_AGENT: &str = concat!("fcgi/", env!("CARGO_PKG_VERSION"));

// curl's request flags (every command that sends a request: get, post, request, dump, bench).
#[derive(Debug, Args, Clone, Default)]
pub struct CurlRequestArgs {
    /// Put the -d/--data-raw/--data-urlencode/--data-binary data in the query string (joined
    /// with '&', after a '?' or '&') and send GET (unless -X): as curl -G
    #[arg(short = 'G', long = "get")]
    pub get: bool,
    /// Body part sent as given, '@' included (no file is read); joined with '&' like -d
    #[arg(long = "data-raw", value_name = "DATA")]
    pub data_raw: Vec<String>,
    /// Body part URL-encoded as curl does: CONTENT, =CONTENT, NAME=CONTENT, @FILE or NAME@FILE
    /// (only CONTENT or the file is encoded); joined with '&' like -d
    #[arg(long = "data-urlencode", value_name = "DATA")]
    pub data_urlencode: Vec<String>,
    /// Send `Authorization: Basic` for USER:PASSWORD (PHP reads it as PHP_AUTH_USER and
    /// PHP_AUTH_PW); masked in -v output
    #[arg(short = 'u', long = "user", value_name = "USER:PASSWORD")]
    pub user: Option<String>,
    /// User-Agent header (HTTP_USER_AGENT); '' sends none [default: fcgi/VERSION]
    #[arg(short = 'A', long = "user-agent", value_name = "NAME")]
    pub user_agent: Option<String>,
    /// Referer header (HTTP_REFERER)
    #[arg(short = 'e', long = "referer", value_name = "URL")]
    pub referer: Option<String>,
    /// Cookie header: NAME=VALUE[; NAME2=VALUE2] (HTTP_COOKIE, $_COOKIE in PHP); repeatable,
    /// joined with "; ". A cookie file is not read
    #[arg(short = 'b', long = "cookie", value_name = "NAME=VALUE")]
    pub cookies: Vec<String>,
}

// curl's transfer flags (get, post, request).
#[derive(Debug, Args, Clone, Default)]
pub struct CurlTransferArgs {
    /// As curl -f: on HTTP 4xx/5xx write no body (with -o: no file) and exit 4 or 5
    #[arg(short = 'f', long = "fail", conflicts_with_all = ["no_fail", "fail_with_body"])]
    pub fail: bool,
    /// On HTTP 4xx/5xx write the body and exit 4 or 5 (what fcgi does by default)
    #[arg(long = "fail-with-body", conflicts_with = "no_fail")]
    pub fail_with_body: bool,
    /// With -s, still print the error line of a failure (HTTP 4xx/5xx included), as curl -sS
    #[arg(short = 'S', long = "show-error")]
    pub show_error: bool,
    /// After the transfer, print FORMAT with curl's variables: %{http_code}, %{time_total},
    /// %{size_download}, %{exitcode}, %{errormsg}, %{json}, %header{NAME}, %{stderr}...;
    /// @FILE or @- reads FORMAT from a file
    #[arg(short = 'w', long = "write-out", value_name = "FORMAT")]
    pub write_out: Option<String>,
    /// Write the status line and headers to FILE ('-': standard output, before the body; not
    /// with --json, whose document has them)
    #[arg(short = 'D', long = "dump-header", value_name = "FILE", conflicts_with = "json")]
    pub dump_header: Option<std::path::PathBuf>,
    /// Try again up to N times when the request failed before the application saw it
    /// (connect refused or timed out, socket missing, listen queue full, FastCGI OVERLOADED)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retry: u32,
    /// Wait this long between tries [default: 1s, doubling each time up to 10 minutes]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "retry")]
    pub retry_delay: Option<Duration>,
    /// Start no new try after this long since the first one [default: no limit]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "retry")]
    pub retry_max_time: Option<Duration>,
}

/// The headers the curl flags add, each only when `-H` did not give that header already (as
/// curl, an explicit `-H` wins). `-A ''` removes the default User-Agent.
pub fn headers(
    args: &CurlRequestArgs,
    given: &[HeaderName],
) -> Result<Vec<(HeaderName, HeaderValue)>, Failure> {
    let mut out = Vec::new();
    let mut add = |name: HeaderName, value: String, flag: &str| -> Result<(), Failure> {
        if given.contains(&name) || value.is_empty() {
            return Ok(());
        }
        let value = HeaderValue::try_from(value).map_err(|_| {
            Failure::new(Exit::Usage, format!("{flag}: the value is not a valid header value"))
        })?;
        out.push((name, value));
        Ok(())
    };
    let agent = args.user_agent.clone().unwrap_or_else(|| DEFAULT_USER_AGENT.to_string());
    add(http::header::USER_AGENT, agent, "-A/--user-agent")?;
    if let Some(referer) = &args.referer {
        add(http::header::REFERER, referer.clone(), "-e/--referer")?;
    }
    if !args.cookies.is_empty() {
        for cookie in &args.cookies {
            if !cookie.contains('=') {
                return Err(Failure::new(
                    Exit::Usage,
                    format!(
                        "-b/--cookie {cookie:?}: give NAME=VALUE (fcgi reads no cookie file; see docs/CLI.md, Coming from curl)"
                    ),
                ));
            }
        }
        add(http::header::COOKIE, args.cookies.join("; "), "-b/--cookie")?;
    }
    if let Some(user) = &args.user {
        if !user.contains(':') {
            return Err(Failure::new(
                Exit::Usage,
                "-u/--user needs USER:PASSWORD (fcgi does not prompt for a password; USER: sends an empty one)",
            ));
        }
        let token = base64::engine::general_purpose::STANDARD.encode(user.as_bytes());
        add(http::header::AUTHORIZATION, format!("Basic {token}"), "-u/--user")?;
    }
    Ok(out)
}

/// The `--data-raw` and `--data-urlencode` parts, in that order (clap does not keep the order
/// of different flags: docs/CLI.md says how the parts are joined). `read` reads `@FILE`.
pub fn data_parts(
    args: &CurlRequestArgs,
    read: impl Fn(&str) -> Result<Vec<u8>, Failure>,
) -> Result<Vec<Vec<u8>>, Failure> {
    let mut parts: Vec<Vec<u8>> = args.data_raw.iter().map(|d| d.as_bytes().to_vec()).collect();
    for data in &args.data_urlencode {
        parts.push(urlencode_part(data, &read)?);
    }
    Ok(parts)
}

/// One `--data-urlencode` value, as curl reads it: `=CONTENT` and `CONTENT` encode CONTENT;
/// `NAME=CONTENT` keeps `NAME=`; `@FILE` and `NAME@FILE` encode the file's bytes.
fn urlencode_part(data: &str, read: &impl Fn(&str) -> Result<Vec<u8>, Failure>) -> Result<Vec<u8>, Failure> {
    let equals = data.find('=');
    let at = data.find('@');
    let (name, content) = match (equals, at) {
        // `=` first (or no `@`): NAME=CONTENT, where NAME may be empty.
        (Some(eq), at) if at.is_none_or(|at| eq < at) => (&data[..eq], data.as_bytes()[eq + 1..].to_vec()),
        (_, Some(at)) => (&data[..at], read(&format!("@{}", &data[at + 1..]))?),
        _ => ("", data.as_bytes().to_vec()),
    };
    let mut out = Vec::new();
    if !name.is_empty() {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
    }
    out.extend_from_slice(percent_encode(&content).as_bytes());
    Ok(out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as curl_easy_escape.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `-G`: `path` with `data` appended to its query string.
pub fn path_with_query(path: &str, data: &[u8]) -> String {
    if data.is_empty() {
        return path.to_string();
    }
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{path}{separator}{}", String::from_utf8_lossy(data))
}

/// When and how often `--retry` tries again.
#[derive(Copy, Clone, Debug)]
pub struct RetryPolicy {
    /// Tries after the first.
    pub retries: u32,
    /// `--retry-delay`; `None`: 1 s doubling.
    pub delay: Option<Duration>,
    /// `--retry-max-time`.
    pub max_time: Option<Duration>,
}

/// curl's longest wait between tries without `--retry-delay`.
const BACKOFF_MAX: Duration = Duration::from_secs(600);

impl RetryPolicy {
    /// From the flags.
    pub fn new(args: &CurlTransferArgs) -> RetryPolicy {
        RetryPolicy { retries: args.retry, delay: args.retry_delay, max_time: args.retry_max_time }
    }

    /// The wait before try number `done + 1` (`done` tries failed), or `None` when no try is
    /// left: none remain, or `--retry-max-time` since `first` would be passed.
    pub fn next_wait(&self, done: u32, first: Instant, now: Instant) -> Option<Duration> {
        if done > self.retries {
            return None;
        }
        let wait = match self.delay {
            Some(delay) => delay,
            None => Duration::from_secs(1).saturating_mul(1 << (done - 1).min(10)).min(BACKOFF_MAX),
        };
        if let Some(max) = self.max_time {
            if now + wait > first + max {
                return None;
            }
        }
        Some(wait)
    }
}

/// True when `error` happened before the application could have seen the request, so that
/// sending it again cannot run it twice: connecting failed or timed out (no socket, refused,
/// a full listen queue), the server closed the connection before any byte of the request was
/// written, or it refused the request with FCGI_OVERLOADED or FCGI_CANT_MPX_CONN.
pub fn is_retryable(error: &anyhow::Error) -> bool {
    use fcgi_mux::{Error, TimeoutKind};
    match error.downcast_ref::<Error>() {
        Some(Error::Connect { .. }) => true,
        Some(Error::Timeout { kind, .. }) => *kind == TimeoutKind::Connect,
        Some(Error::ConnectionClosed { sent_nothing }) => *sent_nothing,
        Some(Error::Refused { status, .. }) => {
            *status == fcgi_proto::ProtocolStatus::OVERLOADED
                || *status == fcgi_proto::ProtocolStatus::CANT_MPX_CONN
        }
        _ => false,
    }
}

/// Sends `request` as [`exchange::send`] does, trying again under `--retry` while the failure
/// is one the application never saw ([`is_retryable`]); `retries` counts the tries after the
/// first. Each wait is announced on stderr unless `quiet`, as curl's "Will retry" warning.
pub async fn send_with_retry(
    target: &Target,
    built: Built,
    observer: Option<Observer>,
    policy: RetryPolicy,
    quiet: bool,
    retries: &mut u32,
) -> anyhow::Result<Exchange> {
    if policy.retries == 0 {
        // One try: the request is sent as built, nothing copied.
        return exchange::send(target, built.request, crate::build::into_pairs(built.params), observer).await;
    }
    let params = built.param_pairs();
    let first = Instant::now();
    loop {
        let attempt = copy_request(&built.request, &built.body);
        let error = match exchange::send(target, attempt, params.clone(), observer.clone()).await {
            Ok(exchange) => return Ok(exchange),
            Err(error) => error,
        };
        let wait =
            if is_retryable(&error) { policy.next_wait(*retries + 1, first, Instant::now()) } else { None };
        let Some(wait) = wait else { return Err(error) };
        if !quiet {
            let (_, message) = crate::exit::classify(&error);
            let left = policy.retries - *retries;
            eprintln!(
                "fcgi: warning: {message}; trying again in {} ({left} {} left)",
                exchange::human(wait),
                if left == 1 { "retry" } else { "retries" }
            );
        }
        tokio::time::sleep(wait).await;
        *retries += 1;
    }
}

/// A copy of a request whose body is in memory, for another try.
pub fn copy_request(request: &http::Request<Full<Bytes>>, body: &Bytes) -> http::Request<Full<Bytes>> {
    let mut copy = http::Request::new(Full::new(body.clone()));
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_file(_: &str) -> Result<Vec<u8>, Failure> {
        Ok(b"a b&c".to_vec())
    }

    #[test]
    fn urlencode_forms_as_curl() {
        let part = |d: &str| String::from_utf8(urlencode_part(d, &no_file).unwrap()).unwrap();
        assert_eq!(part("a b"), "a%20b");
        assert_eq!(part("=a=b"), "a%3Db");
        assert_eq!(part("name=é & x"), "name=%C3%A9%20%26%20x");
        assert_eq!(part("name@file"), "name=a%20b%26c");
        assert_eq!(part("@file"), "a%20b%26c");
        assert_eq!(part("mail=a@b"), "mail=a%40b");
    }

    #[test]
    fn query_joining() {
        assert_eq!(path_with_query("/e.php", b"a=1"), "/e.php?a=1");
        assert_eq!(path_with_query("/e.php?x=2", b"a=1"), "/e.php?x=2&a=1");
        assert_eq!(path_with_query("/e.php", b""), "/e.php");
    }

    #[test]
    fn headers_from_flags() {
        let args = CurlRequestArgs {
            user: Some("alice:s3cret".into()),
            referer: Some("http://example.test/".into()),
            cookies: vec!["a=1".into(), "b=2".into()],
            ..Default::default()
        };
        let added = headers(&args, &[]).unwrap();
        let find = |n: &HeaderName| added.iter().find(|(h, _)| h == n).map(|(_, v)| v.to_str().unwrap());
        assert_eq!(find(&http::header::USER_AGENT), Some(DEFAULT_USER_AGENT));
        assert_eq!(find(&http::header::COOKIE), Some("a=1; b=2"));
        assert_eq!(find(&http::header::AUTHORIZATION), Some("Basic YWxpY2U6czNjcmV0"));
        // -H wins; -A '' sends none.
        let empty = CurlRequestArgs { user_agent: Some(String::new()), ..Default::default() };
        assert!(headers(&empty, &[]).unwrap().is_empty());
        assert!(headers(&CurlRequestArgs::default(), &[http::header::USER_AGENT]).unwrap().is_empty());
        let no_colon = CurlRequestArgs { user: Some("alice".into()), ..Default::default() };
        assert!(headers(&no_colon, &[]).unwrap_err().message.contains("USER:PASSWORD"));
        let jar = CurlRequestArgs { cookies: vec!["cookies.txt".into()], ..Default::default() };
        assert!(headers(&jar, &[]).unwrap_err().message.contains("NAME=VALUE"));
    }

    #[test]
    fn retry_waits() {
        let start = Instant::now();
        let policy = RetryPolicy { retries: 3, delay: None, max_time: None };
        let waits: Vec<_> = (1..=4).map(|done| policy.next_wait(done, start, start)).collect();
        let s = Duration::from_secs;
        assert_eq!(waits, [Some(s(1)), Some(s(2)), Some(s(4)), None]);
        let fixed = RetryPolicy { retries: 5, delay: Some(s(3)), max_time: Some(s(5)) };
        assert_eq!(fixed.next_wait(1, start, start), Some(s(3)));
        assert_eq!(fixed.next_wait(2, start, start + s(3)), None, "3 + 3 s passes --retry-max-time 5 s");
        assert_eq!(RetryPolicy { retries: 0, delay: None, max_time: None }.next_wait(1, start, start), None);
    }
}
