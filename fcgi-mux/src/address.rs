//! Where a FastCGI server listens, and connecting to it.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::error::{Error, TimeoutKind};

/// A FastCGI server's address.
///
/// Parses `unix:/run/php/php-fpm.sock`, `unix:///run/php.sock`, a path containing `/`,
/// `tcp://127.0.0.1:9000`, `localhost:9000`, `[::1]:9000`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A unix socket path.
    Unix(PathBuf),
    /// A host name or IP address and a port.
    Tcp {
        /// Host name, IPv4 or IPv6 address (without brackets).
        host: String,
        /// Port.
        port: u16,
    },
}

/// Why an address string was not understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid FastCGI address {input:?}: {reason}")]
pub struct AddressError {
    input: String,
    reason: &'static str,
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, AddressError> {
        let err = |reason| AddressError { input: input.to_string(), reason };
        if let Some(path) = input.strip_prefix("unix://").or_else(|| input.strip_prefix("unix:")) {
            if path.is_empty() {
                return Err(err("empty unix socket path"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let hostport = match input.strip_prefix("tcp://") {
            Some(rest) => rest.trim_end_matches('/'),
            None if input.contains('/') => return Ok(Address::Unix(PathBuf::from(input))),
            None => input,
        };
        let (host, port) =
            hostport.rsplit_once(':').ok_or_else(|| err("expected HOST:PORT or a socket path"))?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(|| err("unclosed '[' in IPv6 address"))?,
            None if host.contains(':') => return Err(err("IPv6 addresses need brackets: [::1]:9000")),
            None => host,
        };
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let port = port.parse().map_err(|_| err("port must be a number from 0 to 65535"))?;
        Ok(Address::Tcp { host: host.to_string(), port })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// A connected socket of either kind.
#[derive(Debug)]
pub(crate) enum Transport {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Address {
    /// Connects within `timeout`, telling name resolution failures from connection failures.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<Transport, Error> {
        match tokio::time::timeout(timeout, self.connect_inner()).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(TimeoutKind::Connect, timeout)),
        }
    }

    async fn connect_inner(&self) -> Result<Transport, Error> {
        let connect_error = |source| Error::Connect { address: self.to_string(), source: Arc::new(source) };
        match self {
            Address::Unix(path) => {
                UnixStream::connect(path).await.map(Transport::Unix).map_err(connect_error)
            }
            Address::Tcp { host, port } => {
                let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|source| Error::Resolve { host: host.clone(), source: Arc::new(source) })?
                    .collect();
                let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
                for addr in addrs {
                    match TcpStream::connect(addr).await {
                        Ok(stream) => {
                            stream.set_nodelay(true).map_err(connect_error)?;
                            return Ok(Transport::Tcp(stream));
                        }
                        Err(err) => last = err,
                    }
                }
                Err(connect_error(last))
            }
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp { host: host.into(), port }
    }

    #[test]
    fn parses_every_documented_form() {
        let cases: &[(&str, Address)] = &[
            ("unix:/run/php/php-fpm.sock", Address::Unix("/run/php/php-fpm.sock".into())),
            ("unix:///run/php.sock", Address::Unix("/run/php.sock".into())),
            ("/run/php.sock", Address::Unix("/run/php.sock".into())),
            ("./php.sock", Address::Unix("./php.sock".into())),
            ("tcp://127.0.0.1:9000", tcp("127.0.0.1", 9000)),
            ("tcp://127.0.0.1:9000/", tcp("127.0.0.1", 9000)),
            ("localhost:9000", tcp("localhost", 9000)),
            ("[::1]:9000", tcp("::1", 9000)),
            ("tcp://[::1]:9000", tcp("::1", 9000)),
        ];
        for (input, expected) in cases {
            assert_eq!(&input.parse::<Address>().unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn refuses_malformed_addresses_with_a_reason() {
        for (input, reason) in [
            ("unix:", "empty unix socket path"),
            ("localhost", "expected HOST:PORT or a socket path"),
            (":9000", "empty host"),
            ("host:99999", "port must be a number from 0 to 65535"),
            ("host:http", "port must be a number from 0 to 65535"),
            ("::1:9000", "IPv6 addresses need brackets: [::1]:9000"),
            ("[::1:9000", "unclosed '[' in IPv6 address"),
        ] {
            let err = input.parse::<Address>().unwrap_err();
            assert_eq!(err.reason, reason, "{input}");
            assert!(err.to_string().contains(input), "{err}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for input in ["unix:/run/php.sock", "127.0.0.1:9000", "[::1]:9000", "example.com:9000"] {
            assert_eq!(input.parse::<Address>().unwrap().to_string(), input);
        }
    }
}
