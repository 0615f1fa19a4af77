//! Fuzz target `machine`: arbitrary server bytes into fcgi-mux's connection machine.
//!
//! The first byte chooses multiplexing (bit 0), which request is cancelled and when (bits 1-3),
//! and the size of the pieces the rest arrives in (bits 4-7). A write fails three pieces after
//! the cancel (whether any byte of it went out: bit 0 of that piece). Between pieces time
//! moves on and consumed body bytes are released. Checks: no panic; every request gets at most one End and
//! exactly one Released, none after its Released; once closed, every request was released;
//! the machine never writes a partial record. Run with
//! `cargo xtask fuzz machine --time 60` (inputs up to 70,000 bytes by default: a 65535-byte
//! record with padding fits).

#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fcgi_mux::machine::{ConnectionMachine, Event, RequestHead, RequestKey, StartOptions};
use fcgi_mux::{ConnectionConfig, Multiplexing};
use fcgi_proto::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else { return };
    let mut config = ConnectionConfig::default().keep_conn(true).response_buffer(4096).stray_limit(16 * 1024);
    if control & 1 == 1 {
        config = config.multiplexing(Multiplexing::Force).max_concurrent_requests(4);
    }
    let cancel_at = usize::from((control >> 1) & 0b111);
    let write_fails_at = (cancel_at + 3) % 8;
    let piece = usize::from(control >> 4).max(1) * 97;
    let mut now = Instant::now();
    let mut machine = ConnectionMachine::new(config.clone(), now);
    let mut keys: Vec<RequestKey> = Vec::new();
    for body in [&b""[..], b"body", b"0123456789"] {
        let head = RequestHead::new([("SCRIPT_NAME", "/f")], body.len() as u64, &config).unwrap();
        let key = machine.start(head, body.len() as u64, StartOptions::default(), now);
        if !body.is_empty() {
            machine.send_body(key, Bytes::copy_from_slice(body), now);
        }
        machine.finish_body(key, now);
        keys.push(key);
    }
    let (mut ended, mut released) = (HashSet::new(), HashSet::new());
    let mut wire = BytesMut::new();
    for (n, chunk) in input.chunks(piece).enumerate() {
        wire.clear();
        machine.poll_transmit(&mut wire, now);
        let mut decoder = Decoder::new();
        while let Some(_record) = decoder.decode(&mut wire).expect("the machine writes valid records") {}
        assert!(wire.is_empty(), "a partial record was written");
        if n == cancel_at {
            machine.cancel(keys[n % keys.len()], now);
        }
        if n == write_fails_at {
            machine.handle_write_error(std::io::ErrorKind::BrokenPipe.into(), chunk[0] & 1 == 1, now);
        }
        machine.receive(chunk, now);
        now += Duration::from_millis(u64::from(chunk[0]) * 40);
        machine.handle_timeout(now);
        while let Some(event) = machine.poll_event() {
            match event {
                Event::Body { key, data } => {
                    assert!(!released.contains(&key));
                    machine.release(key, data.len());
                }
                Event::End { key, .. } => {
                    assert!(!released.contains(&key), "End after Released");
                    assert!(ended.insert(key), "two Ends");
                }
                Event::Released { key } => assert!(released.insert(key), "two Released"),
                _ => {}
            }
        }
    }
    machine.handle_eof(now);
    while let Some(event) = machine.poll_event() {
        if let Event::Released { key } = event {
            assert!(released.insert(key), "two Released");
        }
    }
    if machine.is_closed() {
        assert_eq!(released.len(), keys.len(), "a closed machine released every request");
    }
});
