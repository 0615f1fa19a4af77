//! The process entry point on Linux with glibc: a C `main` that glibc's start-up calls directly
//! (the crate is `#![no_main]`), skipping Rust's own runtime start-up.
//!
//! That start-up prepares a stack-overflow message for the main thread: it asks glibc for the
//! main thread's stack bounds, which glibc finds by parsing /proc/self/maps line by line
//! (`pthread_getattr_np`: 44k instructions, four system calls), and maps an alternate signal
//! stack. For a one-shot `fcgi get`, 0.7 ms from exec to exit, that is 0.05 ms: measured in
//! 2,000 interleaved rounds, 0.667 ms without it against 0.717 ms with it (`cgi-fcgi`: 0.733 ms).
//!
//! What that start-up does that `fcgi` relies on is done here too:
//!
//! - SIGPIPE is ignored, so writing to a closed stdout (`fcgi get ... | head -1`) fails with
//!   EPIPE, which `output` treats as "the reader went away", instead of killing the process;
//! - descriptors 0, 1 and 2 are open (on /dev/null where the parent closed them), so that no
//!   socket or output file is ever given one of them and written to as if it were stdout;
//! - a panic prints its message and exits with 101;
//! - buffered standard output is flushed at exit.
//!
//! What is given up: a stack overflow ends in a plain SIGSEGV instead of the message
//! "thread 'main' has overflowed its stack", and panic messages name the thread `<unnamed>`
//! instead of `main`.
//!
//! The arguments still reach `std::env::args_os`: on glibc, std reads them in an `.init_array`
//! function, which glibc calls with argc and argv before `main`.

use std::ffi::{c_char, c_int};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, IntoRawFd};

// SAFETY: `main` is the symbol glibc's start-up calls, with this C signature. The crate is
// `#![no_main]` on this target, so no other `main` is defined.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    ignore_sigpipe();
    keep_standard_descriptors_open();
    let code = std::panic::catch_unwind(crate::run_main).unwrap_or(101);
    // Errors here are a closed or full stdout; the exit code already says how the run went.
    let _ = std::io::stdout().flush();
    std::process::exit(i32::from(code))
}

/// SIGPIPE to "ignore", as Rust's start-up sets it.
fn ignore_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_IGN installs no handler, so nothing runs in signal context; nothing else in
    // `fcgi` sets or relies on SIGPIPE's disposition.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Opens /dev/null on whichever of descriptors 0, 1 and 2 the parent left closed: `open` returns
/// the lowest free descriptor, so each /dev/null opened on one of them stays open, and the first
/// one above 2 (closed again) means all three are in use.
fn keep_standard_descriptors_open() {
    for _ in 0..3 {
        match File::options().read(true).write(true).open("/dev/null") {
            Ok(null) if null.as_raw_fd() <= 2 => {
                // Stays open for the life of the process, as that standard stream.
                let _ = null.into_raw_fd();
            }
            // Above 2 (dropped, so closed) or not openable: nothing more to do.
            _ => return,
        }
    }
}
