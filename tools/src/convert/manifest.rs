//! The conversion manifest: what earlier runs converted, so that a re-run
//! (after a crash, or to pick up mail that arrived during the cut-over)
//! converts only what is missing and never duplicates a message.
//!
//! `DEST/convert2maildir.state/manifest` is append-only text, one record a line,
//! fields separated by tabs (with `%`, tab and newline written `%25`, `%09`,
//! `%0a`):
//!
//! ```text
//! R  <run prefix>                            a run began (names it wrote start so)
//! M  <maildir> <sha256> <file base> <uid>    a message is in <maildir> (uid 0: none)
//! U  <maildir> <uidvalidity> <uidnext>       the UID data its mbox carried
//! ```
//!
//! `<maildir>` is the Maildir's path relative to DEST (`.`, `.Sent`,
//! `alice/Maildir`, `alice/Maildir/.Sent`). The key is SHA-256 of the
//! message without the mbox bookkeeping headers (see
//! `mailstore::mbox::meta::PRIVATE_HEADERS`): the same for the source
//! message and for the file written from it, and unchanged when a mail
//! client rewrites the mbox and updates `Status:` on the way.
//!
//! A line is appended only after its message is durable, so the manifest
//! never claims a message that a power cut can take back. The reverse can
//! happen (a crash after the files were made durable, before their lines
//! were written): a run therefore also reads, once, every file of a
//! Maildir that no line names, and records its key (see
//! [`crate::convert::run`]). A torn last line (a crash mid-write) is
//! ignored.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The directory under DEST. Not a dot directory: DEST is often itself a
/// Maildir++ root, where Dovecot and Courier take every `.name` directory
/// for a folder (and Dovecot, not allowed in, logs an error on each LIST);
/// a plain directory next to `cur/`, `new/` and `tmp/` is ignored by them.
pub const DIR: &str = "convert2maildir.state";
/// The manifest file in it.
pub const FILE: &str = "manifest";
/// The lock file that keeps two runs off one DEST.
pub const LOCK: &str = "lock";

/// A message key.
pub type Key = [u8; 32];

/// The key of a message (already stripped of the bookkeeping headers).
pub fn key(stripped: &[u8]) -> Key {
    Sha256::digest(stripped).into()
}

/// What the manifest says about one Maildir.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Known {
    /// File base names (without `:2,` info) the manifest lists.
    pub names: HashSet<String>,
    /// How many copies of each message the Maildir holds.
    pub counts: HashMap<Key, u32>,
    /// (UID, file base name) of messages that came with an `X-UID`.
    pub uids: Vec<(u32, String)>,
    /// UIDVALIDITY and next UID.
    pub uidbase: Option<(u32, u32)>,
}

/// The whole manifest, read at the start of a run.
#[derive(Debug, Default)]
pub struct Index {
    pub maildirs: HashMap<String, Known>,
    /// Prefixes of earlier runs' file names (to clear their `tmp/` leftovers).
    pub runs: Vec<String>,
    /// Lines that did not parse (a torn last line after a crash).
    pub bad_lines: usize,
}

fn escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\t', "%09")
        .replace('\n', "%0a")
}

fn unescape(s: &str) -> String {
    s.replace("%0a", "\n")
        .replace("%09", "\t")
        .replace("%25", "%")
}

fn hex(k: &Key) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Key> {
    if s.len() != 64 {
        return None;
    }
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

/// The `M` line of a message.
pub fn message_line(maildir: &str, key: &Key, base: &str, uid: u32) -> String {
    format!(
        "M\t{}\t{}\t{}\t{uid}\n",
        escape(maildir),
        hex(key),
        escape(base)
    )
}

/// The `U` line of a Maildir.
pub fn uid_line(maildir: &str, uidvalidity: u32, uidnext: u32) -> String {
    format!("U\t{}\t{uidvalidity}\t{uidnext}\n", escape(maildir))
}

/// The `R` line of a run.
pub fn run_line(prefix: &str) -> String {
    format!("R\t{}\n", escape(prefix))
}

impl Index {
    /// Parses manifest text.
    pub fn parse(text: &str) -> Index {
        let mut idx = Index::default();
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        if complete.len() < text.len() {
            idx.bad_lines += 1; // torn last line
        }
        for line in complete.lines() {
            if !idx.apply(line) {
                idx.bad_lines += 1;
            }
        }
        idx
    }

    fn apply(&mut self, line: &str) -> bool {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["R", prefix] => {
                self.runs.push(unescape(prefix));
                true
            }
            ["M", md, key, base, uid] => {
                let (Some(key), Ok(uid)) = (unhex(key), uid.parse::<u32>()) else {
                    return false;
                };
                let known = self.maildirs.entry(unescape(md)).or_default();
                let base = unescape(base);
                *known.counts.entry(key).or_default() += 1;
                if uid > 0 {
                    known.uids.push((uid, base.clone()));
                }
                known.names.insert(base);
                true
            }
            ["U", md, v, n] => {
                let (Ok(v), Ok(n)) = (v.parse(), n.parse()) else {
                    return false;
                };
                self.maildirs.entry(unescape(md)).or_default().uidbase = Some((v, n));
                true
            }
            _ => false,
        }
    }

    /// Reads `dir/manifest` (absent: empty).
    pub fn load(dir: &Path) -> io::Result<Index> {
        match fs::read(dir.join(FILE)) {
            Ok(b) => Ok(Index::parse(&String::from_utf8_lossy(&b))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(e),
        }
    }
}

/// The manifest directory of a run, locked against a second run.
pub struct Store {
    dir: PathBuf,
    out: BufWriter<File>,
    _lock: File,
}

impl Store {
    /// Creates (mode 0700) and locks `dest/convert2maildir.state`, and opens the
    /// manifest for appending. Fails if another run holds the lock.
    pub fn open(dest: &Path) -> io::Result<Store> {
        let dir = dest.join(DIR);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => durable::Io::sync_dir(&durable::RealIo, dest)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dir.join(LOCK))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "{}: another convert2maildir is converting into this destination",
                        dir.display()
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(dir.join(FILE))?;
        // A run that died mid-line left a torn last line: end it, so that
        // the next record starts on a line of its own.
        let len = file.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Store {
            dir,
            out: BufWriter::with_capacity(1 << 16, file),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends lines (buffered).
    pub fn append(&mut self, lines: &str) -> io::Result<()> {
        self.out.write_all(lines.as_bytes())
    }

    /// Writes out the buffer and makes the manifest durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        durable::sys::sync_data(self.out.get_ref())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let k1 = key(b"one");
        let k2 = key(b"two");
        let text = [
            run_line("1700000000.M1P2"),
            message_line(".", &k1, "1.M1P2Q0000000000000.h,S=3,W=3", 7),
            message_line(".", &k1, "1.M1P2Q0000000000100.h,S=3,W=3", 0),
            message_line("a\tb/.Sent%", &k2, "x", 0),
            uid_line(".", 1234, 9),
            "garbage\n".to_string(),
            "M\t.\tnothex\tx\t0\n".to_string(),
            "M\t.\t".to_string(), // torn
        ]
        .concat();
        let idx = Index::parse(&text);
        assert_eq!(idx.runs, ["1700000000.M1P2"]);
        assert_eq!(idx.bad_lines, 3);
        let root = &idx.maildirs["."];
        assert_eq!(root.counts[&k1], 2);
        assert_eq!(
            root.uids,
            [(7, "1.M1P2Q0000000000000.h,S=3,W=3".to_string())]
        );
        assert_eq!(root.uidbase, Some((1234, 9)));
        assert!(root.names.contains("1.M1P2Q0000000000100.h,S=3,W=3"));
        assert_eq!(idx.maildirs["a\tb/.Sent%"].counts[&k2], 1);
    }

    #[test]
    fn store_is_exclusive_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let e = Store::open(dir.path()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        s.append(&run_line("p")).unwrap();
        s.sync().unwrap();
        drop(s);
        let mut s = Store::open(dir.path()).unwrap();
        s.append(&run_line("q")).unwrap();
        s.sync().unwrap();
        drop(s);
        // A torn line is ended before the next record.
        let path = dir.path().join(DIR).join(FILE);
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("M\t.\tab");
        fs::write(&path, &text).unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.append(&run_line("r")).unwrap();
        s.sync().unwrap();
        let idx = Index::load(s.dir()).unwrap();
        assert_eq!(
            (idx.runs, idx.bad_lines),
            (vec!["p".to_string(), "q".into(), "r".into()], 1)
        );
    }
}
