//! `fcgi probe`: FCGI_GET_VALUES, and what the answer means for a client.

use fcgi_mux::{ProbeConfig, ProbeOutcome, ProbeReport};
use serde_json::{Value, json};

use crate::cli::{CHECK_MAX_TIME, ProbeCmd};
use crate::commands::exchange::human;
use crate::exit::{Exit, Failure};
use crate::output::{error_document, print, print_json};
use crate::records;
use crate::target::Target;

/// Version of the `--json` document's layout.
pub const JSON_SCHEMA: &str = "fcgi.probe/1";

/// Runs the probe. Exits 0 when the server answered (even empty), 10 without an answer in
/// time, 11 when its first bytes are not FastCGI (at once, not at the time limit), 8 when it
/// speaks FastCGI framing but its answer is malformed.
pub async fn run(cmd: &ProbeCmd) -> anyhow::Result<Exit> {
    let target = Target::from_args(&cmd.target, CHECK_MAX_TIME)?;
    let config = ProbeConfig::default()
        .connect_timeout(target.connect_timeout)
        .answer_timeout(target.max_time)
        .observer(crate::verbose::announce(&target.address, &[]));
    let started = std::time::Instant::now();
    // The answer may take what is left of --max-time once connected.
    let probed = match tokio::time::timeout(target.max_time, fcgi_mux::probe(&target.address, &config)).await
    {
        Ok(result) => result,
        Err(_) => Ok(ProbeReport::no_answer(started.elapsed())),
    };
    let report = match probed {
        Ok(report) => report,
        // The server closed the connection before the query was even written (EPIPE,
        // ECONNRESET): the same outcome as closing it just after, which the read sees as
        // end of file. Which of the two happens is only a matter of timing.
        Err(fcgi_mux::Error::Io(_)) => {
            let mut report = ProbeReport::no_answer(started.elapsed());
            report.outcome = ProbeOutcome::Closed;
            report
        }
        Err(error) if cmd.json => {
            let (exit, message) = crate::exit::classify(&anyhow::Error::new(error));
            let fields = [("address", json!(target.address.to_string())), ("outcome", json!("error"))];
            print_json(&error_document(JSON_SCHEMA, &fields, exit, &message))?;
            return Ok(exit);
        }
        Err(error) => return Err(error.into()),
    };
    let exit = exit_for(&report.outcome);
    if cmd.json {
        print_json(&document(&target, &report, exit))?;
    } else {
        print_human(&target, &report)?;
    }
    Ok(exit)
}

fn exit_for(outcome: &ProbeOutcome) -> Exit {
    match outcome {
        ProbeOutcome::Answered { .. } | ProbeOutcome::AnsweredEmpty | ProbeOutcome::UnknownType => {
            Exit::Success
        }
        ProbeOutcome::NoAnswer | ProbeOutcome::Closed => Exit::ProbeNoAnswer,
        ProbeOutcome::NotFastCgi { .. } => Exit::ProbeNotFastCgi,
        ProbeOutcome::Malformed(_) => Exit::Protocol,
        _ => Exit::Failure,
    }
}

fn outcome_name(outcome: &ProbeOutcome) -> &'static str {
    match outcome {
        ProbeOutcome::Answered { .. } => "answered",
        ProbeOutcome::AnsweredEmpty => "answered_empty",
        ProbeOutcome::UnknownType => "unknown_type",
        ProbeOutcome::NoAnswer => "no_answer",
        ProbeOutcome::Closed => "closed",
        ProbeOutcome::NotFastCgi { .. } => "not_fastcgi",
        ProbeOutcome::Malformed(_) => "malformed",
        _ => "other",
    }
}

fn document(target: &Target, report: &ProbeReport, exit: Exit) -> Value {
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let mut doc = json!({
        "schema": JSON_SCHEMA,
        "address": target.address.to_string(),
        "outcome": outcome_name(&report.outcome),
        "exit_code": exit.code(),
        "connect_ms": ms(report.connect_time),
        "answer_ms": ms(report.answer_time),
    });
    let fields = doc.as_object_mut().expect("a JSON object");
    match &report.outcome {
        ProbeOutcome::Answered { pairs, values } => {
            let pairs: serde_json::Map<String, Value> =
                // JSON carries the text as it is (its own escapes), as `dump --json` does.
                pairs.iter().map(|p| (lossless(&p.name), json!(lossless(&p.value)))).collect();
            fields.insert("values".into(), Value::Object(pairs));
            fields.insert("max_conns".into(), json!(values.max_conns));
            fields.insert("max_reqs".into(), json!(values.max_reqs));
            fields.insert("mpxs_conns".into(), json!(values.mpxs_conns));
        }
        ProbeOutcome::NotFastCgi { looks_like, first_bytes } => {
            fields.insert("looks_like".into(), json!(looks_like));
            fields.insert("first_bytes".into(), json!(lossless(first_bytes)));
            fields.insert("error".into(), json!(not_fastcgi_reason(first_bytes)));
        }
        ProbeOutcome::Malformed(error) => {
            fields.insert("error".into(), json!(error.to_string()));
        }
        ProbeOutcome::NoAnswer => {
            fields.insert("causes".into(), json!(NO_ANSWER_CAUSES));
        }
        _ => {}
    }
    doc
}

/// Why a probe can get no answer at all, as measured (BRIEF §3).
const NO_ANSWER_CAUSES: [&str; 3] = [
    "fcgiwrap, libfcgi (Perl FCGI, spawn-fcgi) and uWSGI answer FCGI_GET_VALUES only during a request, or never",
    "php-fpm with every worker busy accepts the connection and answers nothing until one is free",
    "a server that is not FastCGI but line-based (Python's http.server, SMTP-like protocols) waits for a line end",
];

/// The rule the first bytes broke.
fn not_fastcgi_reason(first_bytes: &[u8]) -> String {
    let version = first_bytes.first().copied().unwrap_or(0);
    format!("a FastCGI record starts with version byte 1, this version byte is {version}")
}

fn print_human(target: &Target, report: &ProbeReport) -> Result<(), Failure> {
    let wait = human(report.answer_time);
    let text = match &report.outcome {
        ProbeOutcome::Answered { pairs, values } => {
            let mut text = format!("{}: answered FCGI_GET_VALUES in {wait}\n", target.address);
            for pair in pairs {
                text.push_str(&format!(
                    "  {} = {}\n",
                    records::escape(&pair.name),
                    records::escape(&pair.value)
                ));
            }
            // A value that is not a number is shown as sent: it was answered, just not usably.
            let known =
                |name: &str, v: Option<u32>| match (v, pairs.iter().find(|p| p.name == name.as_bytes())) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(pair)) => format!("\"{}\" (not a number)", records::escape(&pair.value)),
                    (None, None) => "not answered".to_string(),
                };
            let mpx = match values.mpxs_conns {
                Some(true) => "yes",
                Some(false) => "no",
                None => "not answered (assume no)",
            };
            text.push_str(&format!(
                "multiplexing: {mpx}; max connections: {}; max requests: {}\n",
                known("FCGI_MAX_CONNS", values.max_conns),
                known("FCGI_MAX_REQS", values.max_reqs)
            ));
            text
        }
        ProbeOutcome::AnsweredEmpty => format!(
            "{}: answered FCGI_GET_VALUES with no variables in {wait} (a FastCGI server; its limits are unknown)\n",
            target.address
        ),
        ProbeOutcome::UnknownType => format!(
            "{}: answered FCGI_UNKNOWN_TYPE in {wait} (a FastCGI server that does not support FCGI_GET_VALUES)\n",
            target.address
        ),
        ProbeOutcome::NoAnswer => {
            let mut text =
                format!("{}: no answer to FCGI_GET_VALUES within {wait}; known causes:\n", target.address);
            for cause in NO_ANSWER_CAUSES {
                text.push_str(&format!("  - {cause}\n"));
            }
            text.push_str(
                "  a request tells them apart: fcgi get PATH (add --mount / for a mounted application)\n",
            );
            text
        }
        ProbeOutcome::Closed => {
            format!("{}: closed the connection without answering FCGI_GET_VALUES\n", target.address)
        }
        ProbeOutcome::NotFastCgi { looks_like, first_bytes } => format!(
            "{}: does not speak FastCGI: its first bytes look like {looks_like}: \"{}\" ({})\n",
            target.address,
            records::escape(first_bytes),
            not_fastcgi_reason(first_bytes)
        ),
        ProbeOutcome::Malformed(error) => format!(
            "{}: speaks FastCGI framing but its FCGI_GET_VALUES answer is malformed: {error}\n",
            target.address
        ),
        _ => format!("{}: unexpected probe outcome\n", target.address),
    };
    print(text.as_bytes())
}

/// Bytes as JSON text: UTF-8 as it is, nothing escaped twice.
fn lossless(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
