//! Which mboxes to convert, and where each one goes.
//!
//! | input                               | goes to                                   |
//! |-------------------------------------|-------------------------------------------|
//! | one SRC file                        | DEST is its Maildir                       |
//! | several SRC files                   | each a folder of DEST named after the file (`inbox` → DEST itself) |
//! | a SRC directory (a user's `mail/`)  | DEST is a Maildir++ root: `inbox` → the root, `Sent` → `.Sent`, `Lists/rust` → `.Lists.rust` |
//! | `--users DIR`                       | each file `DIR/<user>` → `DEST/<user>/Maildir` |
//!
//! In a tree, file and directory names are the IMAP names: kept as they are
//! when they already are modified UTF-7 (UW-IMAP and Dovecot store them so),
//! encoded when they are UTF-8 (or Latin-1, taken as such), then escaped for
//! Maildir++ ([`mailstore::maildir::imap_name`]). Thunderbird's `Foo.sbd/`
//! directories hold the subfolders of `Foo`. Hidden files, lock files and
//! mail readers' index files (`.msf`) are passed over.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mailstore::maildir::imap_name;

/// One mbox to convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    /// The Maildir++ root it goes under.
    pub root: PathBuf,
    /// The Maildir++ folder (encoded, without the leading dot); `None` for
    /// the root itself (the INBOX).
    pub folder: Option<String>,
    /// The owner of the source (uid, gid): the output takes it when the
    /// converter runs as root.
    pub owner: (u32, u32),
    pub size: u64,
    pub mtime: i64,
}

impl Source {
    /// The Maildir directory this source is written into.
    pub fn maildir(&self) -> PathBuf {
        match &self.folder {
            None => self.root.clone(),
            Some(f) => self.root.join(format!(".{f}")),
        }
    }
}

/// An input passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub why: String,
    /// Whether this makes the run fail (unreadable, unusable) rather than
    /// being expected (hidden files, lock files).
    pub error: bool,
}

/// Where the inputs are.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    /// SRC... arguments.
    Paths(&'a [PathBuf]),
    /// `--users DIR`.
    Users(&'a Path),
}

/// Lists the sources, in a stable order (sorted by path), without
/// duplicates (the same file reached twice) or destination clashes.
pub fn discover(input: Input<'_>, dest: &Path) -> (Vec<Source>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    match input {
        Input::Users(dir) => users(dir, dest, &mut out, &mut skipped),
        Input::Paths(paths) => {
            let single = paths.len() == 1;
            for p in paths {
                match fs::metadata(p) {
                    Ok(m) if m.is_dir() => tree(p, dest, &mut out, &mut skipped),
                    Ok(m) if m.is_file() => {
                        let folder = if single {
                            None
                        } else {
                            let name = p.file_name().map(|n| n.as_encoded_bytes().to_vec());
                            folder_name(&[name.unwrap_or_default()])
                        };
                        out.push(source(p, &m, dest.to_path_buf(), folder));
                    }
                    Ok(_) => skipped.push(Skipped {
                        path: p.clone(),
                        why: "not a regular file or directory".into(),
                        error: true,
                    }),
                    Err(e) => skipped.push(Skipped {
                        path: p.clone(),
                        why: format!("cannot read: {e}"),
                        error: true,
                    }),
                }
            }
        }
    }
    dedup(out, skipped)
}

fn source(path: &Path, m: &fs::Metadata, root: PathBuf, folder: Option<String>) -> Source {
    Source {
        path: path.to_path_buf(),
        root,
        folder,
        owner: (m.uid(), m.gid()),
        size: m.len(),
        mtime: m.mtime(),
    }
}

/// Whether a file is a companion of mail files, not mail: passed over
/// without counting as an error.
fn ignored(name: &[u8]) -> bool {
    name.starts_with(b".")
        || name.ends_with(b".lock")
        || name.ends_with(b".msf")
        || name.ends_with(b".lck")
}

fn users(dir: &Path, dest: &Path, out: &mut Vec<Source>, skipped: &mut Vec<Skipped>) {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            skipped.push(Skipped {
                path: dir.to_path_buf(),
                why: format!("cannot list: {e}"),
                error: true,
            });
            return;
        }
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let path = e.path();
        if ignored(name.as_encoded_bytes()) {
            continue;
        }
        let Some(user) = name.to_str().filter(|u| !u.contains('/')) else {
            skipped.push(Skipped {
                path,
                why: "user name is not valid UTF-8".into(),
                error: true,
            });
            continue;
        };
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => {
                out.push(source(&path, &m, dest.join(user).join("Maildir"), None));
            }
            Ok(_) => skipped.push(Skipped {
                path,
                why: "not a regular file".into(),
                error: false,
            }),
            Err(e) => skipped.push(Skipped {
                path,
                why: format!("cannot read: {e}"),
                error: true,
            }),
        }
    }
}

fn tree(top: &Path, dest: &Path, out: &mut Vec<Source>, skipped: &mut Vec<Skipped>) {
    let dest_abs = fs::canonicalize(dest).ok();
    let walker = walkdir::WalkDir::new(top)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !(ignored(e.file_name().as_encoded_bytes())
                    || dest_abs.as_deref().is_some_and(|d| e.path() == d))
        });
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                skipped.push(Skipped {
                    path: e
                        .path()
                        .map_or_else(|| top.to_path_buf(), Path::to_path_buf),
                    why: format!("cannot read: {e}"),
                    error: true,
                });
                continue;
            }
        };
        if entry.file_type().is_dir() {
            continue;
        }
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(top) else {
            continue;
        };
        let meta = match fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue, // sockets, FIFOs, dangling links: not mail
            Err(e) => {
                skipped.push(Skipped {
                    path: path.to_path_buf(),
                    why: format!("cannot read: {e}"),
                    error: true,
                });
                continue;
            }
        };
        let levels: Vec<Vec<u8>> = rel
            .components()
            .map(|c| {
                let b = c.as_os_str().as_encoded_bytes();
                b.strip_suffix(b".sbd").unwrap_or(b).to_vec()
            })
            .collect();
        out.push(source(
            path,
            &meta,
            dest.to_path_buf(),
            folder_name(&levels),
        ));
    }
}

/// The Maildir++ folder for a path's levels; `None` for the INBOX.
pub fn folder_name(levels: &[Vec<u8>]) -> Option<String> {
    if let [only] = levels
        && only.eq_ignore_ascii_case(b"inbox")
    {
        return None;
    }
    let names: Vec<String> = levels.iter().map(|l| imap_level(l)).collect();
    let name = imap_name::to_maildir_encoded(names.iter().map(String::as_str));
    (!name.is_empty()).then_some(name)
}

/// One level of a path as modified UTF-7: kept if it already is (and holds
/// an encoded run, so it is not plain ASCII by chance), else encoded from
/// UTF-8, or from Latin-1 when it is not UTF-8.
fn imap_level(level: &[u8]) -> String {
    match std::str::from_utf8(level) {
        Ok(s) if s.contains('&') && imap_name::decode_mutf7(s).is_ok() => s.to_string(),
        Ok(s) => imap_name::encode_mutf7(s),
        Err(_) => {
            let latin1: String = level.iter().map(|&b| char::from(b)).collect();
            imap_name::encode_mutf7(&latin1)
        }
    }
}

/// Drops a second path to the same file, and a second source for the same
/// Maildir (which would mix two mailboxes into one).
fn dedup(sources: Vec<Source>, mut skipped: Vec<Skipped>) -> (Vec<Source>, Vec<Skipped>) {
    let mut seen_files: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut seen_dest: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut out = Vec::new();
    for s in sources {
        if let Ok(m) = fs::metadata(&s.path)
            && let Some(first) = seen_files.insert((m.dev(), m.ino()), s.path.clone())
        {
            skipped.push(Skipped {
                path: s.path,
                why: format!("same file as {}", first.display()),
                error: false,
            });
            continue;
        }
        if let Some(first) = seen_dest.get(&s.maildir()) {
            skipped.push(Skipped {
                why: format!(
                    "would go to {}, as {} does already",
                    s.maildir().display(),
                    first.display()
                ),
                path: s.path,
                error: true,
            });
            continue;
        }
        seen_dest.insert(s.maildir(), s.path.clone());
        out.push(s);
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        let cases: &[(&[&[u8]], Option<&str>)] = &[
            (&[b"inbox"], None),
            (&[b"INBOX"], None),
            (&[b"Sent"], Some("Sent")),
            (&[b"Lists", b"rust"], Some("Lists.rust")),
            (&[b"Lists", b"inbox"], Some("Lists.inbox")),
            (&["Entwürfe".as_bytes()], Some("Entw&APw-rfe")),
            (&[b"Entw&APw-rfe"], Some("Entw&APw-rfe")),
            (&[b"Tom & Jerry"], Some("Tom &- Jerry")),
            (&[b"Entw\xfcrfe"], Some("Entw&APw-rfe")),
            (&[b"v1.2"], Some("v1\\2e2")),
        ];
        for &(levels, want) in cases {
            let levels: Vec<Vec<u8>> = levels.iter().map(|l| l.to_vec()).collect();
            assert_eq!(folder_name(&levels).as_deref(), want, "{levels:?}");
        }
    }

    #[test]
    fn trees_users_and_files() {
        let d = tempfile::tempdir().unwrap();
        let mail = d.path().join("mail");
        fs::create_dir_all(mail.join("Lists")).unwrap();
        fs::create_dir_all(mail.join("Archive.sbd")).unwrap();
        for f in [
            "inbox",
            "Sent",
            "Lists/rust",
            "Archive",
            "Archive.sbd/2020",
            ".hidden",
            "Sent.lock",
            "Sent.msf",
        ] {
            fs::write(mail.join(f), b"").unwrap();
        }
        let dest = d.path().join("out");
        let (srcs, skipped) = discover(Input::Paths(std::slice::from_ref(&mail)), &dest);
        let got: Vec<(String, Option<String>)> = srcs
            .iter()
            .map(|s| {
                (
                    s.path.strip_prefix(&mail).unwrap().display().to_string(),
                    s.folder.clone(),
                )
            })
            .collect();
        let want: Vec<(String, Option<String>)> = [
            ("Archive", Some("Archive")),
            ("Archive.sbd/2020", Some("Archive.2020")),
            ("Lists/rust", Some("Lists.rust")),
            ("Sent", Some("Sent")),
            ("inbox", None),
        ]
        .iter()
        .map(|(p, f)| (p.to_string(), f.map(String::from)))
        .collect();
        assert_eq!(got, want);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(srcs.iter().all(|s| s.root == dest));

        // One file: DEST is its Maildir. Two: folders, and a clash is refused.
        let one = [mail.join("Sent")];
        let (s, _) = discover(Input::Paths(&one), &dest);
        assert_eq!((s[0].folder.clone(), s[0].maildir()), (None, dest.clone()));
        let two = [
            mail.join("Sent"),
            mail.join("inbox"),
            mail.join("Lists/rust"),
            d.path().join("missing"),
        ];
        let (s, sk) = discover(Input::Paths(&two), &dest);
        assert_eq!(
            s.iter().map(|s| s.folder.clone()).collect::<Vec<_>>(),
            [Some("Sent".into()), None, Some("rust".into())]
        );
        assert_eq!(sk.len(), 1);
        assert!(sk[0].error);
        let same = [mail.join("Sent"), mail.join("Lists/../Sent")];
        let (s, sk) = discover(Input::Paths(&same), &dest);
        assert_eq!((s.len(), sk.len(), sk[0].error), (1, 1, false));

        let spool = d.path().join("spool");
        fs::create_dir(&spool).unwrap();
        for f in ["alice", "bob", "bob.lock"] {
            fs::write(spool.join(f), b"").unwrap();
        }
        let (s, sk) = discover(Input::Users(&spool), &dest);
        assert_eq!(
            s.iter().map(|s| s.root.clone()).collect::<Vec<_>>(),
            [dest.join("alice/Maildir"), dest.join("bob/Maildir")]
        );
        assert!(sk.is_empty());
    }
}
