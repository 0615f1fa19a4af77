//! Memory stays bounded while fcgi-mux streams a 100 MiB response from php-fpm.
//!
//! In the `alone` test binary so that no other test allocates in the same process while the
//! resident set size is watched, and the tests here take turns for the same reason.

use bytes::Bytes;
use fcgi_mux::{Address, Connection, ConnectionConfig};
use fcgi_tests::backends::php_fpm;
use http_body_util::{BodyExt, Empty};

use crate::ONE_AT_A_TIME;

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_100_mib_response_streams_in_bounded_memory() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let fpm = php_fpm();
    let script = fpm.script_path("big.php").display().to_string();
    let params: Vec<(Bytes, Bytes)> = [
        ("REQUEST_METHOD", "GET".to_string()),
        ("SCRIPT_NAME", "/big.php".to_string()),
        ("SCRIPT_FILENAME", script),
        ("QUERY_STRING", format!("bytes={}", 100 * 1024 * 1024)),
    ]
    .into_iter()
    .map(|(n, v)| (Bytes::from_static(n.as_bytes()), Bytes::from(v)))
    .collect();
    let connection =
        Connection::spawn(&Address::Unix(fpm.socket.clone()), ConnectionConfig::default()).await.unwrap();
    let before = resident_kib();
    let request = http::Request::get("/big.php").body(Empty::<Bytes>::new()).unwrap();
    let response = connection.request(request, params).await.unwrap();
    let mut body = response.into_body();
    let mut total = 0usize;
    let mut peak = before;
    let mut chunks = 0u64;
    while let Some(frame) = body.frame().await {
        let chunk = frame.unwrap().into_data().unwrap();
        // byte i of big.php's body is PATTERN[i % 64]
        assert_eq!(chunk[0], b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/"[total % 64]);
        total += chunk.len();
        chunks += 1;
        if chunks % 64 == 0 {
            peak = peak.max(resident_kib());
        }
    }
    assert_eq!(total, 100 * 1024 * 1024);
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    assert!(growth_mib < 16, "resident memory grew by {growth_mib} MiB while streaming 100 MiB");
}

#[tokio::test]
async fn sixty_four_mib_of_stderr_keeps_memory_bounded() {
    let _turn = ONE_AT_A_TIME.lock().await;
    use fcgi_tests::responder::{Behaviour, Responder};
    let server = Responder::start(Behaviour::huge_stderr(64 * 1024 * 1024)).await;
    let address: Address = server.address_string().parse().unwrap();
    let connection = Connection::spawn(&address, ConnectionConfig::default()).await.unwrap();
    let before = resident_kib();
    let request = http::Request::get("/").body(Empty::<Bytes>::new()).unwrap();
    let params = vec![(Bytes::from_static(b"SCRIPT_NAME"), Bytes::from_static(b"/noisy"))];
    let response = connection.request(request, params).await.unwrap();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.unwrap();
    }
    let stderr = body.stderr();
    assert_eq!(stderr.kept.len(), 64 * 1024);
    assert_eq!(stderr.dropped, 64 * 1024 * 1024 - 64 * 1024);
    let growth_mib = resident_kib().saturating_sub(before) / 1024;
    assert!(growth_mib < 16, "resident memory grew by {growth_mib} MiB for 64 MiB of STDERR");
}
