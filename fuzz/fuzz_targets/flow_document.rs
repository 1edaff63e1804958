#![no_main]
//! `cargo fuzz run flow_document --features fuzzing` (see `switchyard_fuzz::flow_document`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::flow_document(data));
