//! Fuzz target: see `pgwarm::fuzzing::scram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgwarm::fuzzing::scram(data));
