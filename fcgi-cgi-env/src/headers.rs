//! Request headers: `HTTP_*` names, hidden headers (hop-by-hop, httpoxy, proxy credentials),
//! the rule for unusual names and collisions, joining repeated headers, and the headers that
//! become CGI variables of their own (Content-Type, Content-Length, Host).

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{AppConfig, UnusualHeaderNames};
use crate::error::{Error, shorten};
use crate::params::ParamName;

/// Headers that describe one connection, never the request (RFC 9110 §7.6.1, plus the
/// pre-standard `Proxy-Connection` and HTTP/2's `HTTP2-Settings`). Hidden unless passed.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Hidden unless passed: credentials meant for a proxy, not for the application (HAProxy hides
/// it too).
pub const HIDDEN_BY_DEFAULT: &[&str] = &["proxy-authorization"];

/// Never passed as `HTTP_*`, whatever the configuration: `Proxy` would become `HTTP_PROXY`, which
/// many HTTP libraries read as their outgoing proxy (httpoxy, CVE-2016-5385), and the two
/// content headers have CGI variables of their own.
pub const NEVER_PASSED: &[&str] = &["proxy", "content-length", "content-type"];

/// What the headers contribute to the environment.
#[derive(Debug, Default)]
pub(crate) struct HeaderFacts {
    /// `HTTP_*` pairs in the order their headers first appeared.
    pub(crate) http: Vec<(ParamName, Vec<u8>)>,
    pub(crate) content_type: Option<Vec<u8>>,
    pub(crate) content_length: Option<u64>,
    pub(crate) host: Option<Vec<u8>>,
}

struct Candidate {
    cgi_name: ParamName,
    plain: bool,
    value: Vec<u8>,
}

pub(crate) fn collect(headers: &HeaderMap, config: &AppConfig) -> Result<HeaderFacts, Error> {
    let mut facts = HeaderFacts {
        content_type: single(headers, &http::header::CONTENT_TYPE, "Content-Type")?,
        content_length: content_length(headers)?,
        host: single(headers, &http::header::HOST, "Host")?,
        ..HeaderFacts::default()
    };

    let listed_in_connection = connection_tokens(headers);
    let mut candidates: Vec<Candidate> = Vec::new();
    for name in headers.keys() {
        let lname = name.as_str();
        if NEVER_PASSED.contains(&lname) {
            continue;
        }
        let plain = is_plain(lname);
        let passed = config.pass_headers.contains(name);
        let hidden = config.hide_headers.contains(name)
            || (!passed
                && (HOP_BY_HOP.contains(&lname)
                    || HIDDEN_BY_DEFAULT.contains(&lname)
                    || listed_in_connection.iter().any(|t| t == lname)
                    || (!plain && config.unusual_header_names == UnusualHeaderNames::Drop)));
        if hidden {
            continue;
        }
        candidates.push(Candidate { cgi_name: cgi_name(lname), plain, value: joined(headers, name)? });
    }

    // Resolve collisions: a plain name beats unusual ones, otherwise the first one wins. A
    // request has few headers (at most the server's limit), so a scan beats hashing.
    let winner = |i: usize| {
        let c = &candidates[i];
        let mut same = candidates.iter().enumerate().filter(|(_, o)| o.cgi_name == c.cgi_name);
        let first_plain = same.clone().find(|(_, o)| o.plain).map(|(j, _)| j);
        first_plain.or_else(|| same.next().map(|(j, _)| j)) == Some(i)
    };
    let keep: Vec<bool> = (0..candidates.len()).map(winner).collect();
    facts.http = candidates
        .into_iter()
        .zip(keep)
        .filter(|(_, keep)| *keep)
        .map(|(c, _)| (c.cgi_name, c.value))
        .collect();
    Ok(facts)
}

/// `HTTP_` + the name upper-cased with every byte other than a letter or digit as `_`.
pub(crate) fn cgi_name(lname: &str) -> ParamName {
    if let Some(name) = common_cgi_name(lname) {
        return name.into();
    }
    let mut out = String::with_capacity(5 + lname.len());
    out.push_str("HTTP_");
    out.extend(
        lname.bytes().map(|b| if b.is_ascii_alphanumeric() { b.to_ascii_uppercase() as char } else { '_' }),
    );
    out.into()
}

/// The names of the headers browsers and clients send on nearly every request, without
/// building them each time.
fn common_cgi_name(lname: &str) -> Option<&'static str> {
    Some(match lname {
        "host" => "HTTP_HOST",
        "user-agent" => "HTTP_USER_AGENT",
        "accept" => "HTTP_ACCEPT",
        "accept-encoding" => "HTTP_ACCEPT_ENCODING",
        "accept-language" => "HTTP_ACCEPT_LANGUAGE",
        "cookie" => "HTTP_COOKIE",
        "referer" => "HTTP_REFERER",
        "authorization" => "HTTP_AUTHORIZATION",
        "cache-control" => "HTTP_CACHE_CONTROL",
        "origin" => "HTTP_ORIGIN",
        "x-forwarded-for" => "HTTP_X_FORWARDED_FOR",
        "x-forwarded-proto" => "HTTP_X_FORWARDED_PROTO",
        _ => return None,
    })
}

/// Only letters, digits and `-`: such names map one-to-one onto `HTTP_*` names.
fn is_plain(lname: &str) -> bool {
    lname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Repeated headers joined with `, ` (cookies with `; `, as HTTP/2 requires for `cookie`).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Result<Vec<u8>, Error> {
    let sep: &[u8] = if name == http::header::COOKIE { b"; " } else { b", " };
    let mut out = Vec::new();
    for (i, value) in headers.get_all(name).iter().enumerate() {
        check_value(name, value)?;
        if i > 0 {
            out.extend_from_slice(sep);
        }
        out.extend_from_slice(value.as_bytes());
    }
    Ok(out)
}

/// `http` refuses these bytes in values built by its safe constructors; this keeps values built
/// with its `unsafe` unchecked constructor (by an HTTP parser upstream) from smuggling them in.
fn check_value(name: &HeaderName, value: &HeaderValue) -> Result<(), Error> {
    if value.as_bytes().iter().any(|b| matches!(b, b'\0' | b'\r' | b'\n')) {
        return Err(Error::ForbiddenByteInHeader { name: name.as_str().to_owned() });
    }
    Ok(())
}

/// A header that may appear once; identical repeats are tolerated.
fn single(headers: &HeaderMap, name: &HeaderName, label: &'static str) -> Result<Option<Vec<u8>>, Error> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    check_value(name, first)?;
    if values.any(|v| v != first) {
        return Err(Error::ConflictingHeader { name: label });
    }
    Ok(Some(first.as_bytes().to_vec()))
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        // A list such as `5, 5` is how some intermediaries fold repeats.
        for part in value.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(Error::InvalidContentLength);
            }
            let n = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(Error::InvalidContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(Error::ConflictingHeader { name: "Content-Length" });
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Header names listed in `Connection` (lower-cased).
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Splits a Host value (or URI authority) into a lower-cased host and an optional port.
///
/// Accepted hosts: a registered name of letters, digits, `-`, `.` and `_`, or a bracketed IPv6
/// literal. Anything else is refused rather than passed to SERVER_NAME, which applications use
/// to build absolute URLs.
pub(crate) fn parse_host(value: &[u8]) -> Result<(String, Option<u16>), Error> {
    let invalid = || Error::InvalidHost { value: shorten(value) };
    let (host, port) = if value.first() == Some(&b'[') {
        let end = value.iter().position(|b| *b == b']').ok_or_else(invalid)?;
        let inner = &value[1..end];
        if inner.is_empty() || !inner.iter().all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')) {
            return Err(invalid());
        }
        let rest = &value[end + 1..];
        let port = match rest {
            [] => None,
            [b':', digits @ ..] => Some(digits),
            _ => return Err(invalid()),
        };
        (&value[..=end], port)
    } else {
        let (host, port) = match value.iter().rposition(|b| *b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        };
        if host.is_empty()
            || !host.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(invalid());
        }
        (host, port)
    };
    let port = match port {
        None | Some([]) => None,
        Some(digits) => Some(
            std::str::from_utf8(digits)
                .ok()
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u16>().ok())
                .ok_or_else(invalid)?,
        ),
    };
    Ok((String::from_utf8_lossy(host).to_ascii_lowercase(), port))
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // one tuple per table row
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn http_params(config: &AppConfig, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        collect(&map(pairs), config)
            .unwrap()
            .http
            .into_iter()
            .map(|(n, v)| (n.into(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn names() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("x-foo",          "HTTP_X_FOO"),
            ("accept",         "HTTP_ACCEPT"),
            ("x-b64.data",     "HTTP_X_B64_DATA"),
            ("x_foo",          "HTTP_X_FOO"),
            ("a!#$%&'*+^`|~b", "HTTP_A____________B"),
            ("x-1-2",          "HTTP_X_1_2"),
        ];
        for (name, want) in cases {
            assert_eq!(&*cgi_name(name), *want);
        }
    }

    #[test]
    fn which_headers_pass() {
        let dflt = AppConfig::default();
        let keep = AppConfig::default().unusual_header_names(UnusualHeaderNames::Keep);
        let pass = AppConfig::default()
            .pass_header(HeaderName::from_static("proxy-authorization"))
            .pass_header(HeaderName::from_static("upgrade"))
            .pass_header(HeaderName::from_static("proxy"));
        let hide = AppConfig::default().hide_header(HeaderName::from_static("x-internal"));
        #[rustfmt::skip]
        let cases: &[(&AppConfig, &[(&str, &str)], &[(&str, &str)])] = &[
            // httpoxy, whatever the configuration
            (&dflt, &[("proxy", "http://evil:8080"), ("x-a", "1")], &[("HTTP_X_A", "1")]),
            (&pass, &[("proxy", "http://evil:8080")], &[]),
            // content headers become CGI variables, not HTTP_*
            (&dflt, &[("content-type", "text/plain"), ("content-length", "3")], &[]),
            // hop-by-hop, and names listed in Connection
            (&dflt, &[("connection", "keep-alive, x-secret"), ("keep-alive", "5"), ("te", "trailers"),
                      ("transfer-encoding", "chunked"), ("upgrade", "h2c"), ("trailer", "x"),
                      ("proxy-connection", "close"), ("x-secret", "s"), ("x-ok", "1")], &[("HTTP_X_OK", "1")]),
            (&pass, &[("upgrade", "websocket")], &[("HTTP_UPGRADE", "websocket")]),
            // proxy credentials hidden unless passed; Authorization always passed
            (&dflt, &[("proxy-authorization", "Basic eA=="), ("authorization", "Basic dTpw")],
                    &[("HTTP_AUTHORIZATION", "Basic dTpw")]),
            (&pass, &[("proxy-authorization", "Basic eA==")], &[("HTTP_PROXY_AUTHORIZATION", "Basic eA==")]),
            (&hide, &[("x-internal", "1"), ("x-public", "2")], &[("HTTP_X_PUBLIC", "2")]),
            // unusual names: dropped by default, so X_Foo cannot override X-Foo
            (&dflt, &[("x-foo", "good"), ("x_foo", "evil")], &[("HTTP_X_FOO", "good")]),
            (&dflt, &[("x_foo", "evil"), ("x-foo", "good")], &[("HTTP_X_FOO", "good")]),
            (&dflt, &[("x.foo", "evil")], &[]),
            // kept on request; the plain name still wins a collision, else the first one
            (&keep, &[("x_foo", "evil"), ("x-foo", "good")], &[("HTTP_X_FOO", "good")]),
            (&keep, &[("x_foo", "first"), ("x.foo", "second")], &[("HTTP_X_FOO", "first")]),
            (&keep, &[("x_bar", "1")], &[("HTTP_X_BAR", "1")]),
            // repeated headers joined; cookies with "; "
            (&dflt, &[("x-forwarded-for", "foo"), ("x-forwarded-for", "bar"), ("x-forwarded-for", "bazz")],
                    &[("HTTP_X_FORWARDED_FOR", "foo, bar, bazz")]),
            (&dflt, &[("cookie", "foo"), ("cookie", "bar"), ("cookie", "bazz")], &[("HTTP_COOKIE", "foo; bar; bazz")]),
            (&dflt, &[("foo", "foo"), ("x-a", "1"), ("foo", "bar")], &[("HTTP_FOO", "foo, bar"), ("HTTP_X_A", "1")]),
            // order of first appearance; Host passed too
            (&dflt, &[("host", "example.com"), ("accept", "*/*")], &[("HTTP_HOST", "example.com"), ("HTTP_ACCEPT", "*/*")]),
        ];
        for (config, input, want) in cases {
            let want: Vec<(String, String)> =
                want.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            assert_eq!(http_params(config, input), want, "{input:?}");
        }
    }

    #[test]
    fn special_headers() {
        let c = AppConfig::default();
        let f =
            collect(&map(&[("content-type", "a/b"), ("content-length", "5, 5"), ("host", "h")]), &c).unwrap();
        assert_eq!(f.content_type.as_deref(), Some(&b"a/b"[..]));
        assert_eq!(f.content_length, Some(5));
        assert_eq!(f.host.as_deref(), Some(&b"h"[..]));

        #[rustfmt::skip]
        let refused: &[(&[(&str, &str)], Error)] = &[
            (&[("content-length", "5"), ("content-length", "6")], Error::ConflictingHeader { name: "Content-Length" }),
            (&[("content-length", "5, 6")], Error::ConflictingHeader { name: "Content-Length" }),
            (&[("content-length", "-1")], Error::InvalidContentLength),
            (&[("content-length", "+5")], Error::InvalidContentLength),
            (&[("content-length", "")], Error::InvalidContentLength),
            (&[("content-length", "99999999999999999999999")], Error::InvalidContentLength),
            (&[("content-type", "a/b"), ("content-type", "c/d")], Error::ConflictingHeader { name: "Content-Type" }),
            (&[("host", "a"), ("host", "b")], Error::ConflictingHeader { name: "Host" }),
        ];
        for (input, want) in refused {
            assert_eq!(collect(&map(input), &c).unwrap_err(), *want, "{input:?}");
        }
    }

    #[test]
    fn hosts() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<(&str, Option<u16>)>)] = &[
            ("example.com",        Some(("example.com", None))),
            ("Example.COM:8080",   Some(("example.com", Some(8080)))),
            ("example.com:",       Some(("example.com", None))),
            ("127.0.0.1:80",       Some(("127.0.0.1", Some(80)))),
            ("[::1]",              Some(("[::1]", None))),
            ("[::1]:8443",         Some(("[::1]", Some(8443)))),
            ("my_host.local",      Some(("my_host.local", None))),
            ("",                   None),
            ("evil.com/../x",      None),
            ("evil.com:99999",     None),
            ("evil.com:8o",        None),
            ("a b",                None),
            ("[::1",               None),
            ("[::1]x",             None),
            ("[]",                 None),
            ("[zz]",               None),
            ("user@host",          None),
            ("<script>",           None),
        ];
        for (input, want) in cases {
            let got = parse_host(input.as_bytes()).ok();
            let want = want.map(|(h, p)| (h.to_string(), p));
            assert_eq!(got, want, "{input:?}");
        }
    }
}
