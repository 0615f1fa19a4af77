//! `fcgi ping` and `fcgi status`: php-fpm's health pages, as checks with one-line reasons.
//!
//! php-fpm serves both itself, matched on SCRIPT_NAME; SCRIPT_FILENAME must be present (any
//! value) or it answers 404, so no document root is involved.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{CHECK_MAX_TIME, PingCmd, StatusCmd};
use crate::cli_monitor::StatusFormat;
use crate::commands::exchange::human;
use crate::exit::{Exit, Failure, classify};
use crate::output::{print, print_json};
use crate::phpfpm::metrics::{Format, PoolReport, families, render};
use crate::phpfpm::scrape::{self, ScrapeError, StatusPage, fetch, listen_queue_full, page_exit};
use crate::phpfpm::status::{PoolStatus, Process};
use crate::records;
use crate::target::Target;

/// Runs `ping`.
pub async fn ping(cmd: &PingCmd) -> anyhow::Result<Exit> {
    let target = Target::from_args(&cmd.target, CHECK_MAX_TIME)?;
    let outcome = fetch(&target, &cmd.path, "").await;
    let (exit, message, body, elapsed) = match outcome {
        Ok((status, body, elapsed)) => {
            let text = String::from_utf8_lossy(&body).trim().to_string();
            if !status.is_success() {
                let problem = scrape::status_problem("ping", &target.address.to_string(), &cmd.path, status);
                (page_exit(status), format!("ping: {problem}"), text, Some(elapsed))
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
            let message = listen_queue_full(&error, &target).unwrap_or(message);
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
            "error": error_field(exit, &message),
        })
    });
    report(document, cmd.silent, exit, &message)
}

/// The `error` object every `--json` failure document carries (as [`crate::output::error_document`]
/// writes it for the other commands); `null` on success.
fn error_field(exit: Exit, message: &str) -> Value {
    if exit == Exit::Success {
        return Value::Null;
    }
    json!({ "kind": exit.kind(), "exit_code": exit.code(), "message": message })
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

/// One threshold on a count: `field` compared with `limit`.
#[derive(Clone, Debug, PartialEq)]
struct Check {
    field: String,
    at_least: bool,
    limit: u64,
}

/// A threshold's outcome, as `--json` lists it.
#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    field: String,
    op: &'static str,
    limit: Value,
    value: Value,
    /// Why it failed, and with which exit code (12, or 2 when the command line lacks what the
    /// check needs, such as --max-children for a dynamic pool).
    failure: Option<(Exit, String)>,
}

/// Runs `status`.
pub async fn status(cmd: &StatusCmd) -> anyhow::Result<Exit> {
    let format = if cmd.json { StatusFormat::Json } else { cmd.format };
    let targets = cmd.target.targets(CHECK_MAX_TIME)?;
    if matches!(format, StatusFormat::Prometheus | StatusFormat::Openmetrics) {
        return metrics(cmd, &targets, format).await;
    }
    let [target] = targets.as_slice() else {
        return Err(Failure::new(
            Exit::Usage,
            "several pools (--socket/--connect) need --format prometheus or openmetrics",
        )
        .into());
    };
    let checks = checks(cmd)?;
    let page = StatusPage::new(&cmd.path, cmd.full || cmd.max_request_duration.is_some());
    let (status_doc, parsed, results, exit, message) = match scrape::scrape_document(target, &page).await {
        Err(error) => (Value::Null, None, Vec::new(), error.exit, format!("status: {}", error.message)),
        Ok((doc, parsed)) => {
            let results = evaluate(cmd, &checks, &doc, &parsed);
            let failed: Vec<&(Exit, String)> = results.iter().filter_map(|r| r.failure.as_ref()).collect();
            if failed.is_empty() {
                let summary = summary(&parsed, cmd.max_children);
                (doc, Some(parsed), results, Exit::Success, summary)
            } else {
                let exit = if failed.iter().any(|(exit, _)| *exit == Exit::Usage) {
                    Exit::Usage
                } else {
                    Exit::CheckFailed
                };
                let text: Vec<&str> = failed.iter().map(|(_, text)| text.as_str()).collect();
                let message = format!("status: {}", text.join("; "));
                (doc, Some(parsed), results, exit, message)
            }
        }
    };
    let document = (format == StatusFormat::Json).then(|| {
        let checks: Vec<Value> = results
            .iter()
            .map(|result| {
                json!({
                    "field": result.field,
                    "op": result.op,
                    "limit": result.limit,
                    "value": result.value,
                    "ok": result.failure.is_none(),
                })
            })
            .collect();
        let counted = parsed.as_ref().map(|p| {
            json!({
                "idle processes": p.idle,
                "active processes": p.active,
                "available": p.available(cmd.max_children),
            })
        });
        json!({
            "schema": "fcgi.status/1",
            "address": target.address.to_string(),
            "ok": exit == Exit::Success,
            "exit_code": exit.code(),
            "message": message,
            "status": status_doc,
            "counted": counted,
            "checks": checks,
            "error": error_field(exit, &message),
        })
    });
    report(document, cmd.silent, exit, &message)
}

/// `--format prometheus|openmetrics`: every pool asked at once, the metrics on stdout (also for
/// pools that failed: `phpfpm_up 0`), one error line per failed pool; the exit code is the
/// first failure's, else 0.
async fn metrics(cmd: &StatusCmd, targets: &[Target], format: StatusFormat) -> anyhow::Result<Exit> {
    let thresholds = !checks(cmd)?.is_empty()
        || cmd.min_available.is_some()
        || cmd.max_busy_ratio.is_some()
        || cmd.max_request_duration.is_some();
    if thresholds {
        return Err(Failure::new(
            Exit::Usage,
            "thresholds are for --format text or json; with prometheus or openmetrics, alert in Prometheus",
        )
        .into());
    }
    let page = StatusPage::new(&cmd.path, !cmd.no_process_metrics);
    let mut scrapes = tokio::task::JoinSet::new();
    for (index, target) in targets.iter().cloned().enumerate() {
        let page = page.clone();
        scrapes.spawn(async move { (index, scrape::scrape(&target, &page).await) });
    }
    let mut outcomes: Vec<Option<Result<PoolStatus, ScrapeError>>> = vec![None; targets.len()];
    while let Some(joined) = scrapes.join_next().await {
        let (index, outcome) = joined?;
        outcomes[index] = Some(outcome);
    }
    let mut exit = Exit::Success;
    let mut reports = Vec::new();
    for (target, outcome) in targets.iter().zip(outcomes) {
        let outcome = outcome.expect("every scrape joined");
        let (pool, status, failures) = match outcome {
            Ok(status) => (status.pool.clone(), Some(status), 0),
            Err(error) => {
                // Several pools: every line names its own.
                let address = target.address.to_string();
                if error.message.contains(&address) {
                    eprintln!("fcgi: status: {}", error.message);
                } else {
                    eprintln!("fcgi: status: {address}: {}", error.message);
                }
                if exit == Exit::Success {
                    exit = error.exit;
                }
                (String::new(), None, 1)
            }
        };
        reports.push(PoolReport { scrape_uri: target.address.to_string(), pool, status, failures });
    }
    let format = if format == StatusFormat::Openmetrics { Format::OpenMetrics } else { Format::Prometheus };
    let text = render(&families(&reports, !cmd.no_process_metrics), format);
    print(text.as_bytes())?;
    Ok(exit)
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

/// Every threshold of the command line against the page.
fn evaluate(cmd: &StatusCmd, checks: &[Check], doc: &Value, status: &PoolStatus) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = checks
        .iter()
        .map(|check| {
            let value = field_value(doc, status, &check.field);
            Outcome {
                field: check.field.clone(),
                op: if check.at_least { ">=" } else { "<=" },
                limit: json!(check.limit),
                value: value.as_ref().ok().map_or(Value::Null, |v| json!(v)),
                failure: failure_text(check, &value).map(|text| (Exit::CheckFailed, text)),
            }
        })
        .collect();
    let max_children = cmd.max_children.or_else(|| status.implied_max_children());
    let needs_max_children = |flag: &str| {
        (
            Exit::Usage,
            format!(
                "{flag} needs pm.max_children, which php-fpm's status page gives only for pm = static \
                 (this pool is pm = {}): add --max-children N",
                status.process_manager
            ),
        )
    };
    if let Some(limit) = cmd.min_available {
        let value = status.available(cmd.max_children);
        let failure = match value {
            None => Some(needs_max_children("--min-available")),
            Some(value) if value < limit => Some((
                Exit::CheckFailed,
                format!(
                    "available workers are {value} ({} idle + {} more allowed by pm.max_children {}), below the minimum {limit}",
                    status.idle,
                    value - status.idle,
                    max_children.unwrap_or_default()
                ),
            )),
            Some(_) => None,
        };
        out.push(Outcome {
            field: "available".into(),
            op: ">=",
            limit: json!(limit),
            value: json!(value),
            failure,
        });
    }
    if let Some(limit) = cmd.max_busy_ratio {
        let ratio = max_children.filter(|max| *max > 0).map(|max| status.active as f64 / max as f64);
        let failure = match ratio {
            None => Some(needs_max_children("--max-busy-ratio")),
            Some(ratio) if ratio > limit => Some((
                Exit::CheckFailed,
                format!(
                    "busy ratio is {:.2} ({} of pm.max_children {} busy), above the maximum {limit}",
                    ratio,
                    status.active,
                    max_children.unwrap_or_default()
                ),
            )),
            Some(_) => None,
        };
        out.push(Outcome {
            field: "busy ratio".into(),
            op: "<=",
            limit: json!(limit),
            value: ratio.map_or(Value::Null, |r| json!((r * 1000.0).round() / 1000.0)),
            failure,
        });
    }
    if let Some(limit) = cmd.max_request_duration {
        out.push(request_duration(status, limit));
    }
    out
}

/// `--max-request-duration`: every busy process (not the one answering the check) against the
/// limit; the failure names the first few with their pid, time and request.
fn request_duration(status: &PoolStatus, limit: Duration) -> Outcome {
    let busy: Vec<&Process> = status.processes.iter().flatten().filter(|process| process.is_busy()).collect();
    let longest = busy.iter().map(|p| p.request_duration_us).max().unwrap_or(0);
    let mut stuck: Vec<&&Process> =
        busy.iter().filter(|p| u128::from(p.request_duration_us) > limit.as_micros()).collect();
    stuck.sort_by_key(|p| std::cmp::Reverse(p.request_duration_us));
    let failure = (!stuck.is_empty()).then(|| {
        let named: Vec<String> = stuck
            .iter()
            .take(3)
            .map(|p| {
                format!(
                    "pid {} {} for {} on {} {}",
                    p.pid,
                    records::escape(p.state.as_bytes()),
                    human(Duration::from_micros(p.request_duration_us)),
                    records::escape(p.request_method.as_bytes()),
                    records::escape_cut(p.request_uri.as_bytes(), 200)
                )
            })
            .collect();
        let more = if stuck.len() > 3 { format!(" and {} more", stuck.len() - 3) } else { String::new() };
        (
            Exit::CheckFailed,
            format!(
                "{} busy longer than {} (--max-request-duration): {}{more}",
                if stuck.len() == 1 { "1 process".to_string() } else { format!("{} processes", stuck.len()) },
                human(limit),
                named.join(", ")
            ),
        )
    });
    Outcome {
        field: "request duration".into(),
        op: "<=",
        limit: json!(limit.as_secs_f64()),
        value: json!(Duration::from_micros(longest).as_secs_f64()),
        failure,
    }
}

/// `idle-processes`, `idle_processes`, `Idle Processes` → `idle processes` (php-fpm's keys).
fn normalize(field: &str) -> String {
    field.trim().to_ascii_lowercase().replace(['-', '_'], " ")
}

/// A count of the page: php-fpm's keys from the parsed status (the check's own worker counted
/// as idle), any other numeric key (a newer php-fpm's) from the document as sent.
fn field_value(doc: &Value, status: &PoolStatus, field: &str) -> Result<u64, String> {
    if let Some(value) = status.count(field) {
        return Ok(value);
    }
    let Some(object) = doc.as_object() else { return Err("the status is not a JSON object".into()) };
    match object.iter().find(|(key, _)| normalize(key) == field) {
        Some((_, value)) => value.as_u64().ok_or_else(|| format!("{field:?} is not a count: {value}")),
        None => {
            let keys: Vec<&str> =
                object.keys().filter(|key| *key != "processes").map(String::as_str).collect();
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

fn summary(status: &PoolStatus, max_children: Option<u64>) -> String {
    let available = match status.available(max_children) {
        Some(available) => format!(", {available} available"),
        None => String::new(),
    };
    format!(
        "ok: pool {} (pm {}), {} idle, {} active, {} total{available}, listen queue {}, accepted {}",
        records::escape(status.pool.as_bytes()),
        records::escape(status.process_manager.as_bytes()),
        status.idle,
        status.active,
        status.total,
        status.listen_queue,
        status.accepted_conn
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_matched_loosely_and_checked_both_ways() {
        let page = crate::phpfpm::status::tests::FULL;
        let doc: Value = serde_json::from_str(page).unwrap();
        let mut extra = doc.clone();
        extra["memory peak"] = json!(12);
        let status = PoolStatus::from_json(&doc, "/status?json&full").unwrap();
        assert_eq!(field_value(&doc, &status, &normalize("idle-processes")), Ok(2), "own worker idle");
        assert_eq!(field_value(&doc, &status, &normalize("Listen_Queue")), Ok(0));
        assert_eq!(field_value(&extra, &status, "memory peak"), Ok(12), "a newer php-fpm's key");
        assert!(field_value(&doc, &status, "pool").unwrap_err().contains("not a count"));
        let unknown = field_value(&doc, &status, "nope").unwrap_err();
        assert!(unknown.contains("fields: ") && !unknown.contains(", processes,"), "{unknown}");
        let min = Check { field: "idle processes".into(), at_least: true, limit: 4 };
        assert_eq!(failure_text(&min, &Ok(3)).unwrap(), "idle processes is 3, below the minimum 4");
        assert_eq!(failure_text(&min, &Ok(4)), None);
        let max = Check { field: "listen queue".into(), at_least: false, limit: 10 };
        assert_eq!(failure_text(&max, &Ok(12)).unwrap(), "listen queue is 12, above the maximum 10");
    }

    #[test]
    fn stuck_processes_are_named_and_the_own_worker_is_not() {
        let page = crate::phpfpm::status::tests::FULL
            .replace("\"state\":\"Idle\"", "\"state\":\"Running\"")
            .replace("\"request duration\":1520", "\"request duration\":31000000");
        let status = PoolStatus::parse(page.as_bytes(), "/status?json&full").unwrap();
        let outcome = request_duration(&status, Duration::from_secs(30));
        let (exit, text) = outcome.failure.unwrap();
        assert_eq!(exit, Exit::CheckFailed);
        assert_eq!(
            text,
            "1 process busy longer than 30 s (--max-request-duration): pid 101 Running for 31 s on GET /hello.php"
        );
        assert_eq!(outcome.value, json!(31.0));
        // The own worker (pid 102, running /status) is never stuck, however long it took.
        let page = crate::phpfpm::status::tests::FULL
            .replace("\"request duration\":180", "\"request duration\":99000000");
        let status = PoolStatus::parse(page.as_bytes(), "/status?json&full").unwrap();
        assert_eq!(request_duration(&status, Duration::from_secs(30)).failure, None);
    }
}
