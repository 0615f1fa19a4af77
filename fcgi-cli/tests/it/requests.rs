//! `fcgi get` / `post` / `request` against the harness php-fpm: targets, the document root
//! rule, what reaches PHP (query string, params, headers, bodies), and the -I/-i/-s/-v flags.

use crate::common::*;

/// `$_SERVER` as env.php saw it.
fn server_vars(output: &std::process::Output) -> serde_json::Value {
    assert_code(output, 0);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("env.php did not answer JSON ({err}): {}", stdout(output)))
}

#[test]
fn the_design_example_works_as_typed_from_the_docroot() {
    // `cd <docroot> && fcgi get /hello.php --socket <socket>`: no --docroot, the docroot is
    // the current directory.
    let php = php();
    let output =
        run(fcgi().args(["get", "/hello.php", "--socket"]).arg(&php.socket).current_dir(&php.docroot));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "Hello, world!");
    assert_eq!(stderr(&output), "");
}

#[test]
fn the_docroot_is_the_current_directory_without_flag_or_variable() {
    // From elsewhere the same command names a script that does not exist there.
    let php = php();
    let elsewhere = temp_dir();
    let output =
        run(fcgi().args(["get", "/hello.php", "--socket"]).arg(&php.socket).current_dir(elsewhere.path()));
    assert_code(&output, 4);
    assert!(stdout(&output).contains("File not found"), "{}", stdout(&output));
    let vars = server_vars(&run(fcgi()
        .args(["get", "/env.php", "--socket"])
        .arg(&php.socket)
        .current_dir(&php.docroot)));
    assert_eq!(vars["DOCUMENT_ROOT"], php.docroot.to_str().unwrap());
    assert_eq!(vars["SCRIPT_FILENAME"], php.script_path("env.php").to_str().unwrap());
}

#[test]
fn fcgi_docroot_and_docroot_flag_set_the_document_root() {
    let php = php();
    let elsewhere = temp_dir();
    let output = run(fcgi()
        .args(["get", "/hello.php", "--socket"])
        .arg(&php.socket)
        .env("FCGI_DOCROOT", &php.docroot)
        .current_dir(elsewhere.path()));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "Hello, world!");

    let output = run(fcgi()
        .args(["get", "/hello.php", "--socket"])
        .arg(&php.socket)
        .arg("--docroot")
        .arg(&php.docroot)
        .env("FCGI_DOCROOT", elsewhere.path())
        .current_dir(elsewhere.path()));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "Hello, world!", "--docroot wins over FCGI_DOCROOT");
}

#[test]
fn script_filename_overrides_the_derived_one() {
    let php = php();
    let elsewhere = temp_dir();
    let output = run(fcgi()
        .args(["get", "/anything", "--socket"])
        .arg(&php.socket)
        .arg("--script-filename")
        .arg(php.script_path("hello.php"))
        .current_dir(elsewhere.path()));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "Hello, world!");
}

#[test]
fn every_target_form_reaches_php_fpm() {
    let php = php();
    let tcp = php.tcp.to_string();
    let socket = php.socket.to_str().unwrap().to_string();
    let forms: Vec<Vec<String>> = vec![
        vec!["--socket".into(), socket.clone()],
        vec!["--connect".into(), tcp.clone()],
        vec!["--connect".into(), format!("tcp://{tcp}")],
        vec!["--connect".into(), format!("unix:{socket}")],
    ];
    for form in forms {
        let output = run(fcgi().args(["get", "/hello.php"]).args(&form).current_dir(&php.docroot));
        assert_code(&output, 0);
        assert_eq!(stdout(&output), "Hello, world!", "{form:?}");
    }
}

#[test]
fn fcgi_address_is_the_default_target() {
    let php = php();
    for address in [php.tcp.to_string(), format!("unix:{}", php.socket.display())] {
        let output =
            run(fcgi().args(["get", "/hello.php"]).env("FCGI_ADDRESS", &address).current_dir(&php.docroot));
        assert_code(&output, 0);
        assert_eq!(stdout(&output), "Hello, world!", "FCGI_ADDRESS={address}");
    }
    // A flag wins over the variable.
    let output = run(fcgi()
        .args(["get", "/hello.php", "--socket"])
        .arg(&php.socket)
        .env("FCGI_ADDRESS", format!("127.0.0.1:{}", closed_port()))
        .current_dir(&php.docroot));
    assert_code(&output, 0);
}

#[test]
fn the_query_string_reaches_php_undecoded() {
    let vars = server_vars(&php_get(&["get", "/env.php?a=1&b=x%20y&c=%26"]));
    assert_eq!(vars["QUERY_STRING"], "a=1&b=x%20y&c=%26");
    assert_eq!(vars["REQUEST_URI"], "/env.php?a=1&b=x%20y&c=%26");
    assert_eq!(vars["SCRIPT_NAME"], "/env.php");
    assert_eq!(vars["REQUEST_METHOD"], "GET");
    assert_eq!(vars["_GET"]["b"], "x y");
    assert_eq!(vars["_GET"]["c"], "&");
    assert_eq!(vars["CONTENT_LENGTH"], "0");
    assert_eq!(vars["GATEWAY_INTERFACE"], "CGI/1.1");
}

#[test]
fn param_adds_and_overrides_parameters() {
    let vars = server_vars(&php_get(&[
        "get",
        "/env.php",
        "--param",
        "APP_ENV=test",
        "--param",
        "SERVER_NAME=example.test",
        "--param",
        "EMPTY=",
    ]));
    assert_eq!(vars["APP_ENV"], "test");
    assert_eq!(vars["SERVER_NAME"], "example.test");
    assert_eq!(vars["EMPTY"], "");
}

#[test]
fn headers_become_http_variables() {
    let vars = server_vars(&php_get(&[
        "get",
        "/env.php",
        "-H",
        "X-Custom-Thing: yes please",
        "-H",
        "Host: example.test:8080",
        "-H",
        "Cookie: a=1; b=2",
        "-H",
        "Proxy: http://evil.test/",
    ]));
    assert_eq!(vars["HTTP_X_CUSTOM_THING"], "yes please");
    assert_eq!(vars["HTTP_HOST"], "example.test:8080");
    assert_eq!(vars["SERVER_NAME"], "example.test");
    assert_eq!(vars["_COOKIE"]["b"], "2");
    assert!(vars.get("HTTP_PROXY").is_none(), "httpoxy: Proxy never becomes HTTP_PROXY");
    // Without -H Host, Host is localhost.
    let vars = server_vars(&php_get(&["get", "/env.php"]));
    assert_eq!(vars["HTTP_HOST"], "localhost");
}

#[test]
fn bad_headers_and_params_are_usage_errors() {
    for args in [
        &["get", "/hello.php", "-H", "NoColon"][..],
        &["get", "/hello.php", "-H", "Bad Name: x"],
        &["get", "/hello.php", "--param", "NOEQUALS"],
        &["get", "/hello.php", "--param", "=value"],
        &["request", "/hello.php"],
        &["request", "/hello.php", "-X", "B@D"],
        &["get", "/hello.php", "-d", "x=1"],
        &["get", "/hello.php", "-I", "-X", "GET"],
    ] {
        let output = php_get(args);
        let line = assert_error(&output, 2);
        assert!(line.len() > "fcgi: ".len() + 10, "{args:?}: {line}");
    }
}

/// The response headers printed by -i, lowercased, and the body.
fn split_head(output: &std::process::Output) -> (String, Vec<u8>) {
    let text = &output.stdout;
    let end = text.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block") + 4;
    (String::from_utf8_lossy(&text[..end]).to_ascii_lowercase(), text[end..].to_vec())
}

#[test]
fn post_data_is_a_form_body() {
    let output = php_get(&["post", "/echo.php", "-i", "-d", "a=1", "-d", "b=two words"]);
    assert_code(&output, 0);
    let (head, body) = split_head(&output);
    assert_eq!(body, b"a=1&b=two words");
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("x-method: post\r\n"), "{head}");
    assert!(head.contains("x-content-type: application/x-www-form-urlencoded\r\n"), "{head}");
    assert!(head.contains("x-content-length: 15\r\n"), "{head}");
    assert!(head.contains("x-body-length: 15\r\n"), "{head}");
}

#[test]
fn an_explicit_content_type_is_kept() {
    let output = php_get(&["post", "/echo.php", "-i", "-d", "{}", "-H", "Content-Type: application/json"]);
    assert_code(&output, 0);
    let (head, body) = split_head(&output);
    assert_eq!(body, b"{}");
    assert!(head.contains("x-content-type: application/json\r\n"), "{head}");
}

#[test]
fn post_data_from_a_file_loses_its_newlines() {
    let dir = temp_dir();
    let file = dir.path().join("form.txt");
    std::fs::write(&file, "a=1\r\n&b=2\n").unwrap();
    let output = php_get(&["post", "/echo.php", "-d", &format!("@{}", file.display())]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "a=1&b=2");
}

#[test]
fn post_data_from_stdin() {
    let php = php();
    let output = run(fcgi()
        .args(["post", "/echo.php", "-d", "@-", "--socket"])
        .arg(&php.socket)
        .current_dir(&php.docroot)
        .write_stdin("from=stdin\n"));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "from=stdin");
    let output = run(fcgi()
        .args(["post", "/echo.php", "--data-binary", "@-", "--socket"])
        .arg(&php.socket)
        .current_dir(&php.docroot)
        .write_stdin("line 1\nline 2\n"));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "line 1\nline 2\n", "--data-binary keeps newlines");
}

#[test]
fn data_binary_is_echoed_byte_for_byte() {
    let dir = temp_dir();
    let file = dir.path().join("bytes.bin");
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend((0..=255u8).rev());
    bytes.extend_from_slice(b"\r\n\0\r\n");
    std::fs::write(&file, &bytes).unwrap();
    let output = php_get(&["post", "/echo.php", "-i", "--data-binary", &format!("@{}", file.display())]);
    assert_code(&output, 0);
    let (head, body) = split_head(&output);
    assert_eq!(body, bytes);
    assert!(head.contains(&format!("x-content-length: {}\r\n", bytes.len())), "{head}");
    assert!(head.contains("x-content-type: none\r\n"), "--data-binary sets no Content-Type: {head}");
}

#[test]
fn an_empty_post_still_declares_its_length() {
    let output = php_get(&["post", "/echo.php", "-i"]);
    assert_code(&output, 0);
    let (head, body) = split_head(&output);
    assert!(body.is_empty());
    assert!(head.contains("x-method: post\r\n"), "{head}");
    assert!(head.contains("x-content-length: 0\r\n"), "{head}");
}

#[test]
fn request_sends_any_method() {
    let output = php_get(&["request", "/echo.php", "-X", "PUT", "-i", "--data-binary", "payload"]);
    assert_code(&output, 0);
    let (head, body) = split_head(&output);
    assert_eq!(body, b"payload");
    assert!(head.contains("x-method: put\r\n"), "{head}");
    let output = php_get(&["request", "/echo.php", "-X", "delete", "-i"]);
    assert_code(&output, 0);
    assert!(split_head(&output).0.contains("x-method: delete\r\n"));
    // -X also changes get's method.
    let output = php_get(&["get", "/echo.php", "-X", "PATCH", "-i", "-d", "x"]);
    assert_code(&output, 0);
    assert!(split_head(&output).0.contains("x-method: patch\r\n"));
}

#[test]
fn head_prints_the_headers_only() {
    for flag in ["-I", "--head"] {
        let output = php_get(&["get", "/headers.php", flag]);
        assert_code(&output, 0);
        let text = stdout(&output);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "no body after the headers: {text:?}");
        assert!(!text.contains("\r\n\r\nheaders"), "{text}");
        assert!(text.contains("x-test: 1\r\n"), "{text}");
        assert_eq!(text.matches("set-cookie: ").count(), 2, "{text}");
    }
    let output = php_get(&["get", "/echo.php", "-I"]);
    assert!(stdout(&output).contains("x-method: HEAD\r\n"), "{}", stdout(&output));
}

#[test]
fn include_prints_status_line_headers_and_body() {
    let output = php_get(&["get", "/headers.php", "-i"]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("cache-control: no-store\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nheaders"), "{text:?}");
    let output = php_get(&["get", "/status.php?code=201", "-i"]);
    assert!(stdout(&output).starts_with("HTTP/1.1 201 Created\r\n"), "{}", stdout(&output));
}

#[test]
fn redirects_are_shown_not_followed() {
    let output = php_get(&["get", "/status.php?location=/elsewhere", "-i"]);
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(text.starts_with("HTTP/1.1 302 Found\r\n"), "{text}");
    assert!(text.contains("location: /elsewhere\r\n"), "{text}");
}

#[test]
fn app_stderr_is_shown_on_stderr_unless_silent() {
    let output = php_get(&["get", "/stderr.php?msg=hello%20there"]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "body");
    let err = stderr(&output);
    assert!(err.starts_with("fcgi: app stderr: ") && err.contains("hello there"), "{err}");
    let output = php_get(&["get", "/stderr.php?msg=hello", "-s"]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "body");
    assert_eq!(stderr(&output), "", "-s prints no diagnostics");
}

#[test]
fn silent_hides_the_http_error_note_but_keeps_the_exit_code() {
    let output = php_get(&["get", "/status.php?code=404", "-s"]);
    assert_code(&output, 4);
    assert_eq!(stdout(&output), "status 404");
    assert_eq!(stderr(&output), "");
}

#[test]
fn silent_does_not_hide_errors() {
    let output =
        run(fcgi().args(["get", "/x.php", "-s", "--connect"]).arg(format!("127.0.0.1:{}", closed_port())));
    assert_error(&output, 7);
}

#[test]
fn verbose_shows_params_and_records_with_secrets_masked() {
    let secret = "Basic c2VjcmV0OnBhc3N3b3Jk";
    let output = php_get(&[
        "get",
        "/hello.php",
        "-v",
        "-H",
        &format!("Authorization: {secret}"),
        "-H",
        "Cookie: sid=s3cr3t",
    ]);
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "Hello, world!", "-v writes nothing extra to stdout");
    let err = stderr(&output);
    assert!(err.contains("* param SCRIPT_NAME=/hello.php\n"), "{err}");
    assert!(err.contains("* param REQUEST_METHOD=GET\n"), "{err}");
    assert!(err.contains(&format!("* param HTTP_AUTHORIZATION=<masked, {} bytes>\n", secret.len())), "{err}");
    assert!(err.contains("* param HTTP_COOKIE=<masked, 10 bytes>\n"), "{err}");
    assert!(!err.contains("c2VjcmV0") && !err.contains("s3cr3t"), "secrets leaked: {err}");
    assert!(err.contains("-> FCGI_BEGIN_REQUEST"), "{err}");
    assert!(err.contains("-> FCGI_PARAMS"), "{err}");
    assert!(err.contains("-> FCGI_STDIN"), "{err}");
    assert!(err.contains("<- FCGI_STDOUT"), "{err}");
    assert!(err.contains("<- FCGI_END_REQUEST") && err.contains("FCGI_REQUEST_COMPLETE"), "{err}");

    let output =
        php_get(&["get", "/hello.php", "-v", "--show-secrets", "-H", &format!("Authorization: {secret}")]);
    assert_code(&output, 0);
    assert!(
        stderr(&output).contains(&format!("* param HTTP_AUTHORIZATION={secret}\n")),
        "{}",
        stderr(&output)
    );

    // -s wins over -v.
    let output = php_get(&["get", "/hello.php", "-v", "-s"]);
    assert_code(&output, 0);
    assert_eq!(stderr(&output), "");
}

#[test]
fn a_path_ending_in_slash_gets_the_index() {
    let php = php();
    let dir = temp_dir();
    // --index names the file appended to a path ending in '/'.
    let output = run(fcgi()
        .args(["get", "/", "--index", "hello.php", "--socket"])
        .arg(&php.socket)
        .arg("--docroot")
        .arg(&php.docroot)
        .current_dir(dir.path()));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "Hello, world!");
}
