//! Aliases files in Exim's lsearch layout (`key: value, value`, lines
//! that start with white space continue the previous entry, `#`
//! comments), parsed once and kept while the file is unchanged.
//!
//! Routing looks a recipient up at `RCPT` and again at the final dot (and
//! once more in a queue delivery); reading and parsing the whole file each
//! time costs four system calls and a pass over every entry, which on a
//! hosting box's aliases file is most of routing. A lookup now costs one
//! `stat`: the parsed file is kept with its device, inode, size and
//! modification and change times, and read again when any of them
//! differs, so an edit (in place, or a new file renamed over the old one)
//! is seen by the next lookup. File times advance in clock ticks of a few
//! milliseconds, so an edit of the same size within the tick of a read
//! would leave the version unchanged: a file changed less than a second
//! ago is read every time and kept only once it has settled (git's "racy
//! timestamp" rule).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// An aliases file's entries: lower-cased key → value (the first entry of
/// a key wins, as a linear search finds it).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Aliases(HashMap<String, String>);

impl Aliases {
    /// Parses `text`.
    pub fn parse(text: &str) -> Aliases {
        let mut entries: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(last) = entries.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                entries.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let mut map = HashMap::with_capacity(entries.len());
        for (k, v) in entries {
            map.entry(k).or_insert(v);
        }
        Aliases(map)
    }

    /// The value of `key` (lower case).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Version {
    fn of(m: &std::fs::Metadata) -> Version {
        Version {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Files read (not served from the cache), for tests.
static READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

type Cache = Mutex<HashMap<PathBuf, (Version, Arc<Aliases>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Looks `key` (lower case) up in the aliases file at `file`. A missing
/// file is an empty one (the router declines).
pub fn lookup(file: &Path, key: &str) -> std::io::Result<Option<String>> {
    Ok(load(file)?.and_then(|a| a.get(key).map(str::to_string)))
}

/// The parsed file, from the cache while its version is unchanged.
fn load(file: &Path) -> std::io::Result<Option<Arc<Aliases>>> {
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let version = Version::of(&meta);
    if let Some((v, a)) = cache().lock().unwrap_or_else(|p| p.into_inner()).get(file)
        && *v == version
    {
        return Ok(Some(a.clone()));
    }
    // Read through one descriptor, and keep the version of what was read
    // (the file may have changed since the stat).
    use std::io::Read;
    let mut f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let read_version = Version::of(&f.metadata()?);
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let parsed = Arc::new(Aliases::parse(&text));
    READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Kept only if the file did not change while it was read and has not
    // changed within the last second (see the module's comment).
    let settled = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .is_ok_and(|now| now.as_secs() as i64 > read_version.ctime.0.max(read_version.mtime.0) + 1);
    if settled && Version::of(&f.metadata()?) == read_version {
        cache()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(file.to_path_buf(), (read_version, parsed.clone()));
    }
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_as_exim_reads_lsearch() {
        let a = Aliases::parse(
            "# comment\nPostmaster: root\nroot: alice@example.org,\n  bob\n\n\tcarol\nroot: later\nempty:\nnocolon\n",
        );
        assert_eq!(a.get("postmaster"), Some("root"));
        assert_eq!(a.get("root"), Some("alice@example.org, bob carol"));
        assert_eq!(a.get("empty"), Some(""));
        assert_eq!(a.get("nocolon"), None);
    }

    /// An edit in place and a file renamed over the old one are both seen
    /// by the next lookup; a removed file is an empty one.
    #[test]
    fn a_changed_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        assert_eq!(lookup(&path, "a").unwrap(), None);
        std::fs::write(&path, "a: one\n").unwrap();
        assert_eq!(lookup(&path, "a").unwrap().as_deref(), Some("one"));
        // Same size, same second: the nanoseconds or the inode differ.
        std::fs::write(&path, "a: two\n").unwrap();
        assert_eq!(lookup(&path, "a").unwrap().as_deref(), Some("two"));
        let new = dir.path().join("aliases.new");
        std::fs::write(&new, "a: six\n").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_eq!(lookup(&path, "a").unwrap().as_deref(), Some("six"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(lookup(&path, "a").unwrap(), None);
    }

    /// A settled file is read once; a fresh one every time.
    #[test]
    fn a_settled_file_is_read_once() {
        use std::sync::atomic::Ordering::Relaxed;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        std::fs::write(&path, "a: one\n").unwrap();
        let before = READS.load(Relaxed);
        lookup(&path, "a").unwrap();
        lookup(&path, "a").unwrap();
        // Fresh: both read (other tests may read too, hence >=).
        assert!(READS.load(Relaxed) - before >= 2);
        std::thread::sleep(std::time::Duration::from_millis(2100));
        lookup(&path, "a").unwrap();
        let read = READS.load(Relaxed);
        for _ in 0..20 {
            assert_eq!(lookup(&path, "a").unwrap().as_deref(), Some("one"));
        }
        // Other tests of this module read other files; none of these 20.
        assert!(READS.load(Relaxed) - read < 20);
        std::fs::write(&path, "a: two\n").unwrap();
        assert_eq!(lookup(&path, "a").unwrap().as_deref(), Some("two"));
    }
}
