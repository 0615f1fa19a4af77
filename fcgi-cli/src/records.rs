//! How records are shown by `dump` and `-v`: one line per record, or one JSON object.
//!
//! Values of Authorization, Cookie and other credential parameters are masked unless the
//! user asks for them (`--show-secrets`).

use fcgi_proto::{Record, RecordBody, RecordHeader, decode_pairs};
use serde_json::{Value, json};

/// Bytes of content shown in a preview.
const PREVIEW_LEN: usize = 72;

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
                fields.insert("preview".into(), json!(preview(content)));
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
                let value_text = shown_value(&name_text, value, show_secrets);
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

/// A parameter value as shown: masked for credentials unless asked, escaped otherwise.
pub fn shown_value(name: &str, value: &[u8], show_secrets: bool) -> String {
    if !show_secrets && fcgi_cgi_env::is_sensitive(name) {
        return format!("<masked, {} bytes>", value.len());
    }
    escape(value)
}

/// Content as escaped text, cut at [`PREVIEW_LEN`] bytes.
pub fn preview(data: &[u8]) -> String {
    let shown = escape(&data[..data.len().min(PREVIEW_LEN)]);
    if data.len() > PREVIEW_LEN {
        format!("\"{shown}\"… ({} bytes)", data.len())
    } else {
        format!("\"{shown}\"")
    }
}

/// Bytes as printable text: lossy UTF-8 with control characters escaped.
pub fn escape(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
        .collect()
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
    fn previews_escape_and_cut() {
        assert_eq!(preview(b"a\r\nb\x1b"), "\"a\\r\\nb\\u{1b}\"");
        let long = vec![b'x'; 100];
        assert!(preview(&long).ends_with("… (100 bytes)"));
        let record = Record::stream(RecordType::STDOUT, RequestId(1), "").unwrap();
        let header = RecordHeader::new(RecordType::STDOUT, RequestId(1), 0, 0);
        assert!(line(Way::Received, &header, &record, false).ends_with("(end of stream)"));
    }
}
