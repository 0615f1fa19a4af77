//! Fuzz target `cgi_head`: arbitrary bytes as a CGI response head.
//!
//! Checks: no panic; the incremental scanner fed the bytes in pieces (the first byte picks the
//! piece size) reaches the same outcome as parsing them whole; a parsed head's body offset is
//! within the input. Run with `cargo xtask fuzz cgi_head --time 60`.

#![no_main]

use fcgi_mux::cgi::{HeadParse, HeadScanner, parse_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else { return };
    let limit = 4096;
    let whole = parse_head(input, limit);
    if let Ok(HeadParse::Complete { body_offset, .. }) = &whole {
        assert!(*body_offset <= input.len());
    }
    let mut scanner = HeadScanner::new(limit);
    let mut seen = Vec::new();
    let mut outcome = Ok(HeadParse::Incomplete);
    for chunk in input.chunks(usize::from(piece).max(1)) {
        seen.extend_from_slice(chunk);
        outcome = scanner.parse(&seen);
        if !matches!(outcome, Ok(HeadParse::Incomplete)) {
            break;
        }
    }
    match (&whole, &outcome) {
        (Ok(HeadParse::Complete { head: a, body_offset: x }), Ok(HeadParse::Complete { head: b, body_offset: y })) => {
            assert_eq!((a, x), (b, y));
        }
        (Err(_), Err(_)) | (Ok(HeadParse::Incomplete), Ok(HeadParse::Incomplete)) => {}
        (a, b) => panic!("whole {a:?} vs pieces {b:?}"),
    }
});
