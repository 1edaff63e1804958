#![no_main]
//! `cargo fuzz run cursor --features fuzzing` (see `switchyard_fuzz::cursor`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::cursor(data));
