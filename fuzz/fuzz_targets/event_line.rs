//! Fuzz target: `caltrail_fuzz::event_line` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| caltrail_fuzz::event_line(data));
