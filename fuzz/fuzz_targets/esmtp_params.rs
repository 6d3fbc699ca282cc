#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| smtp::fuzz::esmtp_params_never_panics(data));
