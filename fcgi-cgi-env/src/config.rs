//! The application configuration: document root, index, path-info split, header policy, server
//! identity and parameter overrides.

use bytes::Bytes;
use http::HeaderName;
use regex::bytes::Regex;

use crate::error::{Error, shorten};

/// How the decoded path is split into SCRIPT_NAME and PATH_INFO.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum PathInfo {
    /// No split: the whole path is the script name and PATH_INFO is not sent.
    Off,
    /// Split after the first path segment that ends in one of the allowed script extensions
    /// (see [`AppConfig::script_extensions`]) and is followed by more path. With the default
    /// `.php` this is what nginx's `fastcgi_split_path_info ^(.+?\.php)(/.*)$;` does.
    #[default]
    Extension,
    /// A pattern with two capture groups (script name, path info), matched against the decoded,
    /// normalised path. When it does not match, or the first group did not take part, the whole
    /// path is the script name (nginx and HAProxy behave the same way).
    Pattern(Regex),
}

impl PathInfo {
    /// Compiles a split pattern, e.g. `^(.+?\.php)(/.*)$`.
    ///
    /// The pattern runs on bytes (`regex::bytes`), so `(?-u)` lets `.` match bytes that are not
    /// UTF-8. It needs at least two capture groups.
    pub fn pattern(pattern: &str) -> Result<PathInfo, Error> {
        let re = Regex::new(pattern).map_err(|e| Error::InvalidPathInfoPattern { message: e.to_string() })?;
        let found = re.captures_len().saturating_sub(1);
        if found < 2 {
            return Err(Error::PathInfoPatternCaptures { found });
        }
        Ok(PathInfo::Pattern(re))
    }
}

/// What kind of application receives the request: it decides SCRIPT_NAME, PATH_INFO and
/// whether there is a file (SCRIPT_FILENAME) at all.
///
/// Both kinds share the path rules: the path is percent-decoded once, NUL, CR, LF and the
/// other control bytes are refused, and dot-segments are resolved (never above `/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppKind {
    /// A directory of scripts (php-fpm, php-cgi, fcgiwrap): DOCUMENT_ROOT + SCRIPT_NAME is the
    /// file to run (SCRIPT_FILENAME), the path-info split and the index apply.
    #[default]
    Scripts,
    /// An application mounted at a URL prefix (WSGI per PEP 3333, PSGI, Rack, Go's
    /// `net/http/fcgi`, uWSGI): SCRIPT_NAME is the prefix without its trailing slash (`""` for
    /// `/`), PATH_INFO the rest of the decoded path (`""` for the prefix itself), and there is
    /// no DOCUMENT_ROOT, SCRIPT_FILENAME or PATH_TRANSLATED unless set with
    /// [`AppConfig::param`]. The prefix matches whole segments only (`/appx` is not under
    /// `/app`); a path outside it is refused ([`Error::OutsideMount`]).
    Mounted {
        /// The mount prefix: a decoded absolute path such as `/`, `/app` or `/app/`.
        prefix: String,
    },
}

impl AppKind {
    /// A mounted application at `prefix` (`/`, `/app`, `/app/`).
    pub fn mounted(prefix: impl Into<String>) -> AppKind {
        AppKind::Mounted { prefix: prefix.into() }
    }

    /// True for [`AppKind::Mounted`].
    pub fn is_mounted(&self) -> bool {
        matches!(self, AppKind::Mounted { .. })
    }
}

/// When the script-extension allow-list applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtensionCheck {
    /// Only when the path was split into a script name and a path info: this refuses
    /// `/uploads/x.jpg/y.php` split as script `/uploads/x.jpg`, while `/ping`, `/status` or a
    /// request for a plain file keep working (php-fpm's `security.limit_extensions` is the
    /// backstop for those).
    #[default]
    WhenSplit,
    /// For every script name (after the index is appended).
    Always,
    /// Never.
    Never,
}

/// What happens to header names with bytes other than ASCII letters, digits and `-`
/// (for example `X_Foo` or `X.Foo`), which could collide with a normal name after `HTTP_*`
/// normalisation (`X-Foo`, `X_Foo` and `X.Foo` all become `HTTP_X_FOO`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnusualHeaderNames {
    /// Drop them (nginx's default `underscores_in_headers off`, `ignore_invalid_headers on`).
    /// Normalisation is then one-to-one, so no collision can happen.
    #[default]
    Drop,
    /// Keep them; when several names normalise to the same parameter, the one made only of
    /// letters, digits and `-` wins, else the first in header order; the others are dropped.
    Keep,
}

/// Configuration of one FastCGI application.
///
/// Built with [`AppConfig::new`] (or `Default`, whose document root is `/var/www/html`) and the
/// chained setters; every default is listed in `docs/CGI-ENV.md`.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub(crate) kind: AppKind,
    /// Without trailing slashes; `Bytes` so that each request's DOCUMENT_ROOT shares it.
    pub(crate) document_root: Bytes,
    pub(crate) index: Option<String>,
    pub(crate) path_info: PathInfo,
    pub(crate) script_extensions: Vec<String>,
    pub(crate) extension_check: ExtensionCheck,
    pub(crate) unusual_header_names: UnusualHeaderNames,
    pub(crate) pass_headers: Vec<HeaderName>,
    pub(crate) hide_headers: Vec<HeaderName>,
    pub(crate) server_name: Option<String>,
    pub(crate) server_port: Option<u16>,
    pub(crate) server_software: Bytes,
    pub(crate) redirect_status: Option<Bytes>,
    pub(crate) params: Vec<(String, Vec<u8>)>,
    pub(crate) unset: Vec<String>,
}

/// `fcgi/<version of this crate>`.
pub const DEFAULT_SERVER_SOFTWARE: &str = concat!("fcgi/", env!("CARGO_PKG_VERSION"));

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig::new("/var/www/html")
    }
}

impl AppConfig {
    /// A configuration for the application whose files live under `document_root` on the
    /// application's host. Trailing slashes are removed.
    pub fn new(document_root: impl Into<String>) -> Self {
        AppConfig {
            kind: AppKind::Scripts,
            document_root: trim_root(document_root.into()),
            index: Some("index.php".to_owned()),
            path_info: PathInfo::default(),
            script_extensions: vec![".php".to_owned()],
            extension_check: ExtensionCheck::default(),
            unusual_header_names: UnusualHeaderNames::default(),
            pass_headers: Vec::new(),
            hide_headers: Vec::new(),
            server_name: None,
            server_port: None,
            server_software: Bytes::from_static(DEFAULT_SERVER_SOFTWARE.as_bytes()),
            redirect_status: Some(Bytes::from_static(b"200")),
            params: Vec::new(),
            unset: Vec::new(),
        }
    }

    /// A configuration for an application mounted at `prefix` ([`AppKind::Mounted`]): WSGI,
    /// PSGI, Rack, Go's `net/http/fcgi`, uWSGI. `AppConfig::mounted("/")` serves every path with
    /// SCRIPT_NAME `""` and PATH_INFO the whole path.
    ///
    /// ```
    /// use fcgi_cgi_env::{AppConfig, ConnectionInfo, derive};
    ///
    /// let request = http::Request::get("/app/users/42?x=1").body(())?;
    /// let params = derive(&request, None, &ConnectionInfo::new(), &AppConfig::mounted("/app"))?;
    /// assert_eq!(params.get_str("SCRIPT_NAME"), Some("/app"));
    /// assert_eq!(params.get_str("PATH_INFO"), Some("/users/42"));
    /// assert_eq!(params.get_str("REQUEST_URI"), Some("/app/users/42?x=1"));
    /// assert!(!params.contains("SCRIPT_FILENAME"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mounted(prefix: impl Into<String>) -> Self {
        AppConfig::default().kind(AppKind::mounted(prefix))
    }

    /// The kind of application (default [`AppKind::Scripts`]).
    pub fn kind(mut self, kind: AppKind) -> Self {
        self.kind = kind;
        self
    }

    /// The kind of application this configuration is for.
    pub fn app_kind(&self) -> &AppKind {
        &self.kind
    }

    /// The document root (DOCUMENT_ROOT; prefix of SCRIPT_FILENAME and PATH_TRANSLATED).
    pub fn document_root(mut self, root: impl Into<String>) -> Self {
        self.document_root = trim_root(root.into());
        self
    }

    /// The file appended to a script name ending in `/` (default `index.php`); `None` disables.
    pub fn index(mut self, index: Option<&str>) -> Self {
        self.index = index.map(str::to_owned);
        self
    }

    /// How the path is split into SCRIPT_NAME and PATH_INFO (default [`PathInfo::Extension`]).
    pub fn path_info(mut self, path_info: PathInfo) -> Self {
        self.path_info = path_info;
        self
    }

    /// The allowed script extensions, with their dot (default `[".php"]`, case-sensitive).
    pub fn script_extensions<I, S>(mut self, extensions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.script_extensions = extensions.into_iter().map(Into::into).collect();
        self
    }

    /// When the extension allow-list applies (default [`ExtensionCheck::WhenSplit`]).
    pub fn extension_check(mut self, check: ExtensionCheck) -> Self {
        self.extension_check = check;
        self
    }

    /// The rule for unusual header names (default [`UnusualHeaderNames::Drop`]).
    pub fn unusual_header_names(mut self, rule: UnusualHeaderNames) -> Self {
        self.unusual_header_names = rule;
        self
    }

    /// Passes a header that is hidden by default (hop-by-hop headers, `Proxy-Authorization`,
    /// unusual names). `Proxy`, `Content-Length` and `Content-Type` cannot be passed as `HTTP_*`.
    pub fn pass_header(mut self, name: HeaderName) -> Self {
        self.pass_headers.push(name);
        self
    }

    /// Hides a header that would otherwise be passed as `HTTP_*`.
    pub fn hide_header(mut self, name: HeaderName) -> Self {
        self.hide_headers.push(name);
        self
    }

    /// A fixed SERVER_NAME (like nginx's `server_name`); by default it comes from the request.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// A fixed SERVER_PORT; by default it comes from the connection or the request.
    pub fn server_port(mut self, port: u16) -> Self {
        self.server_port = Some(port);
        self
    }

    /// SERVER_SOFTWARE (default [`DEFAULT_SERVER_SOFTWARE`]).
    pub fn server_software(mut self, software: impl Into<String>) -> Self {
        self.server_software = Bytes::from(software.into());
        self
    }

    /// REDIRECT_STATUS (default `200`, which php-cgi's `cgi.force_redirect` requires); `None`
    /// omits it.
    pub fn redirect_status(mut self, status: Option<&str>) -> Self {
        self.redirect_status = status.map(|s| Bytes::copy_from_slice(s.as_bytes()));
        self
    }

    /// Sets a parameter: it replaces a derived one of the same name in place (including an
    /// `HTTP_*` one, whose header is then ignored) or is appended. Later calls win.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        let name = name.into();
        self.unset.retain(|n| *n != name);
        self.params.retain(|(n, _)| *n != name);
        self.params.push((name, value.into()));
        self
    }

    /// Removes a parameter from the output, derived or configured.
    pub fn unset(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.params.retain(|(n, _)| *n != name);
        self.unset.push(name);
        self
    }

    /// Checks the parts of the configuration that can be wrong on their own.
    pub fn validate(&self) -> Result<(), Error> {
        if let AppKind::Mounted { prefix } = &self.kind {
            crate::path::mount_prefix(prefix)?;
        }
        if let Some(index) = &self.index {
            let bad = index.is_empty()
                || index == "."
                || index == ".."
                || index.bytes().any(|b| b == b'/' || b.is_ascii_control());
            if bad {
                return Err(Error::InvalidIndex { index: shorten(index.as_bytes()) });
            }
        }
        for (name, _) in &self.params {
            crate::params::check_name(name)?;
        }
        Ok(())
    }
}

fn trim_root(mut root: String) -> Bytes {
    while root.len() > 1 && root.ends_with('/') {
        root.pop();
    }
    Bytes::from(root)
}
