//! Fuzz target: see `pgwarm::fuzzing::relay`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgwarm::fuzzing::relay(data));
