//! Fuzz target: `caltrail_fuzz::wmi_export` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| caltrail_fuzz::wmi_export(data));
