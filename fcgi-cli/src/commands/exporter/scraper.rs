//! One scrape of every pool at once, each under the scrape's deadline, at most
//! `--max-concurrency` in flight; the state kept between scrapes (pool names, failure counts,
//! what changed); and the sharing of a scrape in flight between concurrent `/metrics` requests
//! (each status request occupies a php-fpm worker: two Prometheus servers scraping at once must
//! not double that).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fcgi_mux::Address;
use tokio::sync::{Semaphore, watch};

use super::targets;
use crate::exit::Exit;
use crate::phpfpm::metrics::{Family, Kind, PoolReport, families};
use crate::phpfpm::scrape::{ScrapeError, StatusPage, scrape};
use crate::phpfpm::status::PoolStatus;
use crate::target::Target;

/// What the scraper is told at start.
#[derive(Clone, Debug)]
pub struct Config {
    /// `--socket` and `--connect` pools.
    pub fixed: Vec<Address>,
    /// `--socket-dir`.
    pub socket_dir: Option<PathBuf>,
    /// `--socket-glob`.
    pub socket_glob: String,
    /// The status page (with `full` unless `--no-process-metrics`).
    pub page: StatusPage,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// `--max-concurrency`.
    pub max_concurrency: usize,
    /// Per-process series wanted.
    pub processes: bool,
}

/// One pool's last result, as `/` shows it.
#[derive(Clone, Debug)]
pub struct PoolState {
    /// php-fpm's pool name (the last one seen; empty before any success).
    pub pool: String,
    /// The last status, or why it failed.
    pub last: Result<PoolStatus, ScrapeError>,
    /// How long that scrape took.
    pub duration: Duration,
    /// Failed scrapes since the exporter started.
    pub failures: u64,
    /// Failed scrapes by kind ([`Exit::kind`]).
    pub failures_by_kind: BTreeMap<&'static str, u64>,
}

/// The result of one scrape: every pool's state then, in discovery order.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// `(scrape_uri, state)`.
    pub pools: Vec<(String, PoolState)>,
    /// How long the whole scrape took.
    pub duration: Duration,
    /// Why `--socket-dir` could not be read, if so.
    pub dir_error: Option<String>,
}

/// Counters about the exporter itself.
#[derive(Debug, Default)]
struct Own {
    scrapes: u64,
    shared: u64,
    dir_errors: u64,
}

/// The scraper: configuration, the state between scrapes, the scrape in flight.
pub struct Scraper {
    config: Config,
    state: Mutex<BTreeMap<String, PoolState>>,
    own: Mutex<Own>,
    in_flight: Mutex<Option<watch::Receiver<Option<Arc<Snapshot>>>>>,
    last: Mutex<Option<Arc<Snapshot>>>,
    /// Whether the directory was readable at the last scrape (for the stderr line on change).
    dir_ok: Mutex<Option<bool>>,
}

impl Scraper {
    /// A scraper that has not scraped yet.
    pub fn new(config: Config) -> Arc<Scraper> {
        Arc::new(Scraper {
            config,
            state: Mutex::new(BTreeMap::new()),
            own: Mutex::new(Own::default()),
            in_flight: Mutex::new(None),
            last: Mutex::new(None),
            dir_ok: Mutex::new(None),
        })
    }

    /// The last finished scrape, if any (for `/`).
    pub fn last(&self) -> Option<Arc<Snapshot>> {
        lock(&self.last).clone()
    }

    /// A scrape for a `/metrics` request: joins the one in flight if there is one, else starts
    /// one with `timeout`. The scrape runs in its own task, so a client that goes away does not
    /// cancel it for the others.
    pub async fn scrape_shared(self: &Arc<Self>, timeout: Duration) -> Arc<Snapshot> {
        let mut receiver = {
            let mut slot = lock(&self.in_flight);
            match &*slot {
                Some(receiver) => {
                    lock(&self.own).shared += 1;
                    receiver.clone()
                }
                None => {
                    let (sender, receiver) = watch::channel(None);
                    *slot = Some(receiver.clone());
                    let this = Arc::clone(self);
                    tokio::spawn(async move {
                        let snapshot = Arc::new(this.scrape_all(timeout).await);
                        *lock(&this.last) = Some(Arc::clone(&snapshot));
                        *lock(&this.in_flight) = None;
                        let _ = sender.send(Some(snapshot));
                    });
                    receiver
                }
            }
        };
        loop {
            if let Some(snapshot) = receiver.borrow_and_update().clone() {
                return snapshot;
            }
            if receiver.changed().await.is_err() {
                // The scrape task ended without a result (it panicked): report what is known.
                return self.last().unwrap_or_else(|| {
                    Arc::new(Snapshot { pools: Vec::new(), duration: Duration::ZERO, dir_error: None })
                });
            }
        }
    }

    /// Asks every pool at once; each answer or failure within `timeout` of the start.
    async fn scrape_all(&self, timeout: Duration) -> Snapshot {
        let started = Instant::now();
        let deadline = started + timeout;
        let found = targets::discover(
            &self.config.fixed,
            self.config.socket_dir.as_deref(),
            &self.config.socket_glob,
        );
        self.note_dir(found.dir_error.as_deref());
        let slots = Arc::new(Semaphore::new(self.config.max_concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for (index, address) in found.addresses.iter().cloned().enumerate() {
            let slots = Arc::clone(&slots);
            let page = self.config.page.clone();
            let connect_timeout = self.config.connect_timeout;
            tasks.spawn(async move {
                let began = Instant::now();
                let result = scrape_one(&address, &page, connect_timeout, deadline, &slots).await;
                (index, result, began.elapsed())
            });
        }
        let mut results: Vec<Option<(Result<PoolStatus, ScrapeError>, Duration)>> =
            vec![None; found.addresses.len()];
        while let Some(joined) = tasks.join_next().await {
            if let Ok((index, result, took)) = joined {
                results[index] = Some((result, took));
            }
        }
        let mut state = lock(&self.state);
        let mut pools = Vec::new();
        let mut seen = Vec::new();
        for (address, result) in found.addresses.iter().zip(results) {
            let uri = address.to_string();
            let (result, took) = result.unwrap_or_else(|| {
                (
                    Err(ScrapeError {
                        exit: Exit::Failure,
                        message: format!("{uri}: the scrape task failed"),
                    }),
                    timeout,
                )
            });
            match state.get(&uri) {
                Some(previous) => announce(&uri, Some(&previous.last), &result),
                None => announce(&uri, None, &result),
            }
            let entry = state.entry(uri.clone()).or_insert_with(|| PoolState {
                pool: String::new(),
                last: result.clone(),
                duration: Duration::ZERO,
                failures: 0,
                failures_by_kind: BTreeMap::new(),
            });
            match &result {
                Ok(status) => entry.pool = status.pool.clone(),
                Err(error) => {
                    entry.failures += 1;
                    *entry.failures_by_kind.entry(error.exit.kind()).or_default() += 1;
                }
            }
            entry.last = result;
            entry.duration = took;
            pools.push((uri.clone(), entry.clone()));
            seen.push(uri);
        }
        // Pools gone from --socket-dir: forgotten (their series end), said once.
        state.retain(|uri, _| {
            let keep = seen.contains(uri);
            if !keep {
                eprintln!("fcgi exporter: {uri}: no longer in --socket-dir, not scraped any more");
            }
            keep
        });
        drop(state);
        lock(&self.own).scrapes += 1;
        Snapshot { pools, duration: started.elapsed(), dir_error: found.dir_error }
    }

    fn note_dir(&self, error: Option<&str>) {
        let mut dir_ok = lock(&self.dir_ok);
        if let Some(error) = error {
            lock(&self.own).dir_errors += 1;
            if *dir_ok != Some(false) {
                eprintln!("fcgi exporter: {error}");
            }
            *dir_ok = Some(false);
        } else if self.config.socket_dir.is_some() {
            if *dir_ok == Some(false) {
                eprintln!("fcgi exporter: --socket-dir can be listed again");
            }
            *dir_ok = Some(true);
        }
    }

    /// The metric families of `snapshot`: php-fpm's (hipages' names), then the exporter's own.
    pub fn families(&self, snapshot: &Snapshot) -> Vec<Family> {
        let reports: Vec<PoolReport> = snapshot
            .pools
            .iter()
            .map(|(uri, state)| PoolReport {
                scrape_uri: uri.clone(),
                pool: state.pool.clone(),
                status: state.last.as_ref().ok().cloned(),
                failures: state.failures,
            })
            .collect();
        let mut out = families(&reports, self.config.processes);
        let mut duration = Family::new(
            "fcgi_exporter_pool_scrape_duration_seconds",
            Kind::Gauge,
            "How long the last scrape of the pool took.",
        );
        let mut errors = Family::counter_total(
            "fcgi_exporter_pool_scrape_errors",
            "Failed scrapes of the pool by kind (connect, timeout, protocol, http_4xx, ...).",
        );
        for (uri, state) in &snapshot.pools {
            duration.push(vec![("scrape_uri", uri.clone())], state.duration.as_secs_f64());
            for (kind, count) in &state.failures_by_kind {
                errors.push(vec![("scrape_uri", uri.clone()), ("kind", (*kind).to_string())], *count as f64);
            }
        }
        let own = lock(&self.own);
        let mut scrapes = Family::counter_total("fcgi_exporter_scrapes", "Scrapes of all pools done.");
        scrapes.push(Vec::new(), own.scrapes as f64);
        let mut shared = Family::counter_total(
            "fcgi_exporter_shared_scrapes",
            "/metrics requests answered by joining a scrape already in flight.",
        );
        shared.push(Vec::new(), own.shared as f64);
        let mut dir_errors = Family::counter_total(
            "fcgi_exporter_socket_dir_errors",
            "Scrapes at which --socket-dir could not be listed.",
        );
        dir_errors.push(Vec::new(), own.dir_errors as f64);
        let mut pools = Family::new("fcgi_exporter_pools", Kind::Gauge, "Pools asked at the last scrape.");
        pools.push(Vec::new(), snapshot.pools.len() as f64);
        let mut total = Family::new(
            "fcgi_exporter_scrape_duration_seconds",
            Kind::Gauge,
            "How long the last scrape of every pool took.",
        );
        total.push(Vec::new(), snapshot.duration.as_secs_f64());
        out.extend([duration, errors, scrapes, shared, dir_errors, pools, total]);
        out.retain(|family| !family.samples.is_empty());
        out
    }
}

/// One pool: a free slot, then the status page, all before `deadline`.
async fn scrape_one(
    address: &Address,
    page: &StatusPage,
    connect_timeout: Duration,
    deadline: Instant,
    slots: &Semaphore,
) -> Result<PoolStatus, ScrapeError> {
    let timed_out = |what: &str| ScrapeError {
        exit: Exit::Timeout,
        message: format!("{address}: {what} within the scrape timeout"),
    };
    let _slot = match tokio::time::timeout_at(deadline.into(), slots.acquire()).await {
        Ok(Ok(slot)) => slot,
        _ => return Err(timed_out("no free slot (--max-concurrency)")),
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        // The slot came free just as the deadline passed.
        return Err(timed_out("no free slot (--max-concurrency)"));
    }
    let target = Target {
        address: address.clone(),
        connect_timeout: connect_timeout.min(remaining),
        max_time: remaining,
    };
    // The exchange keeps to max_time itself; the outer limit is a guard for any await that
    // would not.
    match tokio::time::timeout_at(deadline.into(), scrape(&target, page)).await {
        // The exchange's own limit is the scrape's deadline, not a --max-time of the exporter.
        Ok(Err(error)) if error.exit == Exit::Timeout && error.message.contains("(--max-time)") => {
            Err(timed_out("no complete answer"))
        }
        Ok(result) => result,
        Err(_) => Err(timed_out("no complete answer")),
    }
}

/// One stderr line when a pool's state changes (first result, up → down, down → up, a
/// different failure kind), not one per failed scrape.
fn announce(
    uri: &str,
    before: Option<&Result<PoolStatus, ScrapeError>>,
    now: &Result<PoolStatus, ScrapeError>,
) {
    if let Some(line) = change_line(uri, before, now) {
        eprintln!("{line}");
    }
}

/// The line [`announce`] prints, if the state changed (`before` is `None` at the first scrape).
fn change_line(
    uri: &str,
    before: Option<&Result<PoolStatus, ScrapeError>>,
    now: &Result<PoolStatus, ScrapeError>,
) -> Option<String> {
    let changed = match (before, now) {
        (None, _) => true,
        (Some(Ok(_)), Ok(_)) => false,
        (Some(Err(a)), Err(b)) => a.exit != b.exit,
        _ => true,
    };
    if !changed {
        return None;
    }
    Some(match now {
        Ok(status) => format!(
            "fcgi exporter: {uri}: up (pool {}, pm {})",
            crate::records::escape(status.pool.as_bytes()),
            crate::records::escape(status.process_manager.as_bytes())
        ),
        Err(error) => format!("fcgi exporter: {uri}: down ({}): {}", error.exit.kind(), error.message),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> Result<PoolStatus, ScrapeError> {
        let page = crate::phpfpm::status::tests::FULL;
        let doc: serde_json::Value = serde_json::from_str(page).unwrap();
        Ok(PoolStatus::from_json(&doc, "/status?json&full").unwrap())
    }

    fn down(exit: Exit) -> Result<PoolStatus, ScrapeError> {
        Err(ScrapeError { exit, message: "why".into() })
    }

    #[test]
    fn a_line_per_change_of_state_only() {
        let uri = "unix:/p.sock";
        assert_eq!(
            change_line(uri, None, &up()).unwrap(),
            "fcgi exporter: unix:/p.sock: up (pool www, pm static)"
        );
        assert_eq!(change_line(uri, Some(&up()), &up()), None);
        assert_eq!(
            change_line(uri, Some(&up()), &down(Exit::Timeout)).unwrap(),
            "fcgi exporter: unix:/p.sock: down (timeout): why"
        );
        assert_eq!(
            change_line(uri, Some(&down(Exit::Timeout)), &down(Exit::Timeout)),
            None,
            "the same failure again"
        );
        assert!(
            change_line(uri, Some(&down(Exit::Timeout)), &down(Exit::Connect))
                .unwrap()
                .contains("down (connect)")
        );
        assert!(change_line(uri, Some(&down(Exit::Connect)), &up()).unwrap().contains(": up (pool www"));
        assert!(change_line(uri, None, &down(Exit::Connect)).is_some(), "a first failure");
    }
}
