//! Reading a log as it grows, across rotations (`tail -F`).
//!
//! The admin listener learns what other processes did (an operator's
//! `sluice queue freeze`, a `sluice submit` delivering itself) from the
//! main log, which every process appends to. A [`Follower`] keeps the
//! file open: lines written to it after logrotate moved it are still read
//! from the open descriptor before the follower turns to the new file
//! under the same name, from its start.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Lines longer than this are cut (a log line is at most a few KiB).
const MAX_LINE: usize = 1 << 20;

#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<(File, u64)>,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
    /// What each read fills, kept: a scrape that finds nothing new
    /// allocates nothing.
    buf: Vec<u8>,
}

impl Follower {
    /// Follows `path` from its current end: only lines written from now on.
    pub fn at_end(path: &Path) -> Follower {
        Follower::open(path, true)
    }

    /// Follows `path` from its first line.
    pub fn from_start(path: &Path) -> Follower {
        Follower::open(path, false)
    }

    fn open(path: &Path, at_end: bool) -> Follower {
        let file = File::open(path).ok().and_then(|mut f| {
            let ino = f.metadata().ok()?.ino();
            if at_end {
                f.seek(SeekFrom::End(0)).ok()?;
            }
            Some((f, ino))
        });
        Follower {
            path: path.to_path_buf(),
            file,
            partial: Vec::new(),
            buf: vec![0; 64 * 1024],
        }
    }

    /// Calls `each` with every whole line written since the last call (the
    /// newline removed), then, if the name now belongs to another file
    /// (rotated), with the lines of that one. A log that does not exist
    /// yet has no lines.
    pub fn read_new(&mut self, mut each: impl FnMut(&str)) -> io::Result<()> {
        if let Some((f, _)) = &mut self.file {
            drain(f, &mut self.buf, &mut self.partial, &mut each)?;
        }
        let now = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let current = self.file.as_ref().map(|(_, ino)| *ino);
        if now.is_some() && now != current {
            // A new file under the name: the old one is read to its end
            // (above); a line it left unfinished stays unfinished.
            self.partial.clear();
            let mut f = File::open(&self.path)?;
            let ino = f.metadata()?.ino();
            drain(&mut f, &mut self.buf, &mut self.partial, &mut each)?;
            self.file = Some((f, ino));
        }
        Ok(())
    }
}

fn drain(
    f: &mut File,
    buf: &mut [u8],
    partial: &mut Vec<u8>,
    each: &mut impl FnMut(&str),
) -> io::Result<()> {
    loop {
        let n = match f.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut chunk = &buf[..n];
        while let Some(i) = memchr::memchr(b'\n', chunk) {
            if partial.is_empty() {
                each(&String::from_utf8_lossy(&chunk[..i]));
            } else {
                partial.extend_from_slice(&chunk[..i]);
                each(&String::from_utf8_lossy(partial));
                partial.clear();
            }
            chunk = &chunk[i + 1..];
        }
        if partial.len() + chunk.len() <= MAX_LINE {
            partial.extend_from_slice(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(f: &mut Follower) -> Vec<String> {
        let mut out = Vec::new();
        f.read_new(|l| out.push(l.to_string())).unwrap();
        out
    }

    #[test]
    fn reads_what_is_appended_and_waits_for_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mainlog");
        std::fs::write(&path, "old\n").unwrap();
        let mut f = Follower::at_end(&path);
        assert!(lines(&mut f).is_empty());
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        w.write_all(b"one\ntw").unwrap();
        assert_eq!(lines(&mut f), ["one"]);
        w.write_all(b"o\n").unwrap();
        assert_eq!(lines(&mut f), ["two"]);
        assert_eq!(
            lines(&mut Follower::from_start(&path)),
            ["old", "one", "two"]
        );
    }

    #[test]
    fn follows_a_rotation_after_reading_the_old_file_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mainlog");
        let mut f = Follower::at_end(&path);
        assert!(lines(&mut f).is_empty(), "no log yet");
        std::fs::write(&path, "a\n").unwrap();
        assert_eq!(lines(&mut f), ["a"]);
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::fs::rename(&path, dir.path().join("mainlog.1")).unwrap();
        old.write_all(b"late\n").unwrap();
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(lines(&mut f), ["late", "new"]);
        assert!(lines(&mut f).is_empty());
    }
}
