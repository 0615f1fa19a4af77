//! Sending one request on a fresh connection, with `--max-time` over everything, and
//! timing it. Shared by `get`/`post`/`request`, `dump`, `ping` and `status`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use fcgi_mux::{Connection, ConnectionConfig, Observer, ResponseBody};
use http_body::Body;

use crate::exit::{Exit, Failure};
use crate::messages;
use crate::target::Target;

/// When each step completed, from the start.
#[derive(Copy, Clone, Debug, Default)]
pub struct Timings {
    /// Connected.
    pub connect: Duration,
    /// Response head received.
    pub first_byte: Duration,
    /// Body read to its end.
    pub total: Duration,
}

impl Timings {
    /// As JSON, in milliseconds.
    pub fn to_json(self) -> serde_json::Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        serde_json::json!({ "connect_ms": ms(self.connect), "first_byte_ms": ms(self.first_byte), "total_ms": ms(self.total) })
    }
}

/// A request in progress: its response head and the deadline for the rest.
pub struct Exchange {
    /// The response, body still to read.
    pub response: http::Response<ResponseBody>,
    /// When the operation started.
    pub started: Instant,
    /// The `--max-time` deadline.
    pub deadline: Instant,
    /// Connect and first-byte times so far.
    pub timings: Timings,
    address: String,
    max_time: Duration,
}

/// Connects and sends `request` as a Responder, within the target's timeouts.
pub async fn send<B>(
    target: &Target,
    request: http::Request<B>,
    params: Vec<(Bytes, Bytes)>,
    observer: Option<Observer>,
) -> Result<Exchange, anyhow::Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<fcgi_mux::BoxError>,
{
    // `-v` of ping and status: their requests are built here (crate::verbose).
    let observer = match observer {
        Some(observer) => Some(observer),
        None => crate::verbose::announce(&target.address, &params),
    };
    send_with(target, observer, move |connection| async move { connection.request(request, params).await })
        .await
}

/// Connects and hands the connection to `ask`, which sends one request in any role
/// (`Connection::request`, `authorize`, `filter`), all within the target's timeouts.
pub async fn send_with<F, Fut>(
    target: &Target,
    observer: Option<Observer>,
    ask: F,
) -> Result<Exchange, anyhow::Error>
where
    F: FnOnce(Connection) -> Fut,
    Fut: std::future::Future<Output = Result<http::Response<ResponseBody>, fcgi_mux::Error>>,
{
    let started = Instant::now();
    let deadline = started + target.max_time;
    let config = ConnectionConfig::default()
        .connect_timeout(target.connect_timeout)
        .first_byte_timeout(target.max_time)
        .total_timeout(Some(target.max_time))
        .observer(observer);
    let work = async {
        let (connection, driver) = Connection::connect(&target.address, config).await?;
        tokio::spawn(driver);
        let connect = started.elapsed();
        let response = ask(connection).await?;
        Ok::<_, fcgi_mux::Error>((response, connect))
    };
    let (response, connect) = match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(result) => result.map_err(|err| with_address(err, target))?,
        Err(_) => return Err(max_time_exceeded(target).into()),
    };
    let status = response.status().as_u16();
    if !(100..=599).contains(&status) {
        // http accepts 100-999; nothing outside HTTP's range is a status a client can act on.
        let message = messages::status_out_of_range(&target.address.to_string(), status);
        return Err(Failure::new(Exit::Protocol, message).into());
    }
    let timings = Timings { connect, first_byte: started.elapsed(), total: Duration::ZERO };
    Ok(Exchange {
        response,
        started,
        deadline,
        timings,
        address: target.address.to_string(),
        max_time: target.max_time,
    })
}

impl Exchange {
    /// The next chunk of the body, `None` at its end; fails once `--max-time` has passed.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, anyhow::Error> {
        use http_body_util::BodyExt;
        loop {
            let frame =
                match tokio::time::timeout_at(self.deadline.into(), self.response.body_mut().frame()).await {
                    Ok(frame) => frame,
                    Err(_) => {
                        let message = messages::timed_out(Some(&self.address), None, self.max_time);
                        return Err(Failure::new(Exit::Timeout, message).into());
                    }
                };
            match frame {
                None => {
                    self.timings.total = self.started.elapsed();
                    return Ok(None);
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
                Some(Err(err)) => return Err(err.into()),
            }
        }
    }
}

/// The library's error with the wording of [`messages`] for connects and timeouts (the
/// library's error stays inside, for `--retry` to look at), or with the address added.
fn with_address(error: fcgi_mux::Error, target: &Target) -> anyhow::Error {
    let address = target.address.to_string();
    let failure = match &error {
        fcgi_mux::Error::Connect { address, source } => {
            let (exit, message) = messages::connect_failed(address, source);
            Failure::new(exit, message)
        }
        fcgi_mux::Error::Timeout { kind, after } => {
            Failure::new(Exit::Timeout, messages::timed_out(Some(&address), Some(*kind), *after))
        }
        fcgi_mux::Error::Resolve { .. } => return error.into(),
        _ => return anyhow::Error::new(error).context(format!("request to {address}")),
    };
    anyhow::Error::new(error).context(failure)
}

fn max_time_exceeded(target: &Target) -> Failure {
    Failure::new(Exit::Timeout, messages::timed_out(Some(&target.address.to_string()), None, target.max_time))
}

/// `1.5 s`, `250 ms`.
pub fn human(duration: Duration) -> String {
    if duration < Duration::from_millis(10) {
        format!("{:.2} ms", duration.as_secs_f64() * 1e3)
    } else if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        let seconds = format!("{:.3}", duration.as_secs_f64());
        format!("{} s", seconds.trim_end_matches('0').trim_end_matches('.'))
    }
}
