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
/// time, 11 when it does not speak FastCGI.
pub async fn run(cmd: &ProbeCmd) -> anyhow::Result<Exit> {
    let target = Target::from_args(&cmd.target, CHECK_MAX_TIME)?;
    let config =
        ProbeConfig::default().connect_timeout(target.connect_timeout).answer_timeout(target.max_time);
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
            let exit = Exit::for_mux_error(&error);
            let fields = [("address", json!(target.address.to_string())), ("outcome", json!("error"))];
            print_json(&error_document(JSON_SCHEMA, &fields, exit, &error.to_string()))?;
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
        ProbeOutcome::NotFastCgi(_) => Exit::ProbeNotFastCgi,
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
        ProbeOutcome::NotFastCgi(_) => "not_fastcgi",
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
                pairs.iter().map(|p| (records::escape(&p.name), json!(records::escape(&p.value)))).collect();
            fields.insert("values".into(), Value::Object(pairs));
            fields.insert("max_conns".into(), json!(values.max_conns));
            fields.insert("max_reqs".into(), json!(values.max_reqs));
            fields.insert("mpxs_conns".into(), json!(values.mpxs_conns));
        }
        ProbeOutcome::NotFastCgi(error) => {
            fields.insert("error".into(), json!(error.to_string()));
        }
        _ => {}
    }
    doc
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
            let known = |v: Option<u32>| v.map_or("not answered".to_string(), |n| n.to_string());
            let mpx = match values.mpxs_conns {
                Some(true) => "yes",
                Some(false) => "no",
                None => "not answered (assume no)",
            };
            text.push_str(&format!(
                "multiplexing: {mpx}; max connections: {}; max requests: {}\n",
                known(values.max_conns),
                known(values.max_reqs)
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
        ProbeOutcome::NoAnswer => format!(
            "{}: no answer to FCGI_GET_VALUES within {wait} (some servers, e.g. fcgiwrap, answer only once a request arrives)\n",
            target.address
        ),
        ProbeOutcome::Closed => {
            format!("{}: closed the connection without answering FCGI_GET_VALUES\n", target.address)
        }
        ProbeOutcome::NotFastCgi(error) => format!("{}: does not speak FastCGI: {error}\n", target.address),
        _ => format!("{}: unexpected probe outcome\n", target.address),
    };
    print(text.as_bytes())
}
