//! What a run measured: latencies, status codes, errors by kind, body bytes, CPU time.
//!
//! Memory is bounded whatever the number of requests: latencies go into an HdrHistogram
//! (microseconds, 3 significant digits, up to a day), status codes into a table indexed by
//! code, errors into one entry per kind.

use std::time::Duration;

use hdrhistogram::Histogram;
use http::StatusCode;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::{TimeVal, TimeValLike};

use crate::exit::{self, Exit};

/// Largest latency recorded exactly, in microseconds (a day: the longest `--max-time`).
const MAX_LATENCY_US: u64 = 86_400 * 1_000_000;

/// Counters of the measured period.
pub struct Stats {
    /// Latency of complete responses, in microseconds.
    latency: Histogram<u64>,
    /// Sum of those latencies (for an exact mean).
    latency_sum_us: u64,
    /// Responses by status code (index = code, 100..=999).
    statuses: Vec<u64>,
    /// Failed requests by kind, in order of first appearance.
    errors: Vec<ErrorCount>,
    /// Requests that got a complete response (any status).
    pub completed: u64,
    /// Requests that failed before a complete response.
    pub failed: u64,
    /// Bytes of response bodies.
    pub body_bytes: u64,
}

/// Failures of one kind.
#[derive(Clone, Debug)]
pub struct ErrorCount {
    /// The kind (its exit code and name).
    pub exit: Exit,
    /// How many.
    pub count: u64,
    /// The first one's message, on one line.
    pub first_message: String,
}

/// Latency percentiles of complete responses.
#[derive(Copy, Clone, Debug)]
pub struct Latency {
    /// Fastest.
    pub min: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 75th percentile.
    pub p75: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p99_9: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Stats {
    /// Empty counters.
    pub fn new() -> Stats {
        Stats {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
            latency_sum_us: 0,
            statuses: vec![0; 1000],
            errors: Vec::new(),
            completed: 0,
            failed: 0,
            body_bytes: 0,
        }
    }

    /// Counts a complete response.
    pub fn record_response(&mut self, status: StatusCode, body_bytes: u64, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency.saturating_record(micros);
        self.latency_sum_us = self.latency_sum_us.saturating_add(micros);
        self.statuses[usize::from(status.as_u16())] += 1;
        self.completed += 1;
        self.body_bytes += body_bytes;
    }

    /// Counts a request that failed.
    pub fn record_error(&mut self, exit: Exit, message: impl FnOnce() -> String) {
        self.failed += 1;
        match self.errors.iter_mut().find(|e| e.exit == exit) {
            Some(entry) => entry.count += 1,
            None => self.errors.push(ErrorCount { exit, count: 1, first_message: message() }),
        }
    }

    /// Requests finished: complete responses and failures.
    pub fn finished(&self) -> u64 {
        self.completed + self.failed
    }

    /// `(status, count)` for every status seen, by code.
    pub fn statuses(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.statuses.iter().enumerate().filter(|(_, n)| **n > 0).map(|(code, n)| (code as u16, *n))
    }

    /// Responses with a status below 400.
    pub fn successes(&self) -> u64 {
        self.statuses().filter(|(code, _)| *code < 400).map(|(_, n)| n).sum()
    }

    /// Failures by kind, most frequent first.
    pub fn errors(&self) -> Vec<ErrorCount> {
        let mut errors = self.errors.clone();
        errors.sort_by_key(|e| std::cmp::Reverse(e.count));
        errors
    }

    /// Percentiles; `None` before the first complete response.
    pub fn latency(&self) -> Option<Latency> {
        if self.latency.is_empty() {
            return None;
        }
        let at = |q: f64| Duration::from_micros(self.latency.value_at_quantile(q));
        Some(Latency {
            min: Duration::from_micros(self.latency.min()),
            mean: Duration::from_micros(self.latency_sum_us / self.latency.len()),
            p50: at(0.50),
            p75: at(0.75),
            p90: at(0.90),
            p99: at(0.99),
            p99_9: at(0.999),
            max: Duration::from_micros(self.latency.max()),
        })
    }
}

/// The message of a client error, on one line.
pub fn error_message(error: &fcgi_mux::Error) -> String {
    match error {
        fcgi_mux::Error::Connect { address, source } => {
            return exit::one_line(&crate::messages::connect_failed(address, source).1);
        }
        // The report names the address once, in its Target line.
        fcgi_mux::Error::Timeout { kind, after } => {
            return crate::messages::timed_out(None, Some(*kind), *after);
        }
        _ => {}
    }
    exit::one_line(&error.to_string())
}

/// CPU time used by this process (all threads), from `getrusage(RUSAGE_SELF)`.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct CpuTime {
    /// User time.
    pub user: Duration,
    /// System time.
    pub sys: Duration,
}

impl CpuTime {
    /// The usage so far.
    pub fn now() -> anyhow::Result<CpuTime> {
        let usage = getrusage(UsageWho::RUSAGE_SELF)?;
        let micros = |tv: TimeVal| Duration::from_micros(tv.num_microseconds().max(0) as u64);
        Ok(CpuTime { user: micros(usage.user_time()), sys: micros(usage.system_time()) })
    }

    /// The usage between `earlier` and `self`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime { user: self.user.saturating_sub(earlier.user), sys: self.sys.saturating_sub(earlier.sys) }
    }

    /// User + system.
    pub fn total(self) -> Duration {
        self.user + self.sys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered_and_close() {
        let mut stats = Stats::new();
        for micros in 1..=1000u64 {
            stats.record_response(StatusCode::OK, 10, Duration::from_micros(micros));
        }
        let l = stats.latency().unwrap();
        assert_eq!(l.min, Duration::from_micros(1));
        assert_eq!(l.max, Duration::from_micros(1000));
        assert!(l.min <= l.p50 && l.p50 <= l.p75 && l.p75 <= l.p90 && l.p90 <= l.p99);
        assert!(l.p99 <= l.p99_9 && l.p99_9 <= l.max);
        assert_eq!(l.p50, Duration::from_micros(500));
        assert_eq!(l.p99, Duration::from_micros(990));
        assert_eq!(l.mean, Duration::from_micros(500));
        assert_eq!(stats.body_bytes, 10_000);
        assert_eq!(stats.statuses().collect::<Vec<_>>(), vec![(200, 1000)]);
    }

    #[test]
    fn no_latency_without_responses() {
        let mut stats = Stats::new();
        assert!(stats.latency().is_none());
        stats.record_error(Exit::Connect, || "refused".into());
        stats.record_error(Exit::Timeout, || "slow".into());
        stats.record_error(Exit::Timeout, || unreachable!("only the first message is kept"));
        assert!(stats.latency().is_none());
        assert_eq!(stats.finished(), 3);
        let errors = stats.errors();
        assert_eq!(
            (errors[0].exit, errors[0].count, errors[0].first_message.as_str()),
            (Exit::Timeout, 2, "slow")
        );
        assert_eq!((errors[1].exit, errors[1].count), (Exit::Connect, 1));
    }

    #[test]
    fn huge_latencies_saturate() {
        let mut stats = Stats::new();
        stats.record_response(StatusCode::NOT_FOUND, 0, Duration::from_secs(200_000));
        stats.record_response(StatusCode::OK, 0, Duration::ZERO);
        assert!(stats.latency().unwrap().max >= Duration::from_secs(86_000));
        assert_eq!(stats.successes(), 1);
    }

    #[test]
    fn cpu_time_moves_forward() {
        let before = CpuTime::now().unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let used = CpuTime::now().unwrap().since(before);
        assert!(used.total() < Duration::from_secs(10));
    }
}
