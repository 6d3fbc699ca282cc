//! The fuzz target of this crate on its committed seeds and past failures
//! (fuzz/replay.rs).

#[path = "../../fuzz/replay.rs"]
mod replay;

#[test]
fn spool_header() {
    replay::replay("spool_header", spool::fuzz::header_file_never_panics);
}
