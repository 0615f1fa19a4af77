//! `fcgi ping` and `fcgi status`: php-fpm's health pages, as checks with one-line reasons.
//!
//! php-fpm serves both itself, matched on SCRIPT_NAME; SCRIPT_FILENAME must be present (any
//! value) or it answers 404, so no document root is involved.

use bytes::{Bytes, BytesMut};
use http_body_util::Empty;
use serde_json::{Value, json};

use crate::build::status_page_params;
use crate::cli::{CHECK_MAX_TIME, PingCmd, StatusCmd};
use crate::commands::exchange::{self, Exchange, human};
use crate::exit::{Exit, Failure, classify};
use crate::output::{print, print_json};
use crate::records;
use crate::target::Target;

/// Most bytes of a health page read (php-fpm's full status of a big pool is a few KiB).
const MAX_PAGE: usize = 1024 * 1024;

/// Runs `ping`.
pub async fn ping(cmd: &PingCmd) -> anyhow::Result<Exit> {
    let target = Target::from_args(&cmd.target, CHECK_MAX_TIME)?;
    let outcome = fetch(&target, &cmd.path, "").await;
    let (exit, message, body, elapsed) = match outcome {
        Ok((status, body, elapsed)) => {
            let text = String::from_utf8_lossy(&body).trim().to_string();
            if !status.is_success() {
                (page_exit(status), status_problem("ping", &cmd.path, status), text, Some(elapsed))
            } else if text != cmd.expect {
                let message = format!(
                    "ping: {} answered {:?} on {}, expected {:?}",
                    target.address,
                    records::escape(text.as_bytes()),
                    cmd.path,
                    cmd.expect
                );
                (Exit::CheckFailed, message, text, Some(elapsed))
            } else {
                (Exit::Success, format!("{text} ({})", human(elapsed)), text, Some(elapsed))
            }
        }
        Err(error) => {
            let (exit, message) = classify(&error);
            (exit, format!("ping: {message}"), String::new(), None)
        }
    };
    let document = cmd.json.then(|| {
        json!({
            "schema": "fcgi.ping/1",
            "address": target.address.to_string(),
            "ok": exit == Exit::Success,
            "exit_code": exit.code(),
            "body": body,
            "time_ms": elapsed.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
            "message": message,
        })
    });
    report(document, cmd.silent, exit, &message)
}

/// Prints the outcome of a check: the JSON document when asked for, else the message on
/// stdout for a success (unless silent) or as an error line on stderr.
fn report(document: Option<Value>, silent: bool, exit: Exit, message: &str) -> anyhow::Result<Exit> {
    match document {
        Some(document) => print_json(&document)?,
        None if exit == Exit::Success => {
            if !silent {
                print(format!("{message}\n").as_bytes())?;
            }
        }
        None => eprintln!("fcgi: {message}"),
    }
    Ok(exit)
}

/// One threshold: `field` compared with `limit`.
#[derive(Clone, Debug, PartialEq)]
struct Check {
    field: String,
    at_least: bool,
    limit: u64,
}

/// Runs `status`.
pub async fn status(cmd: &StatusCmd) -> anyhow::Result<Exit> {
    let target = Target::from_args(&cmd.target, CHECK_MAX_TIME)?;
    let checks = checks(cmd)?;
    let outcome = fetch(&target, &cmd.path, "json").await;
    let (status_doc, results, exit, message) = match outcome {
        Err(error) => {
            let (exit, message) = classify(&error);
            (Value::Null, Vec::new(), exit, format!("status: {message}"))
        }
        Ok((status, body, _)) if !status.is_success() => {
            let _ = body;
            (Value::Null, Vec::new(), page_exit(status), status_problem("status", &cmd.path, status))
        }
        Ok((_, body, _)) => match serde_json::from_slice::<Value>(&body) {
            Err(err) => (
                Value::Null,
                Vec::new(),
                Exit::Protocol,
                format!("status: {} did not answer JSON on {}?json: {err}", target.address, cmd.path),
            ),
            Ok(doc) => {
                let results: Vec<(Check, Result<u64, String>)> =
                    checks.iter().map(|check| (check.clone(), field_value(&doc, &check.field))).collect();
                let failed: Vec<String> =
                    results.iter().filter_map(|(check, value)| failure_text(check, value)).collect();
                if failed.is_empty() {
                    let summary = summary(&doc);
                    (doc, results, Exit::Success, summary)
                } else {
                    (doc, results, Exit::CheckFailed, format!("status: {}", failed.join("; ")))
                }
            }
        },
    };
    let document = cmd.json.then(|| {
        let checks: Vec<Value> = results
            .iter()
            .map(|(check, value)| {
                json!({
                    "field": check.field,
                    "op": if check.at_least { ">=" } else { "<=" },
                    "limit": check.limit,
                    "value": value.as_ref().ok(),
                    "ok": failure_text(check, value).is_none(),
                })
            })
            .collect();
        json!({
            "schema": "fcgi.status/1",
            "address": target.address.to_string(),
            "ok": exit == Exit::Success,
            "exit_code": exit.code(),
            "message": message,
            "status": status_doc,
            "checks": checks,
        })
    });
    report(document, cmd.silent, exit, &message)
}

fn checks(cmd: &StatusCmd) -> Result<Vec<Check>, Failure> {
    let mut checks = Vec::new();
    let mut add = |field: &str, at_least: bool, limit: Option<u64>| {
        if let Some(limit) = limit {
            checks.push(Check { field: field.to_string(), at_least, limit });
        }
    };
    add("idle processes", true, cmd.min_idle);
    add("active processes", false, cmd.max_active);
    add("listen queue", false, cmd.max_listen_queue);
    add("max children reached", false, cmd.max_children_reached);
    add("slow requests", false, cmd.max_slow_requests);
    for (specs, at_least) in [(&cmd.min, true), (&cmd.max, false)] {
        for spec in specs {
            let flag = if at_least { "--min" } else { "--max" };
            let (field, limit) = spec.split_once('=').ok_or_else(|| {
                Failure::new(Exit::Usage, format!("{flag} {spec:?} is not of the form FIELD=N"))
            })?;
            let limit = limit.trim().parse().map_err(|_| {
                Failure::new(Exit::Usage, format!("{flag} {spec:?}: {limit:?} is not a whole number"))
            })?;
            checks.push(Check { field: normalize(field), at_least, limit });
        }
    }
    Ok(checks)
}

/// `idle-processes`, `idle_processes`, `Idle Processes` → `idle processes` (php-fpm's keys).
fn normalize(field: &str) -> String {
    field.trim().to_ascii_lowercase().replace(['-', '_'], " ")
}

fn field_value(doc: &Value, field: &str) -> Result<u64, String> {
    let Some(object) = doc.as_object() else { return Err("the status is not a JSON object".into()) };
    match object.iter().find(|(key, _)| normalize(key) == field) {
        Some((_, value)) => value.as_u64().ok_or_else(|| format!("{field:?} is not a count: {value}")),
        None => {
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            Err(format!("no field {field:?} in the status (fields: {})", keys.join(", ")))
        }
    }
}

fn failure_text(check: &Check, value: &Result<u64, String>) -> Option<String> {
    match value {
        Err(problem) => Some(problem.clone()),
        Ok(value) if check.at_least && *value < check.limit => {
            Some(format!("{} is {value}, below the minimum {}", check.field, check.limit))
        }
        Ok(value) if !check.at_least && *value > check.limit => {
            Some(format!("{} is {value}, above the maximum {}", check.field, check.limit))
        }
        Ok(_) => None,
    }
}

fn summary(doc: &Value) -> String {
    let get = |key: &str| {
        doc.get(key).map(|v| v.to_string().trim_matches('"').to_string()).unwrap_or_else(|| "?".into())
    };
    format!(
        "ok: pool {}, {} idle, {} active, {} total, listen queue {}, accepted {}",
        get("pool"),
        get("idle processes"),
        get("active processes"),
        get("total processes"),
        get("listen queue"),
        get("accepted conn")
    )
}

/// The exit code for a health page that did not answer 2xx: 4 or 5 like `get`, and a failed
/// check (12) for anything else (a redirect, a 1xx), which `get` would count as success.
fn page_exit(status: http::StatusCode) -> Exit {
    match Exit::for_status(status) {
        Exit::Success => Exit::CheckFailed,
        exit => exit,
    }
}

fn status_problem(command: &str, path: &str, status: http::StatusCode) -> String {
    let hint = match status.as_u16() {
        404 => format!(
            " (is {path} configured as php-fpm's {}?)",
            if command == "ping" { "ping.path" } else { "pm.status_path" }
        ),
        503 => " (busy: php-fpm is overloaded or shutting down)".to_string(),
        _ => String::new(),
    };
    format!("{command}: HTTP {status} on {path}{hint}")
}

/// Fetches a health page: status, body (bounded) and time taken.
async fn fetch(
    target: &Target,
    path: &str,
    query: &str,
) -> anyhow::Result<(http::StatusCode, Bytes, std::time::Duration)> {
    let uri = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
    let request = http::Request::get(uri.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|err| Failure::new(Exit::Usage, format!("invalid path {path:?}: {err}")))?;
    let mut exchange: Exchange =
        exchange::send(target, request, status_page_params(path, query), None).await?;
    let status = exchange.response.status();
    let mut body = BytesMut::new();
    while let Some(chunk) = exchange.next_chunk().await? {
        if body.len() + chunk.len() > MAX_PAGE {
            return Err(
                Failure::new(Exit::Protocol, format!("{path} answered more than {MAX_PAGE} bytes")).into()
            );
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body.freeze(), exchange.started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_matched_loosely_and_checked_both_ways() {
        let doc = json!({"idle processes": 3, "listen queue": 12, "pool": "www"});
        assert_eq!(field_value(&doc, &normalize("idle-processes")), Ok(3));
        assert_eq!(field_value(&doc, &normalize("Listen_Queue")), Ok(12));
        assert!(field_value(&doc, "pool").unwrap_err().contains("not a count"));
        assert!(field_value(&doc, "nope").unwrap_err().contains("fields: "));
        let min = Check { field: "idle processes".into(), at_least: true, limit: 4 };
        assert_eq!(failure_text(&min, &Ok(3)).unwrap(), "idle processes is 3, below the minimum 4");
        assert_eq!(failure_text(&min, &Ok(4)), None);
        let max = Check { field: "listen queue".into(), at_least: false, limit: 10 };
        assert_eq!(failure_text(&max, &Ok(12)).unwrap(), "listen queue is 12, above the maximum 10");
    }
}
