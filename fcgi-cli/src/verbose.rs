//! `-v` for the commands whose requests are built inside shared code (`ping`, `status`,
//! `probe`): set once by `main` from the command's flag, read where the request is sent
//! ([`crate::commands::exchange::send`], `probe`). `get`/`post`/`request`, `dump` and `bench`
//! print their own `-v` lines from the request they built (with the dropped headers).

use std::io::Write;
use std::sync::OnceLock;

use bytes::Bytes;
use fcgi_mux::{Direction, Observer, RecordEvent};

use crate::records::{self, Way};

/// `Some(show_secrets)` once `-v` was given.
static VERBOSE: OnceLock<bool> = OnceLock::new();

/// Turns `-v` on for this process.
pub fn enable(show_secrets: bool) {
    let _ = VERBOSE.set(show_secrets);
}

/// With `-v`: prints the server and the parameters about to be sent, and returns the
/// observer printing every record both ways; `None` without `-v`.
pub fn announce(address: &dyn std::fmt::Display, params: &[(Bytes, Bytes)]) -> Option<Observer> {
    let show_secrets = *VERBOSE.get()?;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "* server {address}");
    for (name, value) in params {
        let name = String::from_utf8_lossy(name);
        let _ = writeln!(err, "* param {name}={}", records::shown_value(&name, value, show_secrets));
    }
    Some(record_printer(show_secrets))
}

/// The observer that prints one line per record on stderr (`->` sent, `<-` received).
pub fn record_printer(show_secrets: bool) -> Observer {
    Observer::new(move |event: &RecordEvent<'_>| {
        let way = match event.direction {
            Direction::Sent => Way::Sent,
            Direction::Received => Way::Received,
        };
        eprintln!("{}", records::line(way, &event.header, event.record, show_secrets));
    })
}
