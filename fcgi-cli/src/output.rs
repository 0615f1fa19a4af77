//! Where the response body goes: standard output, or a file written atomically, or a device
//! or FIFO written directly; plus the progress bar. And the two things every command writes the
//! same way: one result on standard output ([`print`], [`print_json`]), and the `--json`
//! document of a command that failed ([`error_document`]).
//!
//! A regular file (or a path that does not exist yet) is written to a temporary file in the
//! same directory and renamed over the destination only when the whole response arrived:
//! an error never leaves a half-written file. Anything else (`/dev/null`, a FIFO, a
//! terminal) is opened and written directly: renaming over `/dev/null` as root would replace
//! the device with a regular file. While such a temporary file exists, SIGINT, SIGTERM and
//! SIGHUP remove it and end the command ([`Interrupts`]).

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::exit::{Exit, Failure};

/// The body's destination.
pub enum Sink {
    /// Standard output; `closed` once the reader went away (`fcgi get ... | head -1`).
    Stdout { closed: bool },
    /// A device, FIFO or other non-regular file, written in place.
    Direct { file: File, path: PathBuf },
    /// A temporary file renamed over `dest` by [`Sink::finish`].
    Atomic { temp: tempfile::NamedTempFile, dest: PathBuf },
}

impl Sink {
    /// Opens the destination: standard output for `None` or `-`.
    pub fn open(output: Option<&Path>) -> Result<Sink, Failure> {
        let Some(path) = output.filter(|p| p.as_os_str() != "-") else {
            return Ok(Sink::Stdout { closed: false });
        };
        let write_error =
            |err: io::Error| Failure::new(Exit::Write, format!("cannot write {}: {err}", path.display()));
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_file() => {
                if meta.is_dir() {
                    return Err(Failure::new(
                        Exit::Write,
                        format!("cannot write {}: it is a directory", path.display()),
                    ));
                }
                let file = OpenOptions::new().write(true).open(path).map_err(write_error)?;
                Ok(Sink::Direct { file, path: path.to_path_buf() })
            }
            Ok(_) | Err(_) => {
                // A symbolic link to a regular file: replace the file it points to, not the
                // link (as `curl -o` and `>` do).
                let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
                let resolved = if is_link { std::fs::canonicalize(path).ok() } else { None };
                let path = resolved.as_deref().unwrap_or(path);
                let dir = match path.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
                // Mode 0666 less the umask, as `open(2)` creates any file (0644 under umask 022,
                // 0600 under 077); a replaced file gets its old mode back in `finish`.
                let temp = tempfile::Builder::new()
                    .prefix(".fcgi-")
                    .suffix(".part")
                    .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                    .tempfile_in(dir)
                    .map_err(|err| {
                        // tempfile's message names the temporary file, which never existed.
                        let why = match err.kind() {
                            io::ErrorKind::NotFound => format!("no such directory {}", dir.display()),
                            io::ErrorKind::PermissionDenied => {
                                format!("cannot create a file in {}: permission denied", dir.display())
                            }
                            _ => err.to_string(),
                        };
                        Failure::new(Exit::Write, format!("cannot write {}: {why}", path.display()))
                    })?;
                Ok(Sink::Atomic { temp, dest: path.to_path_buf() })
            }
        }
    }

    /// True when [`Sink::open`] would write `output` through a temporary file (a regular file,
    /// or a name that does not exist yet), not standard output or a device in place.
    pub fn is_atomic(output: Option<&Path>) -> bool {
        output.filter(|p| p.as_os_str() != "-").is_some_and(|path| match std::fs::metadata(path) {
            Ok(meta) => meta.is_file(),
            Err(_) => true,
        })
    }

    /// The temporary file of an atomic write, while it exists.
    pub fn temp_path(&self) -> Option<PathBuf> {
        match self {
            Sink::Atomic { temp, .. } => Some(temp.path().to_path_buf()),
            _ => None,
        }
    }

    /// True when the body goes to a terminal.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Sink::Stdout { .. }) && io::stdout().is_terminal()
    }

    /// Writes body bytes. A closed standard output is not an error: the rest is dropped.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Failure> {
        match self {
            Sink::Stdout { closed: true } => Ok(()),
            Sink::Stdout { closed } => match io::stdout().lock().write_all(data) {
                Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                    *closed = true;
                    Ok(())
                }
                result => result
                    .map_err(|err| Failure::new(Exit::Write, format!("cannot write standard output: {err}"))),
            },
            Sink::Direct { file, path } => file
                .write_all(data)
                .map_err(|err| Failure::new(Exit::Write, format!("cannot write {}: {err}", path.display()))),
            Sink::Atomic { temp, dest } => temp
                .write_all(data)
                .map_err(|err| Failure::new(Exit::Write, format!("cannot write {}: {err}", dest.display()))),
        }
    }

    /// True once standard output was closed by its reader.
    pub fn is_closed(&self) -> bool {
        matches!(self, Sink::Stdout { closed: true })
    }

    /// Completes the output: flushes, and moves an atomic file into place.
    pub fn finish(self) -> Result<(), Failure> {
        match self {
            Sink::Stdout { closed: true } => Ok(()),
            Sink::Stdout { closed: false } => match io::stdout().lock().flush() {
                Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
                    Err(Failure::new(Exit::Write, format!("cannot write standard output: {err}")))
                }
                _ => Ok(()),
            },
            Sink::Direct { mut file, path } => file
                .flush()
                .map_err(|err| Failure::new(Exit::Write, format!("cannot write {}: {err}", path.display()))),
            Sink::Atomic { temp, dest } => {
                let fail = |err: io::Error| {
                    Failure::new(Exit::Write, format!("cannot write {}: {err}", dest.display()))
                };
                temp.as_file().sync_all().map_err(fail)?;
                // A replaced file keeps its mode; a new one keeps 0666 & ~umask from `open`.
                if let Ok(meta) = std::fs::metadata(&dest) {
                    temp.as_file().set_permissions(meta.permissions()).map_err(fail)?;
                }
                temp.persist(&dest).map_err(|err| fail(err.error))?;
                Ok(())
            }
        }
    }
}

/// Writes a command's one result (a report, a JSON document, the man page) to standard
/// output: all of it, flushed, and a reader that went away is not an error (see [`Sink`]).
pub fn print(result: &[u8]) -> Result<(), Failure> {
    let mut sink = Sink::open(None)?;
    sink.write(result)?;
    sink.finish()
}

/// Writes a `--json` document as the command's result: one line on standard output.
pub fn print_json(document: &Value) -> Result<(), Failure> {
    print(format!("{document}\n").as_bytes())
}

/// The `--json` document of a command that failed without a result (docs/CLI.md, "JSON
/// output"): its `schema`, the `fields` that say what was asked (e.g. `path`), and
/// `"error": {"kind", "exit_code", "message"}` with the exit code's name from the table.
pub fn error_document(schema: &str, fields: &[(&str, Value)], exit: Exit, message: &str) -> Value {
    let mut document = serde_json::Map::new();
    document.insert("schema".into(), json!(schema));
    for (name, value) in fields {
        document.insert((*name).into(), value.clone());
    }
    document.insert("exit_code".into(), json!(exit.code()));
    document
        .insert("error".into(), json!({ "kind": exit.kind(), "exit_code": exit.code(), "message": message }));
    Value::Object(document)
}

/// The schema of a failure's `--json` document when the command's own layout cannot be
/// filled in: `dump --json` (whose last line it is), and a command line that did not parse.
pub const ERROR_SCHEMA: &str = "fcgi.error/1";

/// The `--json` schema of each command (`None`: it has no `--json`).
pub fn json_schema(command: &str) -> Option<&'static str> {
    Some(match command {
        "get" | "post" | "request" => "fcgi.response/1",
        "probe" => "fcgi.probe/1",
        "ping" => "fcgi.ping/1",
        "status" => "fcgi.status/1",
        "bench" => "fcgi.bench/1",
        "dump" => ERROR_SCHEMA,
        _ => return None,
    })
}

/// SIGINT, SIGTERM and SIGHUP, caught while a command writes a file through a temporary
/// file, so that the temporary file is removed and the exit code is 128 + the signal's number
/// (130, 143, 129), as a shell reports a process killed by it.
///
/// No handler is installed (so nothing runs in signal context, and no runtime pays for tokio's
/// signal driver): the three signals are blocked in the calling thread, and so in every thread
/// it starts afterwards (`fcgi` starts none before), and one thread waits for them with
/// `sigwait(2)`. Dropping this restores the calling thread's mask: a signal after that has its
/// default effect. Commands that write no file never create one.
pub struct Interrupts {
    signals: nix::sys::signal::SigSet,
    received: tokio::sync::oneshot::Receiver<nix::sys::signal::Signal>,
}

impl Interrupts {
    /// Starts catching the three signals; `None` when that is impossible (they then have
    /// their default effect).
    pub fn catch() -> Option<Interrupts> {
        use nix::sys::signal::{SigSet, Signal};
        let mut signals = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            signals.add(signal);
        }
        signals.thread_block().ok()?;
        let (sender, received) = tokio::sync::oneshot::channel();
        let waiter = std::thread::Builder::new().name("fcgi-signals".into()).spawn(move || {
            if let Ok(signal) = signals.wait() {
                let _ = sender.send(signal);
            }
        });
        if waiter.is_err() {
            let _ = signals.thread_unblock();
            return None;
        }
        Some(Interrupts { signals, received })
    }

    /// Waits for one of the signals (`fcgi exporter` shuts down gracefully on it); `None` when
    /// the waiting thread ended without one.
    pub async fn wait(&mut self) -> Option<nix::sys::signal::Signal> {
        (&mut self.received).await.ok()
    }

    /// Runs `work` to its end, or until a signal arrives: then `work` is dropped (with the
    /// temporary file it holds) and the signal returned.
    pub async fn guard<T>(
        interrupts: &mut Option<Interrupts>,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Interrupted> {
        let Some(this) = interrupts else { return Ok(work.await) };
        let mut work = std::pin::pin!(work);
        tokio::select! {
            biased;
            signal = &mut this.received => match signal {
                Ok(signal) => Err(Interrupted(signal)),
                // The waiting thread ended without a signal: nothing more to wait for.
                Err(_) => Ok(work.await),
            },
            done = &mut work => Ok(done),
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        let _ = self.signals.thread_unblock();
    }
}

/// A signal that ended a command; see [`Interrupts`].
#[derive(Copy, Clone, Debug)]
pub struct Interrupted(pub nix::sys::signal::Signal);

impl Interrupted {
    /// The failure to report: exit 128 + the signal's number, and what was removed.
    pub fn failure(self, removed: Option<&Path>) -> Failure {
        use nix::sys::signal::Signal;
        let (exit, name) = match self.0 {
            Signal::SIGHUP => (Exit::Hangup, "SIGHUP"),
            Signal::SIGTERM => (Exit::Terminated, "SIGTERM"),
            _ => (Exit::Interrupted, "SIGINT"),
        };
        let message = match removed {
            Some(part) => format!("interrupted ({name}); removed the partial {}", part.display()),
            None => format!("interrupted ({name})"),
        };
        Failure::new(exit, message)
    }
}

/// A byte counter on stderr, shown only when stderr is a terminal and the body is not
/// going to that same terminal.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A progress bar when it makes sense; `length` from Content-Length when known.
    pub fn new(enabled: bool, length: Option<u64>) -> Progress {
        if !enabled || !io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = match length {
            Some(len) => ProgressBar::new(len).with_style(
                ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        Progress(Some(bar))
    }

    /// Counts `n` more bytes.
    pub fn advance(&self, n: usize) {
        if let Some(bar) = &self.0 {
            bar.inc(n as u64);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
