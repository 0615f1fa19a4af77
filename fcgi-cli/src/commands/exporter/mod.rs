//! `fcgi exporter`: a Prometheus exporter for php-fpm pools.
//!
//! | module | concern |
//! |---|---|
//! | `targets` | the pools of a scrape: `--socket`, `--connect`, `--socket-dir` listed again each time |
//! | `scraper` | one scrape of every pool at once under one deadline, state between scrapes, the shared scrape in flight |
//! | `http` | `/metrics`, `/healthz`, `/`; the scrape timeout header; format negotiation |
//! | `auth` | `--basic-auth-file` |
//! | `tls` | `--tls-cert`, `--tls-key` |
//!
//! The server is hyper's HTTP/1.1 connection on tokio's listener; SIGTERM and SIGINT stop
//! accepting and let requests in progress finish (at most `--shutdown-timeout`).

mod auth;
mod http;
mod scraper;
mod targets;
mod tls;

use std::sync::Arc;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;

use crate::cli_monitor::ExporterCmd;
use crate::exit::{Exit, Failure};
use crate::output::Interrupts;
use crate::phpfpm::scrape::StatusPage;

/// Longest time a client may take to send its request head.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `exporter` until SIGTERM or SIGINT.
pub async fn run(cmd: &ExporterCmd) -> anyhow::Result<Exit> {
    let fixed = cmd.fixed_targets()?;
    let users = cmd.basic_auth_file.as_deref().map(auth::Users::load).transpose()?;
    let tls = match (&cmd.tls_cert, &cmd.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    // Before any thread is started, so that every thread has the signals blocked.
    let mut interrupts = Interrupts::catch();
    let listener = tokio::net::TcpListener::bind(cmd.listen)
        .await
        .map_err(|err| Failure::new(Exit::Failure, format!("cannot listen on {}: {err}", cmd.listen)))?;
    let local = listener.local_addr().map_err(|err| Failure::new(Exit::Failure, err.to_string()))?;
    let config = scraper::Config {
        fixed: fixed.clone(),
        socket_dir: cmd.socket_dir.clone(),
        socket_glob: cmd.socket_glob.clone(),
        page: StatusPage::new(&cmd.path, !cmd.no_process_metrics),
        connect_timeout: cmd.connect_timeout.min(cmd.scrape_timeout),
        max_concurrency: cmd.max_concurrency as usize,
        processes: !cmd.no_process_metrics,
    };
    let app = Arc::new(http::App {
        scraper: scraper::Scraper::new(config),
        scrape_timeout: cmd.scrape_timeout,
        users,
        openmetrics: cmd.openmetrics,
    });
    let dir = match &cmd.socket_dir {
        Some(dir) => format!(", and the sockets matching {:?} in {}", cmd.socket_glob, dir.display()),
        None => String::new(),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("fcgi exporter: listening on {scheme}://{local}/metrics for {} pools{dir}", fixed.len());
    let graceful = GracefulShutdown::new();
    let signal = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // EMFILE and the like: say so, wait a little rather than spin.
                        eprintln!("fcgi exporter: accept failed: {err}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let app = Arc::clone(&app);
                let service = hyper::service::service_fn(move |request| http::handle(request, Arc::clone(&app)));
                let builder = {
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
                    builder
                };
                match &tls {
                    None => {
                        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                        tokio::spawn(async move {
                            let _ = connection.await;
                        });
                    }
                    Some(acceptor) => {
                        // The handshake runs in the connection's task, bounded like a request head.
                        let handshake = tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream));
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let Ok(Ok(stream)) = handshake.await else { return };
                            let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
                        });
                    }
                }
            }
            signal = wait(&mut interrupts) => break signal,
        }
    };
    drop(listener);
    eprintln!("fcgi exporter: {signal}: stopped listening, finishing requests in progress");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(cmd.shutdown_timeout) => {
            eprintln!("fcgi exporter: requests still in progress after {:?} (--shutdown-timeout): closed", cmd.shutdown_timeout);
        }
    }
    Ok(Exit::Success)
}

/// The next SIGTERM/SIGINT/SIGHUP, by name; never when they could not be caught.
async fn wait(interrupts: &mut Option<Interrupts>) -> &'static str {
    let Some(interrupts) = interrupts else { return std::future::pending().await };
    match interrupts.wait().await {
        Some(signal) => signal.as_str(),
        None => std::future::pending().await,
    }
}
