//! Mail storage for Sluice: Maildir (writer and reader, Maildir++ folders and
//! quota), mbox (reader for mboxo/mboxrd/mboxcl/mboxcl2 and an appender) and
//! the mailbox locks mail readers take (dotlock, fcntl, flock).
//!
//! Durable publishing (stage, data barrier, rename, directory barrier) comes
//! from the `durable` crate, so Maildir deliveries share group commits with
//! whatever else the caller commits.

pub mod error;
pub mod lock;
pub mod maildir;
pub mod mbox;
mod sys;

pub use error::{Error, Result};
