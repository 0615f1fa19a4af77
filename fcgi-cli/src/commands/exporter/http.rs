//! The exporter's HTTP side: `/metrics` (text 0.0.4, or OpenMetrics when the Accept header asks
//! for it), `/healthz` (the exporter itself), `/` (the pools and their last result), and the
//! optional basic authentication.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::Full;

use super::auth::Users;
use super::scraper::{Scraper, Snapshot};
use crate::phpfpm::metrics::{Format, render};

/// Prometheus' header giving its scrape timeout in seconds.
pub const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// Kept from Prometheus' timeout so the answer arrives before it gives up.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(100);

/// What every request needs.
pub struct App {
    /// The scraper.
    pub scraper: Arc<Scraper>,
    /// `--scrape-timeout`.
    pub scrape_timeout: Duration,
    /// `--basic-auth-file`'s users, when given.
    pub users: Option<Users>,
    /// `--openmetrics`: negotiate the format.
    pub openmetrics: bool,
}

/// Answers one request.
pub async fn handle<B>(request: Request<B>, app: Arc<App>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    if path == "/healthz" {
        return Ok(text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()));
    }
    if let Some(users) = &app.users {
        if !users.allows(request.headers().get(header::AUTHORIZATION)) {
            let mut response =
                text(StatusCode::UNAUTHORIZED, "text/plain; charset=utf-8", "unauthorized\n".into());
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Basic realm=\"fcgi exporter\", charset=\"UTF-8\""),
            );
            return Ok(response);
        }
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response =
            text(StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "GET or HEAD\n".into());
        response.headers_mut().insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    Ok(match path {
        "/metrics" => {
            let timeout = scrape_timeout(app.scrape_timeout, request.headers());
            let format = if app.openmetrics { negotiate(request.headers()) } else { Format::Prometheus };
            let snapshot = app.scraper.scrape_shared(timeout).await;
            let body = render(&app.scraper.families(&snapshot), format);
            text(StatusCode::OK, format.content_type(), body)
        }
        "/" => text(StatusCode::OK, "text/html; charset=utf-8", index(app.scraper.last().as_deref())),
        _ => text(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found: try /metrics\n".into()),
    })
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

/// `--scrape-timeout`, shortened to fit Prometheus' own timeout (less [`TIMEOUT_MARGIN`], or
/// half of it when it is shorter than twice the margin). A malformed header is ignored.
pub fn scrape_timeout(configured: Duration, headers: &HeaderMap) -> Duration {
    let offered = headers
        .get(SCRAPE_TIMEOUT_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map(|seconds| Duration::from_secs_f64(seconds.min(86_400.0)));
    match offered {
        None => configured,
        Some(offered) if offered > TIMEOUT_MARGIN * 2 => configured.min(offered - TIMEOUT_MARGIN),
        Some(offered) => configured.min(offered / 2),
    }
}

/// OpenMetrics when the client accepts it (Prometheus does, first), else text 0.0.4.
pub fn negotiate(headers: &HeaderMap) -> Format {
    let accepts_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let kind = parts.next().unwrap_or("");
            let refused = parts.any(|param| param.replace(' ', "") == "q=0");
            kind.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        });
    if accepts_openmetrics { Format::OpenMetrics } else { Format::Prometheus }
}

/// The `/` page: every pool of the last scrape with its result.
fn index(snapshot: Option<&Snapshot>) -> String {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>fcgi exporter</title></head><body>\n\
         <h1>fcgi exporter</h1>\n<p><a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a></p>\n",
    );
    match snapshot {
        None => page.push_str("<p>No scrape yet: the pools are asked when /metrics is.</p>\n"),
        Some(snapshot) => {
            page.push_str(&format!(
                "<p>Last scrape: {} pools in {:.3} s.</p>\n",
                snapshot.pools.len(),
                snapshot.duration.as_secs_f64()
            ));
            if let Some(error) = &snapshot.dir_error {
                page.push_str(&format!("<p>{}</p>\n", html(error)));
            }
            page.push_str("<table border=\"1\">\n<tr><th>scrape_uri</th><th>pool</th><th>up</th><th>time</th><th>failures</th><th>last result</th></tr>\n");
            for (uri, state) in &snapshot.pools {
                let (up, result) = match &state.last {
                    Ok(status) => (
                        "1",
                        format!(
                            "{} idle, {} active, {} total (pm {})",
                            status.idle, status.active, status.total, status.process_manager
                        ),
                    ),
                    Err(error) => ("0", format!("{}: {}", error.exit.kind(), error.message)),
                };
                page.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{up}</td><td>{:.3} s</td><td>{}</td><td>{}</td></tr>\n",
                    html(uri),
                    html(&state.pool),
                    state.duration.as_secs_f64(),
                    state.failures,
                    html(&result)
                ));
            }
            page.push_str("</table>\n");
        }
    }
    page.push_str("</body></html>\n");
    page
}

/// Escapes text for HTML.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn prometheus_timeout_header_shortens_the_scrape() {
        let two = Duration::from_secs(2);
        assert_eq!(scrape_timeout(two, &headers(&[])), two);
        assert_eq!(
            scrape_timeout(two, &headers(&[(SCRAPE_TIMEOUT_HEADER, "1")])),
            Duration::from_millis(900)
        );
        assert_eq!(scrape_timeout(two, &headers(&[(SCRAPE_TIMEOUT_HEADER, "10")])), two, "never longer");
        assert_eq!(
            scrape_timeout(two, &headers(&[(SCRAPE_TIMEOUT_HEADER, "0.1")])),
            Duration::from_millis(50)
        );
        for bad in ["x", "-1", "0", "NaN", "inf", ""] {
            assert_eq!(scrape_timeout(two, &headers(&[(SCRAPE_TIMEOUT_HEADER, bad)])), two, "{bad}");
        }
    }

    #[test]
    fn openmetrics_when_accepted() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(&headers(&[("accept", prometheus)])), Format::OpenMetrics);
        assert_eq!(negotiate(&headers(&[])), Format::Prometheus);
        assert_eq!(negotiate(&headers(&[("accept", "text/plain")])), Format::Prometheus);
        assert_eq!(
            negotiate(&headers(&[("accept", "application/openmetrics-text; q=0")])),
            Format::Prometheus
        );
    }

    #[test]
    fn the_index_escapes_what_it_shows() {
        assert_eq!(html("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        assert!(index(None).contains("No scrape yet"));
    }
}
