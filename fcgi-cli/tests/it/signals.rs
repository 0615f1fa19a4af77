//! Signals and file modes: SIGINT, SIGTERM and SIGHUP sent to a real `fcgi get -o FILE` in
//! the middle of a download remove the temporary file and exit 130 / 143 / 129; new files get
//! `0666 & ~umask`, replaced files keep their mode; `bench` reports on SIGTERM as on Ctrl-C.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::*;

/// Reads the request, sends a head, then 4 KiB of body every 10 ms for a minute.
fn slow_server() -> FakeServer {
    FakeServer::start(|mut stream| {
        read_request(&mut stream);
        if stream.write_all(&record(STDOUT, 1, b"Content-Type: text/plain\r\n\r\n")).is_err() {
            return;
        }
        let chunk = record(STDOUT, 1, &[b'x'; 4096]);
        for _ in 0..6000 {
            if stream.write_all(&chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

/// Waits until a temporary file in `dir` exists and has grown past 8 KiB.
fn wait_for_growing_part(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let grown = part_files(dir)
            .iter()
            .any(|name| std::fs::metadata(dir.join(name)).is_ok_and(|meta| meta.len() > 8192));
        if grown {
            return;
        }
        assert!(Instant::now() < deadline, "no growing .part file in {}", dir.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal_mid_download(signal: Signal, expected: i32, name: &str) {
    let server = slow_server();
    let dir = temp_dir();
    let file = dir.path().join("out.bin");
    let mut child = std_fcgi()
        .args(["get", "/x.php", "-o"])
        .arg(&file)
        .arg("--socket")
        .arg(&server.path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fcgi get");
    wait_for_growing_part(dir.path());
    kill(Pid::from_raw(child.id() as i32), signal).expect("send the signal");
    let status = wait_bounded(&mut child);
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    assert_eq!(status.code(), Some(expected), "{status:?}: {stderr}");
    assert!(part_files(dir.path()).is_empty(), "left behind: {:?}", part_files(dir.path()));
    assert!(!file.exists(), "no destination file");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("fcgi: interrupted ({name}); removed the partial "))
            && lines[0].ends_with(".part"),
        "{stderr}"
    );
}

#[test]
fn sigterm_mid_download_removes_the_partial_file() {
    signal_mid_download(Signal::SIGTERM, 143, "SIGTERM");
}

#[test]
fn sigint_mid_download_removes_the_partial_file() {
    signal_mid_download(Signal::SIGINT, 130, "SIGINT");
}

#[test]
fn sighup_mid_download_removes_the_partial_file() {
    signal_mid_download(Signal::SIGHUP, 129, "SIGHUP");
}

#[test]
fn a_signal_keeps_the_old_file() {
    let server = slow_server();
    let dir = temp_dir();
    let file = dir.path().join("out.bin");
    std::fs::write(&file, "old content").unwrap();
    let mut child = std_fcgi()
        .args(["get", "/x.php", "-s", "-o"])
        .arg(&file)
        .arg("--socket")
        .arg(&server.path)
        .spawn()
        .expect("spawn fcgi get");
    wait_for_growing_part(dir.path());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("send SIGTERM");
    assert_eq!(wait_bounded(&mut child).code(), Some(143));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "old content");
    assert!(part_files(dir.path()).is_empty(), "{:?}", part_files(dir.path()));
}

/// `fcgi get /x.php -o FILE --socket SOCKET` under `umask MASK` (through sh).
fn get_under_umask(mask: &str, file: &Path, socket: &Path) -> std::process::Output {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!("umask {mask}; exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(["get", "/x.php", "-o"])
        .arg(file)
        .arg("--socket")
        .arg(socket)
        .env_remove("FCGI_ADDRESS")
        .env_remove("FCGI_DOCROOT");
    run(&mut assert_cmd::Command::from_std(sh))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

#[test]
fn new_files_get_the_umask_and_replaced_files_keep_their_mode() {
    let server = FakeServer::answer(b"Content-Type: text/plain\r\n\r\nbody", true);
    let dir = temp_dir();
    for (mask, expected) in [("077", 0o600), ("022", 0o644), ("002", 0o664)] {
        let file = dir.path().join(format!("new-{mask}.txt"));
        let output = get_under_umask(mask, &file, &server.path);
        assert_code(&output, 0);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "body");
        assert_eq!(mode(&file), expected, "umask {mask}: {:o}", mode(&file));
    }
    // A replaced file keeps its mode, whatever the umask.
    let file = dir.path().join("old.txt");
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let output = get_under_umask("077", &file, &server.path);
    assert_code(&output, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "body");
    assert_eq!(mode(&file), 0o640, "{:o}", mode(&file));
}

/// Answers every request on every connection at once (STDOUT "ok", END_REQUEST), whatever its
/// id, until the client closes.
fn quick_server() -> FakeServer {
    FakeServer::start(|mut stream: UnixStream| {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            while buffer.len() >= 8 {
                let kind = buffer[1];
                let id = u16::from_be_bytes([buffer[2], buffer[3]]);
                let len = usize::from(u16::from_be_bytes([buffer[4], buffer[5]]));
                let total = 8 + len + usize::from(buffer[6]);
                if buffer.len() < total {
                    break;
                }
                buffer.drain(..total);
                if kind == STDIN && len == 0 {
                    let mut reply = record(STDOUT, id, b"Content-Type: text/plain\r\n\r\nok");
                    reply.extend_from_slice(&record(STDOUT, id, b""));
                    reply.extend_from_slice(&end_request(id, 0, 0));
                    if stream.write_all(&reply).is_err() {
                        return;
                    }
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
    })
}

#[test]
fn bench_reports_on_sigterm_as_on_ctrl_c() {
    let server = quick_server();
    let mut child = std_fcgi()
        .args(["bench", "/x.php", "-D", "60s", "-c", "2", "--json", "--socket"])
        .arg(&server.path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fcgi bench");
    std::thread::sleep(Duration::from_millis(1500));
    let sent = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("send SIGTERM");
    let status = wait_bounded(&mut child);
    assert!(sent.elapsed() < Duration::from_secs(5), "took {:?} after SIGTERM", sent.elapsed());
    let mut stdout = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("read stdout");
    assert_eq!(status.code(), Some(0), "{status:?}: {stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["stopped"], "interrupted", "{doc}");
    assert!(doc["completed"].as_u64().unwrap() > 10, "{doc}");
}

#[test]
fn without_a_temporary_file_signals_keep_their_default_effect() {
    // Standard output and -o /dev/null hold no temporary file: nothing is caught, SIGTERM
    // kills `fcgi` as it would any process.
    use std::os::unix::process::ExitStatusExt;
    let server = slow_server();
    for output in [None, Some("/dev/null")] {
        let mut cmd = std_fcgi();
        cmd.args(["get", "/x.php", "-s", "--socket"]).arg(&server.path).stdout(std::process::Stdio::null());
        if let Some(path) = output {
            cmd.args(["-o", path]);
        }
        let mut child = cmd.spawn().expect("spawn fcgi get");
        std::thread::sleep(Duration::from_millis(300));
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("send SIGTERM");
        let status = wait_bounded(&mut child);
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32), "{output:?}: {status:?}");
    }
}
