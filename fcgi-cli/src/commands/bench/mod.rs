//! `fcgi bench PATH`: a load test in the style of h2load and oha.
//!
//! The request is built once, exactly as `get` builds it (same flags, same parameters), and
//! sent again and again through an `fcgi_mux::Pool`: `-c` requests in flight, on up to
//! `--connections` connections, multiplexed with `--multiplex`. The run lasts `-n` requests or
//! `-D` (a hard stop); errors are counted, never fatal.
//!
//! | module | concern |
//! |---|---|
//! | `load` | worker tasks, warm-up, the measured period, when to stop |
//! | `stats` | latency histogram, status codes, errors by kind, CPU time (getrusage) |
//! | `report` | exit code, notes, the human report and the `fcgi.bench/1` JSON document |
//! | `progress` | the live progress bar on a terminal |

mod load;
mod progress;
mod report;
mod stats;

use std::io::Write;

use bytes::Bytes;
use fcgi_mux::{ConnectionConfig, EncodedParams, Multiplexing, Pool, PoolConfig};
use http::{Method, Uri};
use http_body_util::{BodyExt, Full};
use serde_json::json;

use self::load::{Answer, Plan, Stop};
use self::progress::Progress;
use self::report::{JSON_SCHEMA, Setup};
use crate::build;
use crate::cli::{BENCH_DURATION, BenchCmd, REQUEST_MAX_TIME};
use crate::exit::{Exit, classify};
use crate::output::Sink;
use crate::target::Target;

/// Runs `fcgi bench`.
pub async fn run(cmd: &BenchCmd) -> anyhow::Result<Exit> {
    match run_inner(cmd).await {
        Err(error) if cmd.json => {
            let (exit, message) = classify(&error);
            let document =
                crate::output::error_document(JSON_SCHEMA, &[("path", json!(cmd.path))], exit, &message);
            print(&format!("{document}\n"))?;
            Ok(exit)
        }
        other => other,
    }
}

async fn run_inner(cmd: &BenchCmd) -> anyhow::Result<Exit> {
    let target = Target::from_args(&cmd.spec.target, REQUEST_MAX_TIME)?;
    // As curl and h2load: a body makes it a POST unless -X says otherwise.
    let curl = &cmd.spec.curl;
    let has_body = !cmd.spec.data.is_empty()
        || !cmd.spec.data_binary.is_empty()
        || !curl.data_raw.is_empty()
        || !curl.data_urlencode.is_empty();
    let default_method = if has_body && !curl.get { Method::POST } else { Method::GET };
    let built = build::build(&cmd.path, Some(default_method), &cmd.spec, &target)?;
    if cmd.verbose {
        crate::commands::request::print_params(&target, &built, false);
    }

    let concurrency = cmd.concurrency;
    let connections = match (cmd.multiplex, cmd.connections) {
        (false, None) => concurrency,
        (true, None) => 1,
        // More connections than requests in flight would never be opened.
        (_, Some(n)) => n.min(concurrency),
    };
    let duration = match (cmd.requests, cmd.duration) {
        (None, None) => Some(BENCH_DURATION),
        (_, duration) => duration,
    };
    let plan = Plan {
        concurrency: concurrency as usize,
        requests: cmd.requests,
        duration,
        warmup: cmd.warmup.unwrap_or_default(),
    };
    let mut setup = Setup {
        address: target.address.to_string(),
        path: cmd.path.clone(),
        method: built.request.method().to_string(),
        concurrency,
        connections,
        multiplex: cmd.multiplex,
        warmup: plan.warmup,
        max_time: target.max_time,
        requests: cmd.requests,
        duration,
        script_filename: built
            .params
            .iter()
            .find(|(name, _)| *name == "SCRIPT_FILENAME")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned()),
        opened: None,
    };
    let pool =
        Pool::new(target.address.clone(), pool_config(&target, concurrency, connections, cmd.multiplex));
    let template = Template::new(&built, &pool)?;

    let progress = Progress::new(!cmd.silent && !cmd.json, plan);
    let ticker = progress.clone();
    // How many connections were open at most (sampled with the progress and at the end), so
    // the report does not claim connections that could not be opened.
    let watched = pool.clone();
    let peak = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let ticks = peak.clone();
    let sampled = watched.clone();
    let send = move || template.send(&pool);
    sigterm_as_ctrl_c();
    let local = tokio::task::LocalSet::new();
    let outcome = local
        .run_until(load::drive(plan, send, move |view| {
            ticks.set(ticks.get().max(sampled.stats().open));
            ticker.update(view)
        }))
        .await;
    progress.finish();
    let outcome = outcome?;
    let opened = peak.get().max(watched.stats().open);
    setup.opened = Some(u32::try_from(opened).unwrap_or(u32::MAX));

    let verdict = report::verdict(&outcome, &setup);
    let notes = report::notes(&outcome, &setup);
    if cmd.json {
        print(&format!("{}\n", report::json(&outcome, &setup, &verdict, &notes)))?;
        return Ok(verdict.exit);
    }
    if outcome.stop != Stop::NoConnection {
        print(&report::human(&outcome, &setup))?;
    }
    let mut err = std::io::stderr().lock();
    if !cmd.silent {
        for note in &notes {
            let _ = writeln!(err, "fcgi: note: {note}");
        }
    }
    if let Some(message) = &verdict.message {
        let _ = writeln!(err, "fcgi: {message}");
    }
    Ok(verdict.exit)
}

/// The pool: `connections` connections, each carrying one request at a time, or with
/// `--multiplex` an equal share of the requests in flight.
fn pool_config(target: &Target, concurrency: u32, connections: u32, multiplex: bool) -> PoolConfig {
    let mut connection = ConnectionConfig::default()
        .connect_timeout(target.connect_timeout)
        .first_byte_timeout(target.max_time)
        .total_timeout(Some(target.max_time));
    if multiplex {
        connection = connection
            .multiplexing(Multiplexing::Force)
            .max_concurrent_requests(concurrency.div_ceil(connections) as usize);
    }
    PoolConfig::default()
        .connection(connection)
        .max_connections(connections as usize)
        // With fewer connections than requests in flight, requests wait for a free one; that
        // wait is part of their time limit.
        .queue_timeout(target.max_time)
}

/// The request, ready to be sent again and again at the lowest cost: its parameters are
/// encoded once ([`Pool::encode_params`]), like the request a load generator such as wrk
/// builds once, and each send copies those records.
struct Template {
    method: Method,
    uri: Uri,
    body: Bytes,
    params: EncodedParams,
}

impl Template {
    fn new(built: &build::Built, pool: &Pool) -> anyhow::Result<Template> {
        Ok(Template {
            method: built.request.method().clone(),
            uri: built.request.uri().clone(),
            params: pool.encode_params(built.param_pairs(), built.body.len() as u64)?,
            body: built.body.clone(),
        })
    }

    /// Sends one request and reads its body to the end.
    fn send(&self, pool: &Pool) -> impl std::future::Future<Output = Answer> + use<> {
        let mut request = http::Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let params = self.params.clone();
        let pool = pool.clone();
        async move {
            let response = pool.request_encoded(request, &params).await?;
            let status = response.status();
            let mut body = response.into_body();
            let mut bytes = 0u64;
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame?.data_ref() {
                    bytes += data.len() as u64;
                }
            }
            Ok((status, bytes))
        }
    }
}

/// SIGTERM (`timeout`, `docker stop`, Kubernetes) ends the run as Ctrl-C does, with the
/// report: it is blocked here (and so in every thread started later) and a thread waiting for
/// it with `sigwait(2)` turns it into a SIGINT for the Ctrl-C handler of `load`.
fn sigterm_as_ctrl_c() {
    use nix::sys::signal::{SigSet, Signal, kill};
    let mut sigterm = SigSet::empty();
    sigterm.add(Signal::SIGTERM);
    if sigterm.thread_block().is_err() {
        return;
    }
    let waiter = std::thread::Builder::new().name("fcgi-sigterm".into()).spawn(move || {
        while sigterm.wait().is_ok() {
            let _ = kill(nix::unistd::Pid::this(), Signal::SIGINT);
        }
    });
    if waiter.is_err() {
        let _ = sigterm.thread_unblock();
    }
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut sink = Sink::open(None)?;
    sink.write(text.as_bytes())?;
    sink.finish()?;
    Ok(())
}
