//! `fcgi serve`: an HTTP front for php-fpm and other FastCGI applications.
//!
//! | module | concern |
//! |---|---|
//! | `args` | the flags and their documented defaults |
//! | `listener` | accepting, hyper's HTTP/1.1 + HTTP/2, TLS handshake, connection limits, idle and shutdown |
//! | `tls` | rustls configuration from PEM files, ALPN |
//! | `service` | one request: smuggling check, routing, access-log entry |
//! | `route` | PHP mode: static file, script, directory index, front controller, dot files |
//! | `static_files` | ETag, Last-Modified, 304, Range, HEAD |
//! | `mime` | Content-Type by extension |
//! | `forward` | the FastCGI request: body limits, CGI environment, 502/503/504, STDERR |
//! | `response` | the one response body type, error pages |
//! | `proxy` | `--trusted-proxy`: X-Forwarded-For and X-Forwarded-Proto from trusted networks |
//! | `access_log` | combined or JSON lines, on a thread of its own |
//! | `shutdown` | SIGTERM/SIGINT |
//!
//! It runs on a runtime of its own (`--threads`), built after the signals are blocked.

mod access_log;
mod args;
mod forward;
mod listener;
mod mime;
mod proxy;
mod response;
mod route;
mod service;
mod shutdown;
mod static_files;
mod tls;

use std::sync::Arc;

use fcgi_cgi_env::{AppConfig, PathInfo};
use fcgi_mux::{Address, ConnectionConfig, Pool, PoolConfig};

pub use args::ServeCmd;

use crate::exit::{Exit, Failure, classify};
use forward::Backend;
use listener::{Limits, Server};
use route::DocRoot;
use service::{Mode, Site};

/// Runs `fcgi serve` to its end; returns the exit code.
pub fn main(cmd: &ServeCmd) -> Exit {
    let signals = match shutdown::Signals::catch() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("fcgi: cannot catch SIGTERM/SIGINT: {error}");
            return Exit::Failure;
        }
    };
    let mut builder = if cmd.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(cmd.threads as usize);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("fcgi: cannot start the async runtime: {error}");
            return Exit::Failure;
        }
    };
    let exit = match runtime.block_on(run(cmd, signals)) {
        Ok(exit) => exit,
        Err(error) => {
            let (exit, message) = classify(&error);
            eprintln!("fcgi: {message}");
            exit
        }
    };
    runtime.shutdown_background();
    exit
}

async fn run(cmd: &ServeCmd, signals: shutdown::Signals) -> anyhow::Result<Exit> {
    let usage = |message: String| Failure::new(Exit::Usage, message);
    let address = match (&cmd.socket, &cmd.connect) {
        (Some(path), _) => Address::Unix(path.clone()),
        (None, Some(text)) => {
            text.parse::<Address>().map_err(|error| usage(format!("--connect: {error}")))?
        }
        (None, None) => {
            return Err(usage("give the FastCGI server: --socket PATH or --connect HOST:PORT".into()).into());
        }
    };
    let (mode, app, script_root, described) = match &cmd.mount {
        Some(prefix) => {
            let app = AppConfig::mounted(prefix.as_str());
            (Mode::Mounted, app, None, format!("everything under {prefix} to the application"))
        }
        None => {
            let given = match &cmd.docroot {
                Some(dir) => dir.clone(),
                None => {
                    std::env::current_dir().map_err(|error| usage(format!("current directory: {error}")))?
                }
            };
            let root = std::fs::canonicalize(&given)
                .ok()
                .filter(|root| root.is_dir())
                .ok_or_else(|| usage(format!("--docroot {}: not a directory", given.display())))?;
            if cmd.index.is_empty() || cmd.index.contains('/') || cmd.index.starts_with('.') {
                return Err(usage(format!(
                    "--index {:?}: give a plain file name such as index.php",
                    cmd.index
                ))
                .into());
            }
            let script_root = match &cmd.fcgi_docroot {
                Some(dir) => dir.trim_end_matches('/').to_string(),
                None => root
                    .to_str()
                    .ok_or_else(|| {
                        usage(format!("--docroot {}: not UTF-8; give --fcgi-docroot", root.display()))
                    })?
                    .to_string(),
            };
            let app = AppConfig::new(script_root.as_str()).path_info(PathInfo::Off).index(None);
            let described = format!("document root {}", root.display());
            (Mode::Php(DocRoot::new(root, cmd.index.clone())), app, Some(script_root), described)
        }
    };
    let app = match &cmd.server_name {
        Some(name) => app.server_name(name.as_str()),
        None => app,
    };
    app.validate().map_err(|error| usage(error.to_string()))?;

    let connection = ConnectionConfig::default()
        .first_byte_timeout(cmd.fcgi_timeout)
        .max_buffered_body(usize::try_from(cmd.max_body).unwrap_or(usize::MAX));
    let pool = Pool::new(
        address,
        PoolConfig::default().connection(connection).max_connections(cmd.fcgi_connections as usize),
    );
    let log = access_log::AccessLog::open(&cmd.access_log, cmd.log_format)
        .map_err(|error| Failure::new(Exit::Write, format!("--access-log {}: {error}", cmd.access_log)))?;
    let tls = match (&cmd.tls_cert, &cmd.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(usage)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(cmd.listen)
        .await
        .map_err(|error| Failure::new(Exit::Failure, format!("cannot listen on {}: {error}", cmd.listen)))?;
    let bound = listener.local_addr()?;
    eprintln!("fcgi serve: listening on {scheme}://{bound} ({described}), FastCGI at {}", pool.address());

    let site = Arc::new(Site {
        mode,
        backend: Backend {
            pool: pool.clone(),
            app,
            script_root,
            max_body: cmd.max_body,
            trusted: proxy::TrustedProxies(cmd.trusted_proxies.clone()),
        },
        log,
    });
    let limits = Limits {
        max_head_size: usize::try_from(cmd.max_head_size).unwrap_or(usize::MAX),
        max_headers: cmd.max_headers,
        head_timeout: cmd.head_timeout,
        idle_timeout: cmd.idle_timeout,
        max_connections: cmd.max_connections as usize,
        h2_max_streams: cmd.h2_max_streams,
    };
    let server = Server::new(site.clone(), tls, limits);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let received = signals.received.clone();
    tokio::spawn(async move {
        shutdown::requested(received).await;
        let _ = stop.send(true);
    });
    let left = server.run(listener, stopped, cmd.shutdown_timeout).await;
    if left > 0 {
        eprintln!("fcgi serve: {left} connections still open after --shutdown-timeout; closing them");
    }
    // Connections are done (or abandoned): whatever the pool still holds is closed now.
    pool.close(std::time::Duration::ZERO).await;
    drop(server);
    if let Ok(site) = Arc::try_unwrap(site) {
        let dropped = site.log.close();
        if dropped > 0 {
            eprintln!("fcgi serve: {dropped} access-log lines dropped (the log could not keep up)");
        }
    }
    eprintln!("fcgi serve: stopped");
    Ok(Exit::Success)
}
