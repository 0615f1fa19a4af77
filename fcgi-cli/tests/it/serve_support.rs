//! Running a real `fcgi serve` process and real `curl` against it, for the `serve_*` tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::common::{BIN, PhpFpm, php};

/// Longest a curl run may take.
const CURL_LIMIT: &str = "20";

/// A running `fcgi serve`, killed on drop. Its stderr is collected line by line.
pub struct Serve {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// The access log file (`--access-log`), in a temporary directory kept alive here.
    pub access_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// `fcgi serve --listen 127.0.0.1:0 --access-log FILE ARGS`, waiting for its "listening on"
    /// line.
    pub fn start(args: &[&str]) -> Serve {
        let dir = tempfile::tempdir().expect("temp dir");
        let access_log = dir.path().join("access.log");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--access-log"])
            .arg(&access_log)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fcgi serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (sender, receiver) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                {
                    let mut text = collected.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let addr = addr.split("://").nth(1).and_then(|a| a.split(' ').next()).unwrap_or("");
                    if let (Some(sender), Ok(addr)) = (sender.take(), addr.parse::<SocketAddr>()) {
                        let _ = sender.send(addr);
                    }
                }
            }
        });
        let addr = match receiver.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!("fcgi serve did not start: {}", stderr.lock().unwrap());
            }
        };
        Serve { child, addr, stderr, access_log, _dir: dir }
    }

    /// PHP mode on the harness's php-fpm with `docroot` (relative to the harness docroot).
    pub fn php(docroot: &str, args: &[&str]) -> Serve {
        let php = php();
        let root = php.docroot.join(docroot);
        let mut all: Vec<&str> =
            vec!["--socket", php.socket.to_str().unwrap(), "--docroot", root.to_str().unwrap()];
        all.extend_from_slice(args);
        Serve::start(&all)
    }

    /// The front-controller application `tests/php/app/`.
    pub fn app(args: &[&str]) -> Serve {
        Serve::php("app", args)
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `text` (up to 10 s); returns stderr.
    pub fn wait_stderr(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stderr = self.stderr();
            if stderr.contains(text) || Instant::now() > deadline {
                return stderr;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The access log so far, waiting until it has at least `lines` lines (up to 10 s).
    pub fn access_log(&self, lines: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
            if text.lines().count() >= lines || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("kill");
    }

    /// Waits for the process to exit (up to `limit`); its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What curl got.
#[derive(Debug)]
pub struct Curl {
    /// The status of the last response.
    pub status: u16,
    /// `HTTP/1.1`, `HTTP/2`.
    pub version: String,
    /// The last response's header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// What curl said on stderr.
    pub stderr: String,
}

impl Curl {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Runs `curl -s -S -D <headers> ARGS` and returns the last response; curl must succeed.
pub fn curl(args: &[&str]) -> Curl {
    run_curl(args, true)
}

/// The same, also when curl fails after the response head arrived (an HTTP/2 server that
/// answers before reading the body resets the stream, which curl reports as an error).
pub fn curl_head(args: &[&str]) -> Curl {
    run_curl(args, false)
}

fn run_curl(args: &[&str], must_succeed: bool) -> Curl {
    let dir = tempfile::tempdir().expect("temp dir");
    let head = dir.path().join("head");
    let output = Command::new("curl")
        .args(["-s", "-S", "--max-time", CURL_LIMIT, "-D"])
        .arg(&head)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (the Debian package curl)");
    assert!(
        output.status.success() || !must_succeed,
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    // With redirects or 100-continue there are several blocks: the last one counts.
    let block = head.split("\r\n\r\n").filter(|b| !b.trim().is_empty()).last().unwrap_or("");
    let mut lines = block.lines();
    let status_line = lines.next().unwrap_or("");
    let mut words = status_line.split_whitespace();
    let version = words.next().unwrap_or("").to_string();
    let status = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Curl {
        status,
        version,
        headers,
        body: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Sends raw bytes on a new connection and reads until the server closes it or `wait` passes
/// without a byte; the text read and whether the server closed the connection.
pub fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(request).expect("send");
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// How many HTTP/1.1 responses `text` holds.
pub fn responses(text: &str) -> usize {
    text.matches("HTTP/1.1 ").count()
}

/// The harness's php-fpm.
pub fn php_fpm() -> PhpFpm {
    php()
}

/// A directory path as text.
pub fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}
