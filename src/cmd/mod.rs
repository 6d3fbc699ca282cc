//! One module per command.

pub mod deliver;
pub mod deliver_mbox;
