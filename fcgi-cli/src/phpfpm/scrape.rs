//! Asking one php-fpm pool for its status page within a deadline: the request (path and
//! query kept apart: the query goes in QUERY_STRING, never in SCRIPT_NAME), the bounded read,
//! and a failure that knows its exit code and kind.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::Empty;

use super::status::{PoolStatus, not_json};
use crate::build::status_page_params;
use crate::commands::exchange::{self, Exchange};
use crate::exit::{Exit, Failure, classify};
use crate::target::Target;

/// Most bytes of a health page read (php-fpm's full status of a big pool is a few KiB).
pub const MAX_PAGE: usize = 1024 * 1024;

/// Where the status page is and what to ask it: `--path '/status?full'` is the path `/status`
/// with the query `full`; `json` is always asked, `full` when wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusPage {
    /// php-fpm's `pm.status_path`, matched on SCRIPT_NAME.
    pub path: String,
    /// The QUERY_STRING sent: `json`, then `full` when asked, then the rest of `--path`'s query.
    pub query: String,
    /// Whether per-process data (`full`) is asked.
    pub full: bool,
}

impl StatusPage {
    /// Splits `path` at its `?`; `full` asks for per-process data (also asked when the query of
    /// `path` has `full`).
    pub fn new(path: &str, full: bool) -> StatusPage {
        let (path, given) = path.split_once('?').unwrap_or((path, ""));
        let given: Vec<&str> = given.split('&').filter(|part| !part.is_empty()).collect();
        let full = full || given.contains(&"full");
        let mut parts = vec!["json"];
        if full {
            parts.push("full");
        }
        for part in given {
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        StatusPage { path: path.to_string(), query: parts.join("&"), full }
    }

    /// REQUEST_URI as sent: how php-fpm's `?full` shows the status request's own worker.
    pub fn request_uri(&self) -> String {
        format!("{}?{}", self.path, self.query)
    }
}

/// Why a scrape failed: the exit code `fcgi status` uses (its [`Exit::kind`] names the failure
/// in the exporter's metrics) and one line saying what went wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeError {
    /// The exit code.
    pub exit: Exit,
    /// One line, without the command's prefix.
    pub message: String,
}

/// Reads the status page of `target` (under its `--max-time`) and parses it.
pub async fn scrape(target: &Target, page: &StatusPage) -> Result<PoolStatus, ScrapeError> {
    scrape_document(target, page).await.map(|(_, status)| status)
}

/// [`scrape`], also returning php-fpm's JSON document as it came (for `fcgi status --json`).
pub async fn scrape_document(
    target: &Target,
    page: &StatusPage,
) -> Result<(serde_json::Value, PoolStatus), ScrapeError> {
    let (status, body, _) = fetch(target, &page.path, &page.query).await.map_err(|error| {
        let (exit, message) = classify(&error);
        ScrapeError { exit, message: listen_queue_full(&error, target).unwrap_or(message) }
    })?;
    if !status.is_success() {
        return Err(ScrapeError {
            exit: page_exit(status),
            message: status_problem("status", &target.address.to_string(), &page.path, status),
        });
    }
    let malformed = |problem: String| ScrapeError {
        exit: Exit::Protocol,
        message: format!("{} on {}: {problem}", target.address, page.request_uri()),
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|err| malformed(not_json(&body, &err.to_string())))?;
    let parsed = PoolStatus::from_json(&doc, &page.request_uri()).map_err(malformed)?;
    Ok((doc, parsed))
}

/// A connect refused with EAGAIN: on a unix socket, the listen backlog is full (every worker is
/// busy and the queue php-fpm would report as `listen queue` — always 0 there — has no room).
pub fn listen_queue_full(error: &anyhow::Error, target: &Target) -> Option<String> {
    let fcgi_mux::Error::Connect { source, .. } = error.downcast_ref::<fcgi_mux::Error>()? else {
        return None;
    };
    (source.kind() == std::io::ErrorKind::WouldBlock).then(|| {
        format!(
            "listen queue full: {} refused the connection (EAGAIN: its backlog is full, every worker is busy)",
            target.address
        )
    })
}

/// The exit code for a health page that did not answer 2xx: 4 or 5 like `get`, and a failed
/// check (12) for anything else (a redirect, a 1xx), which `get` would count as success.
pub fn page_exit(status: http::StatusCode) -> Exit {
    match Exit::for_status(status) {
        Exit::Success => Exit::CheckFailed,
        exit => exit,
    }
}

/// `HTTP 404 Not Found on /status from unix:/x (is /status configured as php-fpm's pm.status_path?)`.
pub fn status_problem(command: &str, address: &str, path: &str, status: http::StatusCode) -> String {
    let hint = match status.as_u16() {
        404 => format!(
            " (is {path} configured as php-fpm's {}?)",
            if command == "ping" { "ping.path" } else { "pm.status_path" }
        ),
        503 => " (busy: php-fpm is overloaded or shutting down)".to_string(),
        _ => String::new(),
    };
    format!("HTTP {status} on {path} from {address}{hint}")
}

/// Fetches a health page: status, body (bounded) and time taken. `path` goes in SCRIPT_NAME,
/// `query` in QUERY_STRING.
pub async fn fetch(
    target: &Target,
    path: &str,
    query: &str,
) -> anyhow::Result<(http::StatusCode, Bytes, Duration)> {
    let uri = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
    let request = http::Request::get(uri.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|err| Failure::new(Exit::Usage, format!("invalid path {path:?}: {err}")))?;
    let mut exchange: Exchange =
        exchange::send(target, request, status_page_params(path, query), None).await?;
    let status = exchange.response.status();
    let mut body = BytesMut::new();
    while let Some(chunk) = exchange.next_chunk().await? {
        if body.len() + chunk.len() > MAX_PAGE {
            return Err(
                Failure::new(Exit::Protocol, format!("{path} answered more than {MAX_PAGE} bytes")).into()
            );
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body.freeze(), exchange.started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_split_off_the_path() {
        let page = StatusPage::new("/status?full", false);
        assert_eq!(page, StatusPage { path: "/status".into(), query: "json&full".into(), full: true });
        assert_eq!(page.request_uri(), "/status?json&full");
        assert_eq!(StatusPage::new("/status", false).query, "json");
        assert_eq!(StatusPage::new("/status", true).query, "json&full");
        assert_eq!(StatusPage::new("/fpm?json&html&&x=1", false).query, "json&html&x=1");
        assert_eq!(StatusPage::new("/fpm?", false).path, "/fpm");
    }

    #[test]
    fn pages_that_are_not_2xx_say_why() {
        assert_eq!(page_exit(http::StatusCode::NOT_FOUND), Exit::Http4xx);
        assert_eq!(page_exit(http::StatusCode::FOUND), Exit::CheckFailed);
        let text = status_problem("status", "unix:/x", "/st", http::StatusCode::NOT_FOUND);
        assert_eq!(
            text,
            "HTTP 404 Not Found on /st from unix:/x (is /st configured as php-fpm's pm.status_path?)"
        );
    }
}
