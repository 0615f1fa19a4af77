//! php-fpm reloaded (SIGUSR2) while a pool is under load: requests in flight fail with clear
//! errors or succeed, none hangs, and the pool recovers.
//!
//! In the `alone` test binary, alone: the reload disturbs every connection to this php-fpm.

use std::time::Duration;

use bytes::Bytes;
use fcgi_mux::{Address, Pool, PoolConfig};
use fcgi_tests::backends::php_fpm;
use http_body_util::{BodyExt, Empty};

use crate::ONE_AT_A_TIME;

fn params(script: &str, query: &str) -> Vec<(Bytes, Bytes)> {
    let fpm = php_fpm();
    [
        ("REQUEST_METHOD", "GET".to_string()),
        ("SCRIPT_NAME", format!("/{script}")),
        ("SCRIPT_FILENAME", fpm.script_path(script).display().to_string()),
        ("QUERY_STRING", query.to_string()),
    ]
    .into_iter()
    .map(|(n, v)| (Bytes::from_static(n.as_bytes()), Bytes::from(v)))
    .collect()
}

async fn slow_request(pool: Pool, i: usize) -> Result<String, fcgi_mux::Error> {
    let request = http::Request::get("/slow.php").body(Empty::<Bytes>::new()).unwrap();
    let response = pool.request(request, params("slow.php", &format!("ms={}", 20 + i % 30))).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_fpm_reloaded_under_load() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let fpm = php_fpm();
    let config = PoolConfig::default().max_connections(4).queue_timeout(Duration::from_secs(20));
    let pool = Pool::new(Address::Unix(fpm.socket.clone()), config);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let pool = pool.clone();
        tasks.spawn(async move {
            (i, tokio::time::timeout(Duration::from_secs(30), slow_request(pool, i)).await)
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status =
        std::process::Command::new("kill").args(["-USR2", &fpm.master_pid.to_string()]).status().unwrap();
    assert!(status.success(), "could not signal php-fpm");

    let (mut ok, mut failed) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let (i, outcome) = result.unwrap();
        match outcome {
            Err(_) => panic!("request {i} hung for 30 s"),
            Ok(Ok(body)) => {
                assert_eq!(body, format!("slept {}", 20 + i % 30));
                ok += 1;
            }
            Ok(Err(error)) => {
                let message = error.to_string();
                assert!(!message.is_empty() && !message.contains('\n'), "one clear line: {message:?}");
                failed += 1;
            }
        }
    }
    eprintln!("reload under load: {ok} completed, {failed} failed with a clear error");
    assert_eq!(ok + failed, 200);
    assert!(ok > 0, "some requests completed");

    // The pool recovers: fresh requests succeed once php-fpm is back.
    let mut recovered = false;
    for _ in 0..50 {
        if let Ok(Ok(body)) =
            tokio::time::timeout(Duration::from_secs(5), slow_request(pool.clone(), 0)).await
        {
            assert_eq!(body, "slept 20");
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the pool did not recover after the reload");
    for i in 0..20 {
        assert!(slow_request(pool.clone(), i).await.is_ok(), "request {i} after recovery");
    }
}
