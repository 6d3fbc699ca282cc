//! One module per command.

pub mod deliver;
pub mod deliver_mbox;
pub mod giveup;
pub mod local_sender;
pub mod log_check;
pub mod queue;
pub mod queue_run;
pub mod sendmail_args;
pub mod stats;
pub mod submit;

/// A command's failure: its exit code (sysexits) and the one line said on
/// stderr.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}
