//! Fuzz target `cgi_env`: arbitrary request heads through `fcgi_cgi_env::derive`, for both kinds
//! of application (a directory of scripts and a mounted application).
//!
//! Input: one byte choosing the configuration, then fields separated by 0xFF: the method, the
//! request target, then header names and values in turn. Inputs that are not a valid `http`
//! request head are skipped (a server would have refused them before deriving anything).
//!
//! Checks: no panic; an accepted environment has no NUL, CR or LF in any value, a DOCUMENT_URI
//! without empty, `.` or `..` segments; a mounted application gets SCRIPT_NAME = the prefix
//! without its trailing slash, SCRIPT_NAME + PATH_INFO = DOCUMENT_URI and no file parameters; a
//! directory of scripts gets SCRIPT_FILENAME = DOCUMENT_ROOT + SCRIPT_NAME.
//! Run with `cargo xtask fuzz cgi_env --time 60`.

#![no_main]

use fcgi_cgi_env::http::{HeaderName, HeaderValue, Method, Request};
use fcgi_cgi_env::{AppConfig, AppKind, ConnectionInfo, PathInfo, UnusualHeaderNames, derive};
use libfuzzer_sys::fuzz_target;

const ROOT: &str = "/srv/www";

fn config(choice: u8) -> AppConfig {
    match choice % 6 {
        0 => AppConfig::new(ROOT),
        1 => AppConfig::new(ROOT).path_info(PathInfo::Off).index(None),
        2 => AppConfig::new("/")
            .path_info(PathInfo::pattern(r"(?s-u)^(.*?)(/.*)?$").expect("pattern"))
            .unusual_header_names(UnusualHeaderNames::Keep),
        3 => AppConfig::mounted("/"),
        4 => AppConfig::mounted("/app"),
        _ => AppConfig::mounted("/a.php/"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let mut fields = rest.split(|b| *b == 0xff);
    let (Some(method), Some(target)) = (fields.next(), fields.next()) else { return };
    let Ok(method) = Method::from_bytes(method) else { return };
    let Ok(target) = std::str::from_utf8(target) else { return };
    let Ok(mut request) = Request::builder().method(method).uri(target).body(()) else { return };
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
            return;
        };
        request.headers_mut().append(name, value);
    }
    let config = config(choice);
    let body = (choice & 0x80 != 0).then_some(u64::from((choice >> 3) & 7));
    let connection = ConnectionInfo::new();
    let Ok(params) = derive(&request, body, &connection, &config) else { return };

    for (name, value) in &params {
        assert!(!value.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')), "{name} holds NUL, CR or LF");
    }
    let uri = params.get("DOCUMENT_URI").expect("DOCUMENT_URI");
    assert_eq!(uri.first(), Some(&b'/'));
    let inner = &uri[1..uri.len() - usize::from(uri.len() > 1 && uri.ends_with(b"/"))];
    if !inner.is_empty() {
        assert!(!inner.split(|b| *b == b'/').any(|s| s.is_empty() || s == b"." || s == b".."), "{uri:?}");
    }
    let script = params.get("SCRIPT_NAME").expect("SCRIPT_NAME");
    match config.app_kind() {
        AppKind::Mounted { prefix } => {
            let info = params.get("PATH_INFO").expect("PATH_INFO");
            assert_eq!(script, prefix.trim_end_matches('/').as_bytes());
            assert_eq!([script, info].concat(), uri);
            for absent in ["SCRIPT_FILENAME", "PATH_TRANSLATED", "DOCUMENT_ROOT"] {
                assert!(!params.contains(absent), "{absent}");
            }
        }
        _ => {
            let root = params.get("DOCUMENT_ROOT").expect("DOCUMENT_ROOT");
            let root: &[u8] = if root == b"/" { b"" } else { root };
            assert_eq!(params.get("SCRIPT_FILENAME").expect("SCRIPT_FILENAME"), [root, script].concat());
            assert!(!script.split(|b| *b == b'/').any(|s| s == b".."));
        }
    }
});
