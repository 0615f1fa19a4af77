//! `fcgi exporter` against real php-fpm pools and a real Prometheus server: live, hung and
//! missing pools within the scrape deadline, the shared scrape, a wrong status path, a pool that
//! disappears and comes back (fixed and in `--socket-dir`), a socket that is not FastCGI, basic
//! authentication, SIGTERM, promtool on what it serves, and Prometheus' own view through its
//! HTTP API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::status_pools::{Slow, pool};

/// A running `fcgi exporter` on a free loopback port; its stderr lines are collected.
struct Exporter {
    child: Child,
    address: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    fn start(args: &[&str]) -> Exporter {
        let mut child = std_fcgi()
            .args(["exporter", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fcgi exporter");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sender, receiver) = std::sync::mpsc::channel();
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let rest = line
                    .strip_prefix("fcgi exporter: listening on http://")
                    .or_else(|| line.strip_prefix("fcgi exporter: listening on https://"));
                let address: Option<SocketAddr> =
                    rest.map(|rest| rest.split('/').next().unwrap().parse().unwrap());
                // Kept before the address is announced: the caller may look for this line at once.
                collected.lock().unwrap().push(line);
                if let Some(address) = address {
                    let _ = sender.send(address);
                }
            }
        });
        let address = receiver.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the exporter did not start: {:?}", lines.lock().unwrap())
        });
        Exporter { child, address, lines }
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_get(self.address, path, &[])
    }

    /// The stderr lines containing `needle`. The exporter writes them before it answers, but
    /// they reach the reader thread a moment later: this waits until some have come and stayed
    /// the same for 200 ms (at most 3 s in all).
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let matching = || -> Vec<String> {
            self.lines.lock().unwrap().iter().filter(|l| l.contains(needle)).cloned().collect()
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut seen = matching();
        let mut same_since = Instant::now();
        while Instant::now() < deadline {
            if !seen.is_empty() && same_since.elapsed() >= Duration::from_millis(200) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            let now = matching();
            if now != seen {
                seen = now;
                same_since = Instant::now();
            }
        }
        seen
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        wait_bounded(&mut self.child)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.terminate();
        }
    }
}

/// A plain HTTP/1.1 GET (`Connection: close`); status and body.
fn http_get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect to the exporter");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the response");
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

/// The value of the sample line starting with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|line| line.starts_with(prefix)).and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

fn up(text: &str, socket: &Path) -> Option<f64> {
    let uri = format!("scrape_uri=\"unix:{}\"", socket.display());
    text.lines()
        .find(|line| line.starts_with("phpfpm_up{") && line.contains(&uri))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[test]
fn live_hung_and_missing_pools_within_the_deadline() {
    let (live, _lock) = pool("static");
    let hung = FakeServer::silent();
    let dir = temp_dir();
    let missing = dir.path().join("missing.sock");
    let mut exporter = Exporter::start(&[
        "--socket",
        live.to_str().unwrap(),
        "--socket",
        hung.path.to_str().unwrap(),
        "--socket",
        missing.to_str().unwrap(),
        "--scrape-timeout",
        "5s",
    ]);
    // Prometheus' header shortens the 5 s to 1 s - 100 ms.
    let started = Instant::now();
    let (status, text) =
        http_get(exporter.address, "/metrics", &[("X-Prometheus-Scrape-Timeout-Seconds", "1")]);
    let took = started.elapsed();
    assert_eq!(status, 200, "{text}");
    assert!(took >= Duration::from_millis(850) && took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(up(&text, &live), Some(1.0), "{text}");
    assert_eq!(up(&text, &hung.path), Some(0.0), "{text}");
    assert_eq!(up(&text, &missing), Some(0.0), "{text}");
    assert!(text.contains("phpfpm_idle_processes{pool=\"static\","), "{text}");
    let hung_uri = format!("unix:{}", hung.path.display());
    assert_eq!(
        sample(
            &text,
            &format!("fcgi_exporter_pool_scrape_errors_total{{scrape_uri=\"{hung_uri}\",kind=\"timeout\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains(",kind=\"connect\"} 1\n"), "{text}");
    assert_eq!(sample(&text, "fcgi_exporter_scrapes_total"), Some(1.0), "{text}");
    // Without the header: the configured 5 s would apply; a second scrape counts a second
    // failure for the two dead pools, but says nothing new on stderr.
    let (_, again) =
        http_get(exporter.address, "/metrics", &[("X-Prometheus-Scrape-Timeout-Seconds", "0.5")]);
    assert!(
        again.contains(&format!("phpfpm_scrape_failures{{pool=\"\",scrape_uri=\"{hung_uri}\"}} 2\n")),
        "{again}"
    );
    assert_eq!(
        exporter.lines_with(&hung_uri).len(),
        1,
        "one line per state change: {:?}",
        exporter.lines.lock().unwrap()
    );
    assert_eq!(exporter.lines_with("missing.sock").len(), 1);
    assert!(exporter.lines_with(&hung_uri)[0].contains("down (timeout)"));
    // /healthz and / answer at once, whatever the pools do.
    assert_eq!(exporter.get("/healthz"), (200, "ok\n".to_string()));
    let (status, page) = exporter.get("/");
    assert_eq!(status, 200);
    assert!(page.contains(&hung_uri) && page.contains("timeout: ") && page.contains("pm static"), "{page}");
    assert_eq!(exporter.get("/nope").0, 404);
    assert!(exporter.terminate().success());
}

#[test]
fn concurrent_scrapes_share_the_one_in_flight() {
    let hung = FakeServer::silent();
    let exporter = Exporter::start(&["--socket", hung.path.to_str().unwrap(), "--scrape-timeout", "1s"]);
    let address = exporter.address;
    let clients: Vec<_> =
        (0..3).map(|_| std::thread::spawn(move || http_get(address, "/metrics", &[]))).collect();
    for client in clients {
        let (status, text) = client.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(up(&text, &hung.path), Some(0.0), "{text}");
    }
    let (_, text) = exporter.get("/metrics");
    // Three concurrent requests, started within a few ms of each other, made one scrape (the
    // third request here is the second).
    assert_eq!(sample(&text, "fcgi_exporter_scrapes_total"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "fcgi_exporter_shared_scrapes_total"), Some(2.0), "{text}");
}

#[test]
fn a_wrong_status_path_says_so() {
    let (socket, _lock) = pool("static");
    let exporter = Exporter::start(&["--socket", socket.to_str().unwrap(), "--path", "/wrong"]);
    let (_, text) = exporter.get("/metrics");
    assert_eq!(up(&text, &socket), Some(0.0), "{text}");
    assert!(text.contains(",kind=\"http_4xx\"} 1\n"), "{text}");
    let line = &exporter.lines_with("down")[0];
    assert!(line.contains("HTTP 404 Not Found on /wrong") && line.contains("pm.status_path"), "{line}");
    // A path that answers 200 with something else (the ping page): not JSON, said plainly.
    let exporter = Exporter::start(&["--socket", socket.to_str().unwrap(), "--path", "/ping"]);
    let (_, text) = exporter.get("/metrics");
    assert!(text.contains(",kind=\"protocol\"} 1\n"), "{text}");
    let line = &exporter.lines_with("down")[0];
    assert!(line.contains("not php-fpm's JSON status") && line.contains("starts with \"pong\""), "{line}");
}

#[test]
fn a_socket_that_is_not_fastcgi() {
    let http = FakeServer::http();
    let exporter = Exporter::start(&["--socket", http.path.to_str().unwrap()]);
    let (status, text) = exporter.get("/metrics");
    assert_eq!(status, 200);
    assert_eq!(up(&text, &http.path), Some(0.0), "{text}");
    assert!(text.contains(",kind=\"protocol\"} 1\n"), "{text}");
    assert_eq!(exporter.lines_with("down (protocol)").len(), 1, "{:?}", exporter.lines.lock().unwrap());
}

#[test]
fn pools_that_disappear_and_come_back() {
    let (dynamic, _lock_dynamic) = pool("dynamic");
    let (ondemand, _lock_ondemand) = pool("ondemand");
    let dir = temp_dir();
    let in_dir = dir.path().join("dynamic.sock");
    let fixed_dir = temp_dir();
    let fixed = fixed_dir.path().join("ondemand.sock");
    let link = |target: &PathBuf, at: &PathBuf| std::os::unix::fs::symlink(target, at).unwrap();
    link(&dynamic, &in_dir);
    link(&ondemand, &fixed);
    std::fs::write(dir.path().join("notes.txt"), "not a socket").unwrap();
    let exporter =
        Exporter::start(&["--socket", fixed.to_str().unwrap(), "--socket-dir", dir.path().to_str().unwrap()]);
    let (_, text) = exporter.get("/metrics");
    assert_eq!(up(&text, &in_dir), Some(1.0), "reported under the path found in the directory: {text}");
    assert_eq!(up(&text, &fixed), Some(1.0), "{text}");
    assert!(text.contains("fcgi_exporter_pools 2\n"), "{text}");
    // Both go away: the directory's pool is no longer listed, the fixed one is down.
    std::fs::remove_file(&in_dir).unwrap();
    std::fs::remove_file(&fixed).unwrap();
    for _ in 0..2 {
        let (_, text) = exporter.get("/metrics");
        assert_eq!(up(&text, &in_dir), None, "{text}");
        assert_eq!(up(&text, &fixed), Some(0.0), "{text}");
    }
    // And come back.
    link(&dynamic, &in_dir);
    link(&ondemand, &fixed);
    let (_, text) = exporter.get("/metrics");
    assert_eq!(up(&text, &in_dir), Some(1.0), "{text}");
    assert_eq!(up(&text, &fixed), Some(1.0), "{text}");
    let fixed_lines = exporter.lines_with(&format!("unix:{}:", fixed.display()));
    assert_eq!(fixed_lines.len(), 3, "up, down, up: {fixed_lines:?}");
    assert!(
        fixed_lines[0].contains(": up (pool ondemand")
            && fixed_lines[1].contains(": down (connect)")
            && fixed_lines[2].contains(": up"),
        "{fixed_lines:?}"
    );
    let dir_lines = exporter.lines_with(&format!("unix:{}:", in_dir.display()));
    assert_eq!(dir_lines.len(), 3, "{dir_lines:?}");
    assert!(dir_lines[1].contains("no longer in --socket-dir"), "{dir_lines:?}");
}

#[test]
fn an_unreadable_socket_dir_is_said_once() {
    let dir = temp_dir();
    let gone = dir.path().join("nope");
    let exporter = Exporter::start(&["--socket-dir", gone.to_str().unwrap()]);
    for _ in 0..2 {
        let (status, text) = exporter.get("/metrics");
        assert_eq!(status, 200);
        assert!(text.contains("fcgi_exporter_pools 0\n"), "{text}");
    }
    let (_, text) = exporter.get("/metrics");
    assert!(text.contains("fcgi_exporter_socket_dir_errors_total 3\n"), "{text}");
    assert_eq!(exporter.lines_with("cannot list --socket-dir").len(), 1);
}

#[test]
fn basic_authentication() {
    let (socket, _lock) = pool("ondemand");
    let dir = temp_dir();
    let users = dir.path().join("users");
    std::fs::write(&users, "# who may scrape\nprometheus:s3cret\n").unwrap();
    let exporter = Exporter::start(&[
        "--socket",
        socket.to_str().unwrap(),
        "--basic-auth-file",
        users.to_str().unwrap(),
    ]);
    assert_eq!(exporter.get("/metrics").0, 401);
    assert_eq!(exporter.get("/").0, 401);
    assert_eq!(exporter.get("/healthz").0, 200, "the exporter's liveness needs no password");
    // "prometheus:s3cret" and a wrong password, in base64.
    assert_eq!(
        http_get(exporter.address, "/metrics", &[("Authorization", "Basic cHJvbWV0aGV1czpzM2NyZXQ=")]).0,
        200
    );
    assert_eq!(
        http_get(exporter.address, "/metrics", &[("Authorization", "Basic cHJvbWV0aGV1czp3cm9uZw==")]).0,
        401
    );
    let output =
        run(fcgi().args(["exporter", "--socket", "/x", "--basic-auth-file"]).arg(dir.path().join("none")));
    assert_error(&output, 26);
}

#[test]
fn bad_command_lines() {
    let output = run(fcgi().args(["exporter"]));
    let line = assert_error(&output, 2);
    assert!(line.contains("--socket-dir"), "{line}");
    let output = run(fcgi().args(["exporter", "--connect", "[::1"]));
    assert_error(&output, 2);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let output = run(fcgi()
        .args(["exporter", "--socket", "/x", "--listen"])
        .arg(taken.local_addr().unwrap().to_string()));
    let line = assert_error(&output, 1);
    assert!(line.contains("cannot listen on"), "{line}");
}

#[test]
fn sigterm_lets_a_scrape_in_progress_finish() {
    let hung = FakeServer::silent();
    let mut exporter = Exporter::start(&["--socket", hung.path.to_str().unwrap(), "--scrape-timeout", "1s"]);
    let address = exporter.address;
    let client = std::thread::spawn(move || http_get(address, "/metrics", &[]));
    std::thread::sleep(Duration::from_millis(300));
    let status = exporter.terminate();
    assert!(status.success(), "{status:?}");
    let (code, text) = client.join().unwrap();
    assert_eq!(code, 200);
    assert_eq!(up(&text, &hung.path), Some(0.0), "{text}");
    assert_eq!(exporter.lines_with("SIGTERM: stopped listening").len(), 1);
    assert!(TcpStream::connect(address).is_err(), "no longer listening");
}

#[test]
fn what_the_exporter_serves_passes_promtool() {
    let (socket, _lock) = pool("dynamic");
    let hung = FakeServer::silent();
    let exporter = Exporter::start(&[
        "--socket",
        socket.to_str().unwrap(),
        "--socket",
        hung.path.to_str().unwrap(),
        "--scrape-timeout",
        "500ms",
    ]);
    let (_, text) = exporter.get("/metrics");
    let (code, report) = promtool(&text);
    assert_eq!(code, 3, "lint problems only, no parse error: {report:?}");
    for problem in &report {
        // Only hipages' counters without _total; the exporter's own counters have it.
        assert!(
            problem.starts_with("phpfpm_")
                && problem.ends_with("counter metrics should have \"_total\" suffix"),
            "{problem}"
        );
    }
    // With --openmetrics and an Accept header asking for it: OpenMetrics, which promtool (it
    // reads the 0.0.4 format) parses; it only finds the _total samples' HELP missing.
    let exporter = Exporter::start(&["--socket", socket.to_str().unwrap(), "--openmetrics"]);
    let (_, plain) = exporter.get("/metrics");
    assert!(!plain.contains("# EOF"), "text 0.0.4 unless asked: {plain}");
    let (_, open) =
        http_get(exporter.address, "/metrics", &[("Accept", "application/openmetrics-text;version=1.0.0")]);
    assert!(open.ends_with("# EOF\n") && open.contains("\nphpfpm_accepted_connections_total{"), "{open}");
    let (code, report) = promtool(&open);
    assert_eq!(code, 3, "{report:?}");
    for problem in &report {
        assert!(
            problem.contains("_total no help text")
                || problem.ends_with("counter metrics should have \"_total\" suffix"),
            "{problem}"
        );
    }
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Prometheus server on loopback; killed and waited for on drop.
struct PrometheusServer {
    child: Child,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl PrometheusServer {
    fn start(jobs: &[(&str, SocketAddr)]) -> PrometheusServer {
        let mut config = String::new();
        for (job, target) in jobs {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        PrometheusServer::start_with(&config)
    }

    /// A server with `scrape_configs` (YAML list items, indented by two spaces).
    fn start_with(scrape_configs: &str) -> PrometheusServer {
        let prometheus = fcgi_tests::backends::prometheus();
        let dir = temp_dir();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{scrape_configs}"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(&prometheus.server)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={address}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus");
        let server = PrometheusServer { child, address, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(address).is_ok() && http_get(address, "/-/ready", &[]).0 == 200 {
                return server;
            }
            assert!(Instant::now() < deadline, "prometheus not ready: {}", server.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The instant vector of `query`: (labels, value) per series.
    fn query(&self, query: &str) -> Vec<(serde_json::Value, String)> {
        let encoded: String = query
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (status, body) = http_get(self.address, &format!("/api/v1/query?query={encoded}"), &[]);
        assert_eq!(status, 200, "{body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(doc["status"], "success", "{doc}");
        doc["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|series| (series["metric"].clone(), series["value"][1].as_str().unwrap().to_string()))
            .collect()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_sees_the_live_pool_up_and_the_hung_one_down() {
    let (live, _lock_live) = pool("ondemand");
    let (busy, _lock_busy) = pool("busy");
    // The busy pool's only worker runs a long request: php-fpm accepts the status request's
    // connection into its backlog and never answers it in time: a hung pool.
    let _slow = Slow::start(&busy, 12_000);
    let args =
        ["--socket", live.to_str().unwrap(), "--socket", busy.to_str().unwrap(), "--scrape-timeout", "5s"];
    let text_exporter = Exporter::start(&args);
    let mut openmetrics_args = args.to_vec();
    openmetrics_args.push("--openmetrics");
    let openmetrics_exporter = Exporter::start(&openmetrics_args);
    let prometheus = PrometheusServer::start(&[
        ("fcgi", text_exporter.address),
        ("fcgi_openmetrics", openmetrics_exporter.address),
    ]);
    let live_uri = format!("unix:{}", live.display());
    let busy_uri = format!("unix:{}", busy.display());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let series = prometheus.query("phpfpm_up");
        let value = |job: &str, uri: &str| {
            series
                .iter()
                .find(|(labels, _)| labels["job"] == job && labels["scrape_uri"] == uri)
                .map(|(_, v)| v.clone())
        };
        let all = ["fcgi", "fcgi_openmetrics"].iter().all(|job| {
            value(job, &live_uri).as_deref() == Some("1") && value(job, &busy_uri).as_deref() == Some("0")
        });
        if all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw live=1, hung=0: {series:?}\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Prometheus' own view of the scrapes: both targets up, each scrape within its 1 s timeout
    // (the exporter cut its 5 s to Prometheus' 1 s less 100 ms).
    for (labels, value) in prometheus.query("up") {
        assert_eq!(value, "1", "{labels}: {}", prometheus.log());
    }
    for (labels, value) in prometheus.query("scrape_duration_seconds") {
        let seconds: f64 = value.parse().unwrap();
        assert!(seconds < 1.0, "{labels}: {seconds}");
    }
    // The text format keeps hipages' names; the OpenMetrics one was parsed as OpenMetrics.
    let counter = prometheus.query("phpfpm_accepted_connections");
    assert!(
        counter.iter().any(|(labels, _)| labels["job"] == "fcgi" && labels["pool"] == "ondemand"),
        "{counter:?}"
    );
    let counter = prometheus.query("phpfpm_accepted_connections_total");
    assert!(
        counter.iter().any(|(labels, _)| labels["job"] == "fcgi_openmetrics" && labels["pool"] == "ondemand"),
        "{counter:?}"
    );
    let idle = prometheus.query("phpfpm_idle_processes{pool=\"ondemand\"}");
    assert!(
        idle.iter().all(|(_, v)| v.parse::<f64>().unwrap() >= 1.0),
        "the scrape's own worker counts as idle: {idle:?}"
    );
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let (socket, _lock) = pool("ondemand");
    let dir = temp_dir();
    let (cert, key) = self_signed(dir.path());
    let users = dir.path().join("users");
    std::fs::write(&users, "prometheus:s3cret\n").unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret").unwrap();
    let exporter = Exporter::start(&[
        "--socket",
        socket.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--basic-auth-file",
        users.to_str().unwrap(),
    ]);
    assert_eq!(exporter.lines_with("listening on https://").len(), 1);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let (status, _) = http_get(exporter.address, "/healthz", &[]);
    assert_eq!(status, 0, "no HTTP over the TLS port");
    let config = format!(
        "  - job_name: tls\n    scheme: https\n    tls_config:\n      ca_file: {cert}\n    basic_auth:\n      username: prometheus\n      password_file: {password}\n    static_configs:\n      - targets: ['{address}']\n  - job_name: no_password\n    scheme: https\n    tls_config:\n      ca_file: {cert}\n    static_configs:\n      - targets: ['{address}']\n",
        cert = cert.display(),
        password = password.display(),
        address = exporter.address,
    );
    let prometheus = PrometheusServer::start_with(&config);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let series = prometheus.query("phpfpm_up");
        let seen = series
            .iter()
            .any(|(labels, value)| labels["job"] == "tls" && labels["pool"] == "ondemand" && value == "1");
        if seen {
            break;
        }
        assert!(Instant::now() < deadline, "no phpfpm_up over TLS: {series:?}\n{}", prometheus.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    // The job without the password is refused (its scrape fails: up 0); the other one is up.
    let mut ups = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ups.len() < 2 {
        for (labels, value) in prometheus.query("up") {
            ups.insert(labels["job"].as_str().unwrap().to_string(), value);
        }
        assert!(Instant::now() < deadline, "{ups:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(ups["tls"], "1", "{ups:?}");
    assert_eq!(ups["no_password"], "0", "{ups:?}");
}

#[test]
fn unusable_tls_files_exit_2() {
    let dir = temp_dir();
    let (cert, key) = self_signed(dir.path());
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    for (cert, key, expected) in
        [(&not_pem, &key, "--tls-cert"), (&cert, &not_pem, "--tls-key"), (&key, &cert, "--tls-cert")]
    {
        let output = run(fcgi()
            .args(["exporter", "--socket", "/x", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key));
        let line = assert_error(&output, 2);
        assert!(line.contains(expected), "{line}");
    }
    let output = run(fcgi().args(["exporter", "--socket", "/x", "--tls-cert"]).arg(&cert));
    assert_error(&output, 2);
}

#[test]
fn max_concurrency_bounds_the_pools_asked_at_once() {
    // Two hung pools and --max-concurrency 1: the first holds the only slot until the deadline,
    // the second never gets one; both are down, each with its reason, within the deadline.
    let first = FakeServer::silent();
    let second = FakeServer::silent();
    let exporter = Exporter::start(&[
        "--socket",
        first.path.to_str().unwrap(),
        "--socket",
        second.path.to_str().unwrap(),
        "--max-concurrency",
        "1",
        "--scrape-timeout",
        "600ms",
    ]);
    let started = Instant::now();
    let (_, text) = exporter.get("/metrics");
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert_eq!(up(&text, &first.path), Some(0.0), "{text}");
    assert_eq!(up(&text, &second.path), Some(0.0), "{text}");
    let lines = exporter.lines_with("down (timeout)");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.iter().any(|line| line.ends_with("no complete answer within the scrape timeout")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|line| line.ends_with("no free slot (--max-concurrency) within the scrape timeout")),
        "{lines:?}"
    );
}
