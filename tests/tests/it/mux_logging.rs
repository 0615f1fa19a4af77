//! fcgi-mux's tracing output never carries credential values: parameters (Authorization,
//! Cookie...) and bodies are not logged, at any level.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fcgi_mux::{Address, Connection, ConnectionConfig};
use fcgi_tests::responder::{Behaviour, Responder};
use http_body_util::{BodyExt, Full};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn credentials_never_reach_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Responder::start(Behaviour::echo()).await;
    let address: Address = server.address_string().parse().unwrap();
    let connection = Connection::spawn(&address, ConnectionConfig::default()).await.unwrap();
    let params = vec![
        (Bytes::from_static(b"SCRIPT_NAME"), Bytes::from_static(b"/x")),
        (Bytes::from_static(b"HTTP_AUTHORIZATION"), Bytes::from_static(b"Basic c2VjcmV0LXBhc3N3b3Jk")),
        (Bytes::from_static(b"HTTP_COOKIE"), Bytes::from_static(b"session=SECRET-SESSION-ID")),
    ];
    let request =
        http::Request::post("/x").body(Full::new(Bytes::from_static(b"password=BODY-SECRET"))).unwrap();
    let response = connection.request(request, params).await.unwrap();
    response.into_body().collect().await.unwrap();
    drop(connection);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request started"), "the logs were captured: {logs}");
    assert!(logs.contains("request ended"), "{logs}");
    for secret in ["c2VjcmV0LXBhc3N3b3Jk", "SECRET-SESSION-ID", "BODY-SECRET"] {
        assert!(!logs.contains(secret), "{secret} appeared in the logs:\n{logs}");
    }
}
