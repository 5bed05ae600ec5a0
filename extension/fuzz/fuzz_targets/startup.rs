//! Fuzz target: see `pgwarm::fuzzing::startup_packet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgwarm::fuzzing::startup_packet(data));
