//! An in-memory FastCGI backend for the driver and pool tests: streams made by
//! `tokio::io::duplex`, answered by a task that behaves like php-fpm (one request at a time,
//! ABORT_REQUEST ignored, answers after a delay). Time is tokio's, so tests run on the paused
//! clock and never sleep for real.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fcgi_proto::{Decoder, Padding, ProtocolStatus, Record, RecordBody, RecordType, encode_record};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::{Address, Pool, PoolConfig};

/// How the fake backend behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backend {
    /// Time to accept a connection.
    pub(crate) connect_delay: Duration,
    /// Time from the end of a request to its answer.
    pub(crate) answer_delay: Duration,
    /// Close the connection after each END_REQUEST, whatever KEEP_CONN says (uWSGI).
    pub(crate) close_after_end: bool,
}

impl Default for Backend {
    fn default() -> Self {
        Self {
            connect_delay: Duration::from_millis(1),
            answer_delay: Duration::from_millis(5),
            close_after_end: false,
        }
    }
}

/// Counts what the backend saw.
#[derive(Default, Debug)]
pub(crate) struct Seen {
    pub(crate) connections: AtomicUsize,
    pub(crate) requests: AtomicUsize,
}

impl Backend {
    /// A pool whose connections go to this backend.
    pub(crate) fn pool(self, config: PoolConfig) -> (Pool, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let counter = seen.clone();
        let pool = Pool::with_connector(Address::Unix("/in-memory".into()), config, move || {
            let seen = counter.clone();
            async move {
                tokio::time::sleep(self.connect_delay).await;
                let (client, server) = tokio::io::duplex(256 * 1024);
                seen.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(self.serve(server, seen));
                Ok(client)
            }
        });
        (pool, seen)
    }

    /// Answers each request with its SCRIPT_NAME and body length as the body, so that a test
    /// sees which request a response belongs to.
    pub(crate) async fn serve(self, mut stream: DuplexStream, seen: Arc<Seen>) {
        let mut decoder = Decoder::new();
        let mut input = BytesMut::new();
        let mut params = BytesMut::new();
        let mut body_len = 0usize;
        loop {
            let record = loop {
                match decoder.decode(&mut input) {
                    Ok(Some(record)) => break record,
                    Ok(None) => {}
                    Err(_) => return,
                }
                match stream.read_buf(&mut input).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            };
            let id = record.request_id;
            match record.body {
                RecordBody::BeginRequest(_) => {
                    params.clear();
                    body_len = 0;
                }
                RecordBody::Params(data) => params.extend_from_slice(&data),
                RecordBody::Stdin(data) if !data.is_empty() => body_len += data.len(),
                RecordBody::Stdin(_) => {
                    seen.requests.fetch_add(1, Ordering::SeqCst);
                    let pairs = fcgi_proto::decode_pairs(&params.split().freeze()).unwrap_or_default();
                    let name = pairs
                        .iter()
                        .find(|p| p.name.as_ref() == b"SCRIPT_NAME")
                        .map(|p| String::from_utf8_lossy(&p.value).into_owned())
                        .unwrap_or_default();
                    tokio::time::sleep(self.answer_delay).await;
                    let text = format!("Content-Type: text/plain\r\n\r\n{name} {body_len}");
                    let mut out = BytesMut::new();
                    let stdout = Record::stream(RecordType::STDOUT, id, Bytes::from(text)).unwrap();
                    encode_record(&mut out, &stdout, Padding::None).unwrap();
                    encode_record(
                        &mut out,
                        &Record::end_request(id, 0, ProtocolStatus::REQUEST_COMPLETE),
                        Padding::None,
                    )
                    .unwrap();
                    if stream.write_all(&out).await.is_err() || self.close_after_end {
                        return;
                    }
                }
                // php-fpm ignores ABORT_REQUEST and runs the script to its end.
                _ => {}
            }
        }
    }
}
