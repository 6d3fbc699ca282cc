//! The fuzz target of this crate on its committed seeds and past failures
//! (fuzz/replay.rs).

#[path = "../../fuzz/replay.rs"]
mod replay;

#[test]
fn mbox_reader() {
    replay::replay("mbox_reader", mailstore::fuzz::mbox_reader_never_panics);
}
