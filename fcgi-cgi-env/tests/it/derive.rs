//! Table-driven tests of the whole derivation: one line per case.
#![allow(clippy::type_complexity)] // one tuple per table row

use std::net::SocketAddr;
use std::path::PathBuf;

use fcgi_cgi_env::{
    AppConfig, CgiParams, ConnectionInfo, Endpoint, Error, MAX_PAIR_LEN, PathInfo, derive, pair_len,
};
use http::{HeaderName, HeaderValue, Method, Request, Version};

const ROOT: &str = "/srv/www";

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut r =
        Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(uri).body(()).unwrap();
    for (n, v) in headers {
        r.headers_mut().append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    r
}

fn tcp() -> ConnectionInfo {
    ConnectionInfo::new()
        .client("198.51.100.7:40000".parse::<SocketAddr>().unwrap())
        .server("192.0.2.1:8080".parse::<SocketAddr>().unwrap())
}

fn get(uri: &str, headers: &[(&str, &str)]) -> Result<CgiParams, Error> {
    derive(&request("GET", uri, headers), None, &tcp(), &AppConfig::new(ROOT))
}

/// `Some(v)`: the parameter has value `v`; `None`: it is absent.
type Want<'a> = &'a [(&'a str, Option<&'a str>)];

fn check(params: &CgiParams, want: Want<'_>, case: &str) {
    for (name, value) in want {
        assert_eq!(
            params.get(name).map(|v| String::from_utf8_lossy(v).into_owned()),
            value.map(str::to_owned),
            "{case}: {name}"
        );
    }
}

#[test]
fn full_environment_of_a_simple_get() {
    let r = request("GET", "/index.php?a=1", &[("Host", "example.com"), ("Accept", "*/*")]);
    let p = derive(&r, None, &tcp(), &AppConfig::new(ROOT)).unwrap();
    let got: Vec<(&str, String)> =
        p.iter().map(|(n, v)| (n, String::from_utf8(v.to_vec()).unwrap())).collect();
    let version = env!("CARGO_PKG_VERSION");
    #[rustfmt::skip]
    let want: Vec<(&str, String)> = vec![
        ("GATEWAY_INTERFACE", "CGI/1.1".into()),
        ("SERVER_SOFTWARE",   format!("fcgi/{version}")),
        ("SERVER_PROTOCOL",   "HTTP/1.1".into()),
        ("SERVER_NAME",       "example.com".into()),
        ("SERVER_ADDR",       "192.0.2.1".into()),
        ("SERVER_PORT",       "8080".into()),
        ("REQUEST_SCHEME",    "http".into()),
        ("REMOTE_ADDR",       "198.51.100.7".into()),
        ("REMOTE_PORT",       "40000".into()),
        ("REQUEST_METHOD",    "GET".into()),
        ("REQUEST_URI",       "/index.php?a=1".into()),
        ("DOCUMENT_URI",      "/index.php".into()),
        ("QUERY_STRING",      "a=1".into()),
        ("DOCUMENT_ROOT",     "/srv/www".into()),
        ("SCRIPT_NAME",       "/index.php".into()),
        ("SCRIPT_FILENAME",   "/srv/www/index.php".into()),
        ("CONTENT_LENGTH",    "0".into()),
        ("REDIRECT_STATUS",   "200".into()),
        ("HTTP_HOST",         "example.com".into()),
        ("HTTP_ACCEPT",       "*/*".into()),
    ];
    assert_eq!(got, want);
}

#[test]
fn derived_values() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &[(&str, &str)], Want<'_>)] = &[
        // case                         uri                                   headers                           expected
        ("query undecoded",             "/env.php?a=%20b&c",                  &[],                              &[("QUERY_STRING", Some("a=%20b&c")), ("REQUEST_URI", Some("/env.php?a=%20b&c"))]),
        ("query absent",                "/env.php",                           &[],                              &[("QUERY_STRING", Some(""))]),
        ("query empty",                 "/env.php?",                          &[],                              &[("QUERY_STRING", Some("")), ("REQUEST_URI", Some("/env.php?"))]),
        ("request uri as received",     "/a/../env.php?x=%2e",                &[],                              &[("REQUEST_URI", Some("/a/../env.php?x=%2e")), ("DOCUMENT_URI", Some("/env.php")), ("SCRIPT_NAME", Some("/env.php"))]),
        ("path info split",             "/env.php/extra/path?x=1",            &[],                              &[("SCRIPT_NAME", Some("/env.php")), ("PATH_INFO", Some("/extra/path")), ("PATH_TRANSLATED", Some("/srv/www/extra/path")), ("SCRIPT_FILENAME", Some("/srv/www/env.php")), ("DOCUMENT_URI", Some("/env.php/extra/path"))]),
        ("no path info, no translated", "/env.php",                           &[],                              &[("PATH_INFO", None), ("PATH_TRANSLATED", None)]),
        ("index appended",              "/blog/",                             &[],                              &[("SCRIPT_NAME", Some("/blog/index.php")), ("SCRIPT_FILENAME", Some("/srv/www/blog/index.php")), ("DOCUMENT_URI", Some("/blog/"))]),
        ("index at root",               "/?q",                                &[],                              &[("SCRIPT_NAME", Some("/index.php")), ("QUERY_STRING", Some("q"))]),
        ("absolute-form uses path",     "http://example.com/env.php/p?x=1",   &[("Host", "other.example")],     &[("REQUEST_URI", Some("/env.php/p?x=1")), ("SCRIPT_NAME", Some("/env.php")), ("SERVER_NAME", Some("example.com")), ("HTTP_HOST", Some("example.com"))]),
        ("absolute-form ignores Host",  "http://example.com/a.php",           &[("Host", "evil/../")],          &[("SERVER_NAME", Some("example.com")), ("HTTP_HOST", Some("example.com"))]),
        ("userinfo never passed",       "https://u:pw@example.com:8443/a.php",&[],                              &[("HTTP_HOST", Some("example.com:8443")), ("SERVER_NAME", Some("example.com")), ("SERVER_PORT", Some("8080"))]),
        ("absolute-form no path",       "http://example.com",                 &[],                              &[("REQUEST_URI", Some("/")), ("SCRIPT_NAME", Some("/index.php")), ("HTTP_HOST", Some("example.com"))]),
        ("authority gives HTTP_HOST",   "https://example.com:8443/a.php",     &[],                              &[("HTTP_HOST", Some("example.com:8443")), ("SERVER_NAME", Some("example.com"))]),
        ("host without port",           "/",                                  &[("Host", "Example.com:8000")],  &[("SERVER_NAME", Some("example.com")), ("SERVER_PORT", Some("8080")), ("HTTP_HOST", Some("Example.com:8000"))]),
        ("no host: server address",     "/",                                  &[],                              &[("SERVER_NAME", Some("192.0.2.1")), ("HTTP_HOST", None)]),
        ("content type",                "/",                                  &[("Content-Type", "text/plain")],&[("CONTENT_TYPE", Some("text/plain")), ("HTTP_CONTENT_TYPE", None)]),
        ("no content type",             "/",                                  &[],                              &[("CONTENT_TYPE", None)]),
        ("content length 0 header",     "/",                                  &[("Content-Length", "0")],       &[("CONTENT_LENGTH", Some("0")), ("HTTP_CONTENT_LENGTH", None)]),
        ("authorization passed",        "/",                                  &[("Authorization", "Basic dTpw")],&[("HTTP_AUTHORIZATION", Some("Basic dTpw"))]),
        ("encoded script name",         "/%66oo.php/b%61r",                   &[],                              &[("SCRIPT_NAME", Some("/foo.php")), ("PATH_INFO", Some("/bar")), ("REQUEST_URI", Some("/%66oo.php/b%61r"))]),
        ("no https over plain",         "/",                                  &[],                              &[("HTTPS", None), ("REQUEST_SCHEME", Some("http"))]),
    ];
    for (case, uri, headers, want) in cases {
        let p = get(uri, headers).unwrap_or_else(|e| panic!("{case}: {e}"));
        check(&p, want, case);
    }
}

/// Vectors modelled on php-src `sapi/fpm/tests` and nginx-tests.
#[test]
fn php_src_and_nginx_vectors() {
    let hui = "PTEST".repeat(1000);
    #[rustfmt::skip]
    let ok: &[(&str, &str, &[(&str, &str)], Want<'_>)] = &[
        // fcgi-env-pif-apache-handler-with-pi: PHP_SELF = SCRIPT_NAME + PATH_INFO
        ("pif with pi",            "/fpm.php/pinfo",          &[], &[("SCRIPT_NAME", Some("/fpm.php")), ("PATH_INFO", Some("/pinfo")), ("PATH_TRANSLATED", Some("/srv/www/pinfo"))]),
        // fcgi-env-pif-apache-handler-with-query
        ("pif with query",         "/fpm.php?a=b&c=d",        &[], &[("SCRIPT_NAME", Some("/fpm.php")), ("QUERY_STRING", Some("a=b&c=d")), ("PATH_INFO", None)]),
        // fcgi-env-pif-apache-pp-sfp-decoding (GH-17645): `+` is not a space in paths, %20 is
        ("pp-sfp decoding",        "/my+script.php/1%202",    &[], &[("SCRIPT_NAME", Some("/my+script.php")), ("PATH_INFO", Some("/1 2")), ("SCRIPT_FILENAME", Some("/srv/www/my+script.php"))]),
        // fcgi-env-pif-apache-pp-sfp-encoded: decoded once only
        ("pp-sfp encoded",         "/a%2520b.php/x%2520y",    &[], &[("SCRIPT_NAME", Some("/a%20b.php")), ("PATH_INFO", Some("/x%20y"))]),
        // cve-2016-5385 (httpoxy): Proxy never becomes HTTP_PROXY, other headers unaffected
        ("cve-2016-5385",          "/fpm.php",                &[("Proxy", "BADPROXY"), ("Foo", "BAR")], &[("HTTP_PROXY", None), ("HTTP_FOO", Some("BAR"))]),
        // bug78599 sends HTTP_HUI of 5000 bytes along a weird SCRIPT_FILENAME: large values pass
        ("bug78599 large header",  "/fpm.php",                &[("Hui", &hui)], &[("HTTP_HUI", Some(&hui))]),
        // nginx-tests fastcgi_header_params.t
        ("nginx repeated xff",     "/",                       &[("X-Forwarded-For", "foo"), ("X-Forwarded-For", "bar"), ("X-Forwarded-For", "bazz")], &[("HTTP_X_FORWARDED_FOR", Some("foo, bar, bazz"))]),
        ("nginx repeated cookie",  "/",                       &[("Cookie", "foo"), ("Cookie", "bar"), ("Cookie", "bazz")], &[("HTTP_COOKIE", Some("foo; bar; bazz"))]),
        ("nginx repeated unknown", "/",                       &[("Foo", "foo"), ("Foo", "bar"), ("Foo", "bazz")], &[("HTTP_FOO", Some("foo, bar, bazz"))]),
    ];
    for (case, uri, headers, want) in ok {
        let p = get(uri, headers).unwrap_or_else(|e| panic!("{case}: {e}"));
        check(&p, want, case);
    }

    #[rustfmt::skip]
    let refused: &[(&str, &str, Error)] = &[
        // bug78599 / CVE-2019-11043: %0a defeated nginx's `^(.+?\.php)(/.*)$`
        ("cve-2019-11043",        "/index.php/PHP%0Ais_the_shittiest_lang.php?QQQ", Error::ForbiddenByteInPath { byte: b'\n' }),
        ("cve-2019-11043 lower",  "/index.php/PHP_VALUE%0asession.auto_start=1",    Error::ForbiddenByteInPath { byte: b'\n' }),
        ("nul truncation",        "/shell.jpg%00.php",                               Error::ForbiddenByteInPath { byte: 0 }),
        ("cr",                    "/a.php/%0d",                                      Error::ForbiddenByteInPath { byte: b'\r' }),
    ];
    for (case, uri, want) in refused {
        assert_eq!(get(uri, &[]).unwrap_err(), *want, "{case}");
    }

    // nginx-tests: a configured HTTP_X_BLAH replaces the X-Blah header rather than adding to it.
    let config = AppConfig::new(ROOT).param("HTTP_X_BLAH", "blah");
    let r = request("GET", "/", &[("X-Blah", "ignored header"), ("X-Blah", "ignored header")]);
    let p = derive(&r, None, &tcp(), &config).unwrap();
    assert_eq!(p.get_str("HTTP_X_BLAH"), Some("blah"));
    assert_eq!(p.iter().filter(|(n, _)| *n == "HTTP_X_BLAH").count(), 1);
}

#[test]
fn traversal_and_path_rules() {
    #[rustfmt::skip]
    let cases: &[(&str, Result<&str, Error>)] = &[
        // uri                              SCRIPT_NAME or error
        ("/../etc/passwd",                  Err(Error::PathEscapesDocumentRoot)),
        ("/%2e%2e/etc/passwd",              Err(Error::PathEscapesDocumentRoot)),
        ("/%2E%2e/%2e%2E/etc/passwd",       Err(Error::PathEscapesDocumentRoot)),
        ("/.%2e/etc/passwd",                Err(Error::PathEscapesDocumentRoot)),
        ("/x.php/..%2f..%2f..%2fetc/passwd",Err(Error::PathEscapesDocumentRoot)),
        ("/a%2f..%2f..%2fetc/passwd",       Err(Error::PathEscapesDocumentRoot)),
        ("/a/b/../../../x.php",             Err(Error::PathEscapesDocumentRoot)),
        ("/a/b/../../x.php",                Ok("/x.php")),
        ("/a/./b/./x.php",                  Ok("/a/b/x.php")),
        ("//x.php",                         Ok("/x.php")),
        ("/%252e%252e/x.php",               Ok("/%2e%2e/x.php")),
        ("/%",                              Err(Error::InvalidPercentEncoding { offset: 1 })),
        ("/a%g1",                           Err(Error::InvalidPercentEncoding { offset: 2 })),
        ("*",                               Err(Error::UnsupportedRequestTarget { target: "*".into() })),
    ];
    for (uri, want) in cases {
        let got = get(uri, &[]).map(|p| p.get_str("SCRIPT_NAME").unwrap().to_owned());
        assert_eq!(got, want.clone().map(str::to_owned), "{uri}");
    }
}

#[test]
fn script_extension_allow_list() {
    let jpg_split = AppConfig::new(ROOT).path_info(PathInfo::pattern(r"^(.+?\.(?:php|jpg))(/.*)$").unwrap());
    let nginx = AppConfig::new(ROOT).path_info(PathInfo::pattern(r"^(.+?\.php)(/.*)$").unwrap());
    #[rustfmt::skip]
    let cases: &[(&AppConfig, &str, Result<(&str, Option<&str>), Error>)] = &[
        // config     uri                        (SCRIPT_NAME, PATH_INFO) or error
        (&jpg_split,  "/uploads/x.jpg/y.php",    Err(Error::ScriptExtensionNotAllowed { script_name: "/uploads/x.jpg".into() })),
        (&nginx,      "/uploads/x.jpg/y.php",    Ok(("/uploads/x.jpg/y.php", None))),
        (&nginx,      "/a.php/b",                Ok(("/a.php", Some("/b")))),
        (&nginx,      "/static/app.css",         Ok(("/static/app.css", None))),
    ];
    for (config, uri, want) in cases {
        let got = derive(&request("GET", uri, &[]), None, &tcp(), config).map(|p| {
            (p.get_str("SCRIPT_NAME").unwrap().to_owned(), p.get_str("PATH_INFO").map(str::to_owned))
        });
        let want = want.clone().map(|(s, i)| (s.to_owned(), i.map(str::to_owned)));
        assert_eq!(got, want, "{uri}");
    }
}

#[test]
fn content_length_rules() {
    let c = AppConfig::new(ROOT);
    let unset = AppConfig::new(ROOT).unset("CONTENT_LENGTH");
    let same = AppConfig::new(ROOT).param("CONTENT_LENGTH", "5");
    let wrong = AppConfig::new(ROOT).param("CONTENT_LENGTH", "10");
    #[rustfmt::skip]
    let cases: &[(&AppConfig, &str, &[(&str, &str)], Option<u64>, Result<Option<&str>, Error>)] = &[
        // config method  headers                       body      CONTENT_LENGTH or error
        (&c,     "GET",   &[],                          None,     Ok(Some("0"))),
        (&c,     "HEAD",  &[],                          None,     Ok(Some("0"))),
        (&c,     "POST",  &[("Content-Length", "0")],   Some(0),  Ok(Some("0"))),
        (&c,     "POST",  &[],                          Some(0),  Ok(Some("0"))),
        (&c,     "POST",  &[("Content-Length", "5")],   Some(5),  Ok(Some("5"))),
        (&c,     "POST",  &[("Transfer-Encoding", "chunked")], Some(7), Ok(Some("7"))),
        (&c,     "POST",  &[("Content-Length", "5")],   Some(4),  Err(Error::ContentLengthMismatch { header: 5, body: 4 })),
        (&c,     "GET",   &[("Content-Length", "5")],   None,     Err(Error::ContentLengthMismatch { header: 5, body: 0 })),
        (&c,     "POST",  &[("Content-Length", "x")],   Some(5),  Err(Error::InvalidContentLength)),
        (&unset, "GET",   &[],                          None,     Ok(None)),
        (&unset, "POST",  &[],                          Some(5),  Err(Error::ContentLengthOverride { given: "<unset>".into(), body: 5 })),
        (&same,  "POST",  &[],                          Some(5),  Ok(Some("5"))),
        (&wrong, "POST",  &[],                          Some(5),  Err(Error::ContentLengthOverride { given: "10".into(), body: 5 })),
    ];
    for (config, method, headers, body, want) in cases {
        let got = derive(&request(method, "/a.php", headers), *body, &tcp(), config)
            .map(|p| p.get_str("CONTENT_LENGTH").map(str::to_owned));
        assert_eq!(got, want.clone().map(|v| v.map(str::to_owned)), "{method} {headers:?} {body:?}");
    }
}

#[test]
fn connection_facts() {
    let v6 = ConnectionInfo::new()
        .client("[2001:db8::7]:5000".parse::<SocketAddr>().unwrap())
        .server("[2001:db8::1]:443".parse::<SocketAddr>().unwrap())
        .tls(true);
    let mapped = ConnectionInfo::new().client("[::ffff:192.0.2.9]:1234".parse::<SocketAddr>().unwrap());
    let unix =
        ConnectionInfo::new().client(Endpoint::Unix(None)).server(PathBuf::from("/run/fcgi-front.sock"));
    let none = ConnectionInfo::new();
    let tls_only = ConnectionInfo::new().tls(true);
    #[rustfmt::skip]
    let cases: &[(&str, &ConnectionInfo, &[(&str, &str)], Want<'_>)] = &[
        ("ipv6 + tls",     &v6,       &[],                   &[("REMOTE_ADDR", Some("2001:db8::7")), ("REMOTE_PORT", Some("5000")), ("SERVER_ADDR", Some("2001:db8::1")), ("SERVER_PORT", Some("443")), ("SERVER_NAME", Some("[2001:db8::1]")), ("HTTPS", Some("on")), ("REQUEST_SCHEME", Some("https"))]),
        ("v4-mapped",      &mapped,   &[],                   &[("REMOTE_ADDR", Some("192.0.2.9")), ("REMOTE_PORT", Some("1234"))]),
        ("unix sockets",   &unix,     &[("Host", "h:81")],   &[("REMOTE_ADDR", Some("unix:")), ("REMOTE_PORT", None), ("SERVER_ADDR", Some("unix:/run/fcgi-front.sock")), ("SERVER_PORT", Some("81")), ("SERVER_NAME", Some("h"))]),
        ("unix, no port",  &unix,     &[("Host", "h")],      &[("SERVER_PORT", Some("80"))]),
        ("nothing known",  &none,     &[],                   &[("REMOTE_ADDR", None), ("REMOTE_PORT", None), ("SERVER_ADDR", None), ("SERVER_NAME", None), ("SERVER_PORT", Some("80"))]),
        ("tls, no addrs",  &tls_only, &[],                   &[("SERVER_PORT", Some("443")), ("HTTPS", Some("on"))]),
    ];
    for (case, conn, headers, want) in cases {
        let p = derive(&request("GET", "/", headers), None, conn, &AppConfig::new(ROOT)).unwrap();
        check(&p, want, case);
    }
}

#[test]
fn protocol_versions() {
    #[rustfmt::skip]
    let cases = [
        (Version::HTTP_10, "HTTP/1.0"),
        (Version::HTTP_11, "HTTP/1.1"),
        (Version::HTTP_2,  "HTTP/2.0"),
        (Version::HTTP_3,  "HTTP/3.0"),
    ];
    for (version, want) in cases {
        let mut r = request("GET", "/", &[]);
        *r.version_mut() = version;
        let p = derive(&r, None, &tcp(), &AppConfig::new(ROOT)).unwrap();
        assert_eq!(p.get_str("SERVER_PROTOCOL"), Some(want));
    }
}

#[test]
fn configuration_and_overrides() {
    let r = request("GET", "/x.php", &[("Host", "example.com"), ("X-A", "1")]);
    let config = AppConfig::new("/srv/www/")
        .server_name("configured.example")
        .server_port(9999)
        .server_software("test/1")
        .redirect_status(None)
        .param("SCRIPT_NAME", "/override.php")
        .param("HTTP_X_A", "overridden")
        .param("APP_ENV", "prod")
        .param("APP_ENV", "staging")
        .unset("SERVER_ADDR");
    let p = derive(&r, None, &tcp(), &config).unwrap();
    #[rustfmt::skip]
    check(&p, &[
        ("DOCUMENT_ROOT",   Some("/srv/www")),
        ("SCRIPT_NAME",     Some("/override.php")),
        // overrides replace one value, nothing is recomputed from them
        ("SCRIPT_FILENAME", Some("/srv/www/x.php")),
        ("SERVER_NAME",     Some("configured.example")),
        ("SERVER_PORT",     Some("9999")),
        ("SERVER_SOFTWARE", Some("test/1")),
        ("REDIRECT_STATUS", None),
        ("SERVER_ADDR",     None),
        ("HTTP_X_A",        Some("overridden")),
        ("APP_ENV",         Some("staging")),
    ], "overrides");
    let names: Vec<&str> = p.iter().map(|(n, _)| n).collect();
    // replaced in place, new ones appended at the end
    assert!(
        names.iter().position(|n| *n == "SCRIPT_NAME") < names.iter().position(|n| *n == "SCRIPT_FILENAME")
    );
    assert_eq!(names.last(), Some(&"APP_ENV"));
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "one entry per name");

    let root = AppConfig::new("/").index(None).path_info(PathInfo::Off);
    let p = derive(&request("GET", "/dir/", &[]), None, &tcp(), &root).unwrap();
    check(
        &p,
        &[("DOCUMENT_ROOT", Some("/")), ("SCRIPT_NAME", Some("/dir/")), ("SCRIPT_FILENAME", Some("/dir/"))],
        "root docroot",
    );
    let p = derive(&request("GET", "/a.php/b", &[]), None, &tcp(), &root).unwrap();
    check(&p, &[("SCRIPT_NAME", Some("/a.php/b")), ("PATH_INFO", None)], "split off");
}

#[test]
fn config_errors() {
    let r = request("GET", "/", &[]);
    #[rustfmt::skip]
    let cases: Vec<(AppConfig, Error)> = vec![
        (AppConfig::new(ROOT).index(Some("../x.php")), Error::InvalidIndex { index: "../x.php".into() }),
        (AppConfig::new(ROOT).index(Some("")),         Error::InvalidIndex { index: "".into() }),
        (AppConfig::new(ROOT).index(Some("..")),       Error::InvalidIndex { index: "..".into() }),
        (AppConfig::new(ROOT).param("", "x"),          Error::InvalidParamName { name: "".into() }),
        (AppConfig::new(ROOT).param("A=B", "x"),       Error::InvalidParamName { name: "A=B".into() }),
        (AppConfig::new(ROOT).param("A\nB", "x"),      Error::InvalidParamName { name: "A\\nB".into() }),
    ];
    for (config, want) in cases {
        let err = derive(&r, None, &tcp(), &config).unwrap_err();
        assert!(err.is_config_error(), "{err}");
        assert_eq!(err, want);
    }
    assert_eq!(PathInfo::pattern(r"^(.+\.php)$").unwrap_err(), Error::PathInfoPatternCaptures { found: 1 });
    assert!(matches!(PathInfo::pattern(r"^((").unwrap_err(), Error::InvalidPathInfoPattern { .. }));
}

#[test]
fn header_errors() {
    #[rustfmt::skip]
    let cases: &[(&str, &[(&str, &str)], Error)] = &[
        ("/", &[("Host", "a"), ("Host", "b")],                     Error::ConflictingHeader { name: "Host" }),
        ("/", &[("Host", "evil.com/../")],                         Error::InvalidHost { value: "evil.com/../".into() }),
        ("/", &[("Host", "a:99999")],                              Error::InvalidHost { value: "a:99999".into() }),
        ("/", &[("Content-Type", "a/b"), ("Content-Type", "c/d")], Error::ConflictingHeader { name: "Content-Type" }),
    ];
    for (uri, headers, want) in cases {
        assert_eq!(get(uri, headers).unwrap_err(), *want, "{headers:?}");
    }
}

#[test]
fn pair_size_limit() {
    // HTTP_X_BIG is 10 bytes: prefixes 1 + 4, so a value of 65535 - 15 bytes is the largest that fits.
    let fits = "v".repeat(MAX_PAIR_LEN - 15);
    let too_big = "v".repeat(MAX_PAIR_LEN - 14);
    assert_eq!(pair_len(b"HTTP_X_BIG", fits.as_bytes()), MAX_PAIR_LEN);
    let p = get("/", &[("X-Big", &fits)]).unwrap();
    assert_eq!(p.get("HTTP_X_BIG").map(<[u8]>::len), Some(fits.len()));
    assert_eq!(
        get("/", &[("X-Big", &too_big)]).unwrap_err(),
        Error::ParamTooLarge { name: "HTTP_X_BIG".into(), len: MAX_PAIR_LEN + 1 }
    );

    // Several 50 KB headers, about 150 KB in all: each pair fits its own record.
    let v = "x".repeat(50 * 1024);
    let p = get("/", &[("X-A", &v), ("X-B", &v), ("X-C", &v)]).unwrap();
    assert!(p.encoded_len() > 150 * 1024);

    // Too large a path, a configured value, a repeated header joined beyond the limit.
    // (`http` caps a URI just below 64 KiB; with REQUEST_URI's name and prefixes it no longer fits.)
    let long_path = format!("/{}.php", "a".repeat(65_520));
    assert!(matches!(get(&long_path, &[]), Err(Error::ParamTooLarge { .. })));
    let config = AppConfig::new(ROOT).param("BIG", "x".repeat(70_000));
    assert!(matches!(
        derive(&request("GET", "/", &[]), None, &tcp(), &config),
        Err(Error::ParamTooLarge { .. })
    ));
    let half = "y".repeat(40_000);
    assert!(matches!(get("/", &[("X-R", &half), ("X-R", &half)]), Err(Error::ParamTooLarge { .. })));

    let mut p = CgiParams::new();
    assert!(matches!(p.set("X", vec![b'x'; 70_000]), Err(Error::ParamTooLarge { .. })));
    assert!(p.set("X", "1").is_ok());
}

#[test]
fn redacted_printing() {
    let r = request(
        "GET",
        "/a.php?token=%0d%0a",
        &[
            ("Authorization", "Bearer secret-token"),
            ("Cookie", "session=secret-cookie"),
            ("X-Note", "caf\u{e9}"),
        ],
    );
    let config = AppConfig::new(ROOT).pass_header(HeaderName::from_static("proxy-authorization"));
    let mut r = r;
    r.headers_mut().append("proxy-authorization", HeaderValue::from_static("Basic secret-proxy"));
    let p = derive(&r, None, &tcp(), &config).unwrap();
    let shown = p.redacted().to_string();
    let debug = format!("{p:?}");
    for text in [&shown, &debug] {
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("HTTP_AUTHORIZATION"));
    }
    assert!(shown.contains("HTTP_AUTHORIZATION=<redacted, 19 bytes>\n"));
    assert!(shown.contains("HTTP_COOKIE=<redacted, 21 bytes>\n"));
    assert!(shown.contains("HTTP_PROXY_AUTHORIZATION=<redacted, 18 bytes>\n"));
    assert!(shown.contains("HTTP_X_NOTE=caf\\xc3\\xa9\n"));
    assert!(shown.contains("QUERY_STRING=token=%0d%0a\n"));
    assert_eq!(shown.lines().count(), p.len());
    // the values themselves are intact for sending
    assert_eq!(p.get_str("HTTP_AUTHORIZATION"), Some("Bearer secret-token"));
    assert!(fcgi_cgi_env::is_sensitive("http_cookie"));
}

#[test]
fn request_parts_and_iteration() {
    let (parts, ()) = request("POST", "/a.php", &[("Content-Length", "3")]).into_parts();
    let p = derive(&parts, Some(3), &tcp(), &AppConfig::default()).unwrap();
    assert_eq!(p.get_str("SCRIPT_FILENAME"), Some("/var/www/html/a.php"));
    assert_eq!(p.get_str("CONTENT_LENGTH"), Some("3"));
    assert_eq!(p.iter().len(), p.len());
    let n = p.len();
    let v = p.clone().into_vec();
    assert_eq!(v.len(), n);
    assert_eq!(p.into_iter().count(), n);
}

/// A mounted application (WSGI, PSGI, Rack, Go's net/http/fcgi, uWSGI): SCRIPT_NAME is the
/// prefix without its trailing slash, PATH_INFO the rest, and no file parameters.
#[test]
fn mounted_application() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, Result<Want<'_>, Error>)] = &[
        // prefix  request                 SCRIPT_NAME, PATH_INFO, REQUEST_URI
        ("/",      "/raw",                 Ok(&[("SCRIPT_NAME", Some("")), ("PATH_INFO", Some("/raw")), ("REQUEST_URI", Some("/raw"))])),
        ("/",      "/",                    Ok(&[("SCRIPT_NAME", Some("")), ("PATH_INFO", Some("/"))])),
        ("/",      "/api/items?id=3",      Ok(&[("SCRIPT_NAME", Some("")), ("PATH_INFO", Some("/api/items")), ("QUERY_STRING", Some("id=3")), ("REQUEST_URI", Some("/api/items?id=3"))])),
        ("/app",   "/app",                 Ok(&[("SCRIPT_NAME", Some("/app")), ("PATH_INFO", Some(""))])),
        ("/app/",  "/app",                 Ok(&[("SCRIPT_NAME", Some("/app")), ("PATH_INFO", Some(""))])),
        ("/app",   "/app/",                Ok(&[("SCRIPT_NAME", Some("/app")), ("PATH_INFO", Some("/"))])),
        ("/app",   "/app/users/42",        Ok(&[("SCRIPT_NAME", Some("/app")), ("PATH_INFO", Some("/users/42"))])),
        ("/app",   "/app/a%20b/%2541",     Ok(&[("PATH_INFO", Some("/a b/%41")), ("REQUEST_URI", Some("/app/a%20b/%2541"))])),
        ("/app",   "/app/x/../y",          Ok(&[("PATH_INFO", Some("/y")), ("REQUEST_URI", Some("/app/x/../y"))])),
        ("/app",   "/app/index.php/x",     Ok(&[("SCRIPT_NAME", Some("/app")), ("PATH_INFO", Some("/index.php/x"))])),
        ("/app",   "/app/dir/",            Ok(&[("PATH_INFO", Some("/dir/"))])),
        ("/app",   "/appx",                Err(Error::OutsideMount { prefix: "/app".into(), path: "/appx".into() })),
        ("/app",   "/",                    Err(Error::OutsideMount { prefix: "/app".into(), path: "/".into() })),
        ("/app",   "/app/../etc",          Err(Error::OutsideMount { prefix: "/app".into(), path: "/etc".into() })),
        ("/app",   "/app/%2e%2e/%2e%2e/x", Err(Error::PathEscapesDocumentRoot)),
        ("/",      "/a%00b",               Err(Error::ForbiddenByteInPath { byte: 0 })),
        ("/",      "/a%0d%0ab",            Err(Error::ForbiddenByteInPath { byte: b'\r' })),
        ("/",      "/a%0ab",               Err(Error::ForbiddenByteInPath { byte: b'\n' })),
        ("/",      "/%252e",               Ok(&[("PATH_INFO", Some("/%2e"))])),
        ("app",    "/app",                 Err(Error::InvalidMountPrefix { prefix: "app".into() })),
        ("/a/../b","/b",                   Err(Error::InvalidMountPrefix { prefix: "/a/../b".into() })),
    ];
    for (prefix, uri, want) in cases {
        let config = AppConfig::mounted(*prefix);
        let got = derive(&request("GET", uri, &[("Host", "example.com")]), None, &tcp(), &config);
        match (got, want) {
            (Ok(p), Ok(want)) => {
                check(&p, want, uri);
                for absent in ["DOCUMENT_ROOT", "SCRIPT_FILENAME", "PATH_TRANSLATED"] {
                    assert!(!p.contains(absent), "{prefix} {uri}: {absent} in {p:?}");
                }
            }
            (Err(e), Err(want)) => assert_eq!(e, *want, "{prefix} {uri}"),
            (got, want) => panic!("{prefix} {uri}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn mounted_application_keeps_what_is_given() {
    let config = AppConfig::mounted("/")
        .param("SCRIPT_FILENAME", "/srv/app/main.py")
        .param("DOCUMENT_ROOT", "/srv/app");
    let p = derive(&request("POST", "/hello", &[]), Some(3), &tcp(), &config).unwrap();
    check(
        &p,
        &[
            ("SCRIPT_NAME", Some("")),
            ("PATH_INFO", Some("/hello")),
            ("SCRIPT_FILENAME", Some("/srv/app/main.py")),
            ("DOCUMENT_ROOT", Some("/srv/app")),
            ("PATH_TRANSLATED", None),
            ("CONTENT_LENGTH", Some("3")),
            ("REQUEST_METHOD", Some("POST")),
        ],
        "mounted with params",
    );
    // The default is still a directory of scripts, as before.
    let p = derive(&request("GET", "/raw", &[]), None, &tcp(), &AppConfig::new(ROOT)).unwrap();
    check(
        &p,
        &[("SCRIPT_NAME", Some("/raw")), ("PATH_INFO", None), ("SCRIPT_FILENAME", Some("/srv/www/raw"))],
        "scripts",
    );
}
