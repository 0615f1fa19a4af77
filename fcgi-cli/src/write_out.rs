//! `-w/--write-out FORMAT`: curl's report after the transfer, with curl's variable names.
//!
//! The format is parsed before anything is sent, so a misspelt variable is a usage error
//! (exit 2, with the nearest name) rather than a silent blank. It is written after the
//! transfer whether it succeeded or not (`%{exitcode}` and `%{errormsg}` say which), on
//! standard output unless `%{stderr}` switches it.

use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};

use crate::exit::{Exit, Failure};

/// What a transfer did, as the variables show it. Filled in as the request goes.
#[derive(Clone, Debug, Default)]
pub struct Transfer {
    /// The HTTP status, once the response head arrived.
    pub status: Option<u16>,
    /// The response headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body bytes received.
    pub size_download: u64,
    /// Bytes of the status line and headers, as `-i` prints them.
    pub size_header: u64,
    /// Request body bytes.
    pub size_upload: u64,
    /// Connected, from the start (of the try that got an answer).
    pub time_connect: Option<Duration>,
    /// Response head received.
    pub time_starttransfer: Option<Duration>,
    /// The whole transfer.
    pub time_total: Duration,
    /// Tries after the first (`--retry`).
    pub retries: u32,
    /// The method sent.
    pub method: String,
    /// The path as given.
    pub url: String,
    /// The exit code.
    pub exit: Option<Exit>,
    /// The error line of a failure ("" on success).
    pub errormsg: String,
}

/// curl's variables that `fcgi` has. curl's others (name lookup and TLS times, redirects,
/// local and remote IP) are about HTTP transfers `fcgi` does not make (docs/CLI.md).
const VARIABLES: &[&str] = &[
    "content_type",
    "errormsg",
    "exitcode",
    "header_json",
    "http_code",
    "json",
    "method",
    "num_headers",
    "num_retries",
    "onerror",
    "response_code",
    "size_download",
    "size_header",
    "size_upload",
    "stderr",
    "stdout",
    "time_connect",
    "time_pretransfer",
    "time_starttransfer",
    "time_total",
    "url",
    "url_effective",
];

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Variable(&'static str),
    Header(String),
}

/// A parsed `--write-out` format.
#[derive(Clone, Debug)]
pub struct WriteOut(Vec<Piece>);

impl WriteOut {
    /// The flag's value: a format, or `@FILE` / `@-` holding one.
    pub fn from_arg(arg: &str) -> Result<WriteOut, Failure> {
        let Some(source) = arg.strip_prefix('@') else { return WriteOut::parse(arg) };
        let text = if source == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(source)
        }
        .map_err(|err| {
            Failure::new(Exit::Read, format!("cannot read the --write-out file {source}: {err}"))
        })?;
        WriteOut::parse(&text)
    }

    /// Parses `%{name}`, `%header{name}`, `%%` and the escapes `\n`, `\r`, `\t`, `\\`.
    pub fn parse(format: &str) -> Result<WriteOut, Failure> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("%%") {
                text.push('%');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("%header{") {
                let (name, after) = closed(after, "%header{")?;
                flush(&mut text, &mut pieces);
                pieces.push(Piece::Header(name.to_ascii_lowercase()));
                rest = after;
            } else if let Some(after) = rest.strip_prefix("%{") {
                let (name, after) = closed(after, "%{")?;
                let Some(known) = VARIABLES.iter().find(|v| **v == name) else {
                    let hint =
                        nearest(name).map(|n| format!(" (did you mean %{{{n}}}?)")).unwrap_or_default();
                    return Err(Failure::new(
                        Exit::Usage,
                        format!(
                            "unknown --write-out variable %{{{}}}{hint}",
                            crate::records::escape(name.as_bytes())
                        ),
                    ));
                };
                flush(&mut text, &mut pieces);
                pieces.push(Piece::Variable(known));
                rest = after;
            } else if let Some(after) = rest.strip_prefix('\\') {
                match after.chars().next() {
                    Some('n') => text.push('\n'),
                    Some('r') => text.push('\r'),
                    Some('t') => text.push('\t'),
                    Some('\\') => text.push('\\'),
                    _ => {
                        text.push('\\');
                        rest = after;
                        continue;
                    }
                }
                rest = &after[1..];
            } else {
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        flush(&mut text, &mut pieces);
        Ok(WriteOut(pieces))
    }

    /// The output for `transfer`: what goes to standard output and what to standard error.
    pub fn render(&self, transfer: &Transfer) -> (Vec<u8>, Vec<u8>) {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut to_stderr = false;
        let failed = transfer.exit.is_some_and(|e| e != Exit::Success);
        for piece in &self.0 {
            let out = if to_stderr { &mut stderr } else { &mut stdout };
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Header(name) => {
                    let values: Vec<&str> =
                        transfer.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
                    out.extend_from_slice(values.join(", ").as_bytes());
                }
                Piece::Variable("stderr") => to_stderr = true,
                Piece::Variable("stdout") => to_stderr = false,
                // curl: the rest of the format is shown only when the transfer failed.
                Piece::Variable("onerror") if !failed => break,
                Piece::Variable("onerror") => {}
                Piece::Variable(name) => out.extend_from_slice(value(name, transfer).as_bytes()),
            }
        }
        (stdout, stderr)
    }

    /// Renders and writes; a reader that went away is not an error.
    pub fn write(&self, transfer: &Transfer) {
        let (out, err) = self.render(transfer);
        if !out.is_empty() {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&out).and_then(|()| stdout.flush());
        }
        if !err.is_empty() {
            let _ = std::io::stderr().lock().write_all(&err);
        }
    }
}

fn flush(text: &mut String, pieces: &mut Vec<Piece>) {
    if !text.is_empty() {
        pieces.push(Piece::Text(std::mem::take(text)));
    }
}

/// The name up to `}` and what follows it.
fn closed<'a>(after: &'a str, opening: &str) -> Result<(&'a str, &'a str), Failure> {
    after
        .split_once('}')
        .ok_or_else(|| Failure::new(Exit::Usage, format!("--write-out: {opening} without a closing '}}'")))
}

/// The variable nearest to `name` (at most 3 edits away).
fn nearest(name: &str) -> Option<&'static str> {
    VARIABLES.iter().map(|v| (edit_distance(name, v), *v)).filter(|(d, _)| *d <= 3).min().map(|(_, v)| v)
}

/// Levenshtein distance, for the suggestion.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(previous + usize::from(ca != *cb));
            previous = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Seconds with six decimals, as curl prints times.
fn seconds(duration: Option<Duration>) -> String {
    format!("{:.6}", duration.unwrap_or_default().as_secs_f64())
}

fn value(name: &str, t: &Transfer) -> String {
    match name {
        "http_code" | "response_code" => format!("{:03}", t.status.unwrap_or(0)),
        "time_total" => seconds(Some(t.time_total)),
        "time_connect" | "time_pretransfer" => seconds(t.time_connect),
        "time_starttransfer" => seconds(t.time_starttransfer),
        "size_download" => t.size_download.to_string(),
        "size_header" => t.size_header.to_string(),
        "size_upload" => t.size_upload.to_string(),
        "exitcode" => t.exit.map_or(0, Exit::code).to_string(),
        "errormsg" => t.errormsg.clone(),
        "content_type" => content_type(t).unwrap_or_default(),
        "method" => t.method.clone(),
        "url" | "url_effective" => t.url.clone(),
        "num_headers" => t.headers.len().to_string(),
        "num_retries" => t.retries.to_string(),
        "json" => json_document(t).to_string(),
        "header_json" => header_json(t).to_string(),
        _ => String::new(),
    }
}

fn content_type(t: &Transfer) -> Option<String> {
    t.headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.clone())
}

/// `%{json}`: every variable, numbers as numbers (curl's layout).
fn json_document(t: &Transfer) -> Value {
    let secs = |d: Option<Duration>| d.unwrap_or_default().as_secs_f64();
    json!({
        "content_type": content_type(t),
        "errormsg": if t.errormsg.is_empty() { Value::Null } else { json!(t.errormsg) },
        "exitcode": t.exit.map_or(0, Exit::code),
        "http_code": t.status.unwrap_or(0),
        "method": t.method,
        "num_headers": t.headers.len(),
        "num_retries": t.retries,
        "response_code": t.status.unwrap_or(0),
        "size_download": t.size_download,
        "size_header": t.size_header,
        "size_upload": t.size_upload,
        "time_connect": secs(t.time_connect),
        "time_pretransfer": secs(t.time_connect),
        "time_starttransfer": secs(t.time_starttransfer),
        "time_total": t.time_total.as_secs_f64(),
        "url": t.url,
        "url_effective": t.url,
        "fcgi_version": env!("CARGO_PKG_VERSION"),
    })
}

/// `%{header_json}`: each header name with the list of its values.
fn header_json(t: &Transfer) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in &t.headers {
        let entry = map.entry(name.clone()).or_insert_with(|| json!([]));
        if let Value::Array(values) = entry {
            values.push(json!(value));
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer() -> Transfer {
        Transfer {
            status: Some(404),
            headers: vec![
                ("content-type".into(), "text/html".into()),
                ("set-cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into()),
            ],
            size_download: 12,
            time_total: Duration::from_millis(1500),
            time_connect: Some(Duration::from_micros(250)),
            exit: Some(Exit::Http4xx),
            errormsg: "HTTP 404".into(),
            ..Transfer::default()
        }
    }

    fn render(format: &str, t: &Transfer) -> (String, String) {
        let (out, err) = WriteOut::parse(format).unwrap().render(t);
        (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn variables_escapes_and_streams() {
        let t = transfer();
        assert_eq!(render("%{http_code}\\n", &t).0, "404\n");
        assert_eq!(
            render("%{time_total} %{time_connect} %{time_starttransfer}", &t).0,
            "1.500000 0.000250 0.000000"
        );
        assert_eq!(render("100%% %{size_download}\\t%{exitcode}", &t).0, "100% 12\t4");
        assert_eq!(render("%header{Set-Cookie}|%{content_type}", &t).0, "a=1, b=2|text/html");
        assert_eq!(render("a%{stderr}b%{stdout}c", &t), ("ac".into(), "b".into()));
        assert_eq!(render("\\x", &t).0, "\\x");
        let ok = Transfer { status: Some(200), exit: Some(Exit::Success), ..Transfer::default() };
        assert_eq!(render("%{response_code}%{onerror}failed", &ok).0, "200");
        assert_eq!(render("%{onerror}failed %{errormsg}", &t).0, "failed HTTP 404");
        assert_eq!(render("%{http_code}", &Transfer::default()).0, "000");
        let json: Value = serde_json::from_str(&render("%{json}", &t).0).unwrap();
        assert_eq!((json["http_code"].as_u64(), json["exitcode"].as_u64()), (Some(404), Some(4)));
        let headers: Value = serde_json::from_str(&render("%{header_json}", &t).0).unwrap();
        assert_eq!(headers["set-cookie"], json!(["a=1", "b=2"]));
    }

    #[test]
    fn mistakes_are_usage_errors() {
        let err = WriteOut::parse("%{htpp_code}").unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        assert!(err.message.contains("did you mean %{http_code}?"), "{}", err.message);
        assert!(WriteOut::parse("%{http_code").unwrap_err().message.contains("closing"));
        assert!(!WriteOut::parse("%{zzzzzzzzzzzz}").unwrap_err().message.contains("did you mean"));
    }
}
