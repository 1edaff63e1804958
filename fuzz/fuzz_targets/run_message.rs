#![no_main]
//! `cargo fuzz run run_message --features fuzzing` (see `switchyard_fuzz::run_message`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::run_message(data));
