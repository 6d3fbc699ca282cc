//! Maildir++ quota: the `maildirsize` file (Courier's maildirquota spec, as
//! Dovecot, Exim and cPanel use it).
//!
//! ```text
//! 10000000S,1000C        quota: bytes and/or messages (either may be absent)
//! 123456 42              a (re)calculated total
//! 4096 1                 one line per delivery (appended)
//! -4096 -1               one line per removal
//! ```
//!
//! Usage is the sum of all lines after the first. The file is only ever
//! appended to with one `write()` per line (O_APPEND makes each line atomic
//! with respect to other writers) and is rebuilt (temp file + rename) when it
//! grows past [`MAX_FILE_SIZE`], or when a delivery would go over quota and
//! the file is older than [`STALE_AFTER`]: the spec's two recalculation rules.
//! A delta line that cannot be parsed also triggers a rebuild; a quota line
//! that cannot be parsed is an error, since nothing else says what the
//! quota is.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::maildir::name;

/// The quota file's name, at the top of a Maildir++ tree.
pub const FILE_NAME: &str = "maildirsize";
/// Rebuild when the file grows past this (the spec: 5120 bytes).
pub const MAX_FILE_SIZE: u64 = 5120;
/// Rebuild an over-quota file older than this (the spec: 15 minutes).
pub const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// The quota line: limits in bytes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaDef {
    pub bytes: Option<u64>,
    pub count: Option<u64>,
}

impl QuotaDef {
    /// Parses `10000000S,1000C` (items in any order; an empty line means no
    /// limit).
    pub fn parse(line: &str) -> std::result::Result<QuotaDef, String> {
        let mut def = QuotaDef::default();
        for item in line.trim().split(',').filter(|s| !s.is_empty()) {
            let (num, kind) = item.split_at(item.len() - 1);
            let n: u64 = num
                .parse()
                .map_err(|_| format!("{item:?} is not <number>S or <number>C"))?;
            match kind {
                "S" => def.bytes = Some(n),
                "C" => def.count = Some(n),
                _ => return Err(format!("{item:?} is not <number>S or <number>C")),
            }
        }
        Ok(def)
    }

    pub fn render(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.bytes {
            parts.push(format!("{b}S"));
        }
        if let Some(c) = self.count {
            parts.push(format!("{c}C"));
        }
        parts.join(",")
    }

    /// Whether `bytes`/`count` exceed the limits (a limit of 0 means none,
    /// as in Courier).
    pub fn exceeded_by(&self, bytes: u64, count: u64) -> bool {
        self.bytes.is_some_and(|l| l > 0 && bytes > l)
            || self.count.is_some_and(|l| l > 0 && count > l)
    }
}

/// What `maildirsize` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub def: QuotaDef,
    pub bytes: u64,
    pub count: u64,
    /// A delta line could not be parsed: the totals need a rebuild.
    pub damaged: bool,
    file_len: u64,
    modified: Option<SystemTime>,
}

/// Reads `<root>/maildirsize`; `Ok(None)` when there is none (no quota).
pub fn read(root: &Path) -> Result<Option<Usage>> {
    let path = root.join(FILE_NAME);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let meta = fs::metadata(&path).ok();
    let text = String::from_utf8_lossy(&text);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("");
    let def = QuotaDef::parse(first).map_err(|why| Error::BadQuotaFile {
        path: path.clone(),
        line: 1,
        why,
    })?;
    let (mut bytes, mut count, mut damaged) = (0i64, 0i64, false);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        match (
            it.next().and_then(|b| b.parse::<i64>().ok()),
            it.next().and_then(|c| c.parse::<i64>().ok()),
            it.next(),
        ) {
            (Some(b), Some(c), None) => {
                bytes += b;
                count += c;
            }
            _ => damaged = true,
        }
    }
    Ok(Some(Usage {
        def,
        bytes: bytes.max(0) as u64,
        count: count.max(0) as u64,
        damaged,
        file_len: meta.as_ref().map_or(0, |m| m.len()),
        modified: meta.and_then(|m| m.modified().ok()),
    }))
}

/// Appends one delta line (`<bytes> <count>`).
pub fn record(root: &Path, bytes: i64, count: i64) -> Result<()> {
    let path = root.join(FILE_NAME);
    let mut f = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    // One write() per line: O_APPEND keeps concurrent lines whole.
    f.write_all(format!("{bytes} {count}\n").as_bytes())
        .map_err(|e| Error::io("append", &path, e))
}

/// Sums the sizes of every message in `root` and its Maildir++ folders,
/// from `S=` where the name has it, else from `stat()`.
pub fn calculate(root: &Path) -> Result<(u64, u64)> {
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    let entries = fs::read_dir(root).map_err(|e| Error::io("read directory", root, e))?;
    for e in entries.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if n.starts_with('.') && n != "." && n != ".." && e.path().join("cur").is_dir() {
            dirs.push(e.path());
        }
    }
    let (mut bytes, mut count) = (0u64, 0u64);
    for d in dirs {
        for sub in ["new", "cur"] {
            let dir = d.join(sub);
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let fname = e.file_name();
                let fname = fname.to_string_lossy();
                if fname.starts_with('.') {
                    continue;
                }
                let size = match name::parse(&fname).size {
                    Some(s) => s,
                    None => match e.metadata() {
                        Ok(m) => m.len(),
                        Err(_) => continue, // moved or removed meanwhile
                    },
                };
                bytes += size;
                count += 1;
            }
        }
    }
    Ok((bytes, count))
}

/// Rebuilds `maildirsize` from the messages on disk (temp file + rename, so
/// readers see the old or the new file, never a half-written one). Not
/// synced: the file is a summary recomputed by the spec's rules whenever it
/// looks wrong or old, so losing the rebuild to a power cut costs a rebuild.
pub fn rebuild(root: &Path, def: QuotaDef) -> Result<Usage> {
    let (bytes, count) = calculate(root)?;
    let tmp = root
        .join("tmp")
        .join(format!("{}.{}", name::unique("maildirsize"), FILE_NAME));
    let path = root.join(FILE_NAME);
    let body = format!("{}\n{bytes} {count}\n", def.render());
    durable::replace_file(
        &durable::RealIo,
        &path,
        &tmp,
        0o600,
        body.as_bytes(),
        durable::Persist::Cache,
        |_| Ok(()),
    )
    .map_err(|e| Error::io("rebuild", &path, e))?;
    Ok(Usage {
        def,
        bytes,
        count,
        damaged: false,
        file_len: body.len() as u64,
        modified: Some(SystemTime::now()),
    })
}

/// Creates or replaces `maildirsize` with quota `def` and the current usage.
pub fn set(root: &Path, def: QuotaDef) -> Result<Usage> {
    rebuild(root, def)
}

/// Whether a message of `size` bytes fits; `None` when there is no quota.
/// Rebuilds the file when the spec says it is stale.
pub fn check(root: &Path, size: u64) -> Result<Option<(Usage, bool)>> {
    let Some(mut usage) = read(root)? else {
        return Ok(None);
    };
    let too_big = usage.file_len > MAX_FILE_SIZE;
    if usage.damaged || too_big {
        usage = rebuild(root, usage.def)?;
    }
    let mut over = usage.def.exceeded_by(usage.bytes + size, usage.count + 1);
    if over {
        let old = usage
            .modified
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            usage = rebuild(root, usage.def)?;
            over = usage.def.exceeded_by(usage.bytes + size, usage.count + 1);
        }
    }
    Ok(Some((usage, over)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_quota_lines() {
        let cases: &[(&str, Option<QuotaDef>)] = &[
            (
                "10000000S,1000C",
                Some(QuotaDef {
                    bytes: Some(10000000),
                    count: Some(1000),
                }),
            ),
            (
                "1000C,5S",
                Some(QuotaDef {
                    bytes: Some(5),
                    count: Some(1000),
                }),
            ),
            (
                "2048S",
                Some(QuotaDef {
                    bytes: Some(2048),
                    count: None,
                }),
            ),
            ("", Some(QuotaDef::default())),
            ("10X", None),
            ("abcS", None),
            ("S", None),
        ];
        for (line, want) in cases {
            assert_eq!(QuotaDef::parse(line).ok(), *want, "{line}");
        }
    }

    #[test]
    fn usage_sums_lines_and_rebuilds_when_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["tmp", "new", "cur"] {
            fs::create_dir(root.join(d)).unwrap();
        }
        fs::write(root.join("cur/1.M1P1Q1.h,S=300,W=310:2,S"), vec![b'x'; 300]).unwrap();
        fs::write(root.join(FILE_NAME), "1000S,10C\n100 1\n200 1\n-50 -1\n").unwrap();
        let u = read(root).unwrap().unwrap();
        assert_eq!((u.bytes, u.count, u.damaged), (250, 1, false));

        fs::write(root.join(FILE_NAME), "1000S,10C\n100 1\ngarbage\n").unwrap();
        let (u, over) = check(root, 10).unwrap().unwrap();
        assert_eq!((u.bytes, u.count, over), (300, 1, false));
        assert_eq!(
            fs::read_to_string(root.join(FILE_NAME)).unwrap(),
            "1000S,10C\n300 1\n"
        );
    }

    #[test]
    fn over_quota_and_corrupt_quota_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("tmp")).unwrap();
        fs::write(root.join(FILE_NAME), "1000S\n900 3\n").unwrap();
        assert!(check(root, 200).unwrap().unwrap().1);
        assert!(!check(root, 100).unwrap().unwrap().1);
        fs::write(root.join(FILE_NAME), "lots\n900 3\n").unwrap();
        match check(root, 1) {
            Err(Error::BadQuotaFile { line: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(check(&root.join("none"), 1).unwrap().is_none());
    }
}
