//! Turning command-line flags into an HTTP request and its FastCGI parameters (through
//! `fcgi-cgi-env`, so the environment is the same one a web server would send).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use fcgi_cgi_env::{AppConfig, AppKind, ConnectionInfo as CgiConnection, Endpoint};
use fcgi_mux::Address;
use http::{HeaderName, HeaderValue, Method};
use http_body_util::Full;

use crate::cli::RequestSpec;
use crate::exit::{Exit, Failure};
use crate::target::Target;

/// The environment variable naming the default document root.
pub const DOCROOT_VAR: &str = "FCGI_DOCROOT";
/// The environment variable naming the default mount prefix (as `--mount`).
pub const MOUNT_VAR: &str = "FCGI_MOUNT";

/// A request ready to send.
pub struct Built {
    /// The HTTP request (its body in memory).
    pub request: http::Request<Full<Bytes>>,
    /// The request body (the same bytes as the request's), for senders that repeat it.
    pub body: Bytes,
    /// The FastCGI parameters, in order.
    pub params: fcgi_cgi_env::CgiParams,
}

impl Built {
    /// The parameters as the client library takes them. The fixed CGI names and values are
    /// `'static` and go over without a copy (most of a request's parameters).
    pub fn param_pairs(&self) -> Vec<(Bytes, Bytes)> {
        into_pairs(self.params.clone())
    }
}

/// `params` as the client library takes them, without a copy of any name or value.
pub fn into_pairs(params: fcgi_cgi_env::CgiParams) -> Vec<(Bytes, Bytes)> {
    params.into_iter().map(|(name, value)| (name.into(), value.into())).collect()
}

/// Builds the request for `path` from the flags; `default_method` is the command's (`None`
/// for `request`, which needs -X).
pub fn build(
    path: &str,
    default_method: Option<Method>,
    spec: &RequestSpec,
    target: &Target,
) -> Result<Built, Failure> {
    let mut body = read_body(spec)?;
    let mut default_method = default_method;
    let with_query;
    let path = if spec.curl.get {
        // -G: the data goes in the query string of a GET (curl's habit).
        with_query = crate::curl_compat::path_with_query(path, &body);
        body = Bytes::new();
        default_method = Some(Method::GET);
        with_query.as_str()
    } else {
        path
    };
    let method = method(spec, default_method, !body.is_empty())?;
    if !path.starts_with('/') {
        return Err(usage(format!("the path must start with '/': {path:?}")));
    }
    let uri: http::Uri =
        path.parse().map_err(|err| usage(format!("invalid request path {path:?}: {err}")))?;
    let mut request = http::Request::builder().method(method).uri(uri);
    let mut has_host = false;
    let mut has_content_type = false;
    let mut given = Vec::new();
    for header in &spec.headers {
        let (name, value) = parse_header(header)?;
        has_host |= name == http::header::HOST;
        has_content_type |= name == http::header::CONTENT_TYPE;
        given.push(name.clone());
        request = request.header(name, value);
    }
    for (name, value) in crate::curl_compat::headers(&spec.curl, &given)? {
        request = request.header(name, value);
    }
    if !has_host {
        request = request.header(http::header::HOST, "localhost");
    }
    let form =
        !spec.data.is_empty() || !spec.curl.data_raw.is_empty() || !spec.curl.data_urlencode.is_empty();
    if form && !spec.curl.get && !has_content_type {
        request = request.header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let body_len = body.len() as u64;
    let request =
        request.body(Full::new(body.clone())).map_err(|err| usage(format!("invalid request: {err}")))?;
    let config = app_config(spec)?;
    let connection = cgi_connection(&target.address);
    let params = fcgi_cgi_env::derive(&request, Some(body_len), &connection, &config).map_err(|err| {
        let hint = match (&err, config.app_kind()) {
            (fcgi_cgi_env::Error::OutsideMount { .. }, AppKind::Mounted { prefix }) => {
                format!(" (--mount {prefix} serves only {prefix} and the paths below it)")
            }
            _ => String::new(),
        };
        usage(format!("cannot build the request for {path}: {err}{hint}"))
    })?;
    Ok(Built { request, body, params })
}

fn usage(message: String) -> Failure {
    Failure::new(Exit::Usage, message)
}

fn method(spec: &RequestSpec, default: Option<Method>, has_body: bool) -> Result<Method, Failure> {
    if spec.head {
        if spec.method.is_some() {
            return Err(usage("-I/--head and -X cannot be used together".into()));
        }
        return Ok(Method::HEAD);
    }
    let method = match (&spec.method, default) {
        (Some(text), _) => Method::from_bytes(text.to_ascii_uppercase().as_bytes())
            .map_err(|_| usage(format!("invalid method {text:?}")))?,
        (None, Some(method)) => method,
        (None, None) => return Err(usage("`fcgi request` needs a method: -X METHOD".into())),
    };
    if has_body && (method == Method::GET || method == Method::HEAD) && spec.method.is_none() {
        return Err(usage("`fcgi get` sends no body: use `fcgi post`, or -X METHOD".into()));
    }
    Ok(method)
}

/// Parses `Name: value`.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), Failure> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| usage(format!("header {text:?} is not of the form 'Name: value'")))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| usage(format!("invalid header name {:?}", name.trim())))?;
    let value =
        HeaderValue::from_str(value.trim()).map_err(|_| usage(format!("invalid value for header {name}")))?;
    Ok((name, value))
}

fn read_body(spec: &RequestSpec) -> Result<Bytes, Failure> {
    let curl = &spec.curl;
    if spec.data.is_empty()
        && spec.data_binary.is_empty()
        && curl.data_raw.is_empty()
        && curl.data_urlencode.is_empty()
    {
        return Ok(Bytes::new());
    }
    let mut parts = Vec::new();
    for data in &spec.data {
        let mut bytes = read_data(data)?;
        if data.starts_with('@') {
            // As curl -d: newlines of files are not sent.
            bytes.retain(|b| *b != b'\r' && *b != b'\n');
        }
        parts.push(bytes);
    }
    parts.extend(crate::curl_compat::data_parts(curl, read_data)?);
    for data in &spec.data_binary {
        parts.push(read_data(data)?);
    }
    Ok(Bytes::from(parts.join(&b'&')))
}

fn read_data(data: &str) -> Result<Vec<u8>, Failure> {
    let Some(source) = data.strip_prefix('@') else {
        return Ok(data.as_bytes().to_vec());
    };
    let mut bytes = Vec::new();
    let result = if source == "-" {
        std::io::stdin().lock().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(source).and_then(|mut file| file.read_to_end(&mut bytes)).map(|_| ())
    };
    result.map_err(|err| {
        let what = if source == "-" { "standard input".to_string() } else { format!("data file {source}") };
        Failure::new(Exit::Read, format!("cannot read {what}: {err}"))
    })?;
    Ok(bytes)
}

fn app_config(spec: &RequestSpec) -> Result<AppConfig, Failure> {
    let mut config = match mount(spec) {
        Some(prefix) => AppConfig::mounted(prefix),
        None => {
            let docroot = docroot(spec.docroot.as_deref())?;
            AppConfig::new(docroot.to_string_lossy().into_owned()).index(Some(&spec.index))
        }
    };
    if let Some(filename) = &spec.script_filename {
        config = config.param("SCRIPT_FILENAME", filename.as_bytes().to_vec());
    }
    for param in &spec.params {
        let (name, value) = param
            .split_once('=')
            .ok_or_else(|| usage(format!("--param {param:?} is not of the form NAME=VALUE")))?;
        if name.is_empty() {
            return Err(usage(format!("--param {param:?} has an empty name")));
        }
        config = config.param(name, value.as_bytes().to_vec());
    }
    config.validate().map_err(|err| usage(format!("invalid configuration: {err}")))?;
    Ok(config)
}

/// `--mount`, else `$FCGI_MOUNT` unless `--docroot` is given (an explicit flag beats the
/// environment); an empty `$FCGI_MOUNT` counts as unset.
fn mount(spec: &RequestSpec) -> Option<String> {
    if let Some(prefix) = &spec.mount {
        return Some(prefix.clone());
    }
    if spec.docroot.is_some() {
        return None;
    }
    std::env::var(MOUNT_VAR).ok().filter(|v| !v.is_empty())
}

/// `--docroot`, else `$FCGI_DOCROOT`, else the current directory; made absolute.
fn docroot(flag: Option<&Path>) -> Result<PathBuf, Failure> {
    let chosen = match flag {
        Some(path) => path.to_path_buf(),
        None => match std::env::var_os(DOCROOT_VAR) {
            Some(value) if !value.is_empty() => PathBuf::from(value),
            _ => PathBuf::from("."),
        },
    };
    if chosen.is_absolute() {
        return Ok(chosen);
    }
    let cwd = std::env::current_dir()
        .map_err(|err| Failure::new(Exit::Failure, format!("cannot read the current directory: {err}")))?;
    Ok(std::path::absolute(cwd.join(&chosen)).unwrap_or(cwd.join(chosen)))
}

/// The request headers that did not become a parameter, each with why (shown by `-v`): the
/// safety rules of `fcgi-cgi-env` drop them without an error.
pub fn dropped_headers(built: &Built) -> Vec<String> {
    let mut dropped = Vec::new();
    for name in built.request.headers().keys() {
        let lower = name.as_str();
        if lower == "content-type" || lower == "content-length" {
            continue; // CONTENT_TYPE, CONTENT_LENGTH
        }
        let cgi = format!("HTTP_{}", lower.to_ascii_uppercase().replace('-', "_"));
        if built.params.iter().any(|(n, _)| *n == cgi) {
            continue;
        }
        let why = if lower == "proxy" {
            "never passed: it would become HTTP_PROXY, which HTTP libraries take as their proxy (httpoxy)"
        } else if fcgi_cgi_env::HOP_BY_HOP.contains(&lower) {
            "a hop-by-hop header: it describes a connection, not the request"
        } else if fcgi_cgi_env::HIDDEN_BY_DEFAULT.contains(&lower) {
            "credentials for a proxy, not the application (--param HTTP_PROXY_AUTHORIZATION=... sends it)"
        } else if !lower.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            "an unusual name: characters other than letters, digits and '-' could pass for another header"
        } else {
            "named in Connection, or another header of the same HTTP_ name won"
        };
        dropped.push(format!("header {name} not sent: {why}"));
    }
    dropped
}

/// The connection facts a web server would pass: the client is this machine.
fn cgi_connection(address: &Address) -> CgiConnection {
    let server = match address {
        Address::Unix(path) => Some(Endpoint::Unix(Some(path.clone()))),
        Address::Tcp { host, port } => {
            host.parse::<IpAddr>().ok().map(|ip| Endpoint::Inet(SocketAddr::new(ip, *port)))
        }
    };
    let mut connection = CgiConnection::new().client(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    if let Some(server) = server {
        connection = connection.server(server);
    }
    connection
}

/// The parameters php-fpm's ping and status pages need: matched on SCRIPT_NAME, and
/// SCRIPT_FILENAME must be present (any value) or php-fpm answers 404.
pub fn status_page_params(path: &str, query: &str) -> Vec<(Bytes, Bytes)> {
    let uri = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
    [
        ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
        ("SERVER_SOFTWARE", fcgi_cgi_env::DEFAULT_SERVER_SOFTWARE.to_string()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_string()),
        ("REQUEST_METHOD", "GET".to_string()),
        ("SCRIPT_NAME", path.to_string()),
        ("SCRIPT_FILENAME", path.to_string()),
        ("REQUEST_URI", uri),
        ("QUERY_STRING", query.to_string()),
    ]
    .into_iter()
    .map(|(n, v)| (Bytes::from_static(n.as_bytes()), Bytes::from(v)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_or_say_why_not() {
        let (name, value) = parse_header("X-Test:  a b ").unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-test", "a b"));
        for (bad, why) in [
            ("NoColon", "not of the form"),
            ("Bad Name: x", "invalid header name"),
            (": x", "invalid header name"),
        ] {
            let err = parse_header(bad).unwrap_err();
            assert!(err.message.contains(why), "{bad}: {}", err.message);
        }
    }
}
