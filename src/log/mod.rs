//! Exim-style logs: `mainlog`, `rejectlog`, `paniclog` in `<data_dir>/log/`,
//! written by our own append-only writer so the format is byte-exact for
//! exigrep, eximstats and the exporters that parse it.
//!
//! ```text
//! 2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa <= alice@example.org H=client.example (helo) [192.0.2.1] P=esmtps X=TLS1.3:TLS13_AES_256_GCM_SHA384:256 S=1234 id=m@example.org
//! 2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa => bob <bob@example.org> R=virtual_mailbox T=maildir_delivery
//! 2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa Completed
//! ```
//!
//! Every line is an [`Event`] ([`event`]), written by its one formatter and
//! read back by [`parse`]; outside text is escaped by [`escape`] on the way
//! out. docs/log-format.md has the grammar.
//!
//! Each line is one `write()` on a descriptor opened with O_APPEND, so lines
//! from concurrent processes never interleave.

pub mod escape;
pub mod event;
pub mod parse;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::clock;

pub use event::{
    Action, Address, Arrival, Deferred, Delivered, Event, Failed, Host, Kind, MessageIdField,
    Origin, Rejected, RejectedHeaders, Stage, UNKNOWN_ERRNO, spooled_size,
};

/// The three Exim logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Main,
    Reject,
    Panic,
}

impl Which {
    fn file_name(self) -> &'static str {
        match self {
            Which::Main => "mainlog",
            Which::Reject => "rejectlog",
            Which::Panic => "paniclog",
        }
    }
}

/// `event` as a whole line with the current time stamp: what the logs and
/// the per-message logs (msglog) get.
pub fn stamped(event: &Event) -> String {
    format!("{} {event}", clock::log_stamp(clock::now()))
}

/// Hears every event written to the main log (the daemon's metrics), and
/// whether it was a rejection (written to rejectlog too); called on the
/// writing thread, so it must be quick.
pub type Observer = Box<dyn Fn(&Event, Which) + Send + Sync>;

/// Appends lines to the logs of one data directory.
pub struct Logs {
    dir: PathBuf,
    files: Mutex<[Option<File>; 3]>,
    observer: std::sync::OnceLock<Observer>,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs").field("dir", &self.dir).finish()
    }
}

impl Logs {
    pub fn new(dir: impl Into<PathBuf>) -> Logs {
        Logs {
            dir: dir.into(),
            files: Mutex::new([None, None, None]),
            observer: std::sync::OnceLock::new(),
        }
    }

    /// Has `observer` hear every main-log and reject-log event from now on
    /// (a rejection once, though it goes to both). Only the first observer
    /// is kept.
    pub fn observe(&self, observer: Observer) -> bool {
        self.observer.set(observer).is_ok()
    }

    fn tell(&self, event: &Event, which: Which) {
        if let Some(o) = self.observer.get() {
            o(event, which);
        }
    }

    /// Closes the log files: the next line opens each again by its name
    /// (after logrotate has moved them, SIGHUP).
    pub fn reopen(&self) {
        *self.files.lock().unwrap_or_else(|p| p.into_inner()) = [None, None, None];
    }

    /// Writes `event` with the current time stamp to the `which` log. A log
    /// that cannot be written goes to stderr instead (the mail itself must
    /// not fail because a log is unwritable).
    pub fn write(&self, which: Which, event: &Event) {
        if which != Which::Panic {
            self.tell(event, which);
        }
        let line = stamped(event) + "\n";
        self.append_or_complain(which, line.as_bytes());
    }

    /// The main log.
    pub fn main(&self, event: &Event) {
        self.write(Which::Main, event);
    }

    /// Several events for the main log in one `write()`: a message's
    /// arrival, deliveries and completion land together or not at all.
    pub fn main_all(&self, events: &[Event]) {
        let mut block = String::new();
        for e in events {
            self.tell(e, Which::Main);
            block.push_str(&stamped(e));
            block.push('\n');
        }
        self.append_or_complain(Which::Main, block.as_bytes());
    }

    /// A rejection: to the main log and to the reject log, as Exim writes
    /// it (log.c, LOG_MAIN|LOG_REJECT): the same line in both, then in
    /// rejectlog only the envelope and headers when there are any (after
    /// DATA).
    pub fn reject(&self, event: &Event, headers: Option<&RejectedHeaders<'_>>) {
        self.tell(event, Which::Reject);
        let line = stamped(event) + "\n";
        self.append_or_complain(Which::Main, line.as_bytes());
        let mut block = line.into_bytes();
        if let Some(h) = headers {
            block.extend_from_slice(&h.to_bytes());
        }
        self.append_or_complain(Which::Reject, &block);
    }

    /// Something is wrong with the installation: paniclog (and stderr).
    pub fn panic(&self, text: &str) {
        let event = Event::other(None, text);
        eprintln!("sluice: {event}");
        self.write(Which::Panic, &event);
    }

    fn append_or_complain(&self, which: Which, bytes: &[u8]) {
        if let Err(e) = self.append(which, bytes) {
            eprintln!(
                "sluice: cannot write {}: {e}; the line was: {}",
                self.dir.join(which.file_name()).display(),
                String::from_utf8_lossy(bytes).trim_end()
            );
        }
    }

    fn append(&self, which: Which, bytes: &[u8]) -> std::io::Result<()> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut files[which as usize];
        if slot.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            *slot = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(which.file_name()))?,
            );
        }
        match slot.as_mut() {
            Some(f) => f.write_all(bytes),
            None => Ok(()),
        }
    }
}

/// A file of tests/fixtures/exim-4.96/ (logs a real Exim wrote), for the
/// tests of the parser and of `sluice stats`.
#[cfg(test)]
pub fn exim_fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/exim-4.96/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The host of a connection for a log line: `H=(helo) [ip]`, or `U=local`
/// without a peer (a local LMTP or `-bs` client). Sluice does not look up
/// names, so there is no name.
pub fn origin(peer: Option<std::net::IpAddr>, helo: Option<&str>) -> Origin {
    match peer {
        Some(ip) => Origin::Host(Host::new(None, helo, &ip.to_string(), None)),
        None => Origin::Local("local".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: Option<&str>, helo: Option<&str>, ip: &str, port: Option<u16>) -> String {
        format!("H={}", Host::new(name, helo, ip, port))
    }

    #[test]
    fn fields() {
        assert_eq!(
            h(None, Some("client"), "192.0.2.1", None),
            "H=(client) [192.0.2.1]"
        );
        assert_eq!(
            h(Some("mx.example"), Some("mx.example"), "::1", Some(25)),
            "H=mx.example [::1]:25"
        );
        assert_eq!(h(None, None, "127.0.0.1", None), "H=[127.0.0.1]");
    }

    #[test]
    fn lines_are_appended_with_a_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::new(dir.path().join("log"));
        let id = spool::MessageId::parse("1tixMn-00000000C5j-1wRa").unwrap();
        logs.main(&Event::completed(id));
        let rejected = Event::new(
            None,
            Kind::Rejected(Rejected {
                origin: origin(Some([192, 0, 2, 1].into()), Some("c")),
                sender: Some("s@x".into()),
                temporary: false,
                stage: Stage::Rcpt("x@y".into()),
                reason: Some("relay not permitted".into()),
            }),
        );
        let rcpts = ["x@y".to_string()];
        let headers = [spool::Header::new("Subject: s\n")];
        logs.reject(
            &rejected,
            Some(&RejectedHeaders {
                sender: "s@x",
                recipients: &rcpts,
                headers: &headers,
            }),
        );
        let main = std::fs::read_to_string(dir.path().join("log/mainlog")).unwrap();
        let lines: Vec<&str> = main.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" 1tixMn-00000000C5j-1wRa Completed"));
        assert_eq!(lines[0].as_bytes()[4], b'-');
        let reject = std::fs::read_to_string(dir.path().join("log/rejectlog")).unwrap();
        // Exim's block (tests/fixtures/exim-4.96/rejectlog), not the
        // "Envelope-from and headers:" line we used to write.
        assert!(reject.contains(
            "relay not permitted\nEnvelope-from: <s@x>\nEnvelope-to: <x@y>\n  Subject: s\n"
        ));
        // Each rejection is in both logs, the same line.
        assert_eq!(lines[1], reject.lines().next().unwrap());
    }

    /// Nobody can forge a log line: a HELO name, an address and a reply
    /// holding CR LF and a whole fake line stay inside one line, and the
    /// log parses to exactly one event.
    #[test]
    fn outside_text_cannot_forge_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::new(dir.path().join("log"));
        let fake = "\r\n2026-12-03 08:28:08 1tixMn-00000000C5j-1wRa <= forged@x H=[10.0.0.1] P=esmtp S=1\r\n";
        let rejected = Rejected {
            origin: origin(Some([192, 0, 2, 1].into()), Some(&format!("helo{fake}"))),
            sender: Some(format!("a@x{fake}")),
            temporary: false,
            stage: Stage::Rcpt(format!("b@x{fake}")),
            reason: Some(format!("550 no{fake}")),
        };
        logs.reject(&Event::new(None, Kind::Rejected(rejected)), None);
        for name in ["mainlog", "rejectlog"] {
            let text = std::fs::read_to_string(dir.path().join("log").join(name)).unwrap();
            assert_eq!(text.lines().count(), 1, "{text}");
            let entries = parse::entries(&text);
            assert_eq!(entries.len(), 1, "{text}");
            assert!(
                matches!(&entries[0].line.event.kind, Kind::Rejected(r) if r.reason.as_deref().is_some_and(|t| t.starts_with("550 no\\r\\n2026-12-03"))),
                "{:?}",
                entries[0]
            );
        }
    }
}
