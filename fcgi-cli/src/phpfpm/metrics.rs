//! php-fpm's status as Prometheus metrics: the text format 0.0.4 (`--format prometheus`) and
//! OpenMetrics 1.0 (`--format openmetrics`), from one list of metric families.
//!
//! The names are hipages/php-fpm_exporter's, so that existing dashboards keep working. Their
//! counters do not end in `_total` (promtool's lint asks for it; compatibility wins in the 0.0.4
//! format); OpenMetrics requires the suffix on every counter sample, so there the samples are
//! `phpfpm_accepted_connections_total` and so on. prometheus-client, the usual encoder, writes
//! only OpenMetrics and always adds `_total`, so it cannot write the 0.0.4 names: this small
//! writer serves both formats (checked with `promtool check metrics` in the tests).

use std::fmt::Write as _;

use super::status::PoolStatus;

/// Which text format.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The HTTP Content-Type of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Counter or gauge.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when php-fpm restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One time series: labels and a value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Label names and values (values are escaped when written).
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// A metric family: a name, its HELP, its type and its samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The name (without `_total`).
    pub name: &'static str,
    /// The HELP text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The series.
    pub samples: Vec<Sample>,
    /// A counter whose samples end in `_total` in both formats (the exporter's own counters);
    /// hipages' counters have it only in OpenMetrics, which requires it.
    pub total_in_text: bool,
}

impl Family {
    /// An empty family.
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family { name, help, kind, samples: Vec::new(), total_in_text: false }
    }

    /// A counter named `NAME_total` in both formats.
    pub fn counter_total(name: &'static str, help: &'static str) -> Family {
        Family { total_in_text: true, ..Family::new(name, Kind::Counter, help) }
    }

    /// Adds a sample.
    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.samples.push(Sample { labels, value });
    }
}

/// What one pool gave at one scrape.
#[derive(Clone, Debug)]
pub struct PoolReport {
    /// `unix:PATH` or `tcp://HOST:PORT`.
    pub scrape_uri: String,
    /// php-fpm's pool name: from this scrape, else from the last successful one, else empty.
    pub pool: String,
    /// The status, `None` when the scrape failed.
    pub status: Option<PoolStatus>,
    /// Failed scrapes of this pool so far (this run, for `fcgi status`).
    pub failures: u64,
}

/// The pool-wide metrics: (name, type, help, php-fpm key).
const POOL_METRICS: [(&str, Kind, &str, &str); 11] = [
    ("phpfpm_start_since", Kind::Counter, "Number of seconds since FPM has started.", "start since"),
    (
        "phpfpm_accepted_connections",
        Kind::Counter,
        "Number of requests accepted by the pool.",
        "accepted conn",
    ),
    (
        "phpfpm_listen_queue",
        Kind::Gauge,
        "Number of requests in the queue of pending connections (always 0 on a unix socket).",
        "listen queue",
    ),
    (
        "phpfpm_max_listen_queue",
        Kind::Counter,
        "Maximum number of requests in the queue of pending connections since FPM has started.",
        "max listen queue",
    ),
    (
        "phpfpm_listen_queue_length",
        Kind::Gauge,
        "The size of the socket queue of pending connections.",
        "listen queue len",
    ),
    (
        "phpfpm_idle_processes",
        Kind::Gauge,
        "Number of idle processes (the worker serving the scrape counted as idle).",
        "idle processes",
    ),
    (
        "phpfpm_active_processes",
        Kind::Gauge,
        "Number of active processes (the worker serving the scrape not counted).",
        "active processes",
    ),
    ("phpfpm_total_processes", Kind::Gauge, "Number of idle + active processes.", "total processes"),
    (
        "phpfpm_max_active_processes",
        Kind::Counter,
        "Maximum number of active processes since FPM has started.",
        "max active processes",
    ),
    (
        "phpfpm_max_children_reached",
        Kind::Counter,
        "Number of times the process limit has been reached, when pm tries to start more children.",
        "max children reached",
    ),
    (
        "phpfpm_slow_requests",
        Kind::Counter,
        "Number of requests that exceeded request_slowlog_timeout.",
        "slow requests",
    ),
];

/// The families for `reports`; per-process ones when `processes` (and `?full` data is there).
pub fn families(reports: &[PoolReport], processes: bool) -> Vec<Family> {
    let mut up = Family::new("phpfpm_up", Kind::Gauge, "Could php-fpm's status page be read (1) or not (0).");
    let mut failures =
        Family::new("phpfpm_scrape_failures", Kind::Counter, "Number of failed scrapes of the pool.");
    for report in reports {
        let labels = pool_labels(report);
        up.push(labels.clone(), if report.status.is_some() { 1.0 } else { 0.0 });
        failures.push(labels, report.failures as f64);
    }
    let mut out = vec![up, failures];
    for (name, kind, help, key) in POOL_METRICS {
        let mut family = Family::new(name, kind, help);
        for report in reports {
            if let Some(value) = report.status.as_ref().and_then(|s| s.count(key)) {
                family.push(pool_labels(report), value as f64);
            }
        }
        out.push(family);
    }
    if processes {
        out.extend(process_families(reports));
    }
    out.retain(|family| !family.samples.is_empty());
    out
}

fn pool_labels(report: &PoolReport) -> Vec<(&'static str, String)> {
    vec![("pool", report.pool.clone()), ("scrape_uri", report.scrape_uri.clone())]
}

fn process_families(reports: &[PoolReport]) -> Vec<Family> {
    let mut requests =
        Family::new("phpfpm_process_requests", Kind::Counter, "Number of requests the process has served.");
    let mut memory = Family::new(
        "phpfpm_process_last_request_memory",
        Kind::Gauge,
        "Max amount of memory the last request consumed, in bytes.",
    );
    let mut cpu =
        Family::new("phpfpm_process_last_request_cpu", Kind::Gauge, "The %cpu the last request consumed.");
    let mut duration = Family::new(
        "phpfpm_process_request_duration",
        Kind::Gauge,
        "Duration in microseconds of the current request (of the last one when idle).",
    );
    let mut state = Family::new(
        "phpfpm_process_state",
        Kind::Gauge,
        "The state of the process (Idle, Running, ...); the scrape's own worker shows Idle.",
    );
    for report in reports {
        let Some(processes) = report.status.as_ref().and_then(|s| s.processes.as_ref()) else { continue };
        for process in processes {
            let labels = || {
                vec![
                    ("pool", report.pool.clone()),
                    ("child", process.slot.to_string()),
                    ("scrape_uri", report.scrape_uri.clone()),
                ]
            };
            requests.push(labels(), process.requests as f64);
            memory.push(labels(), process.last_request_memory as f64);
            cpu.push(labels(), process.last_request_cpu);
            duration.push(labels(), process.request_duration_us as f64);
            let mut with_state = labels();
            with_state.push(("state", process.shown_state().to_string()));
            state.push(with_state, 1.0);
        }
    }
    vec![requests, memory, cpu, duration, state]
}

/// Writes `families` in `format` (OpenMetrics ends with `# EOF`).
pub fn render(families: &[Family], format: Format) -> String {
    let mut out = String::new();
    for family in families {
        // 0.0.4 names the family as its samples; OpenMetrics names a counter family without
        // the `_total` its samples carry.
        let (family_suffix, sample_suffix) = match (format, family.kind) {
            (Format::OpenMetrics, Kind::Counter) => ("", "_total"),
            (Format::Prometheus, Kind::Counter) if family.total_in_text => ("_total", "_total"),
            _ => ("", ""),
        };
        let _ = writeln!(out, "# HELP {}{family_suffix} {}", family.name, escape_help(family.help));
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# TYPE {}{family_suffix} {kind}", family.name);
        let suffix = sample_suffix;
        for sample in &family.samples {
            out.push_str(family.name);
            out.push_str(suffix);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{name}=\"{}\"", escape_label(value));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(sample.value));
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// A value as both formats write it: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{value}")
    }
}

/// Label values: backslash, double quote and line feed escaped (both formats).
fn escape_label(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// HELP texts: backslash and line feed escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', r"\\").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Option<PoolStatus>) -> PoolReport {
        PoolReport {
            scrape_uri: "unix:/run/a \"b\"\\c\n.sock".into(),
            pool: "www".into(),
            status,
            failures: 3,
        }
    }

    #[test]
    fn both_formats_name_counters_as_they_require() {
        let status =
            PoolStatus::parse(super::super::status::tests::FULL.as_bytes(), "/status?json&full").unwrap();
        let families = families(&[report(Some(status))], true);
        let text = render(&families, Format::Prometheus);
        assert!(text.contains("# TYPE phpfpm_accepted_connections counter\n"), "{text}");
        assert!(text.contains("\nphpfpm_accepted_connections{pool=\"www\",scrape_uri=\"unix:/run/a \\\"b\\\"\\\\c\\n.sock\"} 7\n"), "{text}");
        assert!(text.contains("phpfpm_idle_processes{"), "{text}");
        assert!(text.contains("phpfpm_process_state{pool=\"www\",child=\"1\",scrape_uri="), "{text}");
        assert!(text.contains(",state=\"Idle\"} 1\n"), "{text}");
        assert!(!text.contains("_total{") && !text.contains("# EOF"), "{text}");
        let open = render(&families, Format::OpenMetrics);
        assert!(
            open.contains("# TYPE phpfpm_accepted_connections counter\nphpfpm_accepted_connections_total{"),
            "{open}"
        );
        assert!(open.contains("\nphpfpm_idle_processes{"), "gauges keep their names: {open}");
        assert!(open.ends_with("\n# EOF\n"), "{open}");
    }

    #[test]
    fn a_failed_pool_is_up_0_with_its_failures_and_nothing_else() {
        let text = render(&families(&[report(None)], true), Format::Prometheus);
        assert!(text.contains("\nphpfpm_up{pool=\"www\","), "{text}");
        assert!(text.contains("} 0\n"), "{text}");
        assert!(text.contains("phpfpm_scrape_failures{") && text.contains("} 3\n"), "{text}");
        assert!(!text.contains("phpfpm_idle_processes"), "{text}");
    }

    #[test]
    fn own_counters_end_in_total_in_both_formats() {
        let mut family = Family::counter_total("fcgi_exporter_scrapes", "Scrapes.");
        family.push(vec![], 2.0);
        let text = render(std::slice::from_ref(&family), Format::Prometheus);
        assert_eq!(
            text,
            "# HELP fcgi_exporter_scrapes_total Scrapes.\n# TYPE fcgi_exporter_scrapes_total counter\nfcgi_exporter_scrapes_total 2\n"
        );
        let open = render(&[family], Format::OpenMetrics);
        assert_eq!(
            open,
            "# HELP fcgi_exporter_scrapes Scrapes.\n# TYPE fcgi_exporter_scrapes counter\nfcgi_exporter_scrapes_total 2\n# EOF\n"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }
}
