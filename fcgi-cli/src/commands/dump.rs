//! `fcgi dump`: every record of a request, both ways — or the records of a capture file.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BytesMut;
use fcgi_mux::{Direction, Observer, RecordEvent};
use fcgi_proto::Decoder;
use http::Method;

use crate::build;
use crate::cli::{DumpCmd, REQUEST_MAX_TIME};
use crate::commands::exchange;
use crate::exit::{Exit, Failure};
use crate::records::{self, Way};
use crate::target::Target;

/// Runs `dump`. A request's dump exits 0 once the exchange completed, whatever the HTTP
/// status; a capture with a malformed record exits 8 after the records before it.
pub async fn run(cmd: &DumpCmd) -> anyhow::Result<Exit> {
    match (&cmd.input, &cmd.path) {
        (Some(input), _) => decode_capture(input, cmd),
        (None, Some(path)) => dump_request(path, cmd).await,
        (None, None) => Err(Failure::new(Exit::Usage, "dump needs a PATH or --input FILE").into()),
    }
}

async fn dump_request(path: &str, cmd: &DumpCmd) -> anyhow::Result<Exit> {
    let target = Target::from_args(&cmd.spec.target, REQUEST_MAX_TIME)?;
    let built = build::build(path, Some(Method::GET), &cmd.spec, &target)?;
    if cmd.verbose {
        crate::commands::request::print_params(&target, &built, cmd.show_secrets);
    }
    let printer = Printer::new(cmd.json, cmd.show_secrets);
    let observer = {
        let printer = printer.clone();
        Observer::new(move |event: &RecordEvent<'_>| {
            let way = match event.direction {
                Direction::Sent => Way::Sent,
                Direction::Received => Way::Received,
            };
            printer.print(way, &event.header, event.record, None);
        })
    };
    let params = built.param_pairs();
    let mut exchange = exchange::send(&target, built.request, params, Some(observer)).await?;
    while exchange.next_chunk().await?.is_some() {}
    Ok(Exit::Success)
}

fn decode_capture(input: &std::path::Path, cmd: &DumpCmd) -> anyhow::Result<Exit> {
    let name =
        if input.as_os_str() == "-" { "standard input".to_string() } else { input.display().to_string() };
    let mut reader: Box<dyn Read> = if input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(input)
                .map_err(|err| Failure::new(Exit::Read, format!("cannot read {name}: {err}")))?,
        )
    };
    let printer = Printer::new(cmd.json, cmd.show_secrets);
    let mut decoder = Decoder::new();
    let mut buffer = BytesMut::with_capacity(128 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        loop {
            let offset = decoder.bytes_consumed();
            match decoder.decode_frame(&mut buffer) {
                Ok(Some(frame)) => printer.print(Way::Unknown, &frame.header, &frame.record, Some(offset)),
                Ok(None) => break,
                Err(error) => return Err(malformed(&name, &error).into()),
            }
        }
        let n = reader
            .read(&mut chunk)
            .map_err(|err| Failure::new(Exit::Read, format!("cannot read {name}: {err}")))?;
        if n == 0 {
            decoder.finish(&buffer).map_err(|error| malformed(&name, &error))?;
            return Ok(Exit::Success);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn malformed(name: &str, error: &fcgi_proto::DecodeError) -> Failure {
    Failure::new(
        Exit::Protocol,
        format!("{name}: malformed record at byte {}: {}", error.offset(), error.kind()),
    )
}

/// Prints records as lines or JSON objects on stdout, tolerating a closed stdout.
#[derive(Clone)]
struct Printer {
    json: bool,
    show_secrets: bool,
    started: Instant,
    closed: Arc<Mutex<bool>>,
}

impl Printer {
    fn new(json: bool, show_secrets: bool) -> Self {
        Self { json, show_secrets, started: Instant::now(), closed: Arc::new(Mutex::new(false)) }
    }

    fn print(
        &self,
        way: Way,
        header: &fcgi_proto::RecordHeader,
        record: &fcgi_proto::Record,
        offset: Option<u64>,
    ) {
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return;
        }
        let text = if self.json {
            let mut value = records::json(way, header, record, self.show_secrets, offset);
            if offset.is_none() {
                let ms = (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
                value["time_ms"] = serde_json::json!(ms);
            }
            value.to_string()
        } else {
            let line = records::line(way, header, record, self.show_secrets);
            match offset {
                Some(offset) => format!("@{offset:<8} {}", line.trim_start()),
                None => line,
            }
        };
        if writeln!(std::io::stdout().lock(), "{text}").is_err() {
            *closed = true;
        }
    }
}
