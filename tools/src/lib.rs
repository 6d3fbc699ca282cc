//! Sluice's extra tools: `convert2maildir` (mbox → Maildir migration, see
//! [`convert`]) and the `sluice-load` generator.

pub mod convert;
pub mod load;
