//! The facts about one request that are not in the configuration: the HTTP request head and the
//! connection it came on.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use http::{HeaderMap, Method, Uri, Version};

/// A borrowed HTTP request head: what [`crate::derive`] reads from the request.
///
/// Built from an `&http::Request<B>` or an `&http::request::Parts` with `From`, or field by field.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request target (origin-form or absolute-form).
    pub uri: &'a Uri,
    /// HTTP version.
    pub version: Version,
    /// Request headers, in the order received.
    pub headers: &'a HeaderMap,
}

impl<'a, B> From<&'a http::Request<B>> for RequestHead<'a> {
    fn from(req: &'a http::Request<B>) -> Self {
        RequestHead { method: req.method(), uri: req.uri(), version: req.version(), headers: req.headers() }
    }
}

impl<'a> From<&'a http::request::Parts> for RequestHead<'a> {
    fn from(parts: &'a http::request::Parts) -> Self {
        RequestHead {
            method: &parts.method,
            uri: &parts.uri,
            version: parts.version,
            headers: &parts.headers,
        }
    }
}

/// One end of the client connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// An IP socket.
    Inet(SocketAddr),
    /// A unix-domain socket, with its path when it has one (client sockets usually do not).
    Unix(Option<PathBuf>),
}

impl Endpoint {
    /// The address as CGI shows it: the IP without brackets (IPv4-mapped IPv6 shown as IPv4), or
    /// `unix:` followed by the socket path (nginx's notation).
    pub(crate) fn addr_value(&self) -> Vec<u8> {
        match self {
            Endpoint::Inet(sa) => match sa.ip().to_canonical() {
                IpAddr::V4(v4) => dotted_quad(v4),
                v6 => v6.to_string().into_bytes(),
            },
            Endpoint::Unix(path) => {
                let mut v = b"unix:".to_vec();
                if let Some(p) = path {
                    v.extend_from_slice(p.as_os_str().as_encoded_bytes());
                }
                v
            }
        }
    }

    /// The port, for IP sockets.
    pub(crate) fn port(&self) -> Option<u16> {
        match self {
            Endpoint::Inet(sa) => Some(sa.port()),
            Endpoint::Unix(_) => None,
        }
    }

    /// The IP, for IP sockets.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        match self {
            Endpoint::Inet(sa) => Some(sa.ip().to_canonical()),
            Endpoint::Unix(_) => None,
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(sa: SocketAddr) -> Self {
        Endpoint::Inet(sa)
    }
}

impl From<PathBuf> for Endpoint {
    fn from(path: PathBuf) -> Self {
        Endpoint::Unix(Some(path))
    }
}

/// Facts about the connection the HTTP request arrived on.
///
/// Everything is optional: a command-line tool that has no HTTP client leaves the addresses
/// unknown, and the matching parameters are then omitted (see `docs/CGI-ENV.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The HTTP client (REMOTE_ADDR, REMOTE_PORT).
    pub client: Option<Endpoint>,
    /// The local end that accepted the request (SERVER_ADDR, SERVER_PORT).
    pub server: Option<Endpoint>,
    /// The request came over TLS (HTTPS=on, REQUEST_SCHEME=https).
    pub tls: bool,
}

impl ConnectionInfo {
    /// No known addresses, no TLS.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the client end.
    pub fn client(mut self, client: impl Into<Endpoint>) -> Self {
        self.client = Some(client.into());
        self
    }

    /// Sets the server end.
    pub fn server(mut self, server: impl Into<Endpoint>) -> Self {
        self.server = Some(server.into());
        self
    }

    /// Marks the connection as TLS or not.
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }
}

/// `a.b.c.d`, as `Ipv4Addr`'s `Display` writes it, without the formatting machinery (this runs
/// twice per request).
fn dotted_quad(ip: std::net::Ipv4Addr) -> Vec<u8> {
    let mut out = Vec::with_capacity(15);
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + octet / 10 % 10);
        }
        out.push(b'0' + octet % 10);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn dotted_quad_writes_what_display_writes(bits: u32) {
            let ip = Ipv4Addr::from(bits);
            prop_assert_eq!(dotted_quad(ip), ip.to_string().into_bytes());
        }
    }

    #[test]
    fn addresses_as_cgi_shows_them() {
        let v4: SocketAddr = "10.0.255.9:80".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        assert_eq!(Endpoint::Inet(v4).addr_value(), b"10.0.255.9");
        assert_eq!(Endpoint::Inet(mapped).addr_value(), b"192.0.2.1");
        assert_eq!(Endpoint::Inet(v6).addr_value(), b"2001:db8::1");
        assert_eq!(Endpoint::Unix(None).addr_value(), b"unix:");
    }
}
