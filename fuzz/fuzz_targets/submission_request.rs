#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_main::fuzz::submission_request_never_panics(data));
