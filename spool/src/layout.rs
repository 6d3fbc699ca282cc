//! Where each file of a message lives (pure path logic, no I/O).
//!
//! ```text
//! <root>/input/<c>/<ID>-H      envelope + headers; its appearance commits the message
//! <root>/input/<c>/<ID>-D      body
//! <root>/input/<c>/<ID>-J      delivery journal (only during and after a delivery attempt)
//! <root>/input/<c>/<ID>-D.tmp  files being written (garbage when old)
//! <root>/input/<c>/<ID>-H.tmp
//! <root>/input/<c>/<ID>-H.new  an -H being rewritten (garbage when old)
//! <root>/msglog/<c>/<ID>       per-message delivery log
//! ```
//!
//! `<c>` is the 6th character of the ID, the last base-62 digit of the
//! arrival second (Exim's `split_spool_directory`): consecutive seconds land
//! in different directories, so no directory grows past 1/62 of the queue.
//! Without splitting, the files sit directly in `input/` and `msglog/`.
//! Readers look in both places, as Exim does, so a spool keeps working when
//! the setting changes.

use std::path::{Path, PathBuf};

use crate::id::{DIGITS, MessageId};

pub const INPUT: &str = "input";
pub const MSGLOG: &str = "msglog";
/// Suffix of files being written for a new message.
pub const TEMP_SUFFIX: &str = ".tmp";
/// Suffix of an `-H` file being rewritten.
pub const REWRITE_SUFFIX: &str = ".new";

/// The paths of one spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
    split: bool,
}

/// What a name found in an input directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolFile {
    /// `<ID>-H`
    Header(MessageId),
    /// `<ID>-D`
    Data(MessageId),
    /// `<ID>-J`
    Journal(MessageId),
    /// `<ID>-D.tmp`, `<ID>-H.tmp`, `<ID>-H.new`: unfinished writes.
    Temp(MessageId),
    /// Anything else (left alone).
    Other,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>, split: bool) -> Layout {
        Layout {
            root: root.into(),
            split,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_split(&self) -> bool {
        self.split
    }

    /// The same spool with the other `split` setting (where readers look
    /// second).
    pub fn alternate(&self) -> Layout {
        Layout {
            root: self.root.clone(),
            split: !self.split,
        }
    }

    pub fn input_root(&self) -> PathBuf {
        self.root.join(INPUT)
    }

    pub fn msglog_root(&self) -> PathBuf {
        self.root.join(MSGLOG)
    }

    /// The directory holding the `-H`, `-D` and `-J` files of `id`.
    pub fn input_dir(&self, id: &MessageId) -> PathBuf {
        let d = self.input_root();
        if self.split {
            d.join(id.subdir().to_string())
        } else {
            d
        }
    }

    pub fn msglog_dir(&self, id: &MessageId) -> PathBuf {
        let d = self.msglog_root();
        if self.split {
            d.join(id.subdir().to_string())
        } else {
            d
        }
    }

    pub fn header(&self, id: &MessageId) -> PathBuf {
        self.input_dir(id).join(format!("{id}-H"))
    }

    pub fn data(&self, id: &MessageId) -> PathBuf {
        self.input_dir(id).join(format!("{id}-D"))
    }

    pub fn journal(&self, id: &MessageId) -> PathBuf {
        self.input_dir(id).join(format!("{id}-J"))
    }

    pub fn msglog(&self, id: &MessageId) -> PathBuf {
        self.msglog_dir(id).join(id.as_str())
    }

    /// Temporary name of the `-H` (`kind = 'H'`) or `-D` file of a message
    /// being entered.
    pub fn temp(&self, id: &MessageId, kind: char) -> PathBuf {
        self.input_dir(id).join(format!("{id}-{kind}{TEMP_SUFFIX}"))
    }

    /// Temporary name of a rewritten `-H`.
    pub fn rewrite(&self, id: &MessageId) -> PathBuf {
        self.input_dir(id).join(format!("{id}-H{REWRITE_SUFFIX}"))
    }

    /// The 62 subdirectory names, in digit order.
    pub fn subdir_names() -> impl Iterator<Item = char> {
        DIGITS.iter().map(|&c| c as char)
    }

    /// Every directory that may hold input files: `input/` itself, then its
    /// 62 subdirectories (whether or not they exist; callers skip missing
    /// ones).
    pub fn input_dirs(&self) -> Vec<PathBuf> {
        let top = self.input_root();
        let mut v = vec![top.clone()];
        v.extend(Layout::subdir_names().map(|c| top.join(c.to_string())));
        v
    }
}

/// Classifies a file name found in an input directory.
pub fn classify(name: &str) -> SpoolFile {
    let (stem, temp) = if let Some(s) = name.strip_suffix(TEMP_SUFFIX) {
        (s, true)
    } else if let Some(s) = name.strip_suffix(REWRITE_SUFFIX) {
        (s, true)
    } else {
        (name, false)
    };
    let Some((id, kind)) = stem.rsplit_once('-') else {
        return SpoolFile::Other;
    };
    let Ok(id) = MessageId::parse(id) else {
        return SpoolFile::Other;
    };
    match (kind, temp) {
        ("H" | "D", true) => SpoolFile::Temp(id),
        ("H", false) => SpoolFile::Header(id),
        ("D", false) => SpoolFile::Data(id),
        ("J", false) => SpoolFile::Journal(id),
        _ => SpoolFile::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_and_flat() {
        let id = MessageId::parse("1tixMn-00000000C5j-1wRa").unwrap();
        let split = Layout::new("/s", true);
        let flat = Layout::new("/s", false);
        let cases: &[(PathBuf, &str)] = &[
            (split.header(&id), "/s/input/n/1tixMn-00000000C5j-1wRa-H"),
            (split.data(&id), "/s/input/n/1tixMn-00000000C5j-1wRa-D"),
            (split.journal(&id), "/s/input/n/1tixMn-00000000C5j-1wRa-J"),
            (split.msglog(&id), "/s/msglog/n/1tixMn-00000000C5j-1wRa"),
            (
                split.temp(&id, 'D'),
                "/s/input/n/1tixMn-00000000C5j-1wRa-D.tmp",
            ),
            (
                split.rewrite(&id),
                "/s/input/n/1tixMn-00000000C5j-1wRa-H.new",
            ),
            (flat.header(&id), "/s/input/1tixMn-00000000C5j-1wRa-H"),
            (flat.data(&id), "/s/input/1tixMn-00000000C5j-1wRa-D"),
            (flat.msglog(&id), "/s/msglog/1tixMn-00000000C5j-1wRa"),
        ];
        for (got, want) in cases {
            assert_eq!(got, Path::new(want));
        }
        assert_eq!(split.alternate(), flat);
        let dirs = split.input_dirs();
        assert_eq!(dirs.len(), 63);
        assert_eq!(dirs[0], Path::new("/s/input"));
        assert_eq!(dirs[1], Path::new("/s/input/0"));
        assert_eq!(dirs[62], Path::new("/s/input/z"));
    }

    #[test]
    fn classify_names() {
        let id = MessageId::parse("16ZCW1-0005MB-00").unwrap();
        let cases: &[(&str, SpoolFile)] = &[
            ("16ZCW1-0005MB-00-H", SpoolFile::Header(id)),
            ("16ZCW1-0005MB-00-D", SpoolFile::Data(id)),
            ("16ZCW1-0005MB-00-J", SpoolFile::Journal(id)),
            ("16ZCW1-0005MB-00-D.tmp", SpoolFile::Temp(id)),
            ("16ZCW1-0005MB-00-H.tmp", SpoolFile::Temp(id)),
            ("16ZCW1-0005MB-00-H.new", SpoolFile::Temp(id)),
            ("16ZCW1-0005MB-00-J.tmp", SpoolFile::Other),
            ("16ZCW1-0005MB-00-K", SpoolFile::Other),
            ("16ZCW1-0005MB-0-H", SpoolFile::Other),
            ("hdr.1234", SpoolFile::Other),
            ("n", SpoolFile::Other),
            ("", SpoolFile::Other),
        ];
        for &(name, want) in cases {
            assert_eq!(classify(name), want, "{name}");
        }
    }
}
