#![no_main]
//! `cargo fuzz run delivery_id --features fuzzing` (see `switchyard_fuzz::delivery_id`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::delivery_id(data));
