//! Hostile inputs: the derivation must answer every one with parameters or a typed error, never
//! a panic, and whatever it accepts must keep the safety invariants.

use std::net::SocketAddr;

use fcgi_cgi_env::{
    AppConfig, AppKind, CgiParams, ConnectionInfo, Endpoint, MAX_PAIR_LEN, PathInfo, UnusualHeaderNames,
    derive, pair_len,
};
use http::{HeaderName, HeaderValue, Request, Uri};
use proptest::prelude::*;

const ROOT: &str = "/srv/www";

fn configs() -> Vec<AppConfig> {
    vec![
        AppConfig::new(ROOT),
        AppConfig::new(ROOT).path_info(PathInfo::pattern(r"^(.+?\.php)(/.*)$").unwrap()),
        AppConfig::new(ROOT).path_info(PathInfo::pattern(r"(?s-u)^(.*?)(/.*)?$").unwrap()),
        AppConfig::new(ROOT)
            .path_info(PathInfo::Off)
            .index(None)
            .unusual_header_names(UnusualHeaderNames::Keep),
        AppConfig::new("/").pass_header(HeaderName::from_static("connection")),
        AppConfig::mounted("/"),
        AppConfig::mounted("/a.php/"),
        AppConfig::mounted("/x").param("SCRIPT_FILENAME", "/srv/app.py"),
    ]
}

fn connections() -> Vec<ConnectionInfo> {
    vec![
        ConnectionInfo::new(),
        ConnectionInfo::new()
            .client("[::ffff:10.0.0.1]:1".parse::<SocketAddr>().unwrap())
            .server("[fe80::1]:0".parse::<SocketAddr>().unwrap())
            .tls(true),
        ConnectionInfo::new()
            .client(Endpoint::Unix(None))
            .server(Endpoint::Unix(Some("/tmp/\u{e9}\n.sock".into()))),
    ]
}

/// Checks the invariants of an accepted environment.
fn assert_safe(p: &CgiParams, body: u64, config: &AppConfig) {
    // Socket paths come from the caller's configuration, not from the request.
    for (_, value) in p.iter().filter(|(n, _)| !n.ends_with("_ADDR")) {
        assert!(!value.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')), "NUL, CR or LF in a value: {p:?}");
    }
    if config.app_kind().is_mounted() {
        assert_mounted(p, config);
    } else {
        assert_scripts(p);
    }
    assert!(!p.contains("HTTP_PROXY"));
    assert_eq!(p.get_str("CONTENT_LENGTH"), Some(body.to_string().as_str()));
    let mut names: Vec<&str> = p.iter().map(|(n, _)| n).collect();
    for (name, value) in p.iter() {
        assert!(pair_len(name.as_bytes(), value) <= MAX_PAIR_LEN);
    }
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "duplicate names");
}

/// A mounted application: SCRIPT_NAME is the prefix, SCRIPT_NAME + PATH_INFO is the decoded,
/// normalised path (DOCUMENT_URI), and there is no file unless configured.
fn assert_mounted(p: &CgiParams, config: &AppConfig) {
    let AppKind::Mounted { prefix } = config.app_kind() else { unreachable!() };
    let script = p.get("SCRIPT_NAME").expect("SCRIPT_NAME");
    let info = p.get("PATH_INFO").expect("PATH_INFO");
    assert_eq!(script, prefix.trim_end_matches('/').as_bytes(), "{p:?}");
    assert_eq!([script, info].concat(), p.get("DOCUMENT_URI").unwrap(), "{p:?}");
    assert!(info.is_empty() || info.first() == Some(&b'/'), "{p:?}");
    assert!(!info.split(|b| *b == b'/').any(|s| s == b".." || s == b"."), "{p:?}");
    assert!(!info.iter().any(|b| *b < 0x20 || *b == 0x7f), "{p:?}");
    assert!(!p.contains("PATH_TRANSLATED") && !p.contains("DOCUMENT_ROOT"), "{p:?}");
    let configured = prefix == "/x"; // the one mounted config that sets SCRIPT_FILENAME
    assert_eq!(p.contains("SCRIPT_FILENAME"), configured, "{p:?}");
}

fn assert_scripts(p: &CgiParams) {
    let script = p.get("SCRIPT_NAME").expect("SCRIPT_NAME");
    let filename = p.get("SCRIPT_FILENAME").expect("SCRIPT_FILENAME");
    let root = p.get("DOCUMENT_ROOT").expect("DOCUMENT_ROOT");
    assert_eq!(script.first(), Some(&b'/'), "{p:?}");
    assert!(filename.starts_with(if root == b"/" { b"" } else { root }));
    for part in [Some(script), p.get("PATH_INFO")].into_iter().flatten() {
        assert_eq!(part.first(), Some(&b'/'));
        assert!(!part.split(|b| *b == b'/').any(|s| s == b".."), "{p:?}");
        assert!(!part.iter().any(|b| *b < 0x20 || *b == 0x7f), "{p:?}");
    }
    assert_eq!(p.contains("PATH_INFO"), p.contains("PATH_TRANSLATED"));
}

fn run_all(uri: &Uri, headers: &[(HeaderName, HeaderValue)], body: Option<u64>) {
    let mut req = Request::get(uri.clone()).body(()).unwrap();
    for (n, v) in headers {
        req.headers_mut().append(n.clone(), v.clone());
    }
    for config in configs() {
        for conn in connections() {
            if let Ok(p) = derive(&req, body, &conn, &config) {
                assert_safe(&p, body.unwrap_or(0), &config);
                let _ = p.redacted().to_string();
                let _ = format!("{p:?}");
            }
        }
    }
}

#[test]
fn hostile_table() {
    #[rustfmt::skip]
    let uris: &[&str] = &[
        "/", "*", "/%", "/%%%%", "/%0", "/%zz", "/..", "/../", "/..%00", "/.%2e/", "/%2e%2e%2f",
        "/a/%2e%2e%2f%2e%2e%2f", "/%c0%ae%c0%ae/x.php", "/%ff%fe/x.php/%80", "/;x=1/..;/a.php",
        "/a.php/%0a", "/a.php%0a/b", "/a.php/b%0d%0aSet-Cookie:x", "/\\..\\..\\x.php", "//", "////..",
        "/./././", "/a.php/.", "/a.php/..", "/a.php/../..", "/a.php/b/../../..", "/?%00", "/?\u{e9}",
        "http://h/", "http://h", "https://user:pass@h:8443/a.php/b?c", "http://h:0/", "http://[::1]/x",
        "http://[fe80::1%25eth0]/", "http://h:65535/", "/a.php?q=%0a", "/index.php/PHP%0Ais_the.php",
        "example.com:443", "/%2fetc%2fpasswd", "/%5c..%5c..%5cwin.ini", "/a.php/%2e%2e/%2e%2e/x",
    ];
    let long_dots = format!("/{}", "../".repeat(3_000));
    let long_ok = format!("/{}x.php", "a/".repeat(3_000));
    let mut all: Vec<String> = uris.iter().map(|s| s.to_string()).collect();
    all.push(long_dots);
    all.push(long_ok);

    let hv = |b: &[u8]| HeaderValue::from_bytes(b).unwrap();
    let hn = |s: &str| HeaderName::from_bytes(s.as_bytes()).unwrap();
    let header_sets: Vec<Vec<(HeaderName, HeaderValue)>> = vec![
        vec![],
        vec![(hn("host"), hv(b""))],
        vec![(hn("host"), hv(b":80"))],
        vec![(hn("host"), hv(b"["))],
        vec![(hn("host"), hv(b"\xc3\xa9.example"))],
        vec![(hn("host"), hv(b"a:b:c"))],
        vec![(hn("content-length"), hv(b"18446744073709551616"))],
        vec![(hn("content-length"), hv(b"0,0, 0"))],
        vec![(hn("content-length"), hv(b","))],
        vec![(hn("connection"), hv(b"host, content-type, authorization, , ,"))],
        vec![(hn("proxy"), hv(b"x")), (hn("proxy"), hv(b"y")), (hn("x_proxy"), hv(b"z"))],
        vec![(hn("x-a"), hv(b"")), (hn("x_a"), hv(b"\xff")), (hn("x.a"), hv(b"\t"))],
    ];
    // Heavy sets: many headers, many repeats, an oversized value.
    let heavy_sets: Vec<Vec<(HeaderName, HeaderValue)>> = vec![
        vec![(hn("cookie"), hv(b"a")); 1000],
        (0..2_000).map(|i| (hn(&format!("x-h{i}")), hv(b"v"))).collect(),
        (0..2_000).map(|i| (hn(&format!("x_h{}", i % 7)), hv(b"v"))).collect(),
        vec![(hn("x-big"), hv(&[b'a'; 70_000]))],
    ];
    for (i, uri) in all.iter().enumerate() {
        let Ok(uri) = uri.parse::<Uri>() else { continue };
        let heavy = if i < 3 { &heavy_sets[..] } else { &[] };
        for headers in header_sets.iter().chain(heavy) {
            for body in [None, Some(0), Some(5)] {
                run_all(&uri, headers, body);
            }
        }
    }
}

fn path_strategy() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%2E.".to_owned()),
        Just("%2f".to_owned()),
        Just("x.php".to_owned()),
        Just("%0a".to_owned()),
        Just("%00".to_owned()),
        Just("%".to_owned()),
        "[a-zA-Z0-9._~+-]{0,6}",
        any::<u8>().prop_map(|b| format!("%{b:02X}")),
    ];
    proptest::collection::vec(segment, 0..8).prop_map(|s| format!("/{}", s.join("/")))
}

fn header_strategy() -> impl Strategy<Value = (HeaderName, HeaderValue)> {
    let name = prop_oneof![
        Just("host".to_owned()),
        Just("proxy".to_owned()),
        Just("connection".to_owned()),
        Just("content-length".to_owned()),
        Just("content-type".to_owned()),
        Just("cookie".to_owned()),
        "[a-z0-9_.!#-]{1,8}",
    ];
    let value = proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..24);
    (name, value).prop_filter_map("valid header", |(n, v)| {
        Some((HeaderName::from_bytes(n.as_bytes()).ok()?, HeaderValue::from_bytes(&v).ok()?))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_stays_safe(
        path in path_strategy(),
        query in proptest::option::of("[a-zA-Z0-9=&%+]{0,12}"),
        headers in proptest::collection::vec(header_strategy(), 0..6),
        body in proptest::option::of(0u64..10),
    ) {
        let target = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        if let Ok(uri) = target.parse::<Uri>() {
            run_all(&uri, &headers, body);
        }
    }
}
