//! One module per command.

pub mod deliver;
pub mod deliver_mbox;
pub mod queue;
pub mod queue_run;
pub mod submit;
