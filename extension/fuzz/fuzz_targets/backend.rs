//! Fuzz target: see `pgwarm::fuzzing::backend_messages`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgwarm::fuzzing::backend_messages(data));
