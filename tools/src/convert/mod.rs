//! `convert2maildir`: a parallel, verified, resumable mbox → Maildir
//! migration that runs while mail keeps arriving.
//!
//! - [`discover`]: which mboxes, and which Maildir each goes to;
//! - [`run`]: the pipeline (lock, map, split, stage, group commit, verify);
//! - [`manifest`]: what earlier runs converted (resume, idempotence);
//! - [`dovecot`]: `dovecot-keywords` and `dovecot-uidlist`;
//! - [`date`]: the `Date:` header fallback for file times;
//! - [`report`]: progress, summary, exit codes.
//!
//! Reading mboxes (variants, detection, quoting, locks, bookkeeping
//! headers) is `mailstore::mbox` and `mailstore::lock`; writing Maildirs is
//! `mailstore::maildir` with `durable`'s group commit. docs/CONVERT.md is
//! the admin's guide.

pub mod date;
pub mod discover;
pub mod dovecot;
pub mod manifest;
pub mod report;
pub mod run;

pub use report::Report;
pub use run::{Options, SyncMethod, run};
