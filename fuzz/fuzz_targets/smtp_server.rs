#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| smtp::fuzz::session_never_panics(data));
