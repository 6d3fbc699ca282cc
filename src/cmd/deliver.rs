//! `sluice deliver`: the local delivery agent other MTAs call (as they call
//! dovecot-lda, procmail or maildrop). One message on stdin, streamed into a
//! Maildir (or appended to an mbox); the exit code follows sysexits.h.
//!
//! | exit | when |
//! |------|------|
//! | 0  | delivered (durable), or discarded over quota by `over_quota = "discard"` |
//! | 64 | bad command line |
//! | 65 | not a message: empty input, not starting with a header, over `message_size_limit` |
//! | 67 | no such user (`-d USER` with `mailbox.users = "passwd"`, or an unusable name) |
//! | 73 | the mailbox cannot be created (bad folder name) |
//! | 75 | temporary: lock timeout, full disk, permissions, a file where the Maildir should be, fsync failure, over quota with `defer` |
//! | 77 | deliberately refused: over quota with `over_quota = "reject"` |
//!
//! Local faults an admin can fix are 75, never 77: Exim's and Postfix's pipe
//! transports bounce mail on 77, and a wrong file mode must not lose mail.
//!
//! Line endings are stored as received: LF from Exim, Postfix and the spool
//! (as Dovecot stores them). `S=` counts the bytes stored, `W=` the same with
//! every bare LF counted as CRLF. The header lines this command adds
//! (`Return-Path:`, `Delivered-To:`) take the line ending of the message's
//! first line.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use crate::transport::maildir::{self, MaildirTransport, Staged};
use durable::{Committer, RealIo};
use mailstore::error::sysexits;

use crate::cli::DeliverArgs;
pub use crate::cmd::Failure;
use crate::config::{Config, UserSource};
use crate::sys;

impl From<mailstore::Error> for Failure {
    fn from(e: mailstore::Error) -> Failure {
        Failure::new(e.exit_code(), e.to_string())
    }
}

/// Where the message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Maildir {
        path: PathBuf,
        folder: Option<String>,
        owner: Option<(u32, u32)>,
    },
    Mbox {
        path: PathBuf,
        owner: Option<(u32, u32)>,
    },
}

/// Runs the command; returns the exit code (after printing the reason).
pub fn run(cfg: &Config, args: &DeliverArgs) -> i32 {
    match deliver(cfg, args, &mut std::io::stdin().lock()) {
        Ok(()) => sysexits::OK,
        Err(f) => {
            eprintln!("sluice deliver: {}", f.message);
            f.code
        }
    }
}

/// Delivers the message read from `input` as `args` say.
pub fn deliver(cfg: &Config, args: &DeliverArgs, input: &mut dyn Read) -> Result<(), Failure> {
    let target = resolve_target(cfg, args)?;
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let head = input
        .fill_buf()
        .map_err(|e| Failure::new(sysexits::TEMPFAIL, format!("reading the message: {e}")))?;
    let first_line = check_start(head)?;
    // A leading mbox From_ line (as some MTAs' pipe transports add) is not
    // part of the message; its sender stands in when -f is absent.
    let from_line_sender = first_line.from_sender;
    if first_line.skip > 0 {
        input.consume(first_line.skip);
    }
    let sender = args.sender.clone().or(from_line_sender);
    let eol: &[u8] = if first_line.crlf { b"\r\n" } else { b"\n" };
    let mut prefix = Vec::new();
    if let Some(s) = &sender {
        prefix.extend_from_slice(format!("Return-Path: <{s}>").as_bytes());
        prefix.extend_from_slice(eol);
    }
    if let Some(a) = &args.address {
        prefix.extend_from_slice(format!("Delivered-To: {a}").as_bytes());
        prefix.extend_from_slice(eol);
    }
    // One message: `commit` flushes it on this thread, with no group-commit
    // thread started.
    let committer = Committer::new(Arc::new(RealIo), cfg.durability);
    match target {
        Target::Maildir {
            path,
            folder,
            owner,
        } => {
            // The same Maildir transport as the queue's deliveries and LMTP.
            let transport = MaildirTransport {
                host: cfg.primary_hostname.clone(),
                over_quota: cfg.over_quota,
                max_size: (cfg.message_size_limit > 0).then_some(cfg.message_size_limit),
                known: Default::default(),
            };
            let target = maildir::Target {
                path: &path,
                owner,
                folder: folder.as_deref(),
                base: None,
                look_first: false,
            };
            match transport.stage(committer.io(), &target, &prefix, &mut input)? {
                Staged::File(mut file) => {
                    let committed = match file.take_job() {
                        Some(job) => committer.commit(job),
                        None => Err(durable::CommitError::Stopped),
                    };
                    file.finish(committed)?;
                    Ok(())
                }
                // Over quota with over_quota = "discard": accepted, dropped.
                Staged::Discarded | Staged::Already => Ok(()),
            }
        }
        Target::Mbox { path, owner } => crate::cmd::deliver_mbox::append(
            cfg,
            &path,
            owner,
            sender.as_deref(),
            &prefix,
            &mut input,
        ),
    }
}

/// What the start of the input says.
struct Start {
    /// Bytes of a leading From_ line to skip.
    skip: usize,
    from_sender: Option<String>,
    crlf: bool,
}

/// A message must start with a header field (`Name: value`), optionally
/// after an mbox `From_` line: anything else (a binary blob, a stray body)
/// is refused with 65 before a byte is written.
fn check_start(head: &[u8]) -> Result<Start, Failure> {
    if head.is_empty() {
        return Err(Failure::new(
            sysexits::DATAERR,
            "empty message on standard input",
        ));
    }
    let line_end = |buf: &[u8]| {
        buf.iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |i| i + 1)
    };
    let mut skip = 0;
    let mut from_sender = None;
    if head.starts_with(b"From ") {
        skip = line_end(head);
        let line = String::from_utf8_lossy(&head[5..skip]);
        from_sender = line.split_whitespace().next().map(str::to_string);
    }
    let rest = &head[skip..];
    let first = &rest[..line_end(rest)];
    let crlf = first.ends_with(b"\r\n");
    let name_len = first
        .iter()
        .position(|&b| b == b':')
        .filter(|&i| i > 0 && first[..i].iter().all(|&b| (33..=126).contains(&b)));
    if name_len.is_none() {
        let shown: String = String::from_utf8_lossy(&first[..first.len().min(40)])
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect();
        return Err(Failure::new(
            sysexits::DATAERR,
            format!("not a mail message: line 1 is not a header field (starts {shown:?})"),
        ));
    }
    Ok(Start {
        skip,
        from_sender,
        crlf,
    })
}

/// Works out the mailbox from the arguments and the configuration.
pub fn resolve_target(cfg: &Config, args: &DeliverArgs) -> Result<Target, Failure> {
    let folder = match &args.folder {
        Some(f) => Some(folder_name(f)?),
        None => None,
    };
    if let Some(p) = &args.maildir {
        return Ok(Target::Maildir {
            path: p.clone(),
            folder,
            owner: None,
        });
    }
    if let Some(p) = &args.mbox {
        return Ok(Target::Mbox {
            path: p.clone(),
            owner: None,
        });
    }
    let spec = args.user.as_deref().unwrap_or_default();
    let (local, domain) = match spec.rsplit_once('@') {
        Some((l, d)) => (l, d.to_ascii_lowercase()),
        None => (spec, cfg.primary_hostname.to_ascii_lowercase()),
    };
    if !usable_local_part(local) || !usable_local_part(&domain) {
        return Err(Failure::new(
            sysexits::NOUSER,
            format!("{spec:?}: not a usable user name"),
        ));
    }
    let user = sys::user_by_name(local).map_err(|e| {
        Failure::new(
            sysexits::TEMPFAIL,
            format!("looking up user {local:?}: {e}"),
        )
    })?;
    if cfg.mailbox.users == UserSource::Passwd && user.is_none() {
        return Err(Failure::new(
            sysexits::NOUSER,
            format!("{local}: no such user"),
        ));
    }
    let template = &cfg.mailbox.maildir;
    if template.contains("{home}") && user.is_none() {
        return Err(Failure::new(
            sysexits::NOUSER,
            format!("{local}: no such user (mailbox.maildir needs a home directory)"),
        ));
    }
    let home = user
        .as_ref()
        .map(|u| u.home.display().to_string())
        .unwrap_or_default();
    let local_lc = local.to_ascii_lowercase();
    let path = template
        .replace("{home}", &home)
        .replace("{local}", &local_lc)
        .replace("{domain}", &domain);
    // Running as root for a system user: the files become the user's.
    let owner = match &user {
        Some(u) if sys::is_root() => Some((u.uid, u.gid)),
        _ => None,
    };
    Ok(Target::Maildir {
        path: cfg.data_path(&path),
        folder,
        owner,
    })
}

/// A local part or domain that is safe as a path component.
fn usable_local_part(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && !s.contains('/')
        && !s.contains('\0')
        && !s.chars().any(char::is_control)
}

/// An IMAP folder name (`Lists/rust` or `Lists.rust`) → its Maildir++ name.
fn folder_name(name: &str) -> Result<String, Failure> {
    let encoded = name.replace('/', ".");
    if encoded.is_empty()
        || encoded.split('.').any(str::is_empty)
        || encoded.eq_ignore_ascii_case("inbox")
    {
        return Err(Failure::new(
            sysexits::CANTCREAT,
            format!("folder {name:?}: not a usable folder name"),
        ));
    }
    Ok(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_of_message() {
        let ok: &[(&[u8], usize, Option<&str>, bool)] = &[
            (b"Subject: x\n\nbody\n", 0, None, false),
            (b"Subject: x\r\n\r\nbody\r\n", 0, None, true),
            (
                b"From a@b Mon Jan  1 00:00:00 2024\nTo: c\n\n",
                34,
                Some("a@b"),
                false,
            ),
            (b"X-Very-Long-Name-Without-Value:\n", 0, None, false),
        ];
        for &(input, skip, sender, crlf) in ok {
            let s = check_start(input).unwrap_or_else(|f| panic!("{input:?}: {}", f.message));
            assert_eq!(
                (s.skip, s.from_sender.as_deref(), s.crlf),
                (skip, sender, crlf)
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b"\x00\x01\x02binary",
            b"just text\n",
            b": no name\n",
            b"\n\nbody",
        ];
        for &input in bad {
            let f = check_start(input).err().expect("must fail");
            assert_eq!(f.code, sysexits::DATAERR, "{input:?}");
        }
    }

    #[test]
    fn user_targets() {
        let cfg = crate::config::from_str(
            "t",
            "data_dir = \"/srv/mail\"\nprimary_hostname = \"mx.example\"",
        )
        .unwrap();
        let args = |u: &str| DeliverArgs {
            user: Some(u.into()),
            ..Default::default()
        };
        match resolve_target(&cfg, &args("Bob@Example.ORG")).unwrap() {
            Target::Maildir { path, .. } => {
                assert_eq!(path, PathBuf::from("/srv/mail/mail/example.org/bob"));
            }
            t => panic!("{t:?}"),
        }
        match resolve_target(&cfg, &args("alice")).unwrap() {
            Target::Maildir { path, .. } => {
                assert_eq!(path, PathBuf::from("/srv/mail/mail/mx.example/alice"));
            }
            t => panic!("{t:?}"),
        }
        for bad in ["../etc", "a/b", "", ".hidden"] {
            assert_eq!(
                resolve_target(&cfg, &args(bad)).unwrap_err().code,
                sysexits::NOUSER,
                "{bad}"
            );
        }
        let strict = crate::config::from_str("t", "[mailbox]\nusers = \"passwd\"").unwrap();
        assert_eq!(
            resolve_target(&strict, &args("no-such-user-here-xyz"))
                .unwrap_err()
                .code,
            sysexits::NOUSER
        );
    }
}
