#![no_main]
//! `cargo fuzz run mcp_message --features fuzzing` (see `switchyard_fuzz::mcp_message`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::mcp_message(data));
