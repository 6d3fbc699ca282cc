//! Transports: how a routed recipient's copy of a message reaches its
//! mailbox, once a router has chosen the transport. Every transport reports
//! a typed [`Outcome`] per recipient, with the enhanced status code and the
//! diagnostic a log line and a delivery status notification need.
//!
//! - [`maildir`]: a file per message, staged and published through the
//!   group committer. Used by the queue's deliveries, LMTP and `sluice
//!   deliver` alike.
//! - [`mbox`]: an append under the mailbox locks.
//!
//! A transport also declares its [`Recovery`]: whether a delivery that a
//! crash interrupted can be found again. The delivery agent acts on that
//! property, not on which transport it is.

pub mod maildir;
pub mod mbox;
pub mod pipe;
pub mod smtp;

use std::path::Path;

use ::smtp::Status;

/// Whether a delivery interrupted by a crash can be found again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Each delivery has a name of its own (a Maildir file `<ID>.<n>`),
    /// published without replacing anything: before a retry it is looked
    /// for, so every recipient gets exactly one copy.
    FoundByName,
    /// Nothing tells afterwards whether it happened (an mbox append, a
    /// pipe, an SMTP transaction whose reply was lost): the agent records an
    /// intent before starting, and a delivery in flight at a crash is made
    /// again. At least once.
    AtLeastOnce,
}

/// One recipient's copy of a message, as a transport receives it.
pub struct Request<'a> {
    /// The I/O seam staged files are written through (the committer's).
    pub io: &'a dyn durable::Io,
    /// The mailbox: a Maildir directory or an mbox file.
    pub path: &'a Path,
    /// Its owner, when delivering for a local user as root.
    pub owner: Option<(u32, u32)>,
    /// A name of this delivery's own (`<ID>.<n>`), for transports that can
    /// find a delivery again by name.
    pub name: String,
    /// An earlier attempt may have made this delivery (not the first
    /// attempt after arrival): look before delivering again.
    pub look_first: bool,
    /// The envelope sender (`""` for `<>`).
    pub sender: &'a str,
    /// The message as stored: header lines, a blank line, the body (LF).
    pub message: &'a [u8],
    /// Lines written before it (`Return-path:`, `Envelope-to:`).
    pub prefix: &'a [u8],
}

/// How far a transport got with a request.
pub enum Started {
    /// Done: the outcome, and notices worth a log line.
    Done(Outcome, Vec<String>),
    /// A file staged for the group committer: its outcome is known once
    /// the commit is ([`maildir::StagedFile::finish`]).
    Staged(maildir::StagedFile),
}

/// A way of delivering.
pub trait Transport: Send + Sync {
    /// Whether a delivery interrupted by a crash can be found again.
    fn recovery(&self) -> Recovery;
    /// Delivers (or stages) one recipient's copy.
    fn start(&self, req: &Request<'_>) -> Started;
}

impl Transport for maildir::MaildirTransport {
    fn recovery(&self) -> Recovery {
        Self::RECOVERY
    }

    fn start(&self, req: &Request<'_>) -> Started {
        let target = maildir::Target {
            path: req.path,
            owner: req.owner,
            folder: None,
            base: Some(req.name.clone()),
            look_first: req.look_first,
        };
        match self.stage(req.io, &target, req.prefix, &mut &req.message[..]) {
            Ok(maildir::Staged::File(f)) => Started::Staged(f),
            Ok(maildir::Staged::Already) | Ok(maildir::Staged::Discarded) => {
                Started::Done(Outcome::Delivered, Vec::new())
            }
            Err(e) => Started::Done(Outcome::of_error(&e), Vec::new()),
        }
    }
}

/// Pipe deliveries run on threads of their own
/// ([`crate::delivery::Deliverer`] hands them out like remote jobs); this
/// stands for them where a transport's recovery is asked.
pub struct PipeMarker;

impl Transport for PipeMarker {
    /// Nothing tells whether a command ran: an intent first, at least once.
    fn recovery(&self) -> Recovery {
        Recovery::AtLeastOnce
    }

    fn start(&self, _req: &Request<'_>) -> Started {
        Started::Done(
            Outcome::Deferred {
                status: ::smtp::Status::new(4, 3, 0),
                diagnostic: "a pipe delivery runs on its own thread".into(),
            },
            Vec::new(),
        )
    }
}

/// A redirect's `:blackhole:`: the address is delivered nowhere, and
/// that is a success (Exim's).
pub struct Blackhole;

impl Transport for Blackhole {
    /// Repeating it after a crash changes nothing: no intent is needed.
    fn recovery(&self) -> Recovery {
        Recovery::FoundByName
    }

    fn start(&self, _req: &Request<'_>) -> Started {
        Started::Done(Outcome::Delivered, Vec::new())
    }
}

impl Transport for mbox::MboxTransport {
    fn recovery(&self) -> Recovery {
        Self::RECOVERY
    }

    fn start(&self, req: &Request<'_>) -> Started {
        match self.append(
            req.path,
            req.owner,
            req.sender,
            std::io::Read::chain(req.prefix, req.message),
        ) {
            Ok(done) => Started::Done(Outcome::Delivered, done.notices),
            Err(e) => Started::Done(Outcome::of_error(&e), Vec::new()),
        }
    }
}

/// What became of one recipient's delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// A temporary failure: try again later.
    Deferred {
        status: Status,
        diagnostic: String,
    },
    /// A permanent failure: the sender is to be told.
    Failed {
        status: Status,
        diagnostic: String,
        /// The host that refused, when one did.
        remote: Option<String>,
    },
}

impl Outcome {
    /// The outcome a local error comes to: deferred when retrying may help,
    /// failed otherwise, with the error's enhanced status code.
    pub fn of_error(e: &mailstore::Error) -> Outcome {
        let (class, subject, detail) = e.enhanced_status();
        let status = Status::new(class, subject, detail);
        if e.is_temporary() {
            Outcome::Deferred {
                status,
                diagnostic: e.to_string(),
            }
        } else {
            Outcome::Failed {
                status,
                diagnostic: e.to_string(),
                remote: None,
            }
        }
    }

    /// What the spool keeps of a failure or deferral.
    pub fn diagnosis(&self) -> Option<spool::Diagnosis> {
        match self {
            Outcome::Delivered => None,
            Outcome::Deferred { status, diagnostic } => Some(spool::Diagnosis {
                text: diagnostic.clone(),
                status: Some(status.to_string()),
                remote: None,
            }),
            Outcome::Failed {
                status,
                diagnostic,
                remote,
            } => Some(spool::Diagnosis {
                text: diagnostic.clone(),
                status: Some(status.to_string()),
                remote: remote.clone(),
            }),
        }
    }

    /// The reply code a client hears for this outcome (LMTP's per-recipient
    /// replies): the mailbox-full and system-full statuses get the codes
    /// RFC 5321 gives them (452, 552).
    pub fn reply_code(&self) -> u16 {
        match self {
            Outcome::Delivered => 250,
            Outcome::Deferred { status, .. } => match (status.subject(), status.detail()) {
                (2, 2) | (3, 1) => 452,
                _ => 451,
            },
            Outcome::Failed { status, .. } => match (status.subject(), status.detail()) {
                (2, 2) | (3, 4) => 552,
                _ => 550,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn local_errors_keep_their_class_and_status() {
        let over = |permanent| mailstore::Error::OverQuota {
            path: PathBuf::from("/m"),
            used_bytes: 10,
            limit_bytes: 5,
            used_count: 1,
            limit_count: 0,
            permanent,
        };
        let full = mailstore::Error::io(
            "write",
            "/m/tmp/x",
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        let table: &[(mailstore::Error, &str, u16)] = &[
            (over(false), "4.2.2", 452),
            (over(true), "5.2.2", 552),
            (full, "4.3.1", 452),
            (mailstore::Error::TooLarge { limit: 9 }, "5.3.4", 552),
            (
                mailstore::Error::io(
                    "open",
                    "/m",
                    std::io::Error::from_raw_os_error(libc::EACCES),
                ),
                "4.3.0",
                451,
            ),
        ];
        for (e, status, code) in table {
            let o = Outcome::of_error(e);
            let d = o.diagnosis().unwrap();
            assert_eq!(d.status.as_deref(), Some(*status), "{e}");
            assert_eq!(d.text, e.to_string());
            assert_eq!(o.reply_code(), *code, "{e}");
        }
    }
}
