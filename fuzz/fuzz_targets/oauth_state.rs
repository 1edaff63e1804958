#![no_main]
//! `cargo fuzz run oauth_state --features fuzzing` (see `switchyard_fuzz::oauth_state`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::oauth_state(data));
