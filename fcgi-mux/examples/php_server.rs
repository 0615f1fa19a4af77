//! `php_server`: an HTTP server that runs a document root's PHP scripts through fcgi-mux.
//!
//! ```text
//! cargo run -p fcgi-mux --features tower --example php_server -- \
//!     --listen 127.0.0.1:8080 --docroot /var/www/html --fcgi unix:/run/php/php-fpm.sock
//! curl -i http://127.0.0.1:8080/index.php/some/path?x=1
//! ```
//!
//! Every request goes to the FastCGI backend (there are no static files): an axum fallback
//! handler hands it to an [`FcgiService`], which derives the CGI environment with
//! `fcgi-cgi-env` (client and server addresses from axum's `ConnectInfo`), sends it through a
//! [`Pool`] and streams the response body back. When the request fails before the response
//! head, the answer is [`Error::gateway_status`] (502 backend down or broken, 504 timeout,
//! 400 refused request) with a one-line text body; the details go to stderr.
//!
//! `--hyper` serves the same without axum: hyper 1.x with the service adapted by hyper-util's
//! `TowerToHyperService` ([`serve_hyper`]).
//!
//! The end-to-end test `tests/php_server.rs` includes this file and drives both routes
//! against a real php-fpm.

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::response::IntoResponse;
use axum::serve::IncomingStream;
use bytes::Bytes;
use fcgi_cgi_env::{AppConfig, derive};
use fcgi_mux::{Address, BoxError, Error, FcgiService, Pool, PoolConfig, ResponseBody};
use http_body_util::{Either, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

const USAGE: &str =
    "usage: php_server --listen ADDR:PORT --docroot DIR --fcgi unix:/PATH|HOST:PORT [--hyper]";

/// The command line.
#[derive(Debug)]
pub struct Args {
    /// `--listen`: where to accept HTTP (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `--docroot`: the directory holding the scripts, as php-fpm sees it.
    pub docroot: String,
    /// `--fcgi`: the FastCGI backend.
    pub fcgi: Address,
    /// `--hyper`: serve with hyper and hyper-util instead of axum.
    pub hyper: bool,
}

impl Args {
    /// Parses the arguments (without the program name).
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        let (mut docroot, mut fcgi, mut hyper) = (None, None, false);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--listen" => listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
                "--docroot" => docroot = Some(value()?),
                "--fcgi" => fcgi = Some(value()?.parse::<Address>().map_err(|e| format!("--fcgi: {e}"))?),
                "--hyper" => hyper = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let docroot = docroot.ok_or("--docroot is required")?;
        let fcgi = fcgi.ok_or("--fcgi is required")?;
        Ok(Args { listen, docroot, fcgi, hyper })
    }
}

/// The two ends of an HTTP connection, for REMOTE_ADDR / SERVER_ADDR and their ports: axum's
/// `ConnectInfo` (the listener's own address would say `0.0.0.0` on a wildcard bind).
#[derive(Copy, Clone, Debug)]
pub struct Peers {
    /// The HTTP client.
    pub client: SocketAddr,
    /// The local end that accepted the connection.
    pub server: SocketAddr,
}

impl Connected<IncomingStream<'_, TcpListener>> for Peers {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let client = *stream.remote_addr();
        Peers { client, server: stream.io().local_addr().unwrap_or(client) }
    }
}

/// The parameter function of the [`FcgiService`]: the CGI environment of a request, derived by
/// `fcgi-cgi-env` (which refuses path traversal, httpoxy and the like).
pub fn cgi_params(
    app: AppConfig,
) -> impl Fn(&http::request::Parts, u64) -> Result<Vec<(Bytes, Bytes)>, BoxError> + Clone + Send + Sync + 'static
{
    let app = Arc::new(app);
    move |head, body_len| {
        let mut connection = fcgi_cgi_env::ConnectionInfo::new();
        if let Some(ConnectInfo(peers)) = head.extensions.get::<ConnectInfo<Peers>>() {
            connection = connection.client(peers.client).server(peers.server);
        }
        let params = derive(head, Some(body_len), &connection, &app)?;
        Ok(params
            .into_vec()
            .into_iter()
            .map(|(name, value)| (Bytes::from(name), Bytes::from(value)))
            .collect())
    }
}

/// The axum app: every path goes to the FastCGI backend.
pub fn router(pool: Pool, app: AppConfig) -> Router {
    let service = FcgiService::new(pool, cgi_params(app));
    Router::new().fallback(move |request: Request| {
        let service = service.clone();
        async move {
            match service.oneshot(request).await {
                Ok(response) => response.map(|body| axum::body::Body::new(Unannounced(body))),
                Err(error) => error_reply(&error).into_response(),
            }
        }
    })
}

/// The response body with its size hint hidden. A `HEAD` response's body is empty by
/// definition (exact size 0), and axum would turn that into an invented `Content-Length: 0`
/// where the `GET` answer has another length or none.
struct Unannounced(ResponseBody);

impl http_body::Body for Unannounced {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }
}

/// Serves `router` on `listener` with axum, giving handlers the connection's [`Peers`].
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<Peers>()).await
}

/// The same without axum: each connection is served by hyper 1.x, with the [`FcgiService`]
/// adapted by hyper-util's `TowerToHyperService`. A service error would make hyper close the
/// connection without an answer, so errors are first turned into 502/504 responses.
pub async fn serve_hyper(listener: TcpListener, pool: Pool, app: AppConfig) -> std::io::Result<()> {
    let service = FcgiService::new(pool, cgi_params(app));
    loop {
        let (stream, client) = listener.accept().await?;
        let peers = Peers { client, server: stream.local_addr()? };
        let service = service
            .clone()
            .map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peers));
                request
            })
            .map_result(|result: Result<http::Response<ResponseBody>, Error>| {
                Ok::<_, Error>(match result {
                    Ok(response) => response.map(Either::Left),
                    Err(error) => {
                        let (status, text) = error_reply(&error);
                        let mut response = http::Response::new(Either::Right(Full::new(Bytes::from(text))));
                        *response.status_mut() = status;
                        response
                    }
                })
            });
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(error) = connection.await {
                eprintln!("php_server: connection from {client}: {error}");
            }
        });
    }
}

/// The status and one-line body answering a request that failed before its response head.
/// The error itself (it may name sockets and paths) is only logged.
pub fn error_reply(error: &Error) -> (http::StatusCode, String) {
    let mut status = error.gateway_status();
    if let Error::Params(source) = error {
        // A mistake in our configuration is not the client's fault.
        if source.downcast_ref::<fcgi_cgi_env::Error>().is_some_and(|e| e.is_config_error()) {
            status = http::StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    eprintln!("php_server: {status}: {error}");
    (status, format!("{status}\n"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("php_server: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let docroot = match std::fs::canonicalize(&args.docroot) {
        Ok(path) if path.is_dir() => path.to_string_lossy().into_owned(),
        _ => {
            eprintln!("php_server: --docroot {}: not a directory", args.docroot);
            return ExitCode::from(2);
        }
    };
    let app = AppConfig::new(docroot.as_str());
    if let Err(error) = app.validate() {
        eprintln!("php_server: {error}");
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("php_server: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let pool = Pool::new(args.fcgi, PoolConfig::default());
    eprintln!("php_server: http://{} -> {} (docroot {docroot})", args.listen, pool.address());
    let served = if args.hyper {
        serve_hyper(listener, pool, app).await
    } else {
        serve(listener, router(pool, app)).await
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("php_server: {error}");
            ExitCode::FAILURE
        }
    }
}
