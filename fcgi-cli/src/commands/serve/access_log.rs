//! The access log: one line per response, in nginx's `combined` format or as JSON lines,
//! written by a thread of its own so that a slow disk or terminal never holds up a request.
//!
//! Lines go through a bounded queue ([`QUEUE`] lines); when it is full, lines are dropped and
//! counted (the count is reported at exit) rather than blocking the server. The writer flushes
//! whenever the queue is empty, so lines appear at once under light load and in batches
//! under heavy load.
//!
//! Values from the client (request line, Referer, User-Agent) are escaped as nginx escapes
//! them: `"`, `\`, control bytes and bytes above 0x7e as `\xHH`, so a line is always one line
//! and cannot fake another entry.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::args::LogFormat;
use super::response::Finish;

/// Lines waiting for the writer before new ones are dropped.
pub const QUEUE: usize = 16 * 1024;

/// Where lines go.
pub struct AccessLog {
    sender: Option<SyncSender<String>>,
    writer: Option<std::thread::JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    format: LogFormat,
}

impl AccessLog {
    /// No access log.
    pub fn off() -> AccessLog {
        AccessLog { sender: None, writer: None, dropped: Arc::default(), format: LogFormat::Combined }
    }

    /// Lines written to `out` by a thread of their own.
    pub fn to(out: Box<dyn Write + Send>, format: LogFormat) -> std::io::Result<AccessLog> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("fcgi-access-log".into())
            .spawn(move || write_lines(receiver, out))?;
        Ok(AccessLog { sender: Some(sender), writer: Some(writer), dropped: Arc::default(), format })
    }

    /// Opens `--access-log`: `-` is standard output, `off` none, anything else a file
    /// appended to.
    pub fn open(target: &str, format: LogFormat) -> std::io::Result<AccessLog> {
        match target {
            "off" => Ok(AccessLog::off()),
            "-" => AccessLog::to(Box::new(std::io::stdout()), format),
            path => {
                let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
                AccessLog::to(Box::new(file), format)
            }
        }
    }

    /// True when lines are written.
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// What to run when a response ends, for an entry started now.
    pub fn entry(&self, entry: Entry) -> Option<Box<dyn Finish>> {
        let sender = self.sender.clone()?;
        Some(Box::new(Pending { entry, sender, dropped: self.dropped.clone(), format: self.format }))
    }

    /// Writes what is queued and stops the writer; returns how many lines were dropped.
    pub fn close(mut self) -> u64 {
        self.sender = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_lines(receiver: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = receiver.recv() {
        if out.write_all(line.as_bytes()).is_err() {
            return;
        }
        while let Ok(line) = receiver.try_recv() {
            if out.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
        if out.flush().is_err() {
            return;
        }
    }
    let _ = out.flush();
}

/// What the log says about one request, known when its head arrived.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The client.
    pub client: Option<SocketAddr>,
    /// When the request arrived.
    pub time: SystemTime,
    /// For the duration.
    pub started: Instant,
    /// The method.
    pub method: String,
    /// Path and query as received.
    pub target: String,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub version: &'static str,
    /// The response status.
    pub status: u16,
    /// Referer header.
    pub referer: Option<Vec<u8>>,
    /// User-Agent header.
    pub user_agent: Option<Vec<u8>>,
}

struct Pending {
    entry: Entry,
    sender: SyncSender<String>,
    dropped: Arc<AtomicU64>,
    format: LogFormat,
}

impl Finish for Pending {
    fn finish(self: Box<Self>, body_bytes: u64, complete: bool) {
        let line = match self.format {
            LogFormat::Combined => combined(&self.entry, body_bytes),
            LogFormat::Json => json(&self.entry, body_bytes, complete),
        };
        match self.sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// `127.0.0.1 - - [02/Dec/2026:18:24:11 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/7.88.1"`.
pub fn combined(entry: &Entry, body_bytes: u64) -> String {
    let client = entry.client.map_or_else(|| "-".to_string(), |c| c.ip().to_canonical().to_string());
    let quoted = |value: &Option<Vec<u8>>| value.as_deref().map_or_else(|| "-".to_string(), escape);
    format!(
        "{client} - - [{}] \"{} {} {}\" {} {body_bytes} \"{}\" \"{}\"\n",
        clf_time(entry.time),
        escape(entry.method.as_bytes()),
        escape(entry.target.as_bytes()),
        entry.version,
        entry.status,
        quoted(&entry.referer),
        quoted(&entry.user_agent),
    )
}

/// One JSON object: time (RFC 3339, UTC), client, method, uri, protocol, status, bytes,
/// duration_ms, referer, user_agent, complete (false when the response was cut short).
pub fn json(entry: &Entry, body_bytes: u64, complete: bool) -> String {
    let text = |value: &Option<Vec<u8>>| value.as_deref().map(|v| String::from_utf8_lossy(v).into_owned());
    let document = serde_json::json!({
        "time": rfc3339(entry.time),
        "client": entry.client.map(|c| c.ip().to_canonical().to_string()),
        "client_port": entry.client.map(|c| c.port()),
        "method": entry.method,
        "uri": entry.target,
        "protocol": entry.version,
        "status": entry.status,
        "bytes": body_bytes,
        "duration_ms": entry.started.elapsed().as_secs_f64() * 1000.0,
        "referer": text(&entry.referer),
        "user_agent": text(&entry.user_agent),
        "complete": complete,
    });
    let mut line = document.to_string();
    line.push('\n');
    line
}

/// nginx's escaping of logged values.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
            out.push_str(&format!("\\x{byte:02X}"));
        } else {
            out.push(byte as char);
        }
    }
    out
}

/// Seconds since the epoch as (year, month, day, hour, minute, second), UTC.
fn civil(time: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest / 3600, rest % 3600 / 60, rest % 60)
}

/// `02/Dec/2026:18:24:11 +0000`.
fn clf_time(time: SystemTime) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (year, month, day, hour, minute, second) = civil(time);
    format!("{day:02}/{}/{year}:{hour:02}:{minute:02}:{second:02} +0000", MONTHS[month as usize - 1])
}

/// `2026-12-02T18:24:11Z`.
fn rfc3339(time: SystemTime) -> String {
    let (year, month, day, hour, minute, second) = civil(time);
    format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry() -> Entry {
        Entry {
            client: Some("127.0.0.1:40000".parse().unwrap()),
            time: UNIX_EPOCH + Duration::from_secs(1_795_803_851),
            started: Instant::now(),
            method: "GET".into(),
            target: "/index.php?q=\"x\"".into(),
            version: "HTTP/1.1",
            status: 200,
            referer: None,
            user_agent: Some(b"curl/7.88.1\n127.0.0.1 - - fake".to_vec()),
        }
    }

    #[test]
    fn combined_line() {
        assert_eq!(
            combined(&entry(), 612),
            "127.0.0.1 - - [27/Nov/2026:18:24:11 +0000] \"GET /index.php?q=\\x22x\\x22 HTTP/1.1\" 200 612 \"-\" \
             \"curl/7.88.1\\x0A127.0.0.1 - - fake\"\n"
        );
    }

    #[test]
    fn json_line() {
        let line = json(&entry(), 5, false);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["time"], "2026-11-27T18:24:11Z");
        assert_eq!(value["status"], 200);
        assert_eq!(value["bytes"], 5);
        assert_eq!(value["uri"], "/index.php?q=\"x\"");
        assert_eq!(value["complete"], false);
        assert_eq!(value["referer"], serde_json::Value::Null);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(clf_time(UNIX_EPOCH + Duration::from_secs(1_709_251_199)), "29/Feb/2024:23:59:59 +0000");
    }

    #[test]
    fn lines_reach_the_writer_and_close_flushes() {
        #[derive(Clone, Default)]
        struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Shared::default();
        let log = AccessLog::to(Box::new(out.clone()), LogFormat::Combined).unwrap();
        for _ in 0..3 {
            log.entry(entry()).unwrap().finish(1, true);
        }
        assert_eq!(log.close(), 0);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(AccessLog::off().entry(entry()).is_none());
    }
}
