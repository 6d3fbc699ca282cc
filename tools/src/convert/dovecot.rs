//! Dovecot's Maildir side files, so that IMAP and POP3 clients keep their
//! view of the mailbox after the migration:
//!
//! - `dovecot-keywords`: `<index> <keyword>` lines; index 0 is the letter
//!   `a` in the `:2,` flags of a file name, 1 is `b`, ... up to 25 (`z`).
//! - `dovecot-uidlist` (version 3): a header `3 V<uidvalidity> N<nextuid>`,
//!   then `<uid> :<file name without the :2, info>` lines in UID order. With
//!   the UIDVALIDITY and UIDs an mbox carried (`X-IMAPbase`, `X-UID`),
//!   clients do not download everything again, and POP3 UIDLs (Dovecot's
//!   default `%08Xu%08Xv`) stay the same.
//!
//! Both are written whole (temporary file, data sync, rename, directory
//! sync), and only where no such file exists yet: once Dovecot serves the
//! Maildir, the files are Dovecot's.

use std::fs;
use std::io;
use std::path::Path;

/// The file names.
pub const KEYWORDS_FILE: &str = "dovecot-keywords";
pub const UIDLIST_FILE: &str = "dovecot-uidlist";
/// Dovecot stores at most 26 keywords in Maildir file names (`a`–`z`).
pub const MAX_KEYWORDS: usize = 26;

/// The keyword ↔ letter table of one Maildir.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    names: Vec<String>,
    /// Whether names were added since loading.
    pub changed: bool,
}

impl Keywords {
    /// Reads `dir/dovecot-keywords` (absent: empty).
    pub fn load(dir: &Path) -> io::Result<Keywords> {
        let text = match fs::read_to_string(dir.join(KEYWORDS_FILE)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Keywords::default()),
            Err(e) => return Err(e),
        };
        Ok(Keywords::parse(&text))
    }

    /// Parses the file's text. Lines that do not parse are skipped, as
    /// Dovecot skips them.
    pub fn parse(text: &str) -> Keywords {
        let mut names: Vec<String> = Vec::new();
        for line in text.lines() {
            let Some((idx, name)) = line.split_once(' ') else {
                continue;
            };
            let Ok(idx) = idx.parse::<usize>() else {
                continue;
            };
            if idx >= MAX_KEYWORDS || name.is_empty() {
                continue;
            }
            if names.len() <= idx {
                names.resize(idx + 1, String::new());
            }
            names[idx] = name.to_string();
        }
        Keywords {
            names,
            changed: false,
        }
    }

    /// The letters for `keywords`, adding new ones to the table. Returns
    /// the letters (sorted) and the keywords that did not fit.
    pub fn letters(&mut self, keywords: &[String]) -> (String, Vec<String>) {
        let mut letters = Vec::new();
        let mut dropped = Vec::new();
        for k in keywords {
            let idx = match self.names.iter().position(|n| n == k) {
                Some(i) => i,
                None => match self.names.iter().position(String::is_empty) {
                    Some(i) => {
                        self.names[i] = k.clone();
                        self.changed = true;
                        i
                    }
                    None if self.names.len() < MAX_KEYWORDS => {
                        self.names.push(k.clone());
                        self.changed = true;
                        self.names.len() - 1
                    }
                    None => {
                        dropped.push(k.clone());
                        continue;
                    }
                },
            };
            letters.push(b'a' + idx as u8);
        }
        letters.sort_unstable();
        letters.dedup();
        (String::from_utf8(letters).unwrap_or_default(), dropped)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.names.iter().enumerate() {
            if !n.is_empty() {
                s.push_str(&format!("{i} {n}\n"));
            }
        }
        s
    }
}

/// The text of a `dovecot-uidlist` for `entries` (UID, file base name).
/// Entries are sorted by UID; `uidnext` is raised past the highest UID.
pub fn render_uidlist(uidvalidity: u32, uidnext: u32, entries: &mut [(u32, String)]) -> String {
    entries.sort_unstable();
    let max = entries.last().map_or(0, |e| e.0);
    let next = uidnext.max(max.saturating_add(1)).max(1);
    let mut s = format!("3 V{uidvalidity} N{next}\n");
    for (uid, name) in entries.iter() {
        s.push_str(&format!("{uid} :{name}\n"));
    }
    s
}

/// Writes `dir/name` with `text` durably, unless it exists. Returns whether
/// it wrote.
pub fn write_new(
    dir: &Path,
    name: &str,
    text: &str,
    owner: Option<(u32, u32)>,
) -> io::Result<bool> {
    let path = dir.join(name);
    if path.exists() {
        return Ok(false);
    }
    write_replace(dir, name, text, owner)?;
    Ok(true)
}

/// Writes `dir/name` with `text` durably, replacing it.
pub fn write_replace(
    dir: &Path,
    name: &str,
    text: &str,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.convert2maildir.{}", std::process::id()));
    durable::replace_file(
        &durable::RealIo,
        &dir.join(name),
        &tmp,
        0o600,
        text.as_bytes(),
        durable::Persist::Durable,
        |f| match owner {
            Some((u, g)) => std::os::unix::fs::fchown(f, Some(u), Some(g)),
            None => Ok(()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_letters() {
        let mut k = Keywords::parse("0 $Junk\n1 NonJunk\nbad line\n3 Work\n99 Toolate\n");
        assert!(!k.changed);
        let cases: &[(&[&str], &str, &[&str])] = &[
            (&["NonJunk"], "b", &[]),
            (&["Work", "$Junk"], "ad", &[]),
            (&["New"], "c", &[]), // fills the gap at index 2
            (&["Another", "$Junk"], "ae", &[]),
        ];
        for &(kw, letters, dropped) in cases {
            let kw: Vec<String> = kw.iter().map(|s| s.to_string()).collect();
            let (l, d) = k.letters(&kw);
            assert_eq!(
                (l.as_str(), d),
                (letters, dropped.iter().map(|s| s.to_string()).collect())
            );
        }
        assert!(k.changed);
        assert_eq!(k.render(), "0 $Junk\n1 NonJunk\n2 New\n3 Work\n4 Another\n");
        let mut full = Keywords::default();
        let many: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
        let (l, d) = full.letters(&many);
        assert_eq!(l.len(), 26);
        assert_eq!(d, ["k26", "k27", "k28", "k29"]);
    }

    #[test]
    fn uidlist_text() {
        let mut e = vec![(7, "b,S=2,W=3".to_string()), (3, "a,S=1,W=2".to_string())];
        assert_eq!(
            render_uidlist(1234, 5, &mut e),
            "3 V1234 N8\n3 :a,S=1,W=2\n7 :b,S=2,W=3\n"
        );
        assert_eq!(render_uidlist(1, 0, &mut []), "3 V1 N1\n");
    }

    #[test]
    fn files_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_new(dir.path(), "f", "one\n", None).unwrap());
        assert!(!write_new(dir.path(), "f", "two\n", None).unwrap());
        assert_eq!(fs::read_to_string(dir.path().join("f")).unwrap(), "one\n");
        write_replace(dir.path(), "f", "three\n", None).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("f")).unwrap(), "three\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
