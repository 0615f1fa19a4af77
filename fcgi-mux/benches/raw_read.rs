//! `raw_read`: the pipe limit of one large response, the floor any client's time is measured
//! against (`cargo xtask bench mux`). Sends one GET for `--script-filename` with `QUERY_STRING
//! bytes=N` over a blocking unix socket and reads the connection into one fixed buffer, walking
//! the record headers only to count STDOUT bytes and to stop at END_REQUEST: nothing is decoded,
//! copied or allocated per record, no async runtime. Prints `{"stdout_bytes": N}` (the CGI head
//! plus the body).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use clap::Parser;
use fcgi_proto::{
    ParamsOptions, Record, RecordBody, RecordType, RequestId, Role, encode_params, encode_record,
};

#[derive(Parser)]
struct Args {
    /// php-fpm's unix socket.
    #[arg(long)]
    socket: String,
    /// The script's absolute path (`big.php`).
    #[arg(long)]
    script_filename: String,
    /// Body bytes to ask for.
    #[arg(long)]
    bytes: u64,
}

fn main() -> ExitCode {
    let Err(err) = run(Args::parse()) else { return ExitCode::SUCCESS };
    eprintln!("raw_read: {err:#}");
    ExitCode::FAILURE
}

fn run(args: Args) -> Result<()> {
    let query = format!("bytes={}", args.bytes);
    let params = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("REQUEST_METHOD", "GET"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SCRIPT_FILENAME", args.script_filename.as_str()),
        ("SCRIPT_NAME", "/big.php"),
        ("REQUEST_URI", "/big.php"),
        ("QUERY_STRING", query.as_str()),
    ];
    let id = RequestId(1);
    let mut request = BytesMut::new();
    encode_record(&mut request, &Record::begin_request(id, Role::RESPONDER, false), Default::default())?;
    let pairs = params.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    encode_params(&mut request, id, pairs, ParamsOptions::default())?;
    encode_record(&mut request, &Record::new(id, RecordBody::Stdin(Default::default())), Default::default())?;

    let mut stream =
        UnixStream::connect(&args.socket).with_context(|| format!("connecting to {}", args.socket))?;
    stream.write_all(&request).context("sending the request")?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut walker = Walker::default();
    while !walker.ended {
        let n = stream.read(&mut buffer).context("reading the response")?;
        if n == 0 {
            bail!("the connection closed before END_REQUEST ({} STDOUT bytes)", walker.stdout_bytes);
        }
        walker.feed(&buffer[..n]);
    }
    if walker.stdout_bytes < args.bytes {
        bail!("received {} STDOUT bytes, expected at least {}", walker.stdout_bytes, args.bytes);
    }
    println!("{}", serde_json::json!({ "stdout_bytes": walker.stdout_bytes }));
    Ok(())
}

/// Where the reader is in the record stream (records may be split across reads anywhere).
#[derive(Debug, Default)]
struct Walker {
    header: [u8; 8],
    header_len: usize,
    /// Content and padding bytes left of the current record.
    skip: usize,
    /// The content length of the STDOUT records whose header was read.
    stdout_bytes: u64,
    ended: bool,
}

impl Walker {
    /// Walks `data`; stops at END_REQUEST's header.
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.ended {
            if self.skip > 0 {
                let take = self.skip.min(data.len());
                self.skip -= take;
                data = &data[take..];
                continue;
            }
            let take = (8 - self.header_len).min(data.len());
            self.header[self.header_len..][..take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == 8 {
                let [_, record_type, _, _, len_hi, len_lo, padding, _] = self.header;
                let content_len = u16::from_be_bytes([len_hi, len_lo]);
                if record_type == RecordType::STDOUT.0 {
                    self.stdout_bytes += u64::from(content_len);
                }
                self.header_len = 0;
                self.skip = usize::from(content_len) + usize::from(padding);
                self.ended = record_type == RecordType::END_REQUEST.0;
            }
        }
    }
}
