//! A small synchronous FastCGI client for tests, built on `fcgi-proto`.
//!
//! Enough to send one request and read the whole reply, so that tests can reach real
//! backends without the async client. It is deliberately simple: one request per
//! connection, everything buffered, a fixed timeout so a stuck backend fails the test
//! instead of hanging it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use fcgi_proto::{
    Decoder, NameValuePair, Padding, ParamsOptions, Record, RecordBody, RecordType, RequestId, Role,
    encode_end_of_stream, encode_params, encode_record, encode_stream,
};

/// How long any read or write may block before the request fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The request id the client uses.
pub const REQUEST_ID: RequestId = RequestId(1);

/// Where a FastCGI server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

/// A connected socket of either kind.
pub enum Stream {
    /// Over a unix socket.
    Unix(UnixStream),
    /// Over TCP.
    Tcp(TcpStream),
}

impl Target {
    /// Connects with [`TIMEOUT`] set on reads and writes.
    pub fn connect(&self) -> io::Result<Stream> {
        let stream = match self {
            Target::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
            Target::Tcp(addr) => Stream::Tcp(TcpStream::connect_timeout(addr, TIMEOUT)?),
        };
        match &stream {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(TIMEOUT))?;
                s.set_write_timeout(Some(TIMEOUT))?;
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(TIMEOUT))?;
                s.set_write_timeout(Some(TIMEOUT))?;
            }
        }
        Ok(stream)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

/// Everything the application sent back for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// The STDOUT stream: a CGI response (headers, blank line, body).
    pub stdout: Vec<u8>,
    /// The STDERR stream.
    pub stderr: Vec<u8>,
    /// END_REQUEST's application status.
    pub app_status: u32,
    /// END_REQUEST's protocol status byte.
    pub protocol_status: u8,
}

impl Reply {
    /// Splits STDOUT into CGI header lines and body. Panics with a clear message when the
    /// head is malformed: in a test that is a failure worth seeing.
    pub fn cgi(&self) -> (Vec<(String, String)>, &[u8]) {
        let (head_len, body_start) = find_head_end(&self.stdout).unwrap_or_else(|| {
            panic!("no end of CGI headers in STDOUT: {:?}", String::from_utf8_lossy(&self.stdout))
        });
        let head = std::str::from_utf8(&self.stdout[..head_len]).expect("CGI headers are not UTF-8");
        let headers = head
            .lines()
            .map(|line| {
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("CGI header line without a colon: {line:?}"));
                (name.trim().to_string(), value.trim().to_string())
            })
            .collect();
        (headers, &self.stdout[body_start..])
    }

    /// The first value of a CGI header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<String> {
        self.cgi().0.into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// The HTTP status: from `Status:`, 302 for a bare `Location:`, else 200.
    pub fn status(&self) -> u16 {
        if let Some(status) = self.header("Status") {
            return status
                .split_whitespace()
                .next()
                .and_then(|code| code.parse().ok())
                .expect("a numeric Status");
        }
        if self.header("Location").is_some() { 302 } else { 200 }
    }

    /// The body after the CGI headers.
    pub fn body(&self) -> &[u8] {
        self.cgi().1
    }
}

fn find_head_end(stdout: &[u8]) -> Option<(usize, usize)> {
    let crlf = stdout.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = stdout.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Encodes one complete RESPONDER request (KEEP_CONN off): BEGIN_REQUEST, PARAMS of whole
/// pairs, the empty PARAMS, STDIN records, the empty STDIN.
pub fn encode_request<N: AsRef<[u8]>, V: AsRef<[u8]>>(
    params: &[(N, V)],
    stdin: &[u8],
) -> io::Result<BytesMut> {
    let mut wire = BytesMut::new();
    let begin = Record::begin_request(REQUEST_ID, Role::RESPONDER, false);
    encode_record(&mut wire, &begin, Padding::None).map_err(invalid_input)?;
    let pairs = params.iter().map(|(n, v)| (n.as_ref(), v.as_ref()));
    encode_params(&mut wire, REQUEST_ID, pairs, ParamsOptions::default()).map_err(invalid_input)?;
    encode_stream(&mut wire, RecordType::STDIN, REQUEST_ID, stdin, Padding::None);
    encode_end_of_stream(&mut wire, RecordType::STDIN, REQUEST_ID);
    Ok(wire)
}

/// Sends one request with the given params and body and reads the reply until END_REQUEST.
pub fn request<N: AsRef<[u8]>, V: AsRef<[u8]>>(
    target: &Target,
    params: &[(N, V)],
    stdin: &[u8],
) -> io::Result<Reply> {
    let wire = encode_request(params, stdin)?;
    let records = exchange(target, &wire)?;
    reply_from(&records)
}

/// Writes raw bytes and reads records until an END_REQUEST (for any id) or end of input.
/// For protocol experiments and fault tests: nothing is checked about what is sent.
pub fn exchange(target: &Target, wire: &[u8]) -> io::Result<Vec<Record>> {
    let mut stream = target.connect()?;
    stream.write_all(wire)?;
    read_records(&mut stream, |record| matches!(record.body, RecordBody::EndRequest(_)))
}

/// Sends `FCGI_GET_VALUES` for the three standard names and returns the answer's pairs.
pub fn get_values(target: &Target) -> io::Result<Vec<NameValuePair>> {
    let mut wire = BytesMut::new();
    let query = Record::new(RequestId::MANAGEMENT, RecordBody::GetValues(fcgi_proto::standard_query()));
    encode_record(&mut wire, &query, Padding::None).map_err(invalid_input)?;
    let mut stream = target.connect()?;
    stream.write_all(&wire)?;
    let records = read_records(&mut stream, |record| matches!(record.body, RecordBody::GetValuesResult(_)))?;
    match records.into_iter().last().map(|r| r.body) {
        Some(RecordBody::GetValuesResult(pairs)) => Ok(pairs),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no FCGI_GET_VALUES_RESULT, got {other:?}"),
        )),
    }
}

/// Reads and decodes records until `last` says stop, or until end of input.
pub fn read_records(stream: &mut impl Read, last: impl Fn(&Record) -> bool) -> io::Result<Vec<Record>> {
    let mut decoder = Decoder::new();
    let mut src = BytesMut::with_capacity(64 * 1024);
    let mut records = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some(record) = decoder.decode(&mut src).map_err(invalid_data)? {
            let done = last(&record);
            records.push(record);
            if done {
                return Ok(records);
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            decoder.finish(&src).map_err(invalid_data)?;
            return Ok(records);
        }
        src.extend_from_slice(&chunk[..n]);
    }
}

/// Collects STDOUT, STDERR and END_REQUEST of [`REQUEST_ID`] from a list of records.
pub fn reply_from(records: &[Record]) -> io::Result<Reply> {
    let mut reply = Reply::default();
    for record in records.iter().filter(|r| r.request_id == REQUEST_ID) {
        match &record.body {
            RecordBody::Stdout(data) => reply.stdout.extend_from_slice(data),
            RecordBody::Stderr(data) => reply.stderr.extend_from_slice(data),
            RecordBody::EndRequest(end) => {
                reply.app_status = end.app_status;
                reply.protocol_status = end.protocol_status.0;
                return Ok(reply);
            }
            _ => {}
        }
    }
    Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("connection closed before FCGI_END_REQUEST ({} bytes of STDOUT so far)", reply.stdout.len()),
    ))
}

fn invalid_input(err: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, err)
}

fn invalid_data(err: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}
