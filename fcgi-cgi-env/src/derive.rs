//! Putting it together: the derived variables in their documented order, then the headers, then
//! the configured parameters, then the checks that apply to the final set.

use std::net::IpAddr;

use http::Version;

use crate::config::{AppConfig, AppKind};
use crate::connection::{ConnectionInfo, RequestHead};
use crate::error::{Error, shorten};
use crate::params::{CgiParams, ParamValue};
use crate::{headers, path, path_info};

/// Derives the CGI/1.1 environment for one request.
///
/// `body_len` is the exact number of bytes the caller will send on FastCGI STDIN: `None` (or
/// `Some(0)`) for a request without a body. A body of unknown length (chunked) must be buffered
/// by the caller first: CONTENT_LENGTH has to equal the STDIN bytes or php-fpm loses the body
/// or hangs. A Content-Length header that disagrees with `body_len` is refused.
///
/// The output is deterministic for a given input; see `docs/CGI-ENV.md` for every parameter.
pub fn derive<'a>(
    request: impl Into<RequestHead<'a>>,
    body_len: Option<u64>,
    connection: &ConnectionInfo,
    config: &AppConfig,
) -> Result<CgiParams, Error> {
    let req = request.into();
    config.validate()?;
    let body_len = body_len.unwrap_or(0);

    let uri = req.uri;
    let raw_path = match uri.path() {
        "" if uri.scheme().is_some() => "/",
        p => p,
    };
    if !raw_path.starts_with('/') {
        return Err(Error::UnsupportedRequestTarget { target: shorten(uri.to_string().as_bytes()) });
    }
    let query = uri.query();
    let mut request_uri = raw_path.to_owned();
    if let Some(q) = query {
        request_uri.push('?');
        request_uri.push_str(q);
    }

    let document_uri = path::normalize(raw_path)?;
    let target = match &config.kind {
        AppKind::Mounted { prefix } => {
            let trimmed = path::mount_prefix(prefix)?;
            let (script, info) = path::mount_split(&document_uri, trimmed).ok_or_else(|| {
                Error::OutsideMount { prefix: shorten(prefix.as_bytes()), path: shorten(&document_uri) }
            })?;
            Target { script_name: script.to_vec(), path_info: info.to_vec(), mounted: true }
        }
        _ => {
            let split = path_info::split(&document_uri, config)?;
            Target { script_name: split.script_name, path_info: split.path_info, mounted: false }
        }
    };
    let facts = headers::collect(req.headers, config)?;

    if let Some(header) = facts.content_length {
        if header != body_len {
            return Err(Error::ContentLengthMismatch { header, body: body_len });
        }
    }

    // RFC 9112 §3.2.2: with an absolute-form target (and in HTTP/2's `:authority`) the
    // authority replaces Host, for SERVER_NAME and for HTTP_HOST alike.
    let authority = uri.authority().map(|a| {
        let a = a.as_str();
        a.rsplit('@').next().unwrap_or(a).to_owned()
    });
    let request_host = match (&authority, facts.host.as_deref()) {
        (Some(a), _) => Some(headers::parse_host(a.as_bytes())?),
        (None, Some([]) | None) => None,
        (None, Some(h)) => Some(headers::parse_host(h)?),
    };

    let tls = connection.tls;
    let server_name = config
        .server_name
        .clone()
        .or_else(|| request_host.as_ref().map(|(h, _)| h.clone()))
        .or_else(|| connection.server.as_ref().and_then(|s| s.ip()).map(host_of_ip));
    let server_port = config
        .server_port
        .or_else(|| connection.server.as_ref().and_then(|s| s.port()))
        .or_else(|| request_host.as_ref().and_then(|(_, p)| *p))
        .unwrap_or(if tls { 443 } else { 80 });

    let root = &config.document_root[..];
    // A root of `/` would otherwise give `//script.php`.
    let prefix: &[u8] = if root == b"/" { b"" } else { root };
    let joined = |tail: &[u8]| [prefix, tail].concat();

    // The derived variables (at most 22), the headers, the configured ones, and a few that a
    // front end sets afterwards: one allocation.
    let mut p = CgiParams::with_capacity(26 + facts.http.len() + config.params.len());
    p.push_unchecked("GATEWAY_INTERFACE", "CGI/1.1");
    p.push_unchecked("SERVER_SOFTWARE", ParamValue::shared(&config.server_software));
    p.push_unchecked("SERVER_PROTOCOL", protocol(req.version));
    if let Some(name) = server_name {
        p.push_unchecked("SERVER_NAME", name);
    }
    if let Some(server) = &connection.server {
        p.push_unchecked("SERVER_ADDR", server.addr_value());
    }
    p.push_unchecked("SERVER_PORT", server_port.to_string());
    p.push_unchecked("REQUEST_SCHEME", if tls { "https" } else { "http" });
    if tls {
        p.push_unchecked("HTTPS", "on");
    }
    if let Some(client) = &connection.client {
        p.push_unchecked("REMOTE_ADDR", client.addr_value());
        if let Some(port) = client.port() {
            p.push_unchecked("REMOTE_PORT", port.to_string());
        }
    }
    p.push_unchecked("REQUEST_METHOD", method(req.method));
    p.push_unchecked("REQUEST_URI", request_uri);
    p.push_unchecked("DOCUMENT_URI", document_uri);
    p.push_unchecked("QUERY_STRING", query.map_or(ParamValue::from(""), |q| q.to_owned().into()));
    let Target { script_name, path_info, mounted } = target;
    if mounted {
        // PEP 3333: SCRIPT_NAME may be empty (mounted at `/`), PATH_INFO may be empty (the
        // prefix itself); both are sent, and there is no file behind them.
        p.push_unchecked("SCRIPT_NAME", script_name);
        p.push_unchecked("PATH_INFO", path_info);
    } else {
        p.push_unchecked("DOCUMENT_ROOT", ParamValue::shared(&config.document_root));
        let script_filename = joined(&script_name);
        p.push_unchecked("SCRIPT_NAME", script_name);
        p.push_unchecked("SCRIPT_FILENAME", script_filename);
        if !path_info.is_empty() {
            let path_translated = joined(&path_info);
            p.push_unchecked("PATH_INFO", path_info);
            p.push_unchecked("PATH_TRANSLATED", path_translated);
        }
    }
    p.push_unchecked(
        "CONTENT_LENGTH",
        if body_len == 0 { "0".into() } else { ParamValue::from(body_len.to_string()) },
    );
    if let Some(ct) = facts.content_type {
        p.push_unchecked("CONTENT_TYPE", ct);
    }
    if let Some(status) = &config.redirect_status {
        p.push_unchecked("REDIRECT_STATUS", ParamValue::shared(status));
    }
    let mut http = facts.http;
    if let Some(authority) = authority {
        match http.iter_mut().find(|(n, _)| &**n == "HTTP_HOST") {
            Some((_, v)) => *v = authority.into_bytes(),
            None => http.push(("HTTP_HOST".into(), authority.into_bytes())),
        }
    }
    for (name, value) in http {
        p.push_unchecked(name, value);
    }

    for (name, value) in &config.params {
        p.upsert(name.clone().into(), value.clone().into());
    }
    for name in &config.unset {
        p.remove(name);
    }

    check_content_length(&p, body_len)?;
    p.check_sizes()?;
    Ok(p)
}

/// SCRIPT_NAME and PATH_INFO for either kind of application; the mounted kind has no file.
struct Target {
    script_name: Vec<u8>,
    path_info: Vec<u8>,
    mounted: bool,
}

/// A configured CONTENT_LENGTH must still equal the body; it may be unset only without a body.
fn check_content_length(p: &CgiParams, body_len: u64) -> Result<(), Error> {
    match p.get("CONTENT_LENGTH") {
        Some(v) if v == body_len.to_string().as_bytes() => Ok(()),
        None if body_len == 0 => Ok(()),
        other => Err(Error::ContentLengthOverride {
            given: other.map_or_else(|| "<unset>".to_owned(), shorten),
            body: body_len,
        }),
    }
}

/// The standard methods' names are `'static`; others (extension methods) are copied.
fn method(method: &http::Method) -> ParamValue {
    const STANDARD: [&str; 9] =
        ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"];
    match STANDARD.iter().find(|m| **m == method.as_str()) {
        Some(name) => ParamValue::from(*name),
        None => ParamValue::from(method.as_str().to_owned()),
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn host_of_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}
