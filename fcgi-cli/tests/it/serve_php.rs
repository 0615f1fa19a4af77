//! `fcgi serve` in PHP mode against the harness's php-fpm, driven by real curl: the front
//! controller application `tests/php/app/` (pages, assets, a directory index, uploads,
//! cookies), the CGI environment of nginx's `snippets/fastcgi-php.conf`, static files, HTTP/2
//! with prior knowledge, and the safety rules (dot files, scripts that are not regular files).

use super::serve_support::{Curl, Serve, curl, php_fpm, text};

#[test]
fn front_controller_application_over_http1_and_http2() {
    let serve = Serve::app(&[]);
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let page = curl(&[version, &serve.url("/")]);
        assert_eq!(page.status, 200, "{page:?}");
        assert_eq!(page.version, if version == "--http1.1" { "HTTP/1.1" } else { "HTTP/2" });
        assert!(
            page.text().contains("<link rel=\"stylesheet\" href=\"/assets/style.css\">"),
            "{}",
            page.text()
        );
        // Pretty URLs go through index.php.
        let hello = curl(&[version, &serve.url("/hello/world")]);
        assert_eq!((hello.status, hello.text().as_str()), (200, "Hello, world!"));
        // The application's own 404.
        let missing = curl(&[version, &serve.url("/no/such/page")]);
        assert_eq!((missing.status, missing.text().as_str()), (404, "no route"));
        // Assets are files, with their type.
        let css = curl(&[version, &serve.url("/assets/style.css")]);
        assert_eq!(css.status, 200);
        assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
        assert!(css.text().contains("background: #0000ff"));
        let svg = curl(&[version, &serve.url("/assets/logo.svg")]);
        assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    }
    // A directory with its own index: redirected to the slash, then run.
    let redirect = curl(&[&serve.url("/admin?x=1")]);
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/admin/?x=1"));
    let admin = curl(&["-L", &serve.url("/admin")]);
    assert_eq!((admin.status, admin.text().as_str()), (200, "admin index, SCRIPT_NAME=/admin/index.php"));
    // Every response is in the access log, in combined format.
    let log = serve.access_log(13);
    assert!(log.contains("\"GET /hello/world HTTP/2.0\" 200 13 \"-\" \"curl/"), "{log}");
    assert!(log.contains("\"GET /assets/style.css HTTP/1.1\" 200 "), "{log}");
}

#[test]
fn answered_requests_write_nothing_on_stderr() {
    // stderr is for the start, the end, failures and the application's STDERR: a request
    // answered normally adds nothing there (its line is in the access log).
    let mut serve = Serve::app(&[]);
    for path in ["/", "/hello/world", "/assets/style.css", "/no/such/page"] {
        let page = curl(&[&serve.url(path)]);
        assert!(page.status == 200 || page.status == 404, "{page:?}");
    }
    serve.access_log(4);
    serve.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(serve.wait_exit(std::time::Duration::from_secs(10)), Some(0), "{}", serve.stderr());
    let stderr = serve.stderr();
    let unexpected: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.contains("listening on ") && !line.contains("SIGTERM: shutting down"))
        .filter(|line| !line.contains("fcgi serve: stopped"))
        .collect();
    assert!(unexpected.is_empty(), "stderr: {stderr}");
}

#[test]
fn dot_files_and_traversal_are_refused_before_the_front_controller() {
    let serve = Serve::app(&[]);
    for path in [
        "/.env",
        "/assets/../.env",
        "/%2eenv",
        "/.git/config",
        "/assets/.hidden/x.php",
        "/.well-known/../.env",
    ] {
        let answer = curl(&["--path-as-is", &serve.url(path)]);
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert!(!answer.text().contains("do-not-serve") && !answer.text().contains("no route"), "{path}");
    }
    for path in ["/../../etc/passwd", "/a%00.php", "/x%0a.php", "/%zz"] {
        let answer = curl(&["--path-as-is", &serve.url(path)]);
        assert_eq!(answer.status, 400, "{path}: {answer:?}");
    }
    // A file that is not a script is never run, whatever follows it (CVE-2019-11043's shape):
    // the front controller answers instead.
    let answer = curl(&[&serve.url("/assets/style.css/x.php")]);
    assert_eq!((answer.status, answer.text().as_str()), (404, "no route"));
}

/// The environment PHP sees, as behind Debian's nginx with `include snippets/fastcgi-php.conf`.
#[test]
fn environment_is_nginx_fastcgi_php_conf() {
    let php = php_fpm();
    let serve = Serve::php("", &[]);
    let port = serve.addr.port().to_string();
    let env = curl(&[
        "-H",
        "X-Custom: yes",
        "-H",
        "Proxy: http://evil.example",
        "-H",
        "X_Forwarded_For: 6.6.6.6",
        "--path-as-is",
        &serve.url("/a/../env.php/extra/path?q=%20x&y"),
    ])
    .json();
    let docroot = std::fs::canonicalize(&php.docroot).unwrap();
    let expected = [
        ("SCRIPT_NAME", "/env.php".to_string()),
        ("SCRIPT_FILENAME", format!("{}/env.php", docroot.display())),
        ("DOCUMENT_ROOT", docroot.display().to_string()),
        ("PATH_INFO", "/extra/path".into()),
        ("DOCUMENT_URI", "/env.php/extra/path".into()),
        ("PHP_SELF", "/env.php/extra/path".into()),
        ("REQUEST_URI", "/a/../env.php/extra/path?q=%20x&y".into()),
        ("QUERY_STRING", "q=%20x&y".into()),
        ("REQUEST_METHOD", "GET".into()),
        ("REQUEST_SCHEME", "http".into()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
        ("GATEWAY_INTERFACE", "CGI/1.1".into()),
        ("REMOTE_ADDR", "127.0.0.1".into()),
        ("SERVER_ADDR", "127.0.0.1".into()),
        ("SERVER_PORT", port.clone()),
        ("SERVER_NAME", "127.0.0.1".into()),
        ("HTTP_HOST", format!("127.0.0.1:{port}")),
        ("HTTP_X_CUSTOM", "yes".into()),
        ("REDIRECT_STATUS", "200".into()),
        ("CONTENT_LENGTH", "0".into()),
    ];
    for (name, value) in expected {
        assert_eq!(env[name], value.as_str(), "{name} in {env}");
    }
    assert!(env["REMOTE_PORT"].as_str().unwrap().parse::<u16>().is_ok(), "{env}");
    for absent in ["HTTPS", "HTTP_PROXY", "HTTP_X_FORWARDED_FOR", "PATH_TRANSLATED"] {
        assert!(env.get(absent).is_none(), "{absent} in {env}");
    }
    assert_eq!(env["_GET"]["q"], " x");

    // Without PATH_INFO it is still sent, empty (nginx's `fastcgi_param PATH_INFO $path_info`).
    let env = curl(&["--http2-prior-knowledge", &serve.url("/env.php")]).json();
    assert_eq!(env["PATH_INFO"], "");
    assert_eq!(env["SCRIPT_NAME"], "/env.php");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/2.0");

    // This document root has no index.php: a missing script is 404, nothing runs.
    for path in ["/missing.php", "/missing.php/x", "/nothing/here", "/"] {
        assert_eq!(curl(&[&serve.url(path)]).status, 404, "{path}");
    }

    // Behind the front controller: SCRIPT_NAME is index.php, REQUEST_URI what was asked.
    let app = Serve::app(&[]);
    let env = curl(&[&app.url("/env?page=2")]).json();
    assert_eq!(env["SCRIPT_NAME"], "/index.php");
    assert_eq!(env["DOCUMENT_URI"], "/index.php");
    assert_eq!(env["PATH_INFO"], "");
    assert_eq!(env["REQUEST_URI"], "/env?page=2");
    assert_eq!(env["QUERY_STRING"], "page=2");
    assert_eq!(env["_GET"]["page"], "2");
}

#[test]
fn static_files_validators_ranges_and_head() {
    let serve = Serve::app(&[]);
    let url = serve.url("/assets/app.js");
    let whole = curl(&[&url]);
    let length = whole.body.len();
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-length"), Some(length.to_string().as_str()));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole.header("etag").expect("ETag").to_string();
    let modified = whole.header("last-modified").expect("Last-Modified").to_string();

    let cached = curl(&["-H", &format!("If-None-Match: {etag}"), &url]);
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    let cached = curl(&["-H", &format!("If-Modified-Since: {modified}"), &url]);
    assert_eq!(cached.status, 304);
    let changed = curl(&["-H", "If-None-Match: \"other\"", &url]);
    assert_eq!(changed.status, 200);

    let part = curl(&["-r", "3-9", &url]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, whole.body[3..10]);
    assert_eq!(part.header("content-range"), Some(format!("bytes 3-9/{length}").as_str()));
    let tail = curl(&["--http2-prior-knowledge", "-H", "Range: bytes=-5", &url]);
    assert_eq!((tail.status, &tail.body[..]), (206, &whole.body[length - 5..]));
    let beyond = curl(&["-r", &format!("{length}-"), &url]);
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some(format!("bytes */{length}").as_str()));
    let stale = curl(&["-r", "0-1", "-H", "If-Range: \"old\"", &url]);
    assert_eq!((stale.status, stale.body.len()), (200, length));

    let head = curl(&["-I", &url]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(length.to_string().as_str()));
    // curl -I prints the head on standard output too: no byte of the file follows it.
    assert!(!head.text().contains("getElementById"), "{}", head.text());
    let post = curl(&["-X", "POST", "-d", "x", &url]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[test]
fn multipart_upload_and_cookies() {
    let serve = Serve::app(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("photo.bin");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    let md5 = md5_of(&file);
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let upload = curl(&[
            version,
            "-F",
            &format!("photo=@{}", text(&file)),
            "-F",
            "title=holiday",
            &serve.url("/upload"),
        ]);
        assert_eq!(upload.status, 200, "{upload:?}");
        let json = upload.json();
        assert_eq!(json["files"]["photo"]["name"], "photo.bin");
        assert_eq!(json["files"]["photo"]["size"], 300_000);
        assert_eq!(json["files"]["photo"]["md5"], md5.as_str());
        assert_eq!(json["post"]["title"], "holiday");
    }
    let jar = dir.path().join("cookies");
    let jar = text(&jar);
    let first = curl(&["-c", jar, "-b", jar, &serve.url("/cookie")]);
    assert_eq!(first.text(), "visits=1");
    assert!(
        first.header("set-cookie").is_some_and(|c| c.starts_with("visits=1") && c.contains("HttpOnly")),
        "{first:?}"
    );
    let second = curl(&["-c", jar, "-b", jar, &serve.url("/cookie")]);
    assert_eq!(second.text(), "visits=2");
    let third = curl(&["--http2-prior-knowledge", "-c", jar, "-b", jar, &serve.url("/cookie")]);
    assert_eq!(third.text(), "visits=3");
}

#[test]
fn mounted_application() {
    let flup = fcgi_tests::backends::flup();
    let serve = Serve::start(&["--socket", text(&flup.multiplexed), "--mount", "/"]);
    let echo = curl(&["--data-binary", "hello", &serve.url("/echo?x=1")]);
    assert_eq!((echo.status, echo.text().as_str()), (200, "query=x=1\nhello"));
    let echo: Curl = curl(&["--http2-prior-knowledge", &serve.url("/echo?y=2")]);
    assert_eq!((echo.status, echo.text().as_str()), (200, "query=y=2\n"));

    // Under a prefix, paths outside it are 404 and never reach the application.
    let serve = Serve::start(&["--socket", text(&flup.multiplexed), "--mount", "/app"]);
    let inside = curl(&[&serve.url("/app/echo?z=3")]);
    assert_eq!((inside.status, inside.text().as_str()), (200, "query=z=3\n"));
    let outside = curl(&[&serve.url("/other/echo")]);
    assert_eq!(outside.status, 404);
}

fn md5_of(path: &std::path::Path) -> String {
    let output = std::process::Command::new("md5sum").arg(path).output().expect("md5sum");
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap().to_string()
}

#[test]
fn forwarded_headers_only_from_trusted_proxies() {
    let forwarded = ["-H", "X-Forwarded-For: 198.51.100.1, 203.0.113.9", "-H", "X-Forwarded-Proto: https"];
    let trusted = Serve::php("", &["--trusted-proxy", "127.0.0.0/8"]);
    let mut args = forwarded.to_vec();
    let url = trusted.url("/env.php");
    args.push(&url);
    let env = curl(&args).json();
    assert_eq!(env["REMOTE_ADDR"], "203.0.113.9", "{env}");
    assert!(env.get("REMOTE_PORT").is_none(), "{env}");
    assert_eq!(env["HTTPS"], "on");
    assert_eq!(env["REQUEST_SCHEME"], "https");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "198.51.100.1, 203.0.113.9");

    for args in [vec![], vec!["--trusted-proxy", "10.0.0.0/8"]] {
        let untrusted = Serve::php("", &args);
        let mut request = forwarded.to_vec();
        let url = untrusted.url("/env.php");
        request.push(&url);
        let env = curl(&request).json();
        assert_eq!(env["REMOTE_ADDR"], "127.0.0.1", "{args:?}: {env}");
        assert!(env.get("HTTPS").is_none(), "{args:?}: {env}");
        assert_eq!(env["REQUEST_SCHEME"], "http");
    }
    let mut cmd = super::common::fcgi();
    cmd.args(["serve", "--socket", "/nowhere", "--trusted-proxy", "10.0.0.0/33"]);
    let line = super::common::assert_error(&super::common::run(&mut cmd), 2);
    assert!(line.contains("prefix length"), "{line}");
}
