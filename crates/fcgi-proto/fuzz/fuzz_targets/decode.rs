//! Fuzz target `decode`: feeds arbitrary bytes to the fcgi-proto decoder.
//!
//! The decoder must never panic, whatever the input: it returns complete records,
//! "need more", or a typed error. Run with `cargo xtask fuzz decode --time 60`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Placeholder until the decoder lands: the lead replaces this with a loop that
    // feeds `data` to the fcgi-proto decoder (whole, and split at arbitrary points).
    let _ = data;
});
