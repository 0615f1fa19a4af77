//! The benchmark programs work together: `mux_load` against `mpx_responder`, multiplexed on one
//! connection and over several connections. Counts only, no timing assertions.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The responder, killed when dropped, and its socket file removed.
struct Responder {
    child: Child,
    socket: PathBuf,
}

impl Responder {
    fn start(name: &str) -> Responder {
        let socket = std::env::temp_dir().join(format!("fcgi-bench-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let mut child = Command::new(env!("CARGO_BIN_EXE_mpx_responder"))
            .arg(&socket)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting mpx_responder");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("reading stdout");
        assert_eq!(line.trim(), "ready");
        Responder { child, socket }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Runs `mux_load` and returns its JSON line.
fn mux_load(responder: &Responder, extra: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_mux_load"))
        .arg("--address")
        .arg(format!("unix:{}", responder.socket.display()))
        .args(["--script-filename", "/srv/hello", "--expect-body", "Hello, world!", "--warmup", "0"])
        .args(["--duration", "0", "--requests", "300"])
        .args(extra)
        .output()
        .expect("running mux_load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "mux_load failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
}

fn assert_clean(result: &serde_json::Value) {
    assert_eq!(result["total_errors"], 0, "{result}");
    assert!(result["requests"].as_u64().unwrap() >= 300, "{result}");
    assert!(result["cpu_us_per_req"].as_f64().unwrap() > 0.0, "{result}");
    assert!(result["req_per_s"].as_f64().unwrap() > 0.0, "{result}");
}

#[test]
fn mux_load_multiplexes_on_one_connection() {
    let responder = Responder::start("mpx");
    for mode in ["pool", "connection"] {
        let result = mux_load(
            &responder,
            &["--concurrency", "32", "--connections", "1", "--multiplexing", "force", "--mode", mode],
        );
        assert_clean(&result);
        assert_eq!(result["mode"], mode);
    }
}

#[test]
fn mux_load_over_many_connections() {
    let responder = Responder::start("many");
    let result = mux_load(&responder, &["--concurrency", "16", "--connections", "16", "--runtime", "multi"]);
    assert_clean(&result);
    assert_eq!(result["multiplexing"], "off");
}
