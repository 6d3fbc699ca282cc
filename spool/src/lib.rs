//! Sluice's spool: Exim-style message IDs, the 62-way hashed queue
//! directory, and durable, group-committed entry of messages.
//!
//! - [`id`]: message IDs (Exim 4.97's long form and the classic one) and
//!   their per-process generator;
//! - [`layout`]: where each file of a message lives;
//! - [`header_file`]: the `-H` file (envelope, recipient state, headers);
//! - [`journal`]: the `-J` delivery journal;
//! - [`queue`]: entering, reading, listing, counting, cleaning;
//! - [`count`]: the remembered per-directory counts behind [`Queue::count`];
//! - [`locked`]: the per-message lock and recording of outcomes.
//!
//! Which files exist in each state of a message (see [`queue`] and
//! [`locked`] for what a crash at each step leaves; docs/spool-format.md
//! has the whole table, rewrites included):
//!
//! | state                         | `-D.tmp`/`-H.tmp` | `-D` | `-H` | `-J` | visible |
//! |-------------------------------|-------------------|------|------|------|---------|
//! | being written                 | yes               |      |      |      | no      |
//! | between the two renames       |                   | yes  |      |      | no      |
//! | queued                        |                   | yes  | yes  |      | yes     |
//! | being delivered               |                   | yes  | yes  | yes  | yes     |
//! | being removed                 |                   | yes  |      | yes  | no      |
//!
//! The crate knows nothing of SMTP, routing or Maildir: the binary builds
//! envelopes and decides where the spool lives, and passes a root path and
//! [`QueueOptions`].
#![deny(unsafe_code)]

pub mod count;
pub mod error;
pub mod fuzz;
pub mod header_file;
pub mod id;
pub mod journal;
pub mod layout;
pub mod locked;
pub mod queue;
pub mod sys;

pub use durable::Durability;
pub use error::{Error, Result};
pub use header_file::{
    Caller, Diagnosis, DsnNotify, DsnRet, Envelope, Header, HeaderFile, HostAddress, RcptState,
    Recipient, Report, Timestamp, split_message,
};
pub use id::{IdFormat, IdGenerator, MessageId};
pub use layout::Layout;
pub use locked::{Finished, LockedMessage, RcptOutcome};
pub use queue::{Body, Draft, Entry, Messages, Queue, QueueOptions, StagedMessage, UnsortedIds};
