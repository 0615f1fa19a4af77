//! The CGI response head parser through its public API: realistic heads, incremental feeding,
//! and properties over arbitrary input (never panics, trailing bytes and chunking do not matter).

use fcgi_mux::cgi::{
    CgiError, DEFAULT_MAX_HEAD_LEN, HeadParse, HeadScanner, head_incomplete_at_end, parse_head,
};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use proptest::prelude::*;

fn complete(parse: Result<HeadParse, CgiError>) -> (fcgi_mux::cgi::CgiHead, usize) {
    match parse {
        Ok(HeadParse::Complete { head, body_offset }) => (head, body_offset),
        other => panic!("expected a complete head, got {other:?}"),
    }
}

#[test]
fn php_fpm_404() {
    let stdout = b"Status: 404 Not Found\r\nX-Powered-By: PHP/8.2.36\r\n\
                   Content-type: text/html; charset=UTF-8\r\n\r\nNo input file specified.\n";
    let (head, body_offset) = complete(parse_head(stdout, DEFAULT_MAX_HEAD_LEN));
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    assert_eq!(head.reason.as_deref(), Some("Not Found"));
    assert_eq!(head.headers.len(), 2);
    assert!(head.headers.get("status").is_none());
    assert_eq!(head.headers["x-powered-by"], "PHP/8.2.36");
    assert_eq!(head.headers["content-type"], "text/html; charset=UTF-8");
    assert_eq!(&stdout[body_offset..], b"No input file specified.\n");
}

#[test]
fn redirect_without_and_with_status() {
    let (head, _) = complete(parse_head(b"Location: /login\r\n\r\n", DEFAULT_MAX_HEAD_LEN));
    assert_eq!((head.status, head.reason), (StatusCode::FOUND, None));
    let (head, _) = complete(parse_head(b"Location: /new\nStatus: 301\n\n", DEFAULT_MAX_HEAD_LEN));
    assert_eq!(head.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(head.headers["location"], "/new");
}

#[test]
fn shell_script_with_bare_lf() {
    let stdout = b"Content-Type: text/plain\n\nhello\n";
    let (head, body_offset) = complete(parse_head(stdout, DEFAULT_MAX_HEAD_LEN));
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(&stdout[body_offset..], b"hello\n");
}

#[test]
fn output_that_is_not_cgi() {
    let err = parse_head(b"<html><body>oops</body></html>\n", DEFAULT_MAX_HEAD_LEN).unwrap_err();
    assert!(matches!(err, CgiError::MissingColon { line: 1, .. }), "{err}");
    let err = head_incomplete_at_end(b"Content-Type: text/html\r\n");
    assert!(err.to_string().contains("after 25 bytes"), "{err}");
}

#[test]
fn scanner_fed_record_by_record() {
    let stdout = b"X-Powered-By: PHP/8.2.36\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody";
    let mut scanner = HeadScanner::new(DEFAULT_MAX_HEAD_LEN);
    for end in [0, 5, 26, 27, 43, 60, 61] {
        assert_eq!(scanner.parse(&stdout[..end]), Ok(HeadParse::Incomplete), "at {end}");
    }
    let (head, body_offset) = complete(scanner.parse(stdout));
    assert_eq!(&stdout[body_offset..], b"body");
    let cookies: Vec<_> = head.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
}

/// Mostly bytes that matter to the parser, some arbitrary.
fn noisy_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop::sample::select(b"aZ9-: \t\r\n\0\x7f\x80\xffStatusLocation".to_vec());
    prop::collection::vec(prop_oneof![4 => interesting, 1 => any::<u8>()], 0..max_len)
}

/// A field value, untrimmed: visible ASCII, obs-text, SP and HTAB.
fn raw_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![0x20u8..=0x7e, 0x80u8..=0xff, Just(b'\t')], 0..24)
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}".prop_filter("not Status", |n| !n.eq_ignore_ascii_case("status"))
}

/// A valid head, the expected result, and arbitrary trailing bytes (the body).
#[derive(Debug, Clone)]
struct ValidHead {
    bytes: Vec<u8>,
    head_len: usize,
    status: StatusCode,
    reason: Option<String>,
    headers: HeaderMap,
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn valid_head() -> impl Strategy<Value = ValidHead> {
    let field = (name(), raw_value(), any::<bool>());
    let status = prop::option::of((100u16..=999, "( [A-Za-z]{1,8}){0,3}"));
    let fields = prop::collection::vec(field, 0..8);
    (fields, status, 0..9usize, any::<bool>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(
        |(fields, status, status_at, crlf_end, body)| {
            let mut bytes = Vec::new();
            let mut headers = HeaderMap::new();
            let status_line = status.as_ref().map(|(code, reason)| format!("Status: {code}{reason}\r\n"));
            let status_at = status_at.min(fields.len());
            for (i, (name, value, crlf)) in fields.iter().enumerate() {
                if i == status_at {
                    bytes.extend_from_slice(status_line.as_deref().unwrap_or_default().as_bytes());
                }
                bytes.extend_from_slice(name.as_bytes());
                bytes.push(b':');
                bytes.extend_from_slice(value);
                bytes.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
                let value = HeaderValue::from_bytes(trim(value)).unwrap();
                headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
            }
            if status_at == fields.len() {
                bytes.extend_from_slice(status_line.as_deref().unwrap_or_default().as_bytes());
            }
            bytes.extend_from_slice(if crlf_end { b"\r\n" } else { b"\n" });
            let head_len = bytes.len();
            bytes.extend_from_slice(&body);
            let has_location = headers.contains_key("location");
            let (status, reason) = match status {
                Some((code, reason)) => {
                    let reason = reason.trim();
                    (StatusCode::from_u16(code).unwrap(), (!reason.is_empty()).then(|| reason.to_owned()))
                }
                None if has_location => (StatusCode::FOUND, None),
                None => (StatusCode::OK, None),
            };
            ValidHead { bytes, head_len, status, reason, headers }
        },
    )
}

fn printable(message: &str) -> bool {
    message.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Splits `0..len` into increasing cut points.
fn cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.iter().map(|c| c % (len + 1)).collect();
    cuts.push(len);
    cuts.sort_unstable();
    cuts
}

proptest! {
    #[test]
    fn never_panics_and_answers_consistently(buf in noisy_bytes(400), limit in 0usize..500) {
        match parse_head(&buf, limit) {
            Ok(HeadParse::Incomplete) => prop_assert!(buf.len() <= limit),
            Ok(HeadParse::Complete { body_offset, .. }) => {
                prop_assert!(body_offset <= limit.min(buf.len()));
                prop_assert_eq!(buf[body_offset - 1], b'\n');
            }
            Err(err) => {
                let message = err.to_string();
                prop_assert!(printable(&message), "{:?}", message);
            }
        }
        let message = head_incomplete_at_end(&buf).to_string();
        prop_assert!(printable(&message), "{:?}", message);
        prop_assert!(message.len() < 400);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        buf in prop::collection::vec(any::<u8>(), 0..300),
        limit in any::<usize>(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let _ = parse_head(&buf, limit);
        let mut scanner = HeadScanner::new(limit);
        for end in cuts(buf.len(), &raw_cuts) {
            let _ = scanner.parse(&buf[..end]);
        }
    }

    #[test]
    fn valid_heads_parse_whatever_follows(case in valid_head()) {
        let (head, body_offset) = complete(parse_head(&case.bytes, DEFAULT_MAX_HEAD_LEN));
        prop_assert_eq!(body_offset, case.head_len);
        prop_assert_eq!(head.status, case.status);
        prop_assert_eq!(head.reason, case.reason);
        prop_assert_eq!(head.headers, case.headers);
    }

    #[test]
    fn valid_heads_are_incomplete_until_the_blank_line(case in valid_head()) {
        let whole = parse_head(&case.bytes, DEFAULT_MAX_HEAD_LEN);
        for end in 0..case.head_len {
            prop_assert_eq!(parse_head(&case.bytes[..end], DEFAULT_MAX_HEAD_LEN), Ok(HeadParse::Incomplete));
        }
        for end in case.head_len..=case.bytes.len() {
            prop_assert_eq!(&parse_head(&case.bytes[..end], DEFAULT_MAX_HEAD_LEN), &whole);
        }
    }

    #[test]
    fn valid_heads_respect_the_limit(case in valid_head()) {
        let fits = parse_head(&case.bytes, case.head_len);
        prop_assert!(matches!(fits, Ok(HeadParse::Complete { .. })), "{:?}", fits);
        let limit = case.head_len - 1;
        let expected = if case.bytes.len() > limit {
            Err(CgiError::HeadTooLarge { limit })
        } else {
            Ok(HeadParse::Incomplete)
        };
        prop_assert_eq!(parse_head(&case.bytes, limit), expected);
    }

    #[test]
    fn scanner_matches_one_shot_parsing(
        buf in noisy_bytes(300),
        limit in 0usize..350,
        raw_cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut scanner = HeadScanner::new(limit);
        for end in cuts(buf.len(), &raw_cuts) {
            prop_assert_eq!(scanner.parse(&buf[..end]), parse_head(&buf[..end], limit), "prefix {}", end);
        }
    }

    #[test]
    fn scanner_matches_one_shot_on_valid_heads(
        case in valid_head(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut scanner = HeadScanner::default();
        let mut result = Ok(HeadParse::Incomplete);
        for end in cuts(case.bytes.len(), &raw_cuts) {
            result = scanner.parse(&case.bytes[..end]);
            if result != Ok(HeadParse::Incomplete) {
                break;
            }
        }
        prop_assert_eq!(result, parse_head(&case.bytes, DEFAULT_MAX_HEAD_LEN));
    }
}
