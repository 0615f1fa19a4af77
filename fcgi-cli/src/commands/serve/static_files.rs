//! Static files: Content-Type from the extension, ETag and Last-Modified, conditional requests
//! (If-None-Match, If-Modified-Since → 304), one byte range (Range, If-Range → 206 or 416),
//! HEAD. The decisions are pure functions of the request headers and the file's metadata,
//! tested without files; [`respond`] reads the file.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode};

use super::mime;
use super::response::ServeBody;
use super::route::StaticFile;

/// Files up to this size are read whole (one read from the page cache); larger ones stream.
const READ_WHOLE_MAX: u64 = 256 * 1024;

/// A file's validators: its strong ETag (nginx's form, `"<mtime hex>-<size hex>"`) and its
/// modification time in whole seconds (what Last-Modified can say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    /// The ETag, quotes included.
    pub etag: String,
    /// Seconds since the epoch.
    pub modified: u64,
}

impl Validators {
    /// From a file's size and modification time.
    pub fn new(len: u64, modified: SystemTime) -> Validators {
        let modified = modified.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Validators { etag: format!("\"{modified:x}-{len:x}\""), modified }
    }

    fn last_modified(&self) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(self.modified))
    }
}

/// True when the client's copy is current: If-None-Match lists the ETag (or `*`), or, without
/// If-None-Match, If-Modified-Since is not older than the file (RFC 9110 §13.2.2).
pub fn not_modified(headers: &HeaderMap, validators: &Validators) -> bool {
    let mut none_match = headers.get_all(header::IF_NONE_MATCH).iter().peekable();
    if none_match.peek().is_some() {
        return none_match.filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|tag| {
            let tag = tag.trim();
            // Weak comparison: W/"x" matches "x".
            tag == "*" || tag.trim_start_matches("W/") == validators.etag
        });
    }
    match headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) {
        Some(date) => httpdate::parse_http_date(date)
            .ok()
            .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
            .is_some_and(|since| validators.modified <= since.as_secs()),
        None => false,
    }
}

/// What a Range header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole file (no Range, one that does not apply, or several ranges).
    Whole,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// No byte of the range exists: 416.
    Unsatisfiable,
}

/// Reads `Range: bytes=a-b | a- | -n` (one range; several are answered with the whole file,
/// which RFC 9110 allows). If-Range must match the ETag or the Last-Modified date exactly,
/// else the whole file is sent.
pub fn range(headers: &HeaderMap, len: u64, validators: &Validators) -> RangeAnswer {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeAnswer::Whole;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let if_range = if_range.trim();
        let matches = if if_range.starts_with('"') {
            if_range == validators.etag
        } else {
            if_range == validators.last_modified()
        };
        if !matches {
            return RangeAnswer::Whole;
        }
    }
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return RangeAnswer::Whole };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeAnswer::Whole };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // bytes=-n: the last n bytes.
        return match number(last) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if len == 0 => RangeAnswer::Unsatisfiable,
            Some(suffix) => RangeAnswer::Part { start: len.saturating_sub(suffix), end: len - 1 },
            None => RangeAnswer::Whole,
        };
    }
    let Some(start) = number(first) else { return RangeAnswer::Whole };
    let last = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(end) if end >= start => Some(end),
            _ => return RangeAnswer::Whole,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Part { start, end: last.map_or(len - 1, |end| end.min(len - 1)) }
}

/// Opens a file routed by its path, then asks for its metadata: the file described is the
/// file sent, even if the path changes meanwhile. Non-blocking, so that a FIFO swapped in after
/// routing cannot hold the server in `open` (it is then refused as not a regular file).
fn open(path: &Path) -> Option<(std::fs::File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(path).ok()?;
    let meta = file.metadata().ok().filter(std::fs::Metadata::is_file)?;
    Some((file, meta))
}

/// The response for a routed regular file (inside the document root).
pub async fn respond(method: &Method, headers: &HeaderMap, routed: StaticFile) -> Response<ServeBody> {
    let path = routed.path.as_path();
    let Some((file, meta)) = routed.opened.or_else(|| open(path)) else {
        return super::response::text(StatusCode::NOT_FOUND);
    };
    let len = meta.len();
    let validators = Validators::new(len, meta.modified().unwrap_or(UNIX_EPOCH));
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, mime::content_type(path))
        .header(header::ETAG, &validators.etag)
        .header(header::LAST_MODIFIED, validators.last_modified())
        .header(header::ACCEPT_RANGES, "bytes");
    if not_modified(headers, &validators) {
        return with_body(builder.status(StatusCode::NOT_MODIFIED), ServeBody::empty());
    }
    let (status, start, count) = match range(headers, len, &validators) {
        RangeAnswer::Whole => (StatusCode::OK, 0, len),
        RangeAnswer::Part { start, end } => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            let response = builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"));
            return with_body(response, ServeBody::empty());
        }
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, count);
    if method == Method::HEAD {
        return with_body(builder, ServeBody::empty_with_length(count));
    }
    let body = if count <= READ_WHOLE_MAX {
        match read_part(&file, start, count) {
            Ok(bytes) => ServeBody::full(bytes),
            Err(_) => return super::response::text(StatusCode::NOT_FOUND),
        }
    } else {
        match ServeBody::file(file, start, count).await {
            Ok(body) => body,
            Err(_) => return super::response::text(StatusCode::NOT_FOUND),
        }
    };
    with_body(builder, body)
}

/// `count` bytes from `start`, in one read for a file that did not shrink. (The buffer is
/// zeroed first: `read_to_end` would skip that but reads in growing steps, several system
/// calls for one file.)
fn read_part(file: &std::fs::File, start: u64, count: u64) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; count as usize];
    file.read_exact_at(&mut bytes, start)?;
    Ok(Bytes::from(bytes))
}

fn with_body(builder: http::response::Builder, body: ServeBody) -> Response<ServeBody> {
    builder.body(body).unwrap_or_else(|_| super::response::text(StatusCode::INTERNAL_SERVER_ERROR))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn validators() -> Validators {
        Validators::new(1000, UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.css");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        // A blocking open would hold the thread, where no timer can reach it: answer on a
        // thread of its own and wait for it with a deadline.
        let (sent, answered) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let response =
                runtime.block_on(respond(&Method::GET, &HeaderMap::new(), StaticFile::at(fifo.clone())));
            let _ = sent.send(response.status());
        });
        let status =
            answered.recv_timeout(std::time::Duration::from_secs(5)).expect("open must not block on a FIFO");
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_part_is_read_exactly_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let open = || std::fs::File::open(&path).unwrap();
        assert_eq!(read_part(&open(), 0, 10).unwrap(), "0123456789");
        assert_eq!(read_part(&open(), 0, 4).unwrap(), "0123");
        assert_eq!(read_part(&open(), 7, 3).unwrap(), "789");
        // The file shrank between fstat and the read: an error, never a short body.
        for (start, count) in [(0, 11), (5, 6)] {
            let error = read_part(&open(), start, count).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{start} {count}");
        }
    }

    #[tokio::test]
    async fn a_small_file_is_sent_whole_and_a_range_in_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, b"0123456789").unwrap();
        let whole = respond(&Method::GET, &HeaderMap::new(), StaticFile::at(path.clone())).await;
        assert_eq!(whole.status(), StatusCode::OK);
        assert_eq!(
            http_body_util::BodyExt::collect(whole.into_body()).await.unwrap().to_bytes(),
            "0123456789"
        );
        let part =
            respond(&Method::GET, &headers(&[("range", "bytes=2-4")]), StaticFile::at(path.clone())).await;
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(http_body_util::BodyExt::collect(part.into_body()).await.unwrap().to_bytes(), "234");
    }

    #[test]
    fn etag_is_nginx_shaped() {
        assert_eq!(validators().etag, "\"6553f100-3e8\"");
        assert_eq!(validators().last_modified(), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn conditionals() {
        let v = validators();
        assert!(!not_modified(&headers(&[]), &v));
        assert!(not_modified(&headers(&[("if-none-match", "\"6553f100-3e8\"")]), &v));
        assert!(not_modified(&headers(&[("if-none-match", "\"x\", W/\"6553f100-3e8\"")]), &v));
        assert!(not_modified(&headers(&[("if-none-match", "*")]), &v));
        assert!(!not_modified(&headers(&[("if-none-match", "\"other\"")]), &v));
        assert!(not_modified(&headers(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")]), &v));
        assert!(not_modified(&headers(&[("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")]), &v));
        assert!(!not_modified(&headers(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT")]), &v));
        assert!(!not_modified(&headers(&[("if-modified-since", "garbage")]), &v));
        // If-None-Match wins over If-Modified-Since.
        let both = headers(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT"),
        ]);
        assert!(!not_modified(&both, &v));
    }

    #[test]
    fn ranges() {
        let v = validators();
        let ask = |value: &str| range(&headers(&[("range", value)]), 1000, &v);
        assert_eq!(range(&headers(&[]), 1000, &v), RangeAnswer::Whole);
        assert_eq!(ask("bytes=0-99"), RangeAnswer::Part { start: 0, end: 99 });
        assert_eq!(ask("bytes=900-"), RangeAnswer::Part { start: 900, end: 999 });
        assert_eq!(ask("bytes=900-5000"), RangeAnswer::Part { start: 900, end: 999 });
        assert_eq!(ask("bytes=-10"), RangeAnswer::Part { start: 990, end: 999 });
        assert_eq!(ask("bytes=-5000"), RangeAnswer::Part { start: 0, end: 999 });
        assert_eq!(ask("bytes=1000-"), RangeAnswer::Unsatisfiable);
        assert_eq!(ask("bytes=-0"), RangeAnswer::Unsatisfiable);
        for ignored in
            ["bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=a-b", "bytes=", "bytes=-", "bytes=+1-2"]
        {
            assert_eq!(ask(ignored), RangeAnswer::Whole, "{ignored}");
        }
        let stale = headers(&[("range", "bytes=0-1"), ("if-range", "\"old\"")]);
        assert_eq!(range(&stale, 1000, &v), RangeAnswer::Whole);
        let current = headers(&[("range", "bytes=0-1"), ("if-range", "\"6553f100-3e8\"")]);
        assert_eq!(range(&current, 1000, &v), RangeAnswer::Part { start: 0, end: 1 });
        let dated = headers(&[("range", "bytes=0-1"), ("if-range", "Tue, 14 Nov 2023 22:13:20 GMT")]);
        assert_eq!(range(&dated, 1000, &v), RangeAnswer::Part { start: 0, end: 1 });
        assert_eq!(range(&headers(&[("range", "bytes=0-")]), 0, &v), RangeAnswer::Unsatisfiable);
    }
}
