//! The crate's one error type. Every variant knows whether it is temporary
//! (worth retrying: the mail stays queued) and which sysexits code a delivery
//! agent reports for it.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// sysexits.h codes (also the exit codes of `sluice deliver`).
pub mod sysexits {
    pub const OK: i32 = 0;
    pub const USAGE: i32 = 64;
    pub const DATAERR: i32 = 65;
    pub const NOINPUT: i32 = 66;
    pub const NOUSER: i32 = 67;
    pub const SOFTWARE: i32 = 70;
    pub const CANTCREAT: i32 = 73;
    pub const IOERR: i32 = 74;
    pub const TEMPFAIL: i32 = 75;
    pub const NOPERM: i32 = 77;
    pub const CONFIG: i32 = 78;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on `path` failed.
    #[error("{path}: {op}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Publishing a staged file failed (sync or rename); nothing is visible.
    #[error(transparent)]
    Commit(#[from] durable::CommitError),
    /// A path that must be a Maildir is something else.
    #[error("{path}: not a Maildir: {why}")]
    NotMaildir { path: PathBuf, why: String },
    /// A Maildir++ folder name that cannot be used.
    #[error("folder {name:?}: {why}")]
    BadFolder { name: String, why: String },
    /// Delivering would exceed the Maildir++ quota.
    #[error(
        "{path}: over quota: {used_bytes}/{limit_bytes} bytes, {used_count}/{limit_count} messages"
    )]
    OverQuota {
        path: PathBuf,
        used_bytes: u64,
        limit_bytes: u64,
        used_count: u64,
        limit_count: u64,
        /// From `over_quota`: defer (temporary) or reject (permanent).
        permanent: bool,
    },
    /// `maildirsize` cannot be understood where it matters (its quota line).
    #[error("{path}: line {line}: corrupt maildirsize: {why}")]
    BadQuotaFile {
        path: PathBuf,
        line: usize,
        why: String,
    },
    /// A message over the size limit.
    #[error("message: larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// A message that cannot be stored as it is (empty, ...).
    #[error("{what}: {why}")]
    BadMessage { what: String, why: String },
    /// An mbox that cannot be read as one.
    #[error("{path}: byte {offset}: {why}")]
    BadMbox {
        path: PathBuf,
        offset: u64,
        why: String,
    },
    /// A mailbox lock was not had in time.
    #[error("{path}: {kind} lock not obtained within {waited_secs}s{}", holder.as_ref().map(|h| format!(" (held by {h})")).unwrap_or_default())]
    LockTimeout {
        path: PathBuf,
        kind: &'static str,
        waited_secs: u64,
        holder: Option<String>,
    },
    /// A mailbox lock could not be taken at all (not a wait: the lock file's
    /// directory is not writable, the kernel refused the lock, ...).
    #[error("{path}: cannot take the {kind} lock: {why}: {source}")]
    LockFailed {
        path: PathBuf,
        kind: &'static str,
        why: String,
        #[source]
        source: io::Error,
    },
    /// Reading the message to store failed (a broken pipe on standard input,
    /// an unreadable spool file).
    #[error("reading the message: {source}")]
    MessageInput {
        #[source]
        source: io::Error,
    },
    /// An mbox append failed and so did cutting the mbox back to its old
    /// length: the mbox may end in a partial message.
    #[error(
        "{path}: append failed ({source}) and truncating back to {len} bytes failed too: {undo}"
    )]
    AppendUndo {
        path: PathBuf,
        len: u64,
        source: io::Error,
        undo: io::Error,
    },
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether retrying later may succeed (the message must stay queued).
    ///
    /// Local faults an admin can fix (permissions, a full disk, a file where
    /// a directory should be) count as temporary: a pipe transport bounces
    /// mail on a permanent code, and a wrong file mode must not lose mail.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::OverQuota { permanent, .. } => !permanent,
            // A file that is not an mbox stays one: retrying cannot help.
            Error::BadMessage { .. }
            | Error::TooLarge { .. }
            | Error::BadFolder { .. }
            | Error::BadMbox { .. } => false,
            _ => true,
        }
    }

    /// The RFC 3463 enhanced status code (class, subject, detail) that
    /// reports this error in a reply or a delivery status notification.
    /// The class follows [`Error::is_temporary`].
    pub fn enhanced_status(&self) -> (u8, u16, u16) {
        let class = if self.is_temporary() { 4 } else { 5 };
        let (subject, detail) = match self {
            // X.2.2 mailbox full; X.3.1 mail system full.
            Error::OverQuota { .. } => (2, 2),
            Error::Io { source, .. }
            | Error::LockFailed { source, .. }
            | Error::MessageInput { source }
            | Error::AppendUndo { source, .. } => errno_status(source),
            Error::Commit(c) => c.io_error().map_or((3, 0), errno_status),
            // X.3.4 message too big for system; X.6.0 other media error.
            Error::TooLarge { .. } => (3, 4),
            Error::BadMessage { .. } => (6, 0),
            // X.2.0 other or undefined mailbox status.
            Error::NotMaildir { .. }
            | Error::BadFolder { .. }
            | Error::BadQuotaFile { .. }
            | Error::BadMbox { .. }
            | Error::LockTimeout { .. } => (2, 0),
        };
        (class, subject, detail)
    }

    /// The sysexits code a delivery agent exits with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::OverQuota {
                permanent: true, ..
            } => sysexits::NOPERM,
            Error::BadMessage { .. } | Error::TooLarge { .. } | Error::BadMbox { .. } => {
                sysexits::DATAERR
            }
            Error::BadFolder { .. } => sysexits::CANTCREAT,
            _ => sysexits::TEMPFAIL,
        }
    }
}

/// Subject and detail of a system call's failure: a full disk (X.3.1) or
/// quota (X.2.2) told apart from other local trouble (X.3.0).
fn errno_status(e: &io::Error) -> (u16, u16) {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => (3, 1),
        Some(libc::EDQUOT) => (2, 2),
        _ => (3, 0),
    }
}
