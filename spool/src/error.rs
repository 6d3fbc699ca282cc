//! The crate's one error type. Every variant names the file or message it is
//! about and knows whether it is temporary (retrying later, or after an admin
//! fixed something, may succeed: an SMTP server answers 4xx, `sendmail`
//! exits 75) or permanent (the input itself is wrong).

use std::io;
use std::path::PathBuf;

use crate::id::MessageId;

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// Publishing the message failed (a sync or a rename); nothing of it is
    /// visible in the queue.
    #[error("{id}: {source}")]
    Commit {
        id: MessageId,
        #[source]
        source: durable::CommitError,
    },
    /// A spool file that does not follow the format, at `line` (1-based).
    #[error("{path}: line {line}: {why}")]
    Format {
        path: PathBuf,
        line: usize,
        why: String,
    },
    /// A spool file shorter or longer than it says it is: it was cut by a
    /// crash of the disk or damaged since.
    #[error("{path}: torn file: {why}")]
    Torn { path: PathBuf, why: String },
    /// No message with this ID is in the queue.
    #[error("{id}: message not found")]
    NotFound { id: String },
    /// Another process (or thread) is delivering or changing the message.
    #[error("{id}: spool file is locked ({path} is held by another process)")]
    Locked { id: MessageId, path: PathBuf },
    /// A string that is not a message ID.
    #[error("{text:?}: not a message ID: {why}")]
    BadId { text: String, why: String },
    /// An envelope that cannot be queued as it is (a control character in
    /// an address, no recipients, a header without its newline...).
    #[error("cannot queue the message: {why}")]
    BadEnvelope { why: String },
    /// A recipient index outside the message's recipient list.
    #[error("{id}: no recipient number {index} (the message has {count})")]
    NoRecipient {
        id: MessageId,
        index: usize,
        count: usize,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, line: usize, why: impl Into<String>) -> Error {
        Error::Format {
            path: path.into(),
            line,
            why: why.into(),
        }
    }

    /// Whether trying again later may succeed.
    ///
    /// I/O failures count as temporary even when `errno` looks permanent
    /// (EACCES, ENOSPC, EROFS): an admin fixes those, and a mail server that
    /// answered 5xx for a full disk would make senders bounce good mail.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Commit { .. } | Error::Locked { .. } => true,
            Error::Format { .. }
            | Error::Torn { .. }
            | Error::NotFound { .. }
            | Error::BadId { .. }
            | Error::BadEnvelope { .. }
            | Error::NoRecipient { .. } => false,
        }
    }

    /// The filesystem is full (ENOSPC, or EDQUOT for the spool's owner):
    /// SMTP says 452 4.3.1 for it, "insufficient system storage".
    pub fn is_no_space(&self) -> bool {
        let e = match self {
            Error::Io { source, .. } => Some(source),
            Error::Commit { source, .. } => source.io_error(),
            _ => None,
        };
        e.and_then(io::Error::raw_os_error)
            .is_some_and(|n| n == libc::ENOSPC || n == libc::EDQUOT)
    }

    /// The sysexits(3) code a command reports for this error: 75
    /// (EX_TEMPFAIL) for temporary failures, 65 (EX_DATAERR) for input that
    /// cannot be queued, 66 (EX_NOINPUT) for a missing message, 74
    /// (EX_IOERR) for a damaged spool file.
    pub fn exit_code(&self) -> i32 {
        match self {
            e if e.is_temporary() => 75,
            Error::BadEnvelope { .. } => 65,
            Error::NotFound { .. } | Error::BadId { .. } | Error::NoRecipient { .. } => 66,
            _ => 74,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_and_exit_codes() {
        let id = MessageId::parse("1tixMn-00000000C5j-1wRa").unwrap();
        let cases: Vec<(Error, bool, i32)> = vec![
            (
                Error::io("open", "/q/x", io::Error::other("boom")),
                true,
                75,
            ),
            (
                Error::Commit {
                    id,
                    source: durable::CommitError::Stopped,
                },
                true,
                75,
            ),
            (
                Error::Locked {
                    id,
                    path: "/q/x".into(),
                },
                true,
                75,
            ),
            (Error::format("/q/x-H", 3, "bad"), false, 74),
            (
                Error::Torn {
                    path: "/q/x-D".into(),
                    why: "short".into(),
                },
                false,
                74,
            ),
            (Error::NotFound { id: "x".into() }, false, 66),
            (
                Error::BadEnvelope {
                    why: "no recipients".into(),
                },
                false,
                65,
            ),
        ];
        for (e, temp, code) in cases {
            assert_eq!(e.is_temporary(), temp, "{e}");
            assert_eq!(e.exit_code(), code, "{e}");
        }
    }

    #[test]
    fn messages_name_the_file_and_line() {
        let e = Error::format("/var/spool/sluice/input/n/x-H", 7, "expected a number");
        assert_eq!(
            e.to_string(),
            "/var/spool/sluice/input/n/x-H: line 7: expected a number"
        );
        let e = Error::NotFound {
            id: "1tixMn-00000000C5j-1wRa".into(),
        };
        assert_eq!(e.to_string(), "1tixMn-00000000C5j-1wRa: message not found");
    }
}
