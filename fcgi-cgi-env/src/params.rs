//! The output: an ordered list of name/value pairs, one entry per name, with the size rule and a
//! redacting printer.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

use crate::error::{Error, shorten};

/// The largest encoded name-value pair this crate emits: a FastCGI record carries at most 65535
/// bytes of content, and php-fpm cannot read a pair split across two records (measured: the
/// connection is reset), so a pair (its length prefixes, name and value) must fit one record.
pub const MAX_PAIR_LEN: usize = 65_535;

/// Parameters whose values [`CgiParams::redacted`] (and `Debug`) never print.
pub const SENSITIVE_PARAMS: &[&str] =
    &["HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION", "HTTP_COOKIE", "PHP_AUTH_PW", "REMOTE_PASSWD"];

/// True when `name`'s value must not appear in logs or dumps (see [`SENSITIVE_PARAMS`]).
pub fn is_sensitive(name: &str) -> bool {
    SENSITIVE_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Encoded size of one pair on the wire: 1-byte length prefixes below 128, else 4 bytes each.
pub fn pair_len(name: &[u8], value: &[u8]) -> usize {
    let prefix = |n: usize| -> usize { if n < 128 { 1 } else { 4 } };
    prefix(name.len())
        .saturating_add(prefix(value.len()))
        .saturating_add(name.len())
        .saturating_add(value.len())
}

fn check_pair(name: &str, value: &[u8]) -> Result<(), Error> {
    let len = pair_len(name.as_bytes(), value);
    if len > MAX_PAIR_LEN {
        return Err(Error::ParamTooLarge { name: shorten(name.as_bytes()), len });
    }
    Ok(())
}

/// A derived CGI/1.1 environment: ordered `(name, value)` pairs, each name once.
///
/// The order is deterministic (see `docs/CGI-ENV.md`): the CGI variables, then `HTTP_*` in the
/// order their headers first appeared, then configured parameters that were not already present.
/// `Debug` and [`CgiParams::redacted`] mask the values of [`SENSITIVE_PARAMS`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CgiParams {
    pairs: Vec<(ParamName, ParamValue)>,
}

/// A parameter name, as [`CgiParams`] yields it by value: the fixed CGI names are `'static`
/// and never copied. Dereferences to `str`; converts into [`Bytes`] without a copy, so the
/// pairs go straight into a FastCGI client that takes `Into<Bytes>` parts (fcgi-mux).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamName(Cow<'static, str>);

/// A parameter value, as [`CgiParams`] yields it by value: fixed values (`CGI/1.1`, `GET`,
/// `http`...) are `'static` and never copied. Dereferences to `[u8]`; converts into [`Bytes`]
/// without a copy. Two values are equal when their bytes are, however each is held.
#[derive(Clone, Debug)]
pub struct ParamValue(Value);

impl PartialEq for ParamValue {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for ParamValue {}

#[derive(Clone, Debug)]
enum Value {
    Static(&'static [u8]),
    Owned(Vec<u8>),
    /// Shared with the configuration (the document root, SERVER_SOFTWARE...): a clone is a
    /// reference count.
    Shared(Bytes),
}

impl ParamValue {
    /// A value shared with its owner without a copy.
    pub(crate) fn shared(bytes: &Bytes) -> Self {
        ParamValue(Value::Shared(bytes.clone()))
    }
}

impl Deref for ParamName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Deref for ParamValue {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Value::Static(value) => value,
            Value::Owned(value) => value,
            Value::Shared(value) => value,
        }
    }
}

impl From<&'static str> for ParamName {
    fn from(name: &'static str) -> Self {
        ParamName(Cow::Borrowed(name))
    }
}

impl From<String> for ParamName {
    fn from(name: String) -> Self {
        ParamName(Cow::Owned(name))
    }
}

impl From<&'static str> for ParamValue {
    fn from(value: &'static str) -> Self {
        ParamValue(Value::Static(value.as_bytes()))
    }
}

impl From<&'static [u8]> for ParamValue {
    fn from(value: &'static [u8]) -> Self {
        ParamValue(Value::Static(value))
    }
}

impl From<Vec<u8>> for ParamValue {
    fn from(value: Vec<u8>) -> Self {
        ParamValue(Value::Owned(value))
    }
}

impl From<String> for ParamValue {
    fn from(value: String) -> Self {
        ParamValue(Value::Owned(value.into_bytes()))
    }
}

impl From<ParamName> for String {
    fn from(name: ParamName) -> Self {
        name.0.into_owned()
    }
}

impl From<ParamValue> for Vec<u8> {
    fn from(value: ParamValue) -> Self {
        match value.0 {
            Value::Owned(value) => value,
            Value::Static(value) => value.to_vec(),
            Value::Shared(value) => value.to_vec(),
        }
    }
}

impl From<ParamName> for Bytes {
    fn from(name: ParamName) -> Self {
        match name.0 {
            Cow::Borrowed(name) => Bytes::from_static(name.as_bytes()),
            Cow::Owned(name) => Bytes::from(name),
        }
    }
}

impl From<ParamValue> for Bytes {
    fn from(value: ParamValue) -> Self {
        match value.0 {
            Value::Static(value) => Bytes::from_static(value),
            Value::Owned(value) => Bytes::from(value),
            Value::Shared(value) => value,
        }
    }
}

impl CgiParams {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set with room for `capacity` pairs.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        CgiParams { pairs: Vec::with_capacity(capacity) }
    }

    /// The pairs in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.pairs.iter())
    }

    /// The value of `name` (exact, case-sensitive match as in CGI).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.position(name).map(|i| &*self.pairs[i].1)
    }

    /// The value of `name` if it is valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Total encoded size of all pairs (what the PARAMS stream will carry, without record headers).
    pub fn encoded_len(&self) -> usize {
        self.pairs.iter().map(|(n, v)| pair_len(n.as_bytes(), v)).fold(0usize, usize::saturating_add)
    }

    /// Sets `name` to `value`: replaces the value in place when present, appends otherwise.
    ///
    /// Fails with [`Error::ParamTooLarge`] when the pair would not fit one record, and with
    /// [`Error::InvalidParamName`] for an empty name or one containing `=` or a control byte.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Result<(), Error> {
        let name = name.into();
        let value = value.into();
        check_name(&name)?;
        check_pair(&name, &value)?;
        self.upsert(name.into(), value.into());
        Ok(())
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Vec<u8>> {
        self.position(name).map(|i| self.pairs.remove(i).1.into())
    }

    /// The pairs as owned strings and vectors, consuming the set. Iterating the set by value
    /// ([`IntoIterator`]) gives the same pairs without copying the fixed names and values.
    pub fn into_vec(self) -> Vec<(String, Vec<u8>)> {
        self.pairs.into_iter().map(|(n, v)| (n.into(), v.into())).collect()
    }

    /// A printer that shows one `NAME=value` per line, with sensitive values masked and
    /// non-printable bytes escaped, so the output is safe for logs and terminals.
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted(self)
    }

    /// Appends without checks; callers guarantee the name is new.
    pub(crate) fn push_unchecked(&mut self, name: impl Into<ParamName>, value: impl Into<ParamValue>) {
        self.pairs.push((name.into(), value.into()));
    }

    pub(crate) fn upsert(&mut self, name: ParamName, value: ParamValue) {
        match self.position(&name) {
            Some(i) => self.pairs[i].1 = value,
            None => self.pairs.push((name, value)),
        }
    }

    /// Enforces [`MAX_PAIR_LEN`] on every pair.
    pub(crate) fn check_sizes(&self) -> Result<(), Error> {
        self.pairs.iter().try_for_each(|(n, v)| check_pair(n, v))
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.pairs.iter().position(|(n, _)| &**n == name)
    }
}

/// Parameter names must be non-empty and free of `=` and control bytes (they end up as
/// environment variable names in the application).
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.bytes().any(|b| b == b'=' || b.is_ascii_control()) {
        return Err(Error::InvalidParamName { name: shorten(name.as_bytes()) });
    }
    Ok(())
}

/// Iterator over `(name, value)` pairs; see [`CgiParams::iter`].
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, (ParamName, ParamValue)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(n, v)| (&**n, &**v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a CgiParams {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for CgiParams {
    type Item = (ParamName, ParamValue);
    type IntoIter = std::vec::IntoIter<(ParamName, ParamValue)>;

    fn into_iter(self) -> Self::IntoIter {
        self.pairs.into_iter()
    }
}

impl fmt::Debug for CgiParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.pairs.iter().map(|(n, v)| (&**n, DebugValue(n, v)))).finish()
    }
}

struct DebugValue<'a>(&'a str, &'a [u8]);

impl fmt::Debug for DebugValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"")?;
        write_value(f, self.0, self.1)?;
        write!(f, "\"")
    }
}

fn write_value(f: &mut fmt::Formatter<'_>, name: &str, value: &[u8]) -> fmt::Result {
    if is_sensitive(name) {
        write!(f, "<redacted, {} bytes>", value.len())
    } else {
        write!(f, "{}", value.escape_ascii())
    }
}

/// See [`CgiParams::redacted`].
pub struct Redacted<'a>(&'a CgiParams);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in self.0.iter() {
            write!(f, "{}=", name.as_bytes().escape_ascii())?;
            write_value(f, name, value)?;
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn values_compare_by_their_bytes_however_held() {
        let mut fixed = CgiParams::new();
        fixed.push_unchecked("REQUEST_METHOD", "GET");
        fixed.push_unchecked("DOCUMENT_ROOT", ParamValue::shared(&Bytes::from_static(b"/srv")));
        let mut set = CgiParams::new();
        set.set("REQUEST_METHOD", "GET".to_owned()).unwrap();
        set.set("DOCUMENT_ROOT", b"/srv".to_vec()).unwrap();
        assert_eq!(fixed, set);
        set.set("DOCUMENT_ROOT", "/var").unwrap();
        assert_ne!(fixed, set);
    }

    #[test]
    fn pairs_convert_into_bytes_and_back() {
        let mut params = CgiParams::new();
        params.push_unchecked("GATEWAY_INTERFACE", "CGI/1.1");
        params.set("X_OWN", b"v".to_vec()).unwrap();
        let bytes: Vec<(Bytes, Bytes)> =
            params.clone().into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        assert_eq!(
            bytes,
            [
                (Bytes::from_static(b"GATEWAY_INTERFACE"), Bytes::from_static(b"CGI/1.1")),
                (Bytes::from_static(b"X_OWN"), Bytes::from_static(b"v")),
            ]
        );
        assert_eq!(
            params.into_vec(),
            [("GATEWAY_INTERFACE".to_owned(), b"CGI/1.1".to_vec()), ("X_OWN".to_owned(), b"v".to_vec())]
        );
    }
}
