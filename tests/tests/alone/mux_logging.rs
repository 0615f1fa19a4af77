//! fcgi-mux's tracing output never carries credential values: parameters (Authorization,
//! Cookie...) and bodies are not logged, at any level.
//!
//! In the `alone` test binary, taking its turn: tracing-core caches whether a callsite is enabled
//! when a thread first reaches it, and a callsite another test registered while the global
//! subscriber was being installed could keep a stale "never" (seen in CI: `request started`
//! missing from the capture). With no other test running, no callsite registers meanwhile.
//!
//! The subscriber is the global one, installed once, and records only the events of a thread
//! that is capturing ([`capture`]); every other thread's events are filtered out before they are
//! formatted. A scoped subscriber (`tracing::subscriber::set_default`) is not enough in a test
//! binary: while it is the only one, the first thread to reach a callsite decides whether that
//! callsite is enabled, for every thread, and another test reaching `request ended` first with
//! no subscriber of its own disables it for this one.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use bytes::Bytes;
use fcgi_mux::{Address, Connection, ConnectionConfig};
use fcgi_tests::responder::{Behaviour, Responder};
use http_body_util::{BodyExt, Full};
use tracing_subscriber::layer::SubscriberExt;

use crate::ONE_AT_A_TIME;

/// Collects everything the subscriber writes for the capturing thread.
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

thread_local! {
    /// Where this thread's events go, while it captures.
    static CAPTURING: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Records every event (all levels) of the current thread from now on, into the returned buffer.
fn capture() -> Captured {
    static GLOBAL: Once = Once::new();
    GLOBAL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| CAPTURING.with(|c| c.borrow().clone().unwrap_or_default()))
            .with_ansi(false)
            .finish()
            .with(tracing_subscriber::filter::filter_fn(|_| CAPTURING.with(|c| c.borrow().is_some())));
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
    // A callsite another test's thread registered while the subscriber was being installed may
    // have cached "never" from the no-op dispatcher (a race in tracing-core's registry): ask
    // every callsite again now that the subscriber is there.
    tracing::callsite::rebuild_interest_cache();
    let captured = Captured::default();
    CAPTURING.with(|c| *c.borrow_mut() = Some(captured.clone()));
    captured
}

#[tokio::test]
async fn credentials_never_reach_the_logs() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let captured = capture();

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

    CAPTURING.with(|c| c.borrow_mut().take()); // this thread may run another test next
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request started"), "the logs were captured: {logs}");
    assert!(logs.contains("request ended"), "{logs}");
    for secret in ["c2VjcmV0LXBhc3N3b3Jk", "SECRET-SESSION-ID", "BODY-SECRET"] {
        assert!(!logs.contains(secret), "{secret} appeared in the logs:\n{logs}");
    }
}
