//! How records are shown by `dump` and `-v`: one line per record, or one JSON object.
//!
//! Values of Authorization, Cookie and other credential parameters are masked unless the
//! user asks for them (`--show-secrets`).
//!
//! [`escape`] is the one rule for every byte from the server or the application that reaches a
//! terminal or a log (record previews, `-v`, application STDERR, the `HTTP 404 <reason>` line,
//! `probe`): C0 and C1 controls, DEL and the bidirectional controls are escaped, and so is the
//! backslash itself, so that a real line feed (`\n`) and the two characters `\` `n` (`\\n`)
//! never look the same; invalid UTF-8 is shown as `\xNN`. [`escape_cut`] also cuts long values
//! with a marker. JSON output carries text as it is (JSON's own escapes), never escaped twice.

use fcgi_proto::{Record, RecordBody, RecordHeader, decode_pairs};
use serde_json::{Value, json};

/// Bytes of content shown in a preview.
const PREVIEW_LEN: usize = 72;

/// Bytes of a single value (a parameter, a reason phrase) shown in a line before the cut.
pub const VALUE_MAX: usize = 256;

/// Which way a record went, when known (`dump --input` does not know).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Way {
    /// Client to server.
    Sent,
    /// Server to client.
    Received,
    /// From a capture.
    Unknown,
}

impl Way {
    fn arrow(self) -> &'static str {
        match self {
            Way::Sent => "->",
            Way::Received => "<-",
            Way::Unknown => "  ",
        }
    }

    fn name(self) -> Value {
        match self {
            Way::Sent => json!("sent"),
            Way::Received => json!("received"),
            Way::Unknown => Value::Null,
        }
    }
}

/// One line: `-> FCGI_PARAMS            id=1   len=59    pad=0   NAME=value ...`.
pub fn line(way: Way, header: &RecordHeader, record: &Record, show_secrets: bool) -> String {
    format!(
        "{} {:<22} id={:<3} len={:<5} pad={:<3} {}",
        way.arrow(),
        header.record_type.to_string(),
        header.request_id,
        header.content_length,
        header.padding_length,
        detail(record, show_secrets)
    )
}

/// One JSON object describing the record; `offset` is its position in a capture.
pub fn json(
    way: Way,
    header: &RecordHeader,
    record: &Record,
    show_secrets: bool,
    offset: Option<u64>,
) -> Value {
    let mut object = json!({
        "direction": way.name(),
        "type": header.record_type.to_string(),
        "type_code": header.record_type.0,
        "request_id": header.request_id.0,
        "content_length": header.content_length,
        "padding_length": header.padding_length,
    });
    let fields = object.as_object_mut().expect("a JSON object");
    if let Some(offset) = offset {
        fields.insert("offset".into(), json!(offset));
    }
    match &record.body {
        RecordBody::BeginRequest(begin) => {
            fields.insert("role".into(), json!(begin.role.to_string()));
            fields.insert("keep_conn".into(), json!(begin.keep_conn));
        }
        RecordBody::EndRequest(end) => {
            fields.insert("app_status".into(), json!(end.app_status));
            fields.insert("protocol_status".into(), json!(end.protocol_status.to_string()));
        }
        RecordBody::UnknownType(unknown) => {
            fields.insert("unknown_type".into(), json!(unknown.0));
        }
        RecordBody::GetValues(pairs) | RecordBody::GetValuesResult(pairs) => {
            fields.insert(
                "pairs".into(),
                pairs_json(pairs.iter().map(|p| (&p.name[..], &p.value[..])), show_secrets),
            );
        }
        RecordBody::Params(content) if !content.is_empty() => match decode_pairs(content) {
            Ok(pairs) => {
                fields.insert(
                    "pairs".into(),
                    pairs_json(pairs.iter().map(|p| (&p.name[..], &p.value[..])), show_secrets),
                );
            }
            Err(_) => {
                fields.insert("note".into(), json!("a name-value pair continues in another record"));
            }
        },
        body => {
            let content = match body {
                RecordBody::Unknown { content, .. } => Some(content),
                other => other.stream_data(),
            };
            if let Some(content) = content {
                // As text (JSON escapes it), not escaped: `content_length` says whether it is cut.
                let shown = &content[..content.len().min(PREVIEW_LEN)];
                fields.insert("preview".into(), json!(String::from_utf8_lossy(shown)));
            }
        }
    }
    object
}

fn pairs_json<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>, show_secrets: bool) -> Value {
    Value::Array(
        pairs
            .map(|(name, value)| {
                let name_text = String::from_utf8_lossy(name).into_owned();
                let value_text = if !show_secrets && fcgi_cgi_env::is_sensitive(&name_text) {
                    masked(value)
                } else {
                    String::from_utf8_lossy(value).into_owned()
                };
                json!({ "name": name_text, "value": value_text })
            })
            .collect(),
    )
}

fn detail(record: &Record, show_secrets: bool) -> String {
    match &record.body {
        RecordBody::BeginRequest(begin) => format!("role={} keep_conn={}", begin.role, begin.keep_conn),
        RecordBody::EndRequest(end) => format!("app_status={} {}", end.app_status, end.protocol_status),
        RecordBody::AbortRequest => String::new(),
        RecordBody::UnknownType(unknown) => format!("unknown type {}", unknown.0),
        RecordBody::GetValues(pairs) | RecordBody::GetValuesResult(pairs) => {
            pairs_text(pairs.iter().map(|p| (&p.name[..], &p.value[..])), show_secrets)
        }
        RecordBody::Params(content) if content.is_empty() => "(end of stream)".into(),
        RecordBody::Params(content) => match decode_pairs(content) {
            Ok(pairs) => pairs_text(pairs.iter().map(|p| (&p.name[..], &p.value[..])), show_secrets),
            Err(_) => "(a name-value pair continues in another record)".into(),
        },
        RecordBody::Unknown { content, .. } => preview(content),
        body => match body.stream_data() {
            Some(data) if data.is_empty() => "(end of stream)".into(),
            Some(data) => preview(data),
            None => String::new(),
        },
    }
}

fn pairs_text<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>, show_secrets: bool) -> String {
    pairs
        .map(|(name, value)| {
            let name = escape(name);
            let value = shown_value(&name, value, show_secrets);
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A parameter value as shown in a line: masked for credentials unless asked, escaped and cut
/// at [`VALUE_MAX`] otherwise.
pub fn shown_value(name: &str, value: &[u8], show_secrets: bool) -> String {
    if !show_secrets && fcgi_cgi_env::is_sensitive(name) {
        return masked(value);
    }
    escape_cut(value, VALUE_MAX)
}

fn masked(value: &[u8]) -> String {
    format!("<masked, {} bytes>", value.len())
}

/// Content as escaped text, cut at [`PREVIEW_LEN`] bytes.
pub fn preview(data: &[u8]) -> String {
    let shown = escape(&data[..char_floor(data, PREVIEW_LEN)]);
    if data.len() > PREVIEW_LEN {
        format!("\"{shown}\"… ({} bytes)", data.len())
    } else {
        format!("\"{shown}\"")
    }
}

/// Bytes as printable text, the one rule of this module: C0 and C1 controls, DEL and the
/// bidirectional controls escaped (`\t`, `\r`, `\n`, `\u{1b}`, `\u{9b}`, `\u{202e}`), the
/// backslash as `\\`, invalid UTF-8 as `\xNN`; everything else as it is.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut out, c, true);
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// [`escape`], cut after `max` bytes of input (at a character boundary) with a marker that
/// says how much was left out: `…(59744 more bytes)`.
pub fn escape_cut(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return escape(bytes);
    }
    let cut = char_floor(bytes, max);
    format!("{}…({} more bytes)", escape(&bytes[..cut]), bytes.len() - cut)
}

/// Text that is already escaped where it came from (our messages, which quote values through
/// [`escape`]; `fcgi-mux`'s errors, which quote them with `escape_ascii`), made safe for one
/// line all the same: controls escaped as [`escape`] does, but not the backslash (that would
/// escape those values twice), cut after `max` bytes.
pub fn escape_controls_cut(text: &str, max: usize) -> String {
    let cut = char_floor(text.as_bytes(), max);
    let mut out = String::with_capacity(cut);
    for c in text[..cut].chars() {
        push_escaped(&mut out, c, false);
    }
    if cut < text.len() {
        out.push_str(&format!("…({} more bytes)", text.len() - cut));
    }
    out
}

fn push_escaped(out: &mut String, c: char, backslash: bool) {
    match c {
        '\\' if backslash => out.push_str("\\\\"),
        // Cc: C0, DEL, C1. The bidirectional controls: ALM, LRM, RLM, LRE..RLO, LRI..PDI.
        c if c.is_control()
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
        {
            out.extend(c.escape_default());
        }
        c => out.push(c),
    }
}

/// The largest `n <= max` (and `<= bytes.len()`) that does not split a UTF-8 character.
fn char_floor(bytes: &[u8], max: usize) -> usize {
    let mut cut = max.min(bytes.len());
    // At most 3 continuation bytes (10xxxxxx) follow a character's first byte.
    let floor = cut.saturating_sub(3);
    while cut > floor && cut < bytes.len() && bytes[cut] & 0xc0 == 0x80 {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use fcgi_proto::{ParamsOptions, RecordType, RequestId, encode_params};

    fn params_record(pairs: &[(&str, &str)]) -> (RecordHeader, Record) {
        let mut wire = BytesMut::new();
        encode_params(&mut wire, RequestId(1), pairs.iter().copied(), ParamsOptions::default()).unwrap();
        let frame = fcgi_proto::Decoder::new().decode_frame(&mut wire).unwrap().unwrap();
        (frame.header, frame.record)
    }

    #[test]
    fn credentials_are_masked_unless_asked_for() {
        let (header, record) =
            params_record(&[("HTTP_AUTHORIZATION", "Basic c2VjcmV0"), ("HTTP_COOKIE", "sid=42"), ("A", "b")]);
        let shown = line(Way::Sent, &header, &record, false);
        assert!(!shown.contains("c2VjcmV0") && !shown.contains("sid=42"), "{shown}");
        assert!(shown.contains("HTTP_AUTHORIZATION=<masked, 14 bytes>"), "{shown}");
        assert!(shown.contains("A=b"));
        let shown = line(Way::Sent, &header, &record, true);
        assert!(shown.contains("HTTP_AUTHORIZATION=Basic c2VjcmV0"), "{shown}");
        let value = json(Way::Sent, &header, &record, false, None).to_string();
        assert!(!value.contains("c2VjcmV0") && !value.contains("sid=42"), "{value}");
    }

    #[test]
    fn escape_is_one_rule_for_every_control() {
        // C0, TAB, DEL, C1 (U+009B CSI as UTF-8 and as a raw byte), the bidi controls.
        assert_eq!(escape(b"a\tb\x1b[31m\x7f"), "a\\tb\\u{1b}[31m\\u{7f}");
        assert_eq!(escape("\u{9b}31m".as_bytes()), "\\u{9b}31m");
        assert_eq!(escape(b"\x9b"), "\\x9b");
        for c in ['\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}'] {
            assert_eq!(escape(c.to_string().as_bytes()), c.escape_default().to_string());
        }
        // The backslash itself: a real LF and the two characters `\n` differ.
        assert_eq!(escape(b"\n"), "\\n");
        assert_eq!(escape(b"\\n"), "\\\\n");
        assert_ne!(escape(b"\n"), escape(b"\\n"));
        // Printable text, UTF-8 included, is left alone.
        assert_eq!(escape("café \"quoted\" 'x' ✓".as_bytes()), "café \"quoted\" 'x' ✓");
    }

    #[test]
    fn long_values_are_cut_with_a_marker() {
        let long = vec![b'x'; 60_000];
        let shown = escape_cut(&long, VALUE_MAX);
        assert_eq!(shown, format!("{}…(59744 more bytes)", "x".repeat(256)));
        assert_eq!(escape_cut(b"short", VALUE_MAX), "short");
        // Never inside a UTF-8 character.
        let text = "é".repeat(200); // 400 bytes
        assert_eq!(escape_cut(text.as_bytes(), 255), format!("{}…(146 more bytes)", "é".repeat(127)));
        assert_eq!(escape_controls_cut("a\\n\u{202e}b", 100), "a\\n\\u{202e}b");
        assert_eq!(escape_controls_cut("abcdef", 3), "abc…(3 more bytes)");
    }

    #[test]
    fn json_carries_text_unescaped() {
        let (header, record) = params_record(&[("A", "tab\there \\n \u{202e}")]);
        let value = json(Way::Sent, &header, &record, false, None);
        assert_eq!(value["pairs"][0]["value"], "tab\there \\n \u{202e}");
        let record = Record::stream(RecordType::STDOUT, RequestId(1), "a\r\n\\").unwrap();
        let header = RecordHeader::new(RecordType::STDOUT, RequestId(1), 5, 0);
        assert_eq!(json(Way::Received, &header, &record, false, None)["preview"], "a\r\n\\");
    }

    #[test]
    fn previews_escape_and_cut() {
        assert_eq!(preview(b"a\r\nb\x1b"), "\"a\\r\\nb\\u{1b}\"");
        let long = vec![b'x'; 100];
        assert!(preview(&long).ends_with("… (100 bytes)"));
        let record = Record::stream(RecordType::STDOUT, RequestId(1), "").unwrap();
        let header = RecordHeader::new(RecordType::STDOUT, RequestId(1), 0, 0);
        assert!(line(Way::Received, &header, &record, false).ends_with("(end of stream)"));
    }
}
