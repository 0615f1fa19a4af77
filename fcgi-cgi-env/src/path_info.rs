//! Splitting the normalised path into SCRIPT_NAME and PATH_INFO, appending the index, and the
//! script-extension allow-list.

use crate::config::{AppConfig, ExtensionCheck, PathInfo};
use crate::error::{Error, shorten};
use crate::path::{has_dot_dot, is_forbidden};

/// The script name (index appended) and the path info (empty when there is none).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) script_name: Vec<u8>,
    pub(crate) path_info: Vec<u8>,
}

/// Splits a path produced by [`crate::path::normalize`].
pub(crate) fn split(path: &[u8], config: &AppConfig) -> Result<Split, Error> {
    // The path is normally clean already; refusing here again keeps CVE-2019-11043 (a newline
    // that makes the split pattern fail) impossible even if this function is reached otherwise.
    if let Some(&byte) = path.iter().find(|b| is_forbidden(**b)) {
        return Err(Error::ForbiddenByteInPath { byte });
    }
    let (script, info) = match &config.path_info {
        PathInfo::Off => (path, &path[path.len()..]),
        PathInfo::Extension => split_on_extension(path, &config.script_extensions),
        PathInfo::Pattern(re) => match re.captures(path) {
            Some(caps) => match caps.get(1) {
                Some(script) => (script.as_bytes(), caps.get(2).map_or(&b""[..], |m| m.as_bytes())),
                None => (path, &path[path.len()..]),
            },
            None => (path, &path[path.len()..]),
        },
    };

    if script.first() != Some(&b'/') || !(info.is_empty() || info.first() == Some(&b'/')) {
        return Err(Error::PathInfoSplitInvalid);
    }
    if has_dot_dot(script) || has_dot_dot(info) {
        return Err(Error::PathEscapesDocumentRoot);
    }

    let mut script_name = script.to_vec();
    if let (Some(index), Some(b'/')) = (&config.index, script_name.last()) {
        script_name.extend_from_slice(index.as_bytes());
    }

    let check = match config.extension_check {
        ExtensionCheck::WhenSplit => !info.is_empty(),
        ExtensionCheck::Always => true,
        ExtensionCheck::Never => false,
    };
    if check && !has_allowed_extension(&script_name, &config.script_extensions) {
        return Err(Error::ScriptExtensionNotAllowed { script_name: shorten(&script_name) });
    }

    Ok(Split { script_name, path_info: info.to_vec() })
}

/// Splits before the first `/` that follows a segment ending in an allowed extension.
fn split_on_extension<'p>(path: &'p [u8], extensions: &[String]) -> (&'p [u8], &'p [u8]) {
    for (i, _) in path.iter().enumerate().skip(1).filter(|(_, b)| **b == b'/') {
        if has_allowed_extension(&path[..i], extensions) {
            return path.split_at(i);
        }
    }
    (path, &path[path.len()..])
}

/// The last segment ends in one of `extensions` (case-sensitive, as php-fpm's
/// `security.limit_extensions`) and is not just the extension after a slash of an empty name.
fn has_allowed_extension(script: &[u8], extensions: &[String]) -> bool {
    let last = script.rsplit(|b| *b == b'/').next().unwrap_or_default();
    extensions.iter().any(|ext| !ext.is_empty() && last.len() >= ext.len() && last.ends_with(ext.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // one tuple per table row
mod tests {
    use super::*;

    fn run(config: &AppConfig, path: &str) -> Result<(String, String), Error> {
        let s = split(path.as_bytes(), config)?;
        Ok((String::from_utf8(s.script_name).unwrap(), String::from_utf8(s.path_info).unwrap()))
    }

    #[test]
    fn default_extension_split() {
        let c = AppConfig::new("/srv");
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str)] = &[
            // path                       script name             path info
            ("/env.php",                  "/env.php",             ""),
            ("/env.php/extra/path",       "/env.php",             "/extra/path"),
            ("/env.php/",                 "/env.php",             "/"),
            ("/a/b.php/c.php/d",          "/a/b.php",             "/c.php/d"),
            ("/dir/",                     "/dir/index.php",       ""),
            ("/",                         "/index.php",           ""),
            ("/x.phpx/y",                 "/x.phpx/y",            ""),
            ("/x.PHP/y",                  "/x.PHP/y",             ""),
            ("/uploads/x.jpg/y.php",      "/uploads/x.jpg/y.php", ""),
            ("/ping",                     "/ping",                ""),
            ("/my+script.php/1 2",        "/my+script.php",       "/1 2"),
            ("/.php/x",                   "/.php",                "/x"),
        ];
        for (path, script, info) in cases {
            assert_eq!(run(&c, path).unwrap(), (script.to_string(), info.to_string()), "{path}");
        }
    }

    #[test]
    fn pattern_split() {
        let nginx = AppConfig::new("/srv").path_info(PathInfo::pattern(r"^(.+?\.php)(/.*)$").unwrap());
        let haproxy = AppConfig::new("/srv").path_info(PathInfo::pattern(r"^(/.+\.php)(/.*)?$").unwrap());
        let loose =
            AppConfig::new("/srv").path_info(PathInfo::pattern(r"^(.+?\.(?:php|jpg))(/.*)$").unwrap());
        let sloppy = AppConfig::new("/srv").path_info(PathInfo::pattern(r"(\w+\.php)(.*)").unwrap());
        let dotdot = AppConfig::new("/srv")
            .path_info(PathInfo::pattern(r"^(/.+\.\.)(/.*)$").unwrap())
            .extension_check(ExtensionCheck::Never);
        let cut = AppConfig::new("/srv").path_info(PathInfo::pattern(r"^(/.*?\.\.)()").unwrap());
        #[rustfmt::skip]
        let cases: &[(&AppConfig, &str, Result<(&str, &str), Error>)] = &[
            (&nginx,   "/env.php/extra/path",  Ok(("/env.php", "/extra/path"))),
            (&nginx,   "/env.php",             Ok(("/env.php", ""))),
            (&nginx,   "/dir/",                Ok(("/dir/index.php", ""))),
            (&haproxy, "/a.php/b.php/c",       Ok(("/a.php/b.php", "/c"))),
            (&haproxy, "/a.php",               Ok(("/a.php", ""))),
            (&loose,   "/uploads/x.jpg/y.php", Err(Error::ScriptExtensionNotAllowed { script_name: "/uploads/x.jpg".into() })),
            (&loose,   "/a.php/y.jpg",         Ok(("/a.php", "/y.jpg"))),
            (&sloppy,  "/a/b.php/c",           Err(Error::PathInfoSplitInvalid)),
            (&dotdot,  "/a/x../y",             Ok(("/a/x..", "/y"))),
            (&cut,     "/a/..b",               Err(Error::PathEscapesDocumentRoot)),
        ];
        for (config, path, want) in cases {
            let got = run(config, path);
            let want = want.clone().map(|(s, i)| (s.to_string(), i.to_string()));
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn newline_refused_before_matching() {
        // CVE-2019-11043: with `.` not matching `\n`, nginx's pattern failed and PATH_INFO came out empty.
        let nginx = AppConfig::new("/srv").path_info(PathInfo::pattern(r"^(.+?\.php)(/.*)$").unwrap());
        assert_eq!(
            split(b"/index.php/PHP\nis_the_shittiest_lang.php", &nginx),
            Err(Error::ForbiddenByteInPath { byte: b'\n' })
        );
    }

    #[test]
    fn extension_check_modes() {
        let always = AppConfig::new("/srv").extension_check(ExtensionCheck::Always);
        assert!(run(&always, "/ping").is_err());
        assert_eq!(run(&always, "/").unwrap().0, "/index.php");
        let never = AppConfig::new("/srv")
            .path_info(PathInfo::pattern(r"^(.+?\.jpg)(/.*)$").unwrap())
            .extension_check(ExtensionCheck::Never);
        assert_eq!(run(&never, "/x.jpg/y").unwrap(), ("/x.jpg".into(), "/y".into()));
        let none_allowed = AppConfig::new("/srv").script_extensions(Vec::<String>::new());
        assert_eq!(run(&none_allowed, "/a.php/b").unwrap(), ("/a.php/b".into(), "".into()));
    }
}
