#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailstore::fuzz::mbox_reader_never_panics(data));
