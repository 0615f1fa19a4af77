//! `FCGI_GET_VALUES`: the variable names and a typed reading of the answer.

use bytes::Bytes;

use crate::pairs::NameValuePair;

/// Maximum concurrent transport connections the application accepts.
pub const FCGI_MAX_CONNS: &str = "FCGI_MAX_CONNS";
/// Maximum concurrent requests the application accepts.
pub const FCGI_MAX_REQS: &str = "FCGI_MAX_REQS";
/// `"1"` when the application multiplexes requests on a connection, else `"0"`.
pub const FCGI_MPXS_CONNS: &str = "FCGI_MPXS_CONNS";

/// The three standard names with empty values: the usual `FCGI_GET_VALUES` query.
/// (The `FCGI_` prefix is part of the names; leaving it off gets no answer.)
pub fn standard_query() -> Vec<NameValuePair> {
    [FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS]
        .into_iter()
        .map(|name| NameValuePair::new(Bytes::from_static(name.as_bytes()), Bytes::new()))
        .collect()
}

/// What a `FCGI_GET_VALUES_RESULT` said about the standard variables. `None` means the
/// application did not answer that name (or answered something unreadable): unknown.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerValues {
    /// `FCGI_MAX_CONNS`.
    pub max_conns: Option<u32>,
    /// `FCGI_MAX_REQS`.
    pub max_reqs: Option<u32>,
    /// `FCGI_MPXS_CONNS`: true only for the value `"1"`.
    pub mpxs_conns: Option<bool>,
}

impl ServerValues {
    /// Reads the standard variables out of an answer; other names are ignored.
    pub fn from_pairs(pairs: &[NameValuePair]) -> Self {
        let mut values = Self::default();
        for pair in pairs {
            match &pair.name[..] {
                b"FCGI_MAX_CONNS" => values.max_conns = parse_count(&pair.value),
                b"FCGI_MAX_REQS" => values.max_reqs = parse_count(&pair.value),
                b"FCGI_MPXS_CONNS" if !pair.value.is_empty() => {
                    values.mpxs_conns = Some(&pair.value[..] == b"1")
                }
                _ => {}
            }
        }
        values
    }

    /// True when no standard variable was answered.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn parse_count(value: &[u8]) -> Option<u32> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(pairs: &[(&'static str, &'static str)]) -> ServerValues {
        let pairs: Vec<_> = pairs.iter().map(|(n, v)| NameValuePair::new(*n, *v)).collect();
        ServerValues::from_pairs(&pairs)
    }

    #[test]
    fn peers_as_measured() {
        // php-fpm
        assert_eq!(
            answer(&[("FCGI_MPXS_CONNS", "0")]),
            ServerValues { mpxs_conns: Some(false), ..Default::default() }
        );
        // fcgiwrap
        assert_eq!(
            answer(&[("FCGI_MAX_CONNS", "1"), ("FCGI_MAX_REQS", "1"), ("FCGI_MPXS_CONNS", "0")]),
            ServerValues { max_conns: Some(1), max_reqs: Some(1), mpxs_conns: Some(false) }
        );
        // flup
        assert!(answer(&[]).is_empty());
    }

    #[test]
    fn unreadable_values_are_unknown() {
        let values =
            answer(&[("FCGI_MAX_CONNS", "-1"), ("FCGI_MAX_REQS", "99999999999"), ("FCGI_MPXS_CONNS", "")]);
        assert!(values.is_empty());
        assert_eq!(answer(&[("FCGI_MPXS_CONNS", "yes")]).mpxs_conns, Some(false));
        assert_eq!(answer(&[("MPXS_CONNS", "1")]).mpxs_conns, None);
    }

    #[test]
    fn standard_query_names_keep_the_prefix() {
        let names: Vec<_> = standard_query().into_iter().map(|p| (p.name, p.value.len())).collect();
        assert_eq!(
            names,
            vec![
                (Bytes::from_static(b"FCGI_MAX_CONNS"), 0),
                (Bytes::from_static(b"FCGI_MAX_REQS"), 0),
                (Bytes::from_static(b"FCGI_MPXS_CONNS"), 0)
            ]
        );
    }
}
