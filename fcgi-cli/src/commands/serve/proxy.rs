//! `--trusted-proxy CIDR`: when the connection comes from a proxy in one of these networks,
//! the client is the rightmost X-Forwarded-For address that is not itself a trusted proxy
//! (REMOTE_ADDR, with no REMOTE_PORT), and `X-Forwarded-Proto: https|http` sets HTTPS and
//! REQUEST_SCHEME. From anyone else both headers are only HTTP_* parameters, as without the
//! flag: a client cannot claim another address.

use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;

/// A network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `192.0.2.7` (one address), `::1/128`, `fd00::/8`.
    fn from_str(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let net: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an address or network (e.g. 10.0.0.0/8)"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { net, prefix })
    }
}

impl Cidr {
    /// True when `ip` is in the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What a trusted proxy says about the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's address, when X-Forwarded-For named one.
    pub client: Option<IpAddr>,
    /// From X-Forwarded-Proto: `Some(true)` for https, `Some(false)` for http.
    pub https: Option<bool>,
}

/// The `--trusted-proxy` networks.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// What the headers say, when `peer` is a trusted proxy; `None` otherwise. An
    /// X-Forwarded-For with an entry that is not an address is ignored whole.
    pub fn forwarded(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<Forwarded> {
        if !peer.is_some_and(|peer| self.trusts(peer)) {
            return None;
        }
        let mut chain = Vec::new();
        let mut valid = true;
        for value in headers.get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else {
                valid = false;
                break;
            };
            for entry in value.split(',') {
                match entry.trim().parse::<IpAddr>() {
                    Ok(ip) => chain.push(ip),
                    Err(_) => valid = false,
                }
            }
        }
        let client = if valid && !chain.is_empty() {
            chain.iter().rev().find(|ip| !self.trusts(**ip)).or(chain.first()).copied()
        } else {
            None
        };
        let https = headers
            .get_all("x-forwarded-proto")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| match v.trim().to_ascii_lowercase().as_str() {
                "https" => Some(true),
                "http" => Some(false),
                _ => None,
            });
        Some(Forwarded { client, https })
    }
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

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.1.2.3")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("::1")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0/8", "x/8", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let trusted = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.2"), ("x-forwarded-proto", "https")]);
        assert_eq!(trusted.forwarded(Some(ip("198.51.100.1")), &h), None);
        assert_eq!(trusted.forwarded(None, &h), None);
        assert_eq!(
            trusted.forwarded(Some(ip("10.0.0.1")), &h),
            Some(Forwarded { client: Some(ip("203.0.113.9")), https: Some(true) })
        );
        // A client's own X-Forwarded-For entries left of the proxy's are not believed.
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            trusted.forwarded(Some(ip("10.0.0.1")), &spoofed).unwrap().client,
            Some(ip("203.0.113.9"))
        );
        // Garbage: no client; only proxies: the leftmost.
        let garbage = headers(&[("x-forwarded-for", "203.0.113.9, unknown")]);
        assert_eq!(trusted.forwarded(Some(ip("10.0.0.1")), &garbage).unwrap().client, None);
        let proxies = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6"), ("x-forwarded-proto", "http")]);
        assert_eq!(
            trusted.forwarded(Some(ip("10.0.0.1")), &proxies),
            Some(Forwarded { client: Some(ip("10.0.0.5")), https: Some(false) })
        );
        assert_eq!(
            trusted.forwarded(Some(ip("10.0.0.1")), &headers(&[])),
            Some(Forwarded { client: None, https: None })
        );
    }
}
