//! `raw_read`: the pipe limit of one large response, the floor any client's time is measured
//! against.
//!
//! Sends one GET (`--script-name`, `QUERY_STRING bytes=N`, the parameters of
//! [`common::cgi_params`]) to a FastCGI server over a blocking unix or TCP socket, then reads
//! the connection into one fixed buffer (`--buffer`, default 256 KiB) as fast as the kernel hands
//! it over, walking the record headers only to count STDOUT content bytes and to stop at
//! END_REQUEST. Nothing is decoded, copied or allocated per record: no HTTP head parsing, no
//! body frames, no async runtime.
//!
//! Prints one JSON line: `stdout_bytes` (STDOUT content: the CGI head plus the body), `seconds`
//! from sending the request to END_REQUEST, `mb_per_s` (10^6 bytes), `peak_rss_bytes`
//! (`VmHWM`), `cpu_s` (getrusage user + system during the transfer), `reads` (read calls).
//! Fails when fewer than `--bytes` STDOUT bytes arrive or the connection closes early.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use clap::Parser;
mod common;

use common::{BigResponse, CpuTime, SocketAddress, cgi_params, peak_rss_bytes, print_json};
use fcgi_proto::{
    ParamsOptions, Record, RecordBody, RecordType, RequestId, Role, encode_params, encode_record,
};

/// Reads one large response as raw records and prints the speed as JSON.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The response to ask for.
    #[command(flatten)]
    big: BigResponse,
    /// Size of the read buffer, bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    buffer: usize,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("raw_read: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where the reader is in the record stream.
#[derive(Debug, Default)]
struct Walker {
    /// Bytes of the current record header seen so far.
    header: [u8; 8],
    header_len: usize,
    /// Content bytes left of the current record, then its padding.
    content_left: usize,
    padding_left: usize,
    /// Type of the current record.
    record_type: u8,
    stdout_bytes: u64,
    ended: bool,
}

impl Walker {
    /// Walks `data`; returns once END_REQUEST's header was seen or the data is used up.
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.ended {
            if self.content_left > 0 {
                let take = self.content_left.min(data.len());
                if self.record_type == RecordType::STDOUT.0 {
                    self.stdout_bytes += take as u64;
                }
                self.content_left -= take;
                data = &data[take..];
            } else if self.padding_left > 0 {
                let take = self.padding_left.min(data.len());
                self.padding_left -= take;
                data = &data[take..];
            } else {
                let take = (8 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                data = &data[take..];
                if self.header_len == 8 {
                    self.header_len = 0;
                    self.record_type = self.header[1];
                    self.content_left = usize::from(u16::from_be_bytes([self.header[4], self.header[5]]));
                    self.padding_left = usize::from(self.header[6]);
                    self.ended = self.record_type == RecordType::END_REQUEST.0;
                }
            }
        }
    }
}

fn run(args: Args) -> Result<()> {
    if args.buffer == 0 {
        bail!("--buffer must be at least 1 byte");
    }
    let query = format!("bytes={}", args.big.bytes);
    let params = cgi_params(&args.big.script_filename, &args.big.script_name, &query);
    let id = RequestId(1);
    let mut request = BytesMut::new();
    encode_record(&mut request, &Record::begin_request(id, Role::RESPONDER, false), Default::default())?;
    encode_params(
        &mut request,
        id,
        params.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        ParamsOptions::default(),
    )?;
    encode_record(&mut request, &Record::new(id, RecordBody::Stdin(Default::default())), Default::default())?;

    let mut stream: Box<dyn ReadWrite> = match SocketAddress::parse(&args.big.address)? {
        SocketAddress::Unix(path) => {
            Box::new(UnixStream::connect(&path).with_context(|| format!("connecting to {}", path.display()))?)
        }
        SocketAddress::Tcp(address) => {
            let stream = TcpStream::connect(&address).with_context(|| format!("connecting to {address}"))?;
            stream.set_nodelay(true).context("setting TCP_NODELAY")?;
            Box::new(stream)
        }
    };
    let mut buffer = vec![0u8; args.buffer];
    let mut walker = Walker::default();
    let mut reads = 0u64;
    let cpu_before = CpuTime::now()?;
    let started = Instant::now();
    stream.write_all(&request).context("sending the request")?;
    while !walker.ended {
        let n = stream.read(&mut buffer).context("reading the response")?;
        reads += 1;
        if n == 0 {
            bail!(
                "the server closed the connection after {} STDOUT bytes, before END_REQUEST",
                walker.stdout_bytes
            );
        }
        walker.feed(&buffer[..n]);
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = CpuTime::now()?.since(&cpu_before);
    if walker.stdout_bytes < args.big.bytes {
        bail!("received {} STDOUT bytes, expected at least {}", walker.stdout_bytes, args.big.bytes);
    }
    print_json(&serde_json::json!({
        "client": "raw_read",
        "stdout_bytes": walker.stdout_bytes,
        "seconds": seconds,
        "mb_per_s": if seconds > 0.0 { walker.stdout_bytes as f64 / seconds / 1e6 } else { 0.0 },
        "peak_rss_bytes": peak_rss_bytes()?,
        "cpu_s": cpu.total().as_secs_f64(),
        "reads": reads,
    }));
    Ok(())
}

/// A blocking byte stream, unix or TCP.
trait ReadWrite: Read + Write {}

impl<T: Read + Write> ReadWrite for T {}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(record_type: RecordType, content: &[u8], padding: u8) -> Vec<u8> {
        let len = content.len() as u16;
        let mut out = vec![1, record_type.0, 0, 1, (len >> 8) as u8, len as u8, padding, 0];
        out.extend_from_slice(content);
        out.extend(std::iter::repeat_n(0, usize::from(padding)));
        out
    }

    #[test]
    fn walks_records_split_anywhere() {
        let mut stream = record(RecordType::STDOUT, b"Status: 200\r\n\r\nhello", 3);
        stream.extend(record(RecordType::STDERR, b"warn", 4));
        stream.extend(record(RecordType::STDOUT, &[b'x'; 1000], 0));
        stream.extend(record(RecordType::STDOUT, b"", 0));
        stream.extend(record(RecordType::END_REQUEST, &[0; 8], 0));
        stream.extend(b"trailing junk is never looked at");
        for chunk in [1, 2, 7, 8, 9, 64, stream.len()] {
            let mut walker = Walker::default();
            for piece in stream.chunks(chunk) {
                walker.feed(piece);
            }
            assert!(walker.ended, "chunk {chunk}");
            assert_eq!(walker.stdout_bytes, 20 + 1000, "chunk {chunk}");
        }
    }
}
