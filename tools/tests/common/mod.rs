//! Helpers for the convert2maildir tests: running the binary, building
//! mboxes, reading Maildirs back.
#![allow(dead_code)] // each test file uses a different part

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_convert2maildir"))
}

/// Runs convert2maildir with the test defaults (UTC From_ dates, a fixed
/// host name, two workers) and `args`.
pub fn convert(args: &[&str]) -> Output {
    let out = Command::new(bin())
        .args(["--from-tz", "UTC", "--host", "test.example", "-j", "2"])
        .args(args)
        .output()
        .expect("running convert2maildir");
    eprintln!(
        "convert2maildir {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 test path")
}

/// A `From_` line for `secs` (UTC), with its newline.
pub fn from_line(sender: &str, secs: i64) -> String {
    const DOW: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = mailstore::time::civil_from_days(days);
    format!(
        "From {sender} {} {} {:2} {:02}:{:02}:{:02} {y}\n",
        DOW[days.rem_euclid(7) as usize],
        MON[m as usize - 1],
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// mboxrd quoting of a message body: one more `>` before `>*From `.
pub fn quote_rd(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 16);
    for line in msg.split_inclusive(|&b| b == b'\n') {
        let n = line.iter().take_while(|&&b| b == b'>').count();
        if line[n..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    out
}

/// A Maildir file read back.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// `None` in `new/`, the flags in `cur/`.
    pub flags: Option<String>,
    pub bytes: Vec<u8>,
    pub mtime: i64,
    pub uid: u32,
    pub gid: u32,
}

/// The messages of a Maildir in name order, after checking what every
/// reader relies on: `tmp/` is empty, names are well formed, `S=` and `W=`
/// are the true sizes.
pub fn read_maildir(dir: &Path) -> Vec<Entry> {
    let tmp: Vec<_> = fs::read_dir(dir.join("tmp")).expect("tmp/").collect();
    assert!(tmp.is_empty(), "{}: tmp/ not empty: {tmp:?}", dir.display());
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        for e in fs::read_dir(dir.join(sub)).expect("new/ or cur/") {
            let e = e.unwrap();
            let name = e.file_name().into_string().expect("UTF-8 name");
            let (base, flags) = match name.split_once(":2,") {
                Some((b, f)) => (b.to_string(), Some(f.to_string())),
                None => (name.clone(), None),
            };
            assert_eq!(sub == "cur", flags.is_some(), "{name} in {sub}/");
            let bytes = fs::read(e.path()).unwrap();
            check_name(&base, &bytes);
            let m = e.metadata().unwrap();
            out.push(Entry {
                name,
                flags,
                bytes,
                mtime: m.mtime(),
                uid: m.uid(),
                gid: m.gid(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `<secs>.M<usecs>P<pid>Q<13 digits>.test.example,S=<size>,W=<vsize>`.
fn check_name(base: &str, bytes: &[u8]) {
    let mut parts = base.split(',');
    let unique = parts.next().unwrap();
    let size: Option<u64> = parts
        .next()
        .and_then(|p| p.strip_prefix("S=")?.parse().ok());
    let vsize: Option<u64> = parts
        .next()
        .and_then(|p| p.strip_prefix("W=")?.parse().ok());
    assert!(parts.next().is_none(), "{base}: extra fields");
    let bare_lf = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
        .count() as u64;
    assert_eq!(size, Some(bytes.len() as u64), "{base}: S=");
    assert_eq!(vsize, Some(bytes.len() as u64 + bare_lf), "{base}: W=");
    let (secs, rest) = unique.split_once(".M").expect("secs.M");
    assert!(secs.parse::<u64>().is_ok(), "{base}");
    let (usec, rest) = rest.split_once('P').expect("P");
    assert!(usec.parse::<u32>().is_ok_and(|u| u < 1_000_000), "{base}");
    let (pid, rest) = rest.split_once('Q').expect("Q");
    assert!(pid.parse::<u32>().is_ok(), "{base}");
    let (q, host) = rest.split_once('.').expect("host");
    assert!(
        q.len() == 13 && q.bytes().all(|b| b.is_ascii_digit()),
        "{base}"
    );
    assert_eq!(host, "test.example", "{base}");
}

/// A deterministic pseudo-random generator (xorshift), so corpora are the
/// same on every run without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One generated message (unquoted), with what a converter must make of it.
#[derive(Debug, Clone)]
pub struct Generated {
    pub message_id: String,
    /// The message as a Maildir must hold it (no bookkeeping headers).
    pub stored: Vec<u8>,
    /// The message as the mbox holds it (with Status/X-Status, unquoted).
    pub in_mbox: Vec<u8>,
    /// Maildir flags; `None`: a new message.
    pub flags: Option<String>,
    pub secs: i64,
}

const WORDS: &[&str] = &[
    "mail", "spool", "queue", "rename", "fsync", "the", "of", "and", "deliver", "folder",
    "archive", "report", "meeting", "budget", "patch", "release", "server", "thanks",
];

/// `n` messages for an mboxrd corpus: bodies with `From ` and `>From `
/// lines, flags on most, sizes from a few hundred bytes to ~20 KB.
pub fn generate(n: usize, seed: u64) -> Vec<Generated> {
    let mut rng = Rng::new(seed);
    let mut t = 1_577_836_800i64;
    (0..n)
        .map(|i| {
            t += 1 + rng.below(3600) as i64;
            let message_id = format!("<{i}.{:08x}@gen.test>", rng.next() as u32);
            let mut head = format!(
                "Return-Path: <u{i}@example.org>\nFrom: u{i}@example.org\nTo: bob@example.com\n\
                 Subject: message {i}\nDate: placeholder\nMessage-ID: {message_id}\n"
            );
            head = head.replace("Date: placeholder\n", "");
            let mut body = String::new();
            let long = rng.below(10) == 0;
            let lines = 5 + rng.below(if long { 300 } else { 40 });
            for _ in 0..lines {
                match rng.below(40) {
                    0 => body.push_str("From the archives, a line that needs quoting.\n"),
                    1 => body.push_str(">From an already quoted line.\n"),
                    2 => body.push_str(">>From deeper still.\n"),
                    3 => body.push('\n'),
                    _ => {
                        let w: Vec<&str> = (0..8 + rng.below(8))
                            .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
                            .collect();
                        body.push_str(&w.join(" "));
                        body.push('\n');
                    }
                }
            }
            let (status, flags) = match rng.below(10) {
                0..=4 => ("Status: RO\n", Some("S".to_string())),
                5..=6 => ("Status: O\n", Some(String::new())),
                _ => ("", None),
            };
            let (xstatus, flags) = match (rng.below(8), flags) {
                (0, f) => ("X-Status: A\n", Some(merge(f.as_deref(), "R"))),
                (1, f) => ("X-Status: F\n", Some(merge(f.as_deref(), "F"))),
                (_, f) => ("", f),
            };
            let stored = format!("{head}\n{body}").into_bytes();
            let in_mbox = format!("{head}{status}{xstatus}\n{body}").into_bytes();
            Generated {
                message_id,
                stored,
                in_mbox,
                flags,
                secs: t,
            }
        })
        .collect()
}

fn merge(a: Option<&str>, b: &str) -> String {
    let mut v: Vec<char> = a.unwrap_or("").chars().chain(b.chars()).collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().collect()
}

/// The mboxrd file for `msgs`.
pub fn mboxrd(msgs: &[Generated]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(from_line("sender@example.org", m.secs).as_bytes());
        out.extend_from_slice(&quote_rd(&m.in_mbox));
        out.push(b'\n');
    }
    out
}

/// The `Message-ID` of a stored message.
pub fn message_id(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_string))
}

/// Where python3 is (the tests compare with Python's `mailbox` module).
pub fn python() -> &'static str {
    "python3"
}

/// convert2maildir, quiet, with two workers, UTC dates and a fixed host
/// name, as the crash, online and memory tests run it.
pub fn quiet_convert() -> Command {
    let mut c = Command::new(bin());
    c.args([
        "--from-tz",
        "UTC",
        "--host",
        "test.example",
        "-j",
        "2",
        "-q",
    ]);
    c
}

/// Starts a quiet conversion of `src` into `dest` (output discarded).
pub fn spawn_convert(src: &Path, dest: &Path) -> std::process::Child {
    quiet_convert()
        .arg(src)
        .arg(dest)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start convert2maildir")
}

/// Every one of `n` generated messages is in the Maildir at `dest`, once
/// (told apart by Message-ID).
pub fn assert_each_once(dest: &Path, n: usize) {
    let entries = read_maildir(dest);
    assert_eq!(entries.len(), n, "exact message count");
    let ids: std::collections::HashSet<String> = entries
        .iter()
        .filter_map(|e| message_id(&e.bytes))
        .collect();
    assert_eq!(ids.len(), n, "no duplicates");
}
