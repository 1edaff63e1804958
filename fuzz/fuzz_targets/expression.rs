#![no_main]
//! `cargo fuzz run expression --features fuzzing` (see `switchyard_fuzz::expression`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::expression(data));
