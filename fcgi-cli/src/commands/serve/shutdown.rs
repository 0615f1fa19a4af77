//! SIGTERM and SIGINT: the first one starts a graceful shutdown (stop accepting, let requests
//! in flight finish within `--shutdown-timeout`), a second one ends the process at once.
//!
//! The signals are blocked in the main thread before the runtime starts (its threads inherit
//! the mask) and waited for with sigwait(2) in a thread of their own, as `-o FILE` does
//! (`output::Interrupts`): no signal handler, no `unsafe`, and tokio's `signal` feature stays
//! off for the other commands.

use nix::sys::signal::{SigSet, Signal};
use tokio::sync::watch;

/// The signals, caught.
pub struct Signals {
    /// Becomes `Some(signal)` at the first signal.
    pub received: watch::Receiver<Option<Signal>>,
}

impl Signals {
    /// Blocks SIGTERM and SIGINT in the calling thread and starts the waiting thread. Call it
    /// before starting any other thread.
    pub fn catch() -> std::io::Result<Signals> {
        let mut signals = SigSet::empty();
        signals.add(Signal::SIGINT);
        signals.add(Signal::SIGTERM);
        signals.thread_block().map_err(std::io::Error::from)?;
        let (sender, received) = watch::channel(None);
        std::thread::Builder::new().name("fcgi-signals".into()).spawn(move || {
            let Ok(first) = signals.wait() else { return };
            eprintln!("fcgi serve: {first}: shutting down (a second signal exits at once)");
            let _ = sender.send(Some(first));
            if let Ok(second) = signals.wait() {
                eprintln!("fcgi serve: {second} again: exiting now");
                std::process::exit(128 + second as i32);
            }
        })?;
        Ok(Signals { received })
    }
}

/// Resolves once a shutdown was asked for.
pub async fn requested(mut received: watch::Receiver<Option<Signal>>) {
    let _ = received.wait_for(Option::is_some).await;
}
