//! Which functions a one-shot `fcgi` runs: the start-up profile behind the link order.
//!
//! `fcgi get /ping`, `fcgi ping` and `fcgi --version` are each run once under
//! `valgrind --tool=callgrind`, against [`CannedResponder`] on a unix socket in a temp dir.
//! Every function callgrind saw execute is in the profile, by its symbol (mangled) name, as lld's
//! `--symbol-ordering-file` wants it. Callgrind counts instructions, so the profile does not depend
//! on timing or on the machine's load.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::bench::measure::run_to_end;

/// Longest one profiled run may take (valgrind is ~50× slower than the program).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The functions executed by the one-shot commands of `fcgi` at `exe`, by symbol name.
pub fn startup_functions(exe: &Path, valgrind: &Path) -> Result<BTreeSet<String>> {
    let dir =
        tempfile::Builder::new().prefix("fcgi-dist-profile-").tempdir().context("creating a temp dir")?;
    let socket = dir.path().join("canned.sock");
    let responder = CannedResponder::start(&socket)?;
    let socket_arg = socket.display().to_string();
    let docroot = dir.path().display().to_string();
    let runs: [(&str, Vec<&str>); 3] = [
        ("get", vec!["get", "/ping", "--socket", &socket_arg, "--docroot", &docroot]),
        ("ping", vec!["ping", "--socket", &socket_arg]),
        ("version", vec!["--version"]),
    ];
    let mut functions = BTreeSet::new();
    for (name, args) in runs {
        let out = dir.path().join(format!("{name}.callgrind"));
        let mut cmd = Command::new(valgrind);
        cmd.arg("--tool=callgrind")
            .arg("--demangle=no")
            .arg("--compress-strings=no")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(exe)
            .args(&args);
        run_to_end(dir.path(), name, &mut cmd, RUN_TIMEOUT, Duration::from_millis(20))?
            .check(&format!("fcgi {} under callgrind", args.join(" ")))?;
        let profile = std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
        let before = functions.len();
        functions.extend(executed_functions(&profile));
        if functions.len() == before && name != "version" {
            bail!("callgrind saw no function of `fcgi {}` that the other runs did not", args.join(" "));
        }
    }
    responder.stop()?;
    Ok(functions)
}

/// Function names from callgrind's output (`fn=NAME` lines with `--compress-strings=no`):
/// symbols only, without the `'2` callgrind appends to recursive calls, nor the `0x...` of code
/// without a symbol.
fn executed_functions(profile: &str) -> impl Iterator<Item = String> + '_ {
    profile.lines().filter_map(|line| line.strip_prefix("fn=")).filter_map(|name| {
        let name = match name.rsplit_once('\'') {
            Some((base, depth)) if depth.bytes().all(|b| b.is_ascii_digit()) => base,
            _ => name,
        };
        let symbol = !name.is_empty() && !name.starts_with("0x") && !name.starts_with('(');
        symbol.then(|| name.to_owned())
    })
}

/// A FastCGI responder that answers every request with `pong`: enough for the profiled commands
/// to run their whole request path, without a real server.
/// Dropping it without [`CannedResponder::stop`] (on an error) still ends its thread.
struct CannedResponder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl CannedResponder {
    fn start(socket: &PathBuf) -> Result<CannedResponder> {
        let listener = UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
        listener.set_nonblocking(true).context("making the responder's socket non-blocking")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream)?,
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(err) => return Err(err).context("accepting on the responder's socket"),
                }
            }
            Ok(())
        });
        Ok(CannedResponder { stop, thread: Some(thread) })
    }

    /// Ends the thread; its error, if it had one.
    fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => bail!("the canned responder panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for CannedResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// FastCGI record types the responder reads and writes.
const STDIN: u8 = 5;
const STDOUT: u8 = 6;
const END_REQUEST: u8 = 3;

/// Reads one request (records up to its empty STDIN record) and answers it.
fn answer(mut stream: UnixStream) -> Result<()> {
    stream.set_nonblocking(false).context("making a responder connection blocking")?;
    stream.set_read_timeout(Some(RUN_TIMEOUT)).context("setting a read timeout")?;
    let request_id = loop {
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).context("reading a record header from fcgi")?;
        let id = u16::from_be_bytes([header[2], header[3]]);
        let length = usize::from(u16::from_be_bytes([header[4], header[5]])) + usize::from(header[6]);
        let mut content = vec![0u8; length];
        stream.read_exact(&mut content).context("reading a record from fcgi")?;
        if header[1] == STDIN && header[4..6] == [0, 0] {
            break id;
        }
    };
    let body = b"Content-Type: text/plain\r\n\r\npong";
    let mut response = Vec::new();
    for (kind, content) in [(STDOUT, &body[..]), (STDOUT, &[][..]), (END_REQUEST, &[0u8; 8][..])] {
        let length = u16::try_from(content.len()).context("canned record too long")?;
        response.extend_from_slice(&[1, kind]);
        response.extend_from_slice(&request_id.to_be_bytes());
        response.extend_from_slice(&length.to_be_bytes());
        response.extend_from_slice(&[0, 0]);
        response.extend_from_slice(content);
    }
    stream.write_all(&response).context("answering fcgi")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callgrind_function_names() {
        let profile = "fn=_ZN4fcgi4main17h0123E\nfn=main'2\nfn=0x0000000000418f30\nfn=(below main)\n\
                       calls=1 0\nfn=it's'x\n";
        let names: Vec<String> = executed_functions(profile).collect();
        assert_eq!(names, ["_ZN4fcgi4main17h0123E", "main", "it's'x"]);
    }

    #[test]
    fn the_canned_responder_answers_one_request() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let responder = CannedResponder::start(&socket).unwrap();
        let mut stream = UnixStream::connect(&socket).unwrap();
        // BEGIN_REQUEST, empty PARAMS, empty STDIN, request id 7.
        let mut request = vec![1, 1, 0, 7, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        request.extend_from_slice(&[1, 4, 0, 7, 0, 0, 0, 0, 1, 5, 0, 7, 0, 0, 0, 0]);
        stream.write_all(&request).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        assert_eq!(&response[..8], &[1, STDOUT, 0, 7, 0, 32, 0, 0]);
        assert!(response.ends_with(&[1, END_REQUEST, 0, 7, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        responder.stop().unwrap();
    }
}
