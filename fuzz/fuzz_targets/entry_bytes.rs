//! Fuzz target: `caltrail_fuzz::entry_bytes` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| caltrail_fuzz::entry_bytes(data));
