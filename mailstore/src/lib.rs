//! Mail storage for Sluice: Maildir (writer and reader, Maildir++ folders and
//! quota), mbox (reader for mboxo/mboxrd/mboxcl/mboxcl2 and an appender) and
//! the mailbox locks mail readers take (dotlock, fcntl, flock).
//!
//! Durable publishing (stage, data barrier, rename, directory barrier) comes
//! from the `durable` crate, so Maildir deliveries share group commits with
//! whatever else the caller commits.

// unsafe only in sys.rs (libc calls rustix does not wrap) and in the one
// function that maps a locked mbox (`mbox::window::map`).
#![deny(unsafe_code)]

pub mod error;
pub mod fuzz;
pub mod lock;
pub mod maildir;
pub mod mbox;
#[allow(unsafe_code)]
mod sys;
pub mod time;

pub use error::{Error, Result};
