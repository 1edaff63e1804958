#![no_main]
//! `cargo fuzz run json_document --features fuzzing` (see `switchyard_fuzz::json_document`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::json_document(data));
