//! Maildir file names (qmail's revised protocol with Dovecot's size fields).
//!
//! ```text
//! new/1700000000.M123456P4242Q7.mail.example,S=4096,W=4180
//! cur/1700000000.M123456P4242Q7.mail.example,S=4096,W=4180:2,FS
//! ```
//!
//! `M` is the microsecond of the delivery, `P` the process id and `Q` a
//! per-process counter, so two deliveries of one process in one microsecond
//! still differ. The host name has `/` and `:` escaped as `\057` and `\072`
//! (qmail's maildir(5)). `S=` is the exact number of bytes in the file,
//! `W=` the size with every bare LF counted as CRLF (IMAP's RFC822.SIZE), so
//! Dovecot and Maildir++ quota code can use them without a `stat()`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The separator between the unique name and the info (`:2,flags`).
pub const INFO_SEP: char = ':';

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Escapes a host name for use in a Maildir name.
pub fn escape_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            c => out.push(c),
        }
    }
    out
}

/// A fresh unique base name: `<secs>.M<usecs>P<pid>Q<n>.<host>`.
pub fn unique(host: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    unique_at(
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        host,
    )
}

/// [`unique`] with every part given (for tests and callers with their own clock).
pub fn unique_at(secs: u64, usecs: u32, pid: u32, seq: u64, host: &str) -> String {
    format!("{secs}.M{usecs}P{pid}Q{seq}.{}", escape_host(host))
}

/// Appends the size fields to a base name: `<base>,S=<size>,W=<vsize>`.
pub fn with_sizes(base: &str, size: u64, vsize: u64) -> String {
    format!("{base},S={size},W={vsize}")
}

/// A Maildir file name taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Everything before the info separator (unique part and `,X=` fields).
    pub base: &'a str,
    /// `S=` if present.
    pub size: Option<u64>,
    /// `W=` if present.
    pub vsize: Option<u64>,
    /// The flags after `:2,` (None when there is no `:2,` info).
    pub flags: Option<&'a str>,
}

/// Parses a Maildir file name. Never fails: unknown parts are kept in `base`.
pub fn parse(name: &str) -> Parsed<'_> {
    let (base, flags) = match name.rfind(INFO_SEP) {
        Some(i) if name[i + 1..].starts_with("2,") => (&name[..i], Some(&name[i + 3..])),
        Some(i) => (&name[..i], None),
        None => (name, None),
    };
    let mut size = None;
    let mut vsize = None;
    for field in base.split(',').skip(1) {
        if let Some(v) = field.strip_prefix("S=") {
            size = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("W=") {
            vsize = v.parse().ok();
        }
    }
    Parsed {
        base,
        size,
        vsize,
        flags,
    }
}

/// Counts bytes and the extra bytes a CRLF rendering would add, as a
/// message streams through.
#[derive(Debug, Default, Clone, Copy)]
pub struct SizeCounter {
    size: u64,
    bare_lf: u64,
    last_was_cr: bool,
}

impl SizeCounter {
    pub fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        let mut prev_cr = self.last_was_cr;
        for &b in chunk {
            if b == b'\n' && !prev_cr {
                self.bare_lf += 1;
            }
            prev_cr = b == b'\r';
        }
        self.last_was_cr = prev_cr;
    }
    /// `S=`: the bytes seen.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// `W=`: the size with each bare LF counted as CRLF.
    pub fn vsize(&self) -> u64 {
        self.size + self.bare_lf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names() {
        let cases = [
            (
                (1700000000, 5, 42, 0, "mx.example"),
                "1700000000.M5P42Q0.mx.example",
            ),
            ((1, 999999, 1, 17, "a/b:c"), "1.M999999P1Q17.a\\057b\\072c"),
        ];
        for ((s, u, p, q, h), want) in cases {
            assert_eq!(unique_at(s, u, p, q, h), want);
        }
        assert_ne!(unique("h"), unique("h"));
    }

    /// (name, S=, W=, flags, base)
    type NameCase = (
        &'static str,
        Option<u64>,
        Option<u64>,
        Option<&'static str>,
        &'static str,
    );

    #[test]
    fn parse_names() {
        let cases: &[NameCase] = &[
            (
                "1.M2P3Q4.h,S=10,W=12",
                Some(10),
                Some(12),
                None,
                "1.M2P3Q4.h,S=10,W=12",
            ),
            (
                "1.M2P3Q4.h,S=10,W=12:2,FS",
                Some(10),
                Some(12),
                Some("FS"),
                "1.M2P3Q4.h,S=10,W=12",
            ),
            (
                "1035478339.27041_118.foo.org,S=1000,W=1030:2,S",
                Some(1000),
                Some(1030),
                Some("S"),
                "1035478339.27041_118.foo.org,S=1000,W=1030",
            ),
            ("plain", None, None, None, "plain"),
            ("x:2,", None, None, Some(""), "x"),
            ("x,S=abc", None, None, None, "x,S=abc"),
            ("x:1,experimental", None, None, None, "x"),
        ];
        for &(name, size, vsize, flags, base) in cases {
            let p = parse(name);
            assert_eq!(
                (p.size, p.vsize, p.flags, p.base),
                (size, vsize, flags, base),
                "{name}"
            );
        }
    }

    #[test]
    fn size_counter_counts_bare_lf_across_chunks() {
        let cases: &[(&[&[u8]], u64, u64)] = &[
            (&[b"a\nb\n"], 4, 6),
            (&[b"a\r\nb\r\n"], 6, 6),
            (&[b"a\r", b"\nb\n"], 5, 6),
            (&[b"\n\n", b"\n"], 3, 6),
            (&[b""], 0, 0),
        ];
        for &(chunks, s, w) in cases {
            let mut c = SizeCounter::default();
            for ch in chunks {
                c.update(ch);
            }
            assert_eq!((c.size(), c.vsize()), (s, w), "{chunks:?}");
        }
    }
}
