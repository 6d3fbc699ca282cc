#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| smtp::fuzz::address_never_panics(data));
