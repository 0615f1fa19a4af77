//! `fcgi get`, `fcgi post`, `fcgi request`: one request, the body on stdout (or `-o`), the
//! exit code from the HTTP status.

use std::io::Write;
use std::time::Instant;

use base64::Engine;
use bytes::BytesMut;
use http::Method;
use serde_json::{Value, json};

use crate::build::{self, Built};
use crate::cli::{JSON_MAX_FILESIZE, OutputArgs, REQUEST_MAX_TIME, RequestCmd, Role, show_size};
use crate::commands::exchange::Exchange;
use crate::commands::roles::{self, RoleRequest};
use crate::curl_compat::{RetryPolicy, send_with_retry};
use crate::exit::{Exit, Failure, classify};
use crate::output::{Interrupts, Progress, Sink, error_document, print_json};
use crate::records;
use crate::target::Target;
use crate::write_out::{Transfer, WriteOut};

/// Version of the `--json` document's layout (`schema` key).
pub const JSON_SCHEMA: &str = "fcgi.response/1";

/// Runs a request command; `default_method` is `None` for `request` (needs -X).
pub async fn run(cmd: &RequestCmd, default_method: Option<Method>) -> anyhow::Result<Exit> {
    let out = &cmd.output;
    let started = Instant::now();
    let mut transfer = Transfer { url: cmd.path.clone(), ..Transfer::default() };
    // -w is parsed before anything is sent: a misspelt variable is a usage error.
    let write_out = out.curl.write_out.as_deref().map(WriteOut::from_arg).transpose();
    let result = match &write_out {
        Err(failure) => Err(Failure::new(failure.exit, failure.message.clone()).into()),
        Ok(_) => run_inner(cmd, default_method, &mut transfer).await,
    };
    transfer.time_total = started.elapsed();
    let (exit, message) = match &result {
        Ok(exit) => (*exit, transfer.errormsg.clone()),
        Err(error) => classify(error),
    };
    transfer.exit = Some(exit);
    transfer.errormsg = message.clone();
    let result = match result {
        Err(_) if out.json => {
            print_json(&error_document(JSON_SCHEMA, &[("path", json!(cmd.path))], exit, &message))?;
            Ok(exit)
        }
        other => other,
    };
    if let Ok(Some(write_out)) = &write_out {
        write_out.write(&transfer);
    }
    result
}

async fn run_inner(
    cmd: &RequestCmd,
    default_method: Option<Method>,
    transfer: &mut Transfer,
) -> anyhow::Result<Exit> {
    let out = &cmd.output;
    let target = Target::from_args(&cmd.spec.target, REQUEST_MAX_TIME)?;
    let role = cmd.role.role;
    roles::check_flags(cmd)?;
    let built = build::build(&cmd.path, roles::default_method(role, default_method), &cmd.spec, &target)?;
    transfer.method = built.request.method().to_string();
    transfer.size_upload = built.body.len() as u64;
    let script_filename = built
        .params
        .iter()
        .find(|(name, _)| *name == "SCRIPT_FILENAME")
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
    let verbose = out.verbose && !out.silent;
    if verbose {
        print_params(&target, &built, out.show_secrets);
    }
    let observer = verbose.then(|| crate::verbose::record_printer(out.show_secrets));
    let head_only = built.request.method() == Method::HEAD;
    // A Responder's parameters are taken from `built` by send_with_retry.
    let mut params = if role == Role::Responder { Vec::new() } else { built.param_pairs() };
    let role_request = roles::prepare(cmd, &mut params)?;
    if verbose {
        roles::print_verbose(&role_request);
    }
    // Writing a file: SIGINT, SIGTERM and SIGHUP remove the temporary file (see Interrupts).
    let to_file = Sink::is_atomic(out.output.as_deref()) && !out.json;
    let mut interrupts = if to_file { Interrupts::catch() } else { None };
    let sending = match role_request {
        // --retry sends the request again: a Responder's body is in memory. An Authorizer or a
        // Filter (whose data is streamed) goes once.
        RoleRequest::Responder => {
            let policy = RetryPolicy::new(&out.curl);
            Box::pin(send_with_retry(&target, built, observer, policy, out.silent, &mut transfer.retries))
        }
        role_request => roles::send(role_request, &target, built.request, params, observer),
    };
    let mut exchange =
        Interrupts::guard(&mut interrupts, sending).await.map_err(|signal| signal.failure(None))??;
    let authorized = match role {
        Role::Authorizer => roles::authorized(&exchange.response),
        _ => None,
    };
    transfer.status = Some(exchange.response.status().as_u16());
    if let Some(variables) = authorized {
        return finish_authorized(cmd, &target, exchange, &variables, &mut interrupts, transfer).await;
    }
    let head = head_text(&exchange.response);
    transfer.headers = exchange
        .response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    transfer.size_header = head.len() as u64;
    transfer.time_connect = Some(exchange.timings.connect);
    transfer.time_starttransfer = Some(exchange.timings.first_byte);
    if let Some(path) = &out.curl.dump_header {
        // -D: the head as -i prints it, to FILE or (`-`) standard output before the body.
        let mut headers = Sink::open(Some(path))?;
        headers.write(head.as_bytes())?;
        headers.finish()?;
    }
    let length = exchange
        .response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let limit = BodyLimit::new(out);
    if let (Some(limit), Some(length), false) = (&limit, length, head_only) {
        // Announced too large: fail before anything is written (as curl does).
        limit.check(length)?;
    }
    if out.json {
        return finish_json(cmd, &target, exchange, limit, None, transfer).await;
    }
    let status = exchange.response.status();
    let exit = status_exit(cmd, status);
    if out.curl.fail && exit != Exit::Success {
        // curl -f: no body, no file; only the exit code and the error line.
        drop(interrupts);
        http_failure(out, role, &target, &exchange.response, script_filename.as_deref(), transfer);
        return Ok(exit);
    }
    let mut sink = Sink::open(out.output.as_deref())?;
    if out.include || head_only {
        sink.write(head.as_bytes())?;
    }
    let progress = Progress::new(!out.silent && !sink.is_terminal(), length);
    let received = &mut transfer.size_download;
    let copy = async {
        while let Some(chunk) = exchange.next_chunk().await? {
            *received += chunk.len() as u64;
            if let Some(limit) = &limit {
                limit.check(*received)?;
            }
            sink.write(&chunk)?;
            progress.advance(chunk.len());
            if sink.is_closed() {
                // The reader went away (`| head -1`): nothing more to do, and not an error.
                break;
            }
        }
        Ok::<_, anyhow::Error>(())
    };
    match Interrupts::guard(&mut interrupts, copy).await {
        Ok(copied) => copied?,
        Err(signal) => {
            progress.finish();
            let part = sink.temp_path();
            drop(sink); // removes the temporary file
            return Err(signal.failure(part.as_deref()).into());
        }
    }
    progress.finish();
    sink.finish()?;
    drop(interrupts);
    let body = exchange.response.body();
    print_app_stderr(&body.stderr(), out.silent);
    if exit != Exit::Success {
        http_failure(out, role, &target, &exchange.response, script_filename.as_deref(), transfer);
    }
    Ok(exit)
}

/// The error line of an HTTP 4xx/5xx (`fcgi: HTTP 404 Not Found from ...`), kept as
/// `%{errormsg}` and printed unless -s (or with -sS).
fn http_failure(
    out: &OutputArgs,
    role: Role,
    target: &Target,
    response: &http::Response<fcgi_mux::ResponseBody>,
    script_filename: Option<&str>,
    transfer: &mut Transfer,
) {
    let status = response.status();
    // The reason phrase is the application's: escaped and cut as any byte it sends.
    let reason = records::escape_cut(reason(response).as_bytes(), records::VALUE_MAX);
    let status_line = format!("{} {reason}", status.as_u16());
    let hint = match script_filename {
        Some(file) if status == http::StatusCode::NOT_FOUND => crate::messages::docroot_hint(file),
        _ => busy_note(status).to_string(),
    };
    let denied = if role == Role::Authorizer { "access denied: " } else { "" };
    let message = format!("{denied}HTTP {} from {}{hint}", status_line.trim_end(), target.address);
    if !out.silent || out.curl.show_error {
        eprintln!("fcgi: {message}");
    }
    transfer.errormsg = message;
}

/// The exit code for the response's status: by class, `--no-fail` aside; an Authorizer's
/// answer is only here when it denied access (3 below 400).
fn status_exit(cmd: &RequestCmd, status: http::StatusCode) -> Exit {
    match (cmd.output.no_fail, cmd.role.role) {
        (true, _) => Exit::Success,
        (false, Role::Authorizer) => roles::denied_exit(status),
        (false, _) => Exit::for_status(status),
    }
}

/// An Authorizer's "authorized": the variables as `NAME=value` lines (or in `--json`), exit 0.
/// The rest of the answer is read to its end (STDERR, `--max-time`) and dropped, as a web
/// server drops it.
async fn finish_authorized(
    cmd: &RequestCmd,
    target: &Target,
    mut exchange: Exchange,
    variables: &[(String, Vec<u8>)],
    interrupts: &mut Option<Interrupts>,
    transfer: &mut Transfer,
) -> anyhow::Result<Exit> {
    let out = &cmd.output;
    if out.json {
        return finish_json(cmd, target, exchange, BodyLimit::new(out), Some(variables), transfer).await;
    }
    let mut sink = Sink::open(out.output.as_deref())?;
    let drain = async {
        while exchange.next_chunk().await?.is_some() {}
        Ok::<_, anyhow::Error>(())
    };
    match Interrupts::guard(interrupts, drain).await {
        Ok(drained) => drained?,
        Err(signal) => {
            let part = sink.temp_path();
            drop(sink);
            return Err(signal.failure(part.as_deref()).into());
        }
    }
    if out.include {
        sink.write(&head_text(&exchange.response).into_bytes())?;
    }
    sink.write(roles::variable_lines(variables).as_bytes())?;
    sink.finish()?;
    print_app_stderr(&exchange.response.body().stderr(), out.silent);
    Ok(Exit::Success)
}

/// The `--json` document; `authorized` holds an Authorizer's variables when it authorized.
async fn finish_json(
    cmd: &RequestCmd,
    target: &Target,
    mut exchange: Exchange,
    limit: Option<BodyLimit>,
    authorized: Option<&[(String, Vec<u8>)]>,
    transfer: &mut Transfer,
) -> anyhow::Result<Exit> {
    let mut body = BytesMut::new();
    while let Some(chunk) = exchange.next_chunk().await? {
        if let Some(limit) = &limit {
            limit.check((body.len() + chunk.len()) as u64)?;
        }
        body.extend_from_slice(&chunk);
        transfer.size_download = body.len() as u64;
    }
    let response = &exchange.response;
    // An Authorizer's "authorized" is a 200 whatever the head gave (a Location alone: 302).
    let status = if authorized.is_some() { http::StatusCode::OK } else { response.status() };
    let stderr = response.body().stderr();
    let end = response.body().end_status();
    let (body_text, encoding) = match std::str::from_utf8(&body) {
        Ok(text) => (text.to_string(), "utf-8"),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(&body), "base64"),
    };
    let headers: Vec<Value> = response
        .headers()
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]))
        .collect();
    let exit = if authorized.is_some() { Exit::Success } else { status_exit(cmd, status) };
    let mut document = json!({
        "schema": JSON_SCHEMA,
        "address": target.address.to_string(),
        "path": cmd.path,
        "status": status.as_u16(),
        "reason": if authorized.is_some() && response.status() != status { "OK".to_string() } else { reason(response) },
        "headers": headers,
        "body": body_text,
        "body_encoding": encoding,
        "body_bytes": body.len(),
        "stderr": String::from_utf8_lossy(&stderr.kept),
        "stderr_dropped_bytes": stderr.dropped,
        "app_status": end.map(|e| e.app_status),
        "protocol_status": end.map(|e| e.protocol_status.to_string()),
        "timings": exchange.timings.to_json(),
        "exit_code": exit.code(),
    });
    if cmd.role.role == Role::Authorizer {
        if let Some(fields) = document.as_object_mut() {
            for (name, value) in roles::json_fields(authorized) {
                fields.insert(name.into(), value);
            }
        }
    }
    if cmd.role.role == Role::Filter {
        if let Some(fields) = document.as_object_mut() {
            fields.insert("role".into(), json!("filter"));
        }
    }
    print_json(&document)?;
    Ok(exit)
}

/// `--max-filesize`: how large a body may be (always set with `--json`, which keeps the body in
/// memory), and whether it is the `--json` default.
struct BodyLimit {
    max: u64,
    implied: bool,
}

impl BodyLimit {
    fn new(out: &OutputArgs) -> Option<BodyLimit> {
        match (out.max_filesize, out.json) {
            (Some(max), _) => Some(BodyLimit { max, implied: false }),
            (None, true) => Some(BodyLimit { max: JSON_MAX_FILESIZE, implied: true }),
            (None, false) => None,
        }
    }

    /// Fails (exit 63) once `bytes` of body exceed the limit.
    fn check(&self, bytes: u64) -> Result<(), Failure> {
        if bytes <= self.max {
            return Ok(());
        }
        let default = if self.implied { " (the default with --json)" } else { "" };
        Err(Failure::new(
            Exit::MaxFilesize,
            format!("the response body exceeds --max-filesize {}{default}", show_size(self.max)),
        ))
    }
}

/// `HTTP/1.1 200 OK` and the headers, as curl -i shows them.
fn head_text(response: &http::Response<fcgi_mux::ResponseBody>) -> String {
    let mut text = format!("HTTP/1.1 {}\r\n", status_text(response));
    for (name, value) in response.headers() {
        text.push_str(&format!("{}: {}\r\n", name, String::from_utf8_lossy(value.as_bytes())));
    }
    text.push_str("\r\n");
    text
}

fn reason(response: &http::Response<fcgi_mux::ResponseBody>) -> String {
    match response.extensions().get::<fcgi_mux::ReasonPhrase>() {
        Some(reason) => reason.0.clone(),
        None => response.status().canonical_reason().unwrap_or("").to_string(),
    }
}

fn status_text(response: &http::Response<fcgi_mux::ResponseBody>) -> String {
    format!("{} {}", response.status().as_u16(), reason(response)).trim_end().to_string()
}

fn busy_note(status: http::StatusCode) -> &'static str {
    if status == http::StatusCode::SERVICE_UNAVAILABLE { " (the server is busy or unavailable)" } else { "" }
}

/// Longest line of application STDERR shown, in bytes (PHP's stack traces fit).
const STDERR_LINE_MAX: usize = 4096;

/// The application's STDERR, each line prefixed, escaped and cut so it is safe in any log.
pub fn print_app_stderr(stderr: &fcgi_mux::Stderr, silent: bool) {
    if silent || (stderr.kept.is_empty() && stderr.dropped == 0) {
        return;
    }
    let mut err = std::io::stderr().lock();
    for line in stderr.kept.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let _ = writeln!(err, "fcgi: app stderr: {}", records::escape_cut(line, STDERR_LINE_MAX));
    }
    if stderr.dropped > 0 {
        let _ = writeln!(err, "fcgi: app stderr: ({} more bytes not kept)", stderr.dropped);
    }
}

pub fn print_params(target: &Target, built: &Built, show_secrets: bool) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "* server {}", target.address);
    let _ = writeln!(err, "* {} {}", built.request.method(), built.request.uri());
    for (name, value) in built.params.iter() {
        let _ = writeln!(err, "* param {name}={}", records::shown_value(name, value, show_secrets));
    }
    for dropped in build::dropped_headers(built) {
        let _ = writeln!(err, "* {dropped}");
    }
}
