//! The mbox transport: the message appended, with a `From_` line, under the
//! configured mailbox locks; all or nothing (a failed append is cut back).
//! Used by the queue's deliveries and `sluice deliver --mbox`.
//!
//! An append cannot be found again after a crash ([`Recovery::AtLeastOnce`]):
//! the agent records an intent before it starts, and a recipient whose
//! append was in flight gets it again.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use mailstore::lock::LockOptions;
use mailstore::mbox::{AppendOptions, Appended, Appender, Variant};

use super::Recovery;

/// How mboxes are appended to.
#[derive(Debug, Clone)]
pub struct MboxTransport {
    pub variant: Variant,
    pub locks: LockOptions,
}

impl MboxTransport {
    pub const RECOVERY: Recovery = Recovery::AtLeastOnce;

    /// Appends `message` from `sender` to the mbox at `path` (created with
    /// `owner` when missing). The result carries notices worth a log line
    /// (a stale lock taken over, naming its dead holder).
    pub fn append(
        &self,
        path: &Path,
        owner: Option<(u32, u32)>,
        sender: &str,
        message: impl Read,
    ) -> Result<Appended, mailstore::Error> {
        let opts = AppendOptions {
            variant: self.variant,
            locks: self.locks.clone(),
            owner,
            ..AppendOptions::default()
        };
        Appender::new(opts).append(path, sender, SystemTime::now(), message)
    }
}
