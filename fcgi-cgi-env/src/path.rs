//! The request path: percent-decoded exactly once, control bytes refused, slashes merged,
//! dot-segments resolved, and never above the document root.
//!
//! The result is only ever used as decoded bytes; nothing downstream decodes it again, so
//! `%252e%252e` stays the literal file name `%2e%2e`.

use crate::error::Error;

/// Decodes and normalises an absolute request path (the raw path of the URI, without the query).
///
/// The result starts with `/`, contains no empty, `.` or `..` segments, and ends with `/` when
/// the request named a directory (`/a/`, `/a/.`, `/a/b/..`).
pub(crate) fn normalize(raw: &str) -> Result<Vec<u8>, Error> {
    let decoded = percent_decode(raw.as_bytes())?;
    if let Some(&byte) = decoded.iter().find(|b| is_forbidden(**b)) {
        return Err(Error::ForbiddenByteInPath { byte });
    }
    resolve_segments(&decoded)
}

/// NUL, CR, LF and every other C0 control byte, and DEL.
pub(crate) fn is_forbidden(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex);
            let lo = raw.get(i + 2).copied().and_then(hex);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(Error::InvalidPercentEncoding { offset: i }),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn resolve_segments(decoded: &[u8]) -> Result<Vec<u8>, Error> {
    if decoded.first() != Some(&b'/') {
        return Err(Error::UnsupportedRequestTarget { target: crate::error::shorten(decoded) });
    }
    let mut stack: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split(|b| *b == b'/').skip(1) {
        trailing_slash = false;
        match segment {
            b"" | b"." => trailing_slash = true,
            b".." => {
                if stack.pop().is_none() {
                    return Err(Error::PathEscapesDocumentRoot);
                }
                trailing_slash = true;
            }
            _ => stack.push(segment),
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for segment in &stack {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if trailing_slash || stack.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// Checks a mount prefix and returns it without its trailing slashes (`""` for `/`).
///
/// A prefix is a decoded absolute path made of ordinary segments: no control bytes, no empty,
/// `.` or `..` segment (a trailing `/` is allowed), so that it can be compared with normalised
/// request paths byte for byte.
pub(crate) fn mount_prefix(prefix: &str) -> Result<&[u8], Error> {
    let bad = || Error::InvalidMountPrefix { prefix: crate::error::shorten(prefix.as_bytes()) };
    let bytes = prefix.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.iter().any(|b| is_forbidden(*b)) {
        return Err(bad());
    }
    let trimmed = prefix.trim_end_matches('/').as_bytes();
    if trimmed.split(|b| *b == b'/').skip(1).any(|s| s.is_empty() || s == b"." || s == b"..") {
        return Err(bad());
    }
    Ok(trimmed)
}

/// Splits a normalised path under a checked, trimmed mount prefix into SCRIPT_NAME (the
/// prefix) and PATH_INFO (the rest, `""` for the prefix itself). Whole segments only.
pub(crate) fn mount_split<'p>(path: &'p [u8], prefix: &[u8]) -> Option<(&'p [u8], &'p [u8])> {
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() || rest.first() == Some(&b'/') { Some(path.split_at(prefix.len())) } else { None }
}

/// True when a part cut out of a normalised path still contains a `..` segment (defence in
/// depth for parts chosen by a user pattern).
pub(crate) fn has_dot_dot(part: &[u8]) -> bool {
    part.split(|b| *b == b'/').any(|s| s == b"..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        String::from_utf8(normalize(raw).unwrap()).unwrap()
    }

    #[test]
    fn normalises() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("/", "/"),
            ("/index.php", "/index.php"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/.", "/a/"),
            ("/a/b/..", "/a/"),
            ("/a/../b.php", "/b.php"),
            ("/a/b/../../c", "/c"),
            ("/..a/b..", "/..a/b.."),
            ("/...", "/..."),
            ("/%61%62c", "/abc"),
            ("/%2e/x", "/x"),
            ("/a/%2E%2e/b", "/b"),
            ("/a%2fb", "/a/b"),
            ("/a%2F..%2Fb", "/b"),
            ("/%252e%252e/x", "/%2e%2e/x"),
            ("/my+script.php", "/my+script.php"),
            ("/1%202", "/1 2"),
            ("/%7e", "/~"),
        ];
        for (raw, want) in cases {
            assert_eq!(ok(raw), *want, "{raw}");
        }
    }

    #[test]
    fn refuses() {
        #[rustfmt::skip]
        let cases: &[(&str, Error)] = &[
            ("/..", Error::PathEscapesDocumentRoot),
            ("/../etc/passwd", Error::PathEscapesDocumentRoot),
            ("/a/../../etc/passwd", Error::PathEscapesDocumentRoot),
            ("/%2e%2e/etc/passwd", Error::PathEscapesDocumentRoot),
            ("/%2E%2e/etc/passwd", Error::PathEscapesDocumentRoot),
            ("/.%2E/etc/passwd", Error::PathEscapesDocumentRoot),
            ("/a/..%2f..%2fetc/passwd", Error::PathEscapesDocumentRoot),
            ("/a%2f..%2F..%2Fetc", Error::PathEscapesDocumentRoot),
            ("/x.php%00.jpg", Error::ForbiddenByteInPath { byte: 0 }),
            ("/x.php%0a", Error::ForbiddenByteInPath { byte: b'\n' }),
            ("/x.php%0D", Error::ForbiddenByteInPath { byte: b'\r' }),
            ("/x%09y", Error::ForbiddenByteInPath { byte: b'\t' }),
            ("/x%7f", Error::ForbiddenByteInPath { byte: 0x7f }),
            ("/%", Error::InvalidPercentEncoding { offset: 1 }),
            ("/%4", Error::InvalidPercentEncoding { offset: 1 }),
            ("/a%zz", Error::InvalidPercentEncoding { offset: 2 }),
            ("/%%41", Error::InvalidPercentEncoding { offset: 1 }),
            ("*", Error::UnsupportedRequestTarget { target: "*".into() }),
            ("", Error::UnsupportedRequestTarget { target: "".into() }),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).unwrap_err(), *want, "{raw}");
        }
    }

    #[test]
    fn mount_prefixes() {
        for (prefix, want) in
            [("/", ""), ("//", ""), ("/app", "/app"), ("/app/", "/app"), ("/a b/c", "/a b/c")]
        {
            assert_eq!(mount_prefix(prefix).unwrap(), want.as_bytes(), "{prefix}");
        }
        for bad in ["", "app", "/a//b", "/a/./b", "/a/..", "/..", "/a\nb", "/a\0"] {
            assert!(matches!(mount_prefix(bad), Err(Error::InvalidMountPrefix { .. })), "{bad:?}");
        }
    }

    #[test]
    #[allow(clippy::type_complexity)] // one tuple per table row
    fn mount_splits_on_whole_segments() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, Option<(&str, &str)>)] = &[
            ("/",        "",     Some(("", "/"))),
            ("/raw",     "",     Some(("", "/raw"))),
            ("/app",     "/app", Some(("/app", ""))),
            ("/app/",    "/app", Some(("/app", "/"))),
            ("/app/x/y", "/app", Some(("/app", "/x/y"))),
            ("/appx",    "/app", None),
            ("/ap",      "/app", None),
            ("/",        "/app", None),
        ];
        for (path, prefix, want) in cases {
            let got = mount_split(path.as_bytes(), prefix.as_bytes());
            let want = want.map(|(s, i)| (s.as_bytes(), i.as_bytes()));
            assert_eq!(got, want, "{path} under {prefix:?}");
        }
    }

    #[test]
    fn non_utf8_bytes_survive() {
        assert_eq!(normalize("/%ff%fe.php").unwrap(), b"/\xff\xfe.php");
    }
}
