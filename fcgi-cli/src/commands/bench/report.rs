//! The end of a run: the exit code, the notes, the human report and the `--json` document
//! (`fcgi.bench/1`, keys documented in docs/CLI.md).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::load::{Outcome, Stop};
use super::stats::Latency;
use crate::exit::Exit;

/// Version of the `--json` document's layout (`schema` key).
pub const JSON_SCHEMA: &str = "fcgi.bench/1";

/// What was run, for the report.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The server.
    pub address: String,
    /// PATH as given.
    pub path: String,
    /// The request method.
    pub method: String,
    /// Requests in flight.
    pub concurrency: u32,
    /// Most connections the pool opens.
    pub connections: u32,
    /// Whether requests share connections.
    pub multiplex: bool,
    /// The warm-up.
    pub warmup: Duration,
    /// Per-request time limit.
    pub max_time: Duration,
    /// `-n`, if given.
    pub requests: Option<u64>,
    /// `-D` (or the default), if the run is bounded by time.
    pub duration: Option<Duration>,
    /// The SCRIPT_FILENAME sent, for the hint on 404s.
    pub script_filename: Option<String>,
    /// The most connections seen open during the run (sampled), once it ended: fewer than
    /// `connections` when some could not be opened.
    pub opened: Option<u32>,
}

/// The exit code and, when it is not 0, why (one line).
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The exit code.
    pub exit: Exit,
    /// Why the run failed.
    pub message: Option<String>,
}

/// Exit 0 once any request got a response below 400; otherwise the code of the most common
/// failure: 4 or 5 for HTTP statuses, the error kind's code (7 for connect...), 28 when no
/// request finished at all.
pub fn verdict(outcome: &Outcome, setup: &Setup) -> Verdict {
    let stats = &outcome.stats;
    if stats.successes() > 0 {
        return Verdict { exit: Exit::Success, message: None };
    }
    if outcome.stop == Stop::NoConnection {
        if let Some((exit, message)) = &outcome.first_error {
            return Verdict { exit: *exit, message: Some(message.clone()) };
        }
    }
    let finished = stats.finished();
    // The most common failure: (count, exit, message).
    let mut worst: Option<(u64, Exit, String)> = None;
    let mut consider = |count: u64, exit: Exit, message: &dyn Fn() -> String| {
        if count > 0 && worst.as_ref().is_none_or(|(n, _, _)| count > *n) {
            worst = Some((count, exit, message()));
        }
    };
    for class in [4u16, 5] {
        let codes: Vec<(u16, u64)> = stats.statuses().filter(|(code, _)| code / 100 == class).collect();
        let count = codes.iter().map(|(_, n)| n).sum();
        let Some(&(code, _)) = codes.iter().max_by_key(|(_, n)| *n) else { continue };
        let exit = if class == 4 { Exit::Http4xx } else { Exit::Http5xx };
        consider(count, exit, &|| {
            format!(
                "no request succeeded: {count} of {finished} answered HTTP {}{}",
                status_text(code),
                hint(code, setup)
            )
        });
    }
    for error in stats.errors() {
        consider(error.count, error.exit, &|| {
            format!(
                "no request succeeded: {} of {finished} failed ({}): {}",
                error.count,
                error.exit.kind(),
                error.first_message
            )
        });
    }
    match worst {
        Some((_, exit, message)) => Verdict { exit, message: Some(message) },
        None if outcome.stop == Stop::Interrupted => {
            Verdict { exit: Exit::Failure, message: Some("interrupted before any request finished".into()) }
        }
        None => Verdict {
            exit: Exit::Timeout,
            message: Some(format!(
                "no request finished within the run ({} in flight were cancelled after {})",
                outcome.cancelled,
                seconds(outcome.wall)
            )),
        },
    }
}

fn status_text(code: u16) -> String {
    let reason = http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    format!("{code} {reason}").trim_end().to_string()
}

fn hint(code: u16, setup: &Setup) -> String {
    match (code, &setup.script_filename) {
        (404, Some(file)) => crate::messages::docroot_hint(file),
        (503, _) => " (the server is busy or unavailable)".into(),
        _ => String::new(),
    }
}

/// Things worth saying about a run that are not failures: connections the server never
/// served (php-fpm pins a worker to each open connection).
pub fn notes(outcome: &Outcome, setup: &Setup) -> Vec<String> {
    let mut notes = Vec::new();
    let local = outcome
        .stats
        .errors()
        .iter()
        .filter(|e| e.exit == Exit::Failure && e.first_message.contains("a local limit"))
        .map(|e| e.count)
        .sum::<u64>();
    if local > 0 {
        // EMFILE and the like (crate::messages): the client's limit, not the server's.
        notes.push(format!(
            "{local} requests failed on a local limit of this machine (see Errors), not on the server: \
             raise it (ulimit -n for open files) or lower -c/--connections"
        ));
    }
    let Some(latency) = outcome.stats.latency() else { return notes };
    let threshold = (latency.p99 * 10).max(Duration::from_secs(1));
    let stuck = outcome.cancelled_ages.iter().filter(|age| **age > threshold).count();
    let timeouts =
        outcome.stats.errors().iter().filter(|e| e.exit == Exit::Timeout).map(|e| e.count).sum::<u64>();
    let advice = if setup.multiplex {
        "the server may not serve that many requests at once on one connection: lower -c"
    } else {
        "the server served fewer requests at once than there were connections: php-fpm serves one \
         connection per worker, so keep -c/--connections below pm.max_children, counting the workers \
         that other clients (health checks, the site itself) hold"
    };
    if stuck > 0 {
        notes.push(format!(
            "{stuck} of the requests in flight at the end had waited more than {} while p99 was {}: {advice}",
            seconds(threshold),
            ms(latency.p99)
        ));
    } else if timeouts > 0 {
        notes.push(format!(
            "{timeouts} requests timed out (--max-time {}) while others were answered in {} (p99): {advice}",
            seconds(setup.max_time),
            ms(latency.p99)
        ));
    }
    notes
}

/// The human report.
pub fn human(outcome: &Outcome, setup: &Setup) -> String {
    let stats = &outcome.stats;
    let mut out = String::new();
    let line = |out: &mut String, label: &str, value: String| {
        let _ = writeln!(out, "  {:<13}{value}", format!("{label}:"));
    };
    out.push_str("Summary:\n");
    line(&mut out, "Target", format!("{} {} on {}", setup.method, setup.path, setup.address));
    let sharing = if setup.multiplex { "multiplexed" } else { "one request per connection" };
    line(
        &mut out,
        "Load",
        format!(
            "{} in flight, {}{} ({sharing})",
            setup.concurrency,
            plural(u64::from(setup.connections), "connection"),
            match setup.opened {
                Some(opened) if opened < setup.connections => format!(", only {opened} opened"),
                _ => String::new(),
            }
        ),
    );
    let warmup = if setup.warmup.is_zero() {
        String::new()
    } else {
        format!(", after {} of warm-up", seconds(setup.warmup))
    };
    line(
        &mut out,
        "Duration",
        format!("{} ({}{warmup})", seconds(outcome.wall), ended_by(outcome.stop, setup)),
    );
    let mut requests =
        format!("{} finished: {} responses, {} errors", stats.finished(), stats.completed, stats.failed);
    if outcome.cancelled > 0 {
        let _ = write!(requests, "; {} cancelled at the end", outcome.cancelled);
    }
    line(&mut out, "Requests", requests);
    line(&mut out, "Requests/s", format!("{:.1} responses/s", per_second(stats.completed, outcome.wall)));
    let per_response = if stats.completed == 0 {
        String::new()
    } else {
        format!(", {:.1} per response", stats.body_bytes as f64 / stats.completed as f64)
    };
    line(&mut out, "Body", format!("{} bytes{per_response}", stats.body_bytes));
    let cpu = outcome.cpu;
    let per_request = match cpu_us_per_request(outcome) {
        Some(us) => format!("{us:.1} µs per request"),
        None => "-".into(),
    };
    let share = if outcome.wall.is_zero() {
        0.0
    } else {
        cpu.total().as_secs_f64() / outcome.wall.as_secs_f64() * 100.0
    };
    line(
        &mut out,
        "Client CPU",
        format!(
            "{per_request} (user {:.3} s + system {:.3} s, {share:.0}% of one core)",
            cpu.user.as_secs_f64(),
            cpu.sys.as_secs_f64()
        ),
    );
    if let Some(latency) = stats.latency() {
        let _ = writeln!(out, "\nLatency (send to end of body, {} responses):", stats.completed);
        for (name, value) in latency_rows(&latency) {
            let _ = writeln!(out, "  {name:<7}{:>12}", ms(value));
        }
    }
    if stats.completed > 0 {
        out.push_str("\nStatus codes:\n");
        for (code, count) in stats.statuses() {
            let _ = writeln!(out, "  {:<24}{count}", status_text(code));
        }
    }
    let errors = stats.errors();
    if !errors.is_empty() {
        out.push_str("\nErrors:\n");
        for error in errors {
            let _ = writeln!(out, "  {:<17}{:>8}  {}", error.exit.kind(), error.count, error.first_message);
        }
    }
    out
}

/// The `--json` document.
pub fn json(outcome: &Outcome, setup: &Setup, verdict: &Verdict, notes: &[String]) -> Value {
    let stats = &outcome.stats;
    let latency = stats.latency().map(|latency| {
        let map: Map<String, Value> = latency_rows(&latency)
            .into_iter()
            .map(|(name, value)| (key(name), json!(ms_number(value))))
            .collect();
        Value::Object(map)
    });
    let status: Map<String, Value> = stats.statuses().map(|(code, n)| (code.to_string(), json!(n))).collect();
    let errors = stats.errors();
    let by_kind: Map<String, Value> =
        errors.iter().map(|e| (e.exit.kind().to_string(), json!(e.count))).collect();
    let messages: Map<String, Value> =
        errors.iter().map(|e| (e.exit.kind().to_string(), json!(e.first_message))).collect();
    let mut document = json!({
        "schema": JSON_SCHEMA,
        "address": setup.address,
        "path": setup.path,
        "method": setup.method,
        "concurrency": setup.concurrency,
        "connections": setup.connections,
        "connections_opened": setup.opened,
        "multiplex": setup.multiplex,
        "warmup_s": setup.warmup.as_secs_f64(),
        "stopped": outcome.stop.name(),
        "duration_s": round6(outcome.wall.as_secs_f64()),
        "requests": stats.finished(),
        "completed": stats.completed,
        "errors": stats.failed,
        "cancelled": outcome.cancelled,
        "req_per_s": round6(per_second(stats.completed, outcome.wall)),
        "latency_ms": latency,
        "status": status,
        "errors_by_kind": by_kind,
        "error_messages": messages,
        "body_bytes": stats.body_bytes,
        "cpu_user_s": round6(outcome.cpu.user.as_secs_f64()),
        "cpu_sys_s": round6(outcome.cpu.sys.as_secs_f64()),
        "cpu_us_per_req": cpu_us_per_request(outcome).map(|us| (us * 1000.0).round() / 1000.0),
        "notes": notes,
        "exit_code": verdict.exit.code(),
    });
    if let (Some(message), Some(object)) = (&verdict.message, document.as_object_mut()) {
        object.insert(
            "error".into(),
            json!({ "kind": verdict.exit.kind(), "exit_code": verdict.exit.code(), "message": message }),
        );
    }
    document
}

fn latency_rows(l: &Latency) -> [(&'static str, Duration); 8] {
    [
        ("min", l.min),
        ("mean", l.mean),
        ("p50", l.p50),
        ("p75", l.p75),
        ("p90", l.p90),
        ("p99", l.p99),
        ("p99.9", l.p99_9),
        ("max", l.max),
    ]
}

/// `p99.9` → `p99_9` for JSON keys.
fn key(name: &str) -> String {
    name.replace('.', "_")
}

fn ended_by(stop: Stop, setup: &Setup) -> String {
    match stop {
        Stop::Requests => match setup.requests {
            Some(n) => format!("-n {n} done"),
            None => "every request done".into(),
        },
        Stop::Duration => match setup.duration {
            Some(d) => format!("-D {} reached", seconds(d)),
            None => "-D reached".into(),
        },
        Stop::Interrupted => "interrupted".into(),
        Stop::NoConnection => "nothing could connect".into(),
    }
}

fn cpu_us_per_request(outcome: &Outcome) -> Option<f64> {
    let finished = outcome.stats.finished();
    (finished > 0).then(|| outcome.cpu.total().as_secs_f64() * 1e6 / finished as f64)
}

fn per_second(count: u64, wall: Duration) -> f64 {
    if wall.is_zero() { 0.0 } else { count as f64 / wall.as_secs_f64() }
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// Milliseconds with microsecond precision, as a JSON number.
fn ms_number(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1e3)
}

fn seconds(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64());
    format!("{} s", text.trim_end_matches('0').trim_end_matches('.'))
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

#[cfg(test)]
mod tests {
    use super::super::stats::{CpuTime, Stats};
    use super::*;

    fn setup() -> Setup {
        Setup {
            address: "unix:/run/php.sock".into(),
            path: "/hello.php".into(),
            method: "GET".into(),
            concurrency: 4,
            connections: 4,
            multiplex: false,
            warmup: Duration::ZERO,
            max_time: Duration::from_secs(30),
            requests: None,
            duration: Some(Duration::from_secs(1)),
            script_filename: Some("/srv/hello.php".into()),
            opened: None,
        }
    }

    fn outcome(stats: Stats) -> Outcome {
        Outcome {
            stats,
            wall: Duration::from_secs(1),
            cpu: CpuTime { user: Duration::from_millis(30), sys: Duration::from_millis(10) },
            cancelled: 0,
            cancelled_ages: Vec::new(),
            stop: Stop::Duration,
            first_error: None,
        }
    }

    #[test]
    fn one_success_is_enough() {
        let mut stats = Stats::new();
        stats.record_response(http::StatusCode::OK, 1, Duration::from_millis(1));
        stats.record_error(Exit::Connect, || "refused".into());
        stats.record_error(Exit::Connect, || "refused".into());
        assert_eq!(verdict(&outcome(stats), &setup()).exit, Exit::Success);
    }

    #[test]
    fn the_most_common_failure_decides() {
        let mut stats = Stats::new();
        for _ in 0..3 {
            stats.record_response(http::StatusCode::NOT_FOUND, 1, Duration::from_millis(1));
        }
        stats.record_error(Exit::ConnectionLost, || "closed".into());
        let v = verdict(&outcome(stats), &setup());
        assert_eq!(v.exit, Exit::Http4xx);
        let message = v.message.unwrap();
        assert!(message.contains("3 of 4 answered HTTP 404 Not Found"), "{message}");
        assert!(message.contains("/srv/hello.php"), "{message}");

        let mut stats = Stats::new();
        stats.record_response(http::StatusCode::SERVICE_UNAVAILABLE, 1, Duration::from_millis(1));
        for _ in 0..2 {
            stats.record_error(Exit::ConnectionLost, || "closed".into());
        }
        let v = verdict(&outcome(stats), &setup());
        assert_eq!(v.exit, Exit::ConnectionLost);
        assert_eq!(v.message.unwrap(), "no request succeeded: 2 of 3 failed (connection_lost): closed");
    }

    #[test]
    fn nothing_finished_is_a_timeout() {
        let mut o = outcome(Stats::new());
        o.cancelled = 4;
        assert_eq!(verdict(&o, &setup()).exit, Exit::Timeout);
    }

    #[test]
    fn stuck_connections_get_a_note() {
        let mut stats = Stats::new();
        stats.record_response(http::StatusCode::OK, 1, Duration::from_micros(300));
        let mut o = outcome(stats);
        o.cancelled = 2;
        o.cancelled_ages = vec![Duration::from_secs(5), Duration::from_micros(100)];
        let notes = notes(&o, &setup());
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("1 of the requests in flight at the end had waited more than 1 s"),
            "{notes:?}"
        );
        assert!(notes[0].contains("pm.max_children"));
        // Stuck requests also show when the workers equal the connections but other clients
        // hold some: the note says what was seen, not that there are fewer workers.
        assert!(!notes[0].contains("fewer workers"), "{notes:?}");
        assert!(notes[0].contains("fewer requests at once than there were connections"), "{notes:?}");
        assert!(notes[0].contains("other clients"), "{notes:?}");
    }

    #[test]
    fn json_keys() {
        let mut stats = Stats::new();
        stats.record_response(http::StatusCode::OK, 13, Duration::from_micros(250));
        let o = outcome(stats);
        let v = verdict(&o, &setup());
        let doc = json(&o, &setup(), &v, &[]);
        assert_eq!(doc["schema"], "fcgi.bench/1");
        assert_eq!(doc["status"]["200"], 1);
        assert_eq!(doc["latency_ms"]["p99_9"], 0.25);
        assert_eq!(doc["cpu_us_per_req"], 40000.0);
        assert!(doc.get("error").is_none());
        let text = human(&o, &setup());
        assert!(text.contains("Requests/s:  1.0 responses/s"), "{text}");
    }
}
