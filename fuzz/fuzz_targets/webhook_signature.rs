#![no_main]
//! `cargo fuzz run webhook_signature --features fuzzing` (see `switchyard_fuzz::webhook_signature`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::webhook_signature(data));
