//! `--basic-auth-file FILE`: HTTP basic authentication for `/metrics` and `/` (not `/healthz`,
//! which says only that the exporter runs). FILE holds `user:password` lines (`#` comments and
//! blank lines ignored); it should be readable by the exporter's user only.

use std::path::Path;

use base64::Engine as _;

use crate::exit::{Exit, Failure};

/// The users allowed.
#[derive(Clone)]
pub struct Users {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passwords.
        write!(f, "Users({} entries)", self.entries.len())
    }
}

impl Users {
    /// Reads FILE.
    pub fn load(path: &Path) -> Result<Users, Failure> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            Failure::new(Exit::Read, format!("cannot read --basic-auth-file {}: {err}", path.display()))
        })?;
        Users::parse(&text)
            .map_err(|why| Failure::new(Exit::Usage, format!("--basic-auth-file {}: {why}", path.display())))
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (user, password) = line
                .split_once(':')
                .ok_or_else(|| format!("line {} is not of the form user:password", number + 1))?;
            if user.is_empty() || password.is_empty() {
                return Err(format!("line {}: empty user or password", number + 1));
            }
            entries.push((user.as_bytes().to_vec(), password.as_bytes().to_vec()));
        }
        if entries.is_empty() {
            return Err("no user:password line".into());
        }
        Ok(Users { entries })
    }

    /// Whether an `Authorization: Basic ...` value names one of the users with its password.
    pub fn allows(&self, authorization: Option<&http::HeaderValue>) -> bool {
        let Some(value) = authorization.and_then(|v| v.to_str().ok()) else { return false };
        let Some(encoded) =
            value.trim().strip_prefix("Basic ").or_else(|| value.trim().strip_prefix("basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else { return false };
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        // Every entry compared in full: the time taken does not say which part differed.
        let mut allowed = false;
        for (known_user, known_password) in &self.entries {
            allowed |= same(user, known_user) & same(password, known_password);
        }
        allowed
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (x, y) in a.iter().zip(b) {
        difference |= usize::from(x ^ y);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> http::HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        http::HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[test]
    fn users_and_passwords() {
        let users = Users::parse("# monitoring\nprom:s3cret:with:colons\n\nother:x\n").unwrap();
        assert!(users.allows(Some(&basic("prom:s3cret:with:colons"))));
        assert!(users.allows(Some(&basic("other:x"))));
        assert!(!users.allows(Some(&basic("prom:s3cret"))));
        assert!(!users.allows(Some(&basic("nobody:x"))));
        assert!(!users.allows(Some(&http::HeaderValue::from_static("Basic !!!"))));
        assert!(!users.allows(Some(&http::HeaderValue::from_static("Bearer abc"))));
        assert!(!users.allows(None));
        assert!(!format!("{users:?}").contains("s3cret"));
        assert!(Users::parse("").unwrap_err().contains("no user"));
        assert!(Users::parse("nocolon").unwrap_err().contains("line 1"));
        assert!(Users::parse("a:").unwrap_err().contains("empty"));
    }
}
