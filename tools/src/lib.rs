//! Sluice's extra tools: `convert2maildir` (mbox → Maildir migration, see
//! [`convert`]) and the `sluice-load` generator.

#![forbid(unsafe_code)]

pub mod convert;
pub mod load;
