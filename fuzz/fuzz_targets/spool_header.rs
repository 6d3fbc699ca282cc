#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spool::fuzz::header_file_never_panics(data));
