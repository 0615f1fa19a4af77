//! The load driver: `concurrency` worker tasks, each sending one request after the other, so
//! exactly that many requests are in flight; a controller that runs the warm-up, measures the
//! steady state and stops the run on time.
//!
//! Everything runs on the CLI's current-thread runtime. The workers are ordinary runtime tasks,
//! not tasks of a `LocalSet`: they then share one run queue with fcgi-mux's connection drivers,
//! so a worker woken by a driver runs right after it. A `LocalSet` is polled only once the
//! runtime's queue is empty, after a non-blocking poll of the I/O driver, which costs a system
//! call per wake-up and lets a driver finish a whole batch of answers before any worker can
//! send its next request. The counters are therefore atomics and uncontended locks. Only the
//! progress ticker and the Ctrl-C watch, which touch the terminal, stay local tasks.
//!
//! The measured period starts when the warm-up ends: from then on every request that
//! *finishes* is counted (the requests in flight at that moment included). It ends
//!
//! - with `-n N`, when N requests have finished;
//! - with `-D`, at the deadline, a hard stop: the requests still in flight are cancelled
//!   (dropped: fcgi-mux closes their connections) and counted as `cancelled`, not as errors;
//! - on Ctrl-C, the same way;
//! - at once when the first `concurrency` attempts all failed to connect and no response was
//!   ever received: the server is not there, there is nothing to measure.
//!
//! A request that fails to connect is counted, then its worker pauses briefly before the next
//! attempt, so a server that goes away mid-run does not turn the run into a busy loop.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::stats::{self, CpuTime, Stats};
use crate::exit::Exit;

/// How long a worker waits after a connection failure before its next request.
const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(20);
/// How often the progress view is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What to run.
#[derive(Copy, Clone, Debug)]
pub struct Plan {
    /// Requests in flight (worker tasks).
    pub concurrency: usize,
    /// Requests to measure, if bounded by count.
    pub requests: Option<u64>,
    /// Length of the measured period, if bounded by time.
    pub duration: Option<Duration>,
    /// Load before the measured period.
    pub warmup: Duration,
}

/// Why the run ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `-n` requests finished.
    Requests,
    /// `-D` elapsed.
    Duration,
    /// Ctrl-C.
    Interrupted,
    /// Nothing could connect.
    NoConnection,
}

impl Stop {
    /// The name used in the JSON document.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Requests => "requests",
            Stop::Duration => "duration",
            Stop::Interrupted => "interrupted",
            Stop::NoConnection => "no_connection",
        }
    }
}

/// One request's result: its status and body size, or why it failed.
pub type Answer = Result<(StatusCode, u64), fcgi_mux::Error>;

/// What the run measured.
pub struct Outcome {
    /// The counters of the measured period.
    pub stats: Stats,
    /// Length of the measured period.
    pub wall: Duration,
    /// CPU time of the process during the measured period.
    pub cpu: CpuTime,
    /// Requests in flight when the run stopped (cancelled, not counted).
    pub cancelled: u64,
    /// How long each cancelled request had been waiting.
    pub cancelled_ages: Vec<Duration>,
    /// Why the run ended.
    pub stop: Stop,
    /// The first failure of the whole run (warm-up included), with its kind.
    pub first_error: Option<(Exit, String)>,
}

/// A live view of the run, for the progress bar.
#[derive(Copy, Clone, Debug)]
pub struct View {
    /// False during the warm-up.
    pub measuring: bool,
    /// Time since the phase (warm-up or measured period) started.
    pub elapsed: Duration,
    /// Requests finished in the measured period.
    pub finished: u64,
    /// Of which failed.
    pub failed: u64,
}

/// State shared by the workers and the controller.
struct Shared {
    plan: Plan,
    stats: Mutex<Stats>,
    measuring: AtomicBool,
    phase_start: Mutex<Instant>,
    /// Measured requests that may still be started (`u64::MAX` without `-n`).
    tickets: AtomicU64,
    in_flight: AtomicU64,
    /// When each worker's current request started.
    started: Vec<Mutex<Option<Instant>>>,
    /// Why the run ends; the first reason wins.
    stop: OnceLock<Stop>,
    workers_left: AtomicUsize,
    /// Signalled when the run should end (stop set, or every worker done).
    done: Notify,
    answered: AtomicBool,
    connect_failures: AtomicU64,
    first_error: OnceLock<(Exit, String)>,
}

impl Shared {
    fn end(&self, stop: Stop) {
        let _ = self.stop.set(stop);
        self.done.notify_one();
    }

    fn stopping(&self) -> bool {
        self.stop.get().is_some()
    }

    /// Whether a worker may start another request: always during the warm-up, and in the
    /// measured period while `-n` leaves tickets.
    fn take_ticket(&self) -> bool {
        if !self.measuring.load(Relaxed) {
            return true;
        }
        let take = |n: u64| match n {
            0 => None,
            u64::MAX => Some(n),
            n => Some(n - 1),
        };
        self.tickets.fetch_update(Relaxed, Relaxed, take).is_ok()
    }

    fn stats(&self) -> MutexGuard<'_, Stats> {
        lock(&self.stats)
    }

    fn view(&self) -> View {
        let stats = self.stats();
        View {
            measuring: self.measuring.load(Relaxed),
            elapsed: lock(&self.phase_start).elapsed(),
            finished: stats.finished(),
            failed: stats.failed,
        }
    }
}

/// Locks `mutex`, whose data stays consistent even if a holder panicked (every update is one
/// step).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `plan`, calling `request` for every request, and `progress` a few times per second
/// with a view of the run. Must run inside a `LocalSet` (the progress ticker is a local task).
pub async fn drive<F, Fut>(
    plan: Plan,
    request: F,
    mut progress: impl FnMut(View) + 'static,
) -> anyhow::Result<Outcome>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let shared = Arc::new(Shared {
        plan,
        stats: Mutex::new(Stats::new()),
        measuring: AtomicBool::new(false),
        phase_start: Mutex::new(Instant::now()),
        tickets: AtomicU64::new(u64::MAX),
        in_flight: AtomicU64::new(0),
        started: (0..plan.concurrency).map(|_| Mutex::new(None)).collect(),
        stop: OnceLock::new(),
        workers_left: AtomicUsize::new(plan.concurrency),
        done: Notify::new(),
        answered: AtomicBool::new(false),
        connect_failures: AtomicU64::new(0),
        first_error: OnceLock::new(),
    });
    let request = Arc::new(request);
    let mut tasks: Vec<JoinHandle<()>> = (0..plan.concurrency)
        .map(|index| tokio::spawn(worker(index, shared.clone(), request.clone())))
        .collect();
    let ticker = shared.clone();
    tasks.push(tokio::task::spawn_local(async move {
        let mut interval = tokio::time::interval(PROGRESS_EVERY);
        loop {
            interval.tick().await;
            progress(ticker.view());
        }
    }));
    let interrupt = shared.clone();
    let ctrl_c = ctrl_c_notice();
    tasks.push(tokio::task::spawn_local(async move {
        ctrl_c.notified().await;
        interrupt.end(Stop::Interrupted);
    }));

    if !plan.warmup.is_zero() {
        let _ = tokio::time::timeout(plan.warmup, shared.done.notified()).await;
    }
    let cpu_start = CpuTime::now()?;
    let start = Instant::now();
    *lock(&shared.phase_start) = start;
    if let Some(n) = plan.requests {
        // The requests in flight now finish inside the measured period: they are its first.
        shared.tickets.store(n.saturating_sub(shared.in_flight.load(Relaxed)), Relaxed);
    }
    shared.measuring.store(true, Relaxed);
    if !shared.stopping() {
        match plan.duration {
            Some(duration) => {
                if tokio::time::timeout_at((start + duration).into(), shared.done.notified()).await.is_err() {
                    shared.end(Stop::Duration);
                }
            }
            None => shared.done.notified().await,
        }
    }
    let wall = start.elapsed();
    let cpu = CpuTime::now()?.since(cpu_start);
    let now = Instant::now();
    let cancelled_ages: Vec<Duration> = shared
        .started
        .iter()
        .filter_map(|slot| *lock(slot))
        .map(|at| now.saturating_duration_since(at))
        .collect();
    for task in &tasks {
        task.abort();
    }
    // Let the aborted tasks drop their requests (closing connections) before reporting.
    for task in tasks {
        let _ = task.await;
    }
    let stats = std::mem::replace(&mut *shared.stats(), Stats::new());
    Ok(Outcome {
        stats,
        wall,
        cpu,
        cancelled: cancelled_ages.len() as u64,
        cancelled_ages,
        stop: shared.stop.get().copied().unwrap_or(Stop::Requests),
        first_error: shared.first_error.get().cloned(),
    })
}

/// One worker: one request after the other until the run ends.
async fn worker<F, Fut>(index: usize, shared: Arc<Shared>, request: Arc<F>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Answer>,
{
    let slot = &shared.started[index];
    while !shared.stopping() && shared.take_ticket() {
        let start = Instant::now();
        *lock(slot) = Some(start);
        shared.in_flight.fetch_add(1, Relaxed);
        let answer = request().await;
        shared.in_flight.fetch_sub(1, Relaxed);
        *lock(slot) = None;
        if record(&shared, answer, start) {
            tokio::time::sleep(CONNECT_RETRY_PAUSE).await;
        }
    }
    if shared.workers_left.fetch_sub(1, Relaxed) == 1 {
        shared.end(Stop::Requests);
    }
}

/// Counts one answer; true when it was a connection failure (the worker then pauses).
fn record(shared: &Shared, answer: Answer, start: Instant) -> bool {
    let measuring = shared.measuring.load(Relaxed);
    let mut connect_failed = false;
    match answer {
        Ok((status, body_bytes)) => {
            shared.answered.store(true, Relaxed);
            if measuring {
                shared.stats().record_response(status, body_bytes, start.elapsed());
            }
        }
        Err(error) => {
            let exit = Exit::for_mux_error(&error);
            let _ = shared.first_error.get_or_init(|| (exit, stats::error_message(&error)));
            if measuring {
                shared.stats().record_error(exit, || stats::error_message(&error));
            }
            if matches!(exit, Exit::Connect | Exit::Resolve) {
                connect_failed = true;
                let failures = shared.connect_failures.fetch_add(1, Relaxed) + 1;
                if !shared.answered.load(Relaxed) && failures >= shared.plan.concurrency as u64 {
                    shared.end(Stop::NoConnection);
                }
            }
        }
    }
    if measuring && shared.plan.requests.is_some_and(|n| shared.stats().finished() >= n) {
        shared.end(Stop::Requests);
    }
    connect_failed
}

/// A notice of Ctrl-C (SIGINT). Through the `ctrlc` crate rather than tokio's signal driver:
/// with tokio's `signal` feature every runtime, even that of a one-shot `fcgi get`, sets up
/// handling of every signal at start (22 KiB of heap, a socketpair, a dup and an epoll_ctl).
/// When no handler can be installed, Ctrl-C interrupts the run the usual way, without a report.
fn ctrl_c_notice() -> Arc<Notify> {
    let notice = Arc::new(Notify::new());
    let sender = notice.clone();
    let _ = ctrlc::set_handler(move || sender.notify_one());
    notice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F, Fut>(plan: Plan, request: F) -> Outcome
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        runtime.block_on(local.run_until(drive(plan, request, |_| {}))).unwrap()
    }

    fn plan(concurrency: usize, requests: Option<u64>, duration: Option<Duration>) -> Plan {
        Plan { concurrency, requests, duration, warmup: Duration::ZERO }
    }

    #[test]
    fn n_requests_are_exactly_n() {
        let outcome = run(plan(8, Some(1000), None), || async {
            tokio::task::yield_now().await;
            Ok((StatusCode::OK, 5))
        });
        assert_eq!(outcome.stop, Stop::Requests);
        assert_eq!(outcome.stats.completed, 1000);
        assert_eq!(outcome.stats.body_bytes, 5000);
        assert_eq!(outcome.cancelled, 0);
    }

    #[test]
    fn the_duration_is_a_hard_stop() {
        let started = Instant::now();
        let outcome = run(plan(4, None, Some(Duration::from_millis(300))), || async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok((StatusCode::OK, 0))
        });
        assert!(started.elapsed() < Duration::from_millis(600), "{:?}", started.elapsed());
        assert_eq!(outcome.stop, Stop::Duration);
        assert!(outcome.stats.completed >= 4 && outcome.stats.completed <= 12, "{}", outcome.stats.completed);
        assert_eq!(outcome.cancelled, 4, "every worker had a request in flight");
        assert!(outcome.wall >= Duration::from_millis(300));
    }

    #[test]
    fn warmup_requests_are_not_counted() {
        let plan = Plan { warmup: Duration::from_millis(200), ..plan(2, Some(10), None) };
        let outcome = run(plan, || async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok((StatusCode::OK, 1))
        });
        assert_eq!(outcome.stats.completed, 10);
    }

    #[test]
    fn nothing_connecting_stops_the_run_at_once() {
        let started = Instant::now();
        let outcome = run(plan(4, None, Some(Duration::from_secs(30))), || async {
            Err(fcgi_mux::Error::Connect {
                address: "unix:/nowhere".into(),
                source: std::sync::Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            })
        });
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(outcome.stop, Stop::NoConnection);
        assert_eq!(outcome.first_error.unwrap().0, Exit::Connect);
    }

    #[test]
    fn errors_are_counted_not_fatal() {
        let count = std::sync::atomic::AtomicU32::new(0);
        let outcome = run(plan(2, Some(100), None), move || {
            let n = count.fetch_add(1, Relaxed);
            async move {
                if n % 2 == 0 {
                    Ok((StatusCode::OK, 0))
                } else {
                    Err(fcgi_mux::Error::ConnectionClosed { sent_nothing: false })
                }
            }
        });
        assert_eq!(outcome.stats.finished(), 100);
        assert_eq!(outcome.stats.completed, 50);
        assert_eq!(outcome.stats.errors()[0].exit, Exit::ConnectionLost);
    }
}
