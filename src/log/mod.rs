//! Exim-style logs: `mainlog`, `rejectlog`, `paniclog` in `<data_dir>/log/`,
//! written by our own append-only writer so the format is byte-exact for
//! exigrep, eximstats and the exporters that parse it.
//!
//! ```text
//! 2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa <= alice@example.org H=client.example (helo) [192.0.2.1] P=esmtps X=TLS1.3:TLS13_AES_256_GCM_SHA384:256 S=1234 id=<m@example.org>
//! 2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa => bob <bob@example.org> R=virtual_mailbox T=maildir_delivery
//! 2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa Completed
//! ```
//!
//! Each line is one `write()` on a descriptor opened with O_APPEND, so lines
//! from concurrent processes never interleave.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::clock;

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

/// Appends lines to the logs of one data directory.
#[derive(Debug)]
pub struct Logs {
    dir: PathBuf,
    files: Mutex<[Option<File>; 3]>,
}

impl Logs {
    pub fn new(dir: impl Into<PathBuf>) -> Logs {
        Logs {
            dir: dir.into(),
            files: Mutex::new([None, None, None]),
        }
    }

    /// Writes `text` with the current time stamp to the `which` log. A log
    /// that cannot be written goes to stderr instead (the mail itself must
    /// not fail because a log is unwritable).
    pub fn write(&self, which: Which, text: &str) {
        let line = format!("{} {}\n", clock::log_stamp(clock::now()), text);
        if let Err(e) = self.append(which, line.as_bytes()) {
            eprintln!(
                "sluice: cannot write {}: {e}; the line was: {}",
                self.dir.join(which.file_name()).display(),
                line.trim_end()
            );
        }
    }

    /// The main log.
    pub fn main(&self, text: &str) {
        self.write(Which::Main, text);
    }

    /// A rejection: to the main log and to the reject log (Exim writes the
    /// same line to both, then the headers, when it has them, to rejectlog).
    pub fn reject(&self, text: &str, headers: Option<&[u8]>) {
        self.write(Which::Main, text);
        let mut block = format!("{} {}\n", clock::log_stamp(clock::now()), text).into_bytes();
        if let Some(h) = headers {
            block.extend_from_slice(b"Envelope-from and headers:\n");
            block.extend_from_slice(h);
            if !h.ends_with(b"\n") {
                block.push(b'\n');
            }
        }
        if let Err(e) = self.append(Which::Reject, &block) {
            eprintln!("sluice: cannot write rejectlog: {e}");
        }
    }

    /// Something is wrong with the installation: paniclog (and stderr).
    pub fn panic(&self, text: &str) {
        eprintln!("sluice: {text}");
        self.write(Which::Panic, text);
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

/// `H=` field: `H=name (helo) [ip]:port` as Exim writes it; the name is
/// left out when the address was not looked up, and `(helo)` when the HELO
/// name is missing or equals the name.
pub fn host_field(name: Option<&str>, helo: Option<&str>, ip: &str, port: Option<u16>) -> String {
    let mut s = String::from("H=");
    if let Some(n) = name {
        s.push_str(n);
        s.push(' ');
    }
    if let Some(h) = helo.filter(|h| Some(*h) != name) {
        s.push('(');
        s.push_str(h);
        s.push_str(") ");
    }
    s.push('[');
    s.push_str(ip);
    s.push(']');
    if let Some(p) = port {
        s.push_str(&format!(":{p}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(
            host_field(None, Some("client"), "192.0.2.1", None),
            "H=(client) [192.0.2.1]"
        );
        assert_eq!(
            host_field(Some("mx.example"), Some("mx.example"), "::1", Some(25)),
            "H=mx.example [::1]:25"
        );
        assert_eq!(host_field(None, None, "127.0.0.1", None), "H=[127.0.0.1]");
    }

    #[test]
    fn lines_are_appended_with_a_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::new(dir.path().join("log"));
        logs.main("1tixMn-00000000C5j-1wRa Completed");
        logs.reject(
            "rejected RCPT <x@y>: relay not permitted",
            Some(b"Subject: s\n"),
        );
        let main = std::fs::read_to_string(dir.path().join("log/mainlog")).unwrap();
        let lines: Vec<&str> = main.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" 1tixMn-00000000C5j-1wRa Completed"));
        assert_eq!(lines[0].as_bytes()[4], b'-');
        let reject = std::fs::read_to_string(dir.path().join("log/rejectlog")).unwrap();
        assert!(reject.contains("relay not permitted\nEnvelope-from and headers:\nSubject: s\n"));
    }
}
