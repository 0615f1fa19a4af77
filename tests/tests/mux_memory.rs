//! Memory stays bounded while fcgi-mux streams a 100 MiB response from php-fpm.
//!
//! In its own test binary so that no other test allocates in the same process while the
//! resident set size is watched.

use bytes::Bytes;
use fcgi_mux::{Address, Connection, ConnectionConfig};
use fcgi_tests::backends::php_fpm;
use http_body_util::{BodyExt, Empty};

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_100_mib_response_streams_in_bounded_memory() {
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
