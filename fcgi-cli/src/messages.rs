//! The wording of the errors that several commands report, in one place: a failed connect
//! (what the error number means for a FastCGI socket), a timeout, a bad `--connect` value, a
//! Status outside 100–599, the document-root hint. Each kind has one sentence shape, whichever
//! command hit it; the exit code comes with it, from the table in `exit`.

use std::io;
use std::path::Path;
use std::time::Duration;

use fcgi_mux::TimeoutKind;

use crate::commands::exchange::human;
use crate::exit::Exit;

/// A connect that failed: the exit code and the sentence. `address` is as fcgi-mux shows it
/// (`unix:/run/php/php-fpm.sock`, `127.0.0.1:9000`).
pub fn connect_failed(address: &str, error: &io::Error) -> (Exit, String) {
    let unix = address.strip_prefix("unix:").map(Path::new);
    let errno = error.raw_os_error();
    let why = match (unix, error.kind(), errno) {
        // EMFILE, ENFILE: this process or the system ran out of file descriptors.
        (_, _, Some(24)) | (_, _, Some(23)) => {
            let which = if errno == Some(24) { "this process's (ulimit -n)" } else { "the system's" };
            return (
                Exit::Failure,
                format!(
                    "cannot connect to {address}: too many open files, {which} limit: a local limit, not the server's"
                ),
            );
        }
        // connect(2) on a unix socket whose backlog is full fails at once with EAGAIN.
        (Some(_), io::ErrorKind::WouldBlock, _) => "listen queue full: every worker is busy and the \
             socket's backlog (php-fpm's listen.backlog) is full"
            .to_string(),
        (Some(path), io::ErrorKind::ConnectionRefused, _) => match std::fs::metadata(path) {
            Ok(meta) if !is_socket(&meta) => format!("{} is {}, not a socket", path.display(), file_kind(&meta)),
            _ => "connection refused: nothing listens on the socket (a stale socket file left by a stopped server?)"
                .to_string(),
        },
        (Some(path), io::ErrorKind::NotFound, _) => match nearest_missing(path) {
            Some(dir) => format!("no such socket: the directory {} does not exist", dir.display()),
            None => "no such socket".to_string(),
        },
        (Some(_), io::ErrorKind::PermissionDenied, _) => {
            "permission denied (the socket's mode, owner and group: php-fpm's listen.owner, listen.group, listen.mode)"
                .to_string()
        }
        (None, io::ErrorKind::ConnectionRefused, _) => "connection refused: nothing listens on that port".into(),
        _ => strip_os_error(error),
    };
    (Exit::Connect, format!("cannot connect to {address}: {why}"))
}

/// A timeout: `connecting to ADDRESS timed out after 2 s (--connect-timeout)`, or for any
/// later step `no complete response from ADDRESS within 5 s (--max-time)`.
/// Without an address (`bench`, whose report names it once): `connecting timed out after …`,
/// `no complete response within …`.
pub fn timed_out(address: Option<&str>, kind: Option<TimeoutKind>, after: Duration) -> String {
    match (kind, address) {
        (Some(TimeoutKind::Connect), Some(address)) => {
            format!("connecting to {address} timed out after {} (--connect-timeout)", human(after))
        }
        (Some(TimeoutKind::Connect), None) => {
            format!("connecting timed out after {} (--connect-timeout)", human(after))
        }
        (_, Some(address)) => {
            format!("no complete response from {address} within {} (--max-time)", human(after))
        }
        (_, None) => format!("no complete response within {} (--max-time)", human(after)),
    }
}

/// `--connect` (or `$FCGI_ADDRESS`) given a URL of a scheme that is not a FastCGI address.
pub fn url_scheme(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "tcp" || scheme == "unix" {
        return None;
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let example = if authority.is_empty() { "127.0.0.1:9000".to_string() } else { authority.to_string() };
    Some(format!(
        "{text:?} is a {scheme}:// URL, but a FastCGI server is not reached by URL: give HOST:PORT \
         (--connect {example}), tcp://HOST:PORT or unix:/PATH, and the path as the PATH argument"
    ))
}

/// A CGI `Status:` outside the HTTP range.
pub fn status_out_of_range(address: &str, status: u16) -> String {
    format!("malformed CGI response from {address}: Status {status} is outside 100-599")
}

/// The hint after a 404 that php-fpm gives for a script that does not exist.
pub fn docroot_hint(script_filename: &str) -> String {
    format!(
        " (if it is php-fpm's \"File not found.\", SCRIPT_FILENAME {script_filename} does not exist: \
         run fcgi from the document root or give --docroot)"
    )
}

fn is_socket(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_socket()
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_fifo() {
        "a FIFO"
    } else {
        "a device"
    }
}

/// The highest missing ancestor directory of `path`, if its parent is missing.
fn nearest_missing(path: &Path) -> Option<&Path> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    if parent.exists() {
        return None;
    }
    let mut missing = parent;
    while let Some(up) = missing.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing = up;
    }
    Some(missing)
}

/// `No such file or directory` without the ` (os error 2)` tail.
fn strip_os_error(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_say_what_they_mean_for_a_socket() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let address = format!("unix:{}", file.path().display());
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let (exit, message) = connect_failed(&address, &refused);
        assert_eq!(exit, Exit::Connect);
        assert!(message.ends_with("is a regular file, not a socket"), "{message}");
        let (_, message) = connect_failed("unix:/run/fcgi-test-x.sock", &io::Error::from_raw_os_error(11));
        assert!(message.contains("listen queue full"), "{message}");
        let (exit, message) = connect_failed("127.0.0.1:9000", &io::Error::from_raw_os_error(24));
        assert_eq!(exit, Exit::Failure);
        assert!(message.contains("too many open files") && message.contains("local limit"), "{message}");
        let (_, message) =
            connect_failed("unix:/nonexistent-dir/a/php.sock", &io::Error::from_raw_os_error(2));
        assert_eq!(
            message,
            "cannot connect to unix:/nonexistent-dir/a/php.sock: no such socket: the directory /nonexistent-dir does not exist"
        );
        let (_, message) = connect_failed("unix:/tmp/php.sock", &io::Error::from_raw_os_error(2));
        assert_eq!(message, "cannot connect to unix:/tmp/php.sock: no such socket");
    }

    #[test]
    fn urls_are_not_addresses() {
        let message = url_scheme("http://127.0.0.1:9000/index.php").unwrap();
        assert!(message.contains("--connect 127.0.0.1:9000"), "{message}");
        assert!(url_scheme("tcp://127.0.0.1:9000").is_none());
        assert!(url_scheme("unix:///run/php.sock").is_none());
        assert!(url_scheme("127.0.0.1:9000").is_none());
        assert!(url_scheme("fcgi://h:9000").is_some());
    }

    #[test]
    fn timeouts_have_one_shape() {
        let s = Duration::from_secs(2);
        assert_eq!(
            timed_out(Some("unix:/x"), Some(TimeoutKind::Connect), s),
            "connecting to unix:/x timed out after 2 s (--connect-timeout)"
        );
        assert_eq!(
            timed_out(Some("unix:/x"), Some(TimeoutKind::FirstByte), s),
            timed_out(Some("unix:/x"), None, s)
        );
        assert_eq!(
            timed_out(None, Some(TimeoutKind::Total), s),
            "no complete response within 2 s (--max-time)"
        );
    }
}
