//! mbox: reading (mboxo, mboxrd, mboxcl, mboxcl2, named or detected) and
//! appending, under the locks mail readers take.
//!
//! Reading:
//!
//! ```no_run
//! use mailstore::lock::LockOptions;
//! use mailstore::mbox::{Mbox, Zone};
//! # fn main() -> mailstore::Result<()> {
//! let mbox = Mbox::open_locked("/var/mail/bob".as_ref(), &LockOptions::reader())?;
//! let detection = mbox.detect()?;
//! for warning in &detection.warnings {
//!     eprintln!("{}: {warning}", mbox.path().display());
//! }
//! for msg in mbox.reader(detection.variant)? {
//!     let received = msg.from_line().date().timestamp(Zone::Local);
//!     let bytes = msg.bytes(); // quoting removed
//!     # let _ = (received, bytes);
//! }
//! # Ok(()) }
//! ```
//!
//! The parsing ([`Reader`], [`detect`], [`split_points`], [`quote`],
//! [`meta`]) works on `&[u8]` and does no I/O. [`Mbox`] supplies the bytes:
//! memory-mapped while the mbox is locked, read into memory otherwise.
//! [`Windowed`] supplies them a window at a time, cut between messages,
//! for files too large to hold at once. [`Appender`] adds messages.
//!
//! Linux only (open-file-description locks).

mod append;
pub(crate) mod detect;
pub mod from_line;
pub mod meta;
pub mod quote;
mod reader;
pub(crate) mod window;

pub use append::{AppendOptions, Appended, Appender};
pub use detect::{Detection, Warning, WarningKind, detect};
pub use from_line::{FromDate, FromLine, Zone};
pub use reader::{Message, NotMbox, Reader, split_points};
pub use window::{Window, Windowed};

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::Result;
use crate::lock::LockOptions;

/// The mbox variants, which differ in how they keep body lines from
/// looking like separators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Variant {
    /// Body lines `From ` are written `>From `; nothing else is quoted, so
    /// an original `>From ` line reads back as `From ` (lossy).
    Mboxo,
    /// Body lines matching `>*From ` get one more `>`; reading removes one.
    /// Reversible. The default for writing.
    #[default]
    Mboxrd,
    /// A `Content-Length` header gives the body length; quoting as mboxo.
    Mboxcl,
    /// A `Content-Length` header gives the body length; no quoting.
    Mboxcl2,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Mboxo => "mboxo",
            Variant::Mboxrd => "mboxrd",
            Variant::Mboxcl => "mboxcl",
            Variant::Mboxcl2 => "mboxcl2",
        }
    }

    /// Whether messages carry a `Content-Length` header that readers use.
    pub fn uses_content_length(self) -> bool {
        matches!(self, Variant::Mboxcl | Variant::Mboxcl2)
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mboxo" => Ok(Variant::Mboxo),
            "mboxrd" => Ok(Variant::Mboxrd),
            "mboxcl" => Ok(Variant::Mboxcl),
            "mboxcl2" => Ok(Variant::Mboxcl2),
            other => Err(format!(
                "unknown mbox variant {other:?} (expected mboxo, mboxrd, mboxcl or mboxcl2)"
            )),
        }
    }
}

/// An mbox opened for reading: its bytes, and the locks that keep writers
/// out while they are mapped. The whole file is one [`Window`]; to read a
/// large mbox with memory that does not grow with it, use [`Windowed`].
pub struct Mbox {
    data: Window,
    path: PathBuf,
}

impl Mbox {
    /// Takes the locks `locks` lists (shared `fcntl`/`flock`, dotlock) and
    /// maps the mbox. The locks are held until the `Mbox` is dropped.
    ///
    /// With no lock methods at all, the file is read into memory instead:
    /// mapping an unlocked mbox would be unsafe.
    pub fn open_locked(path: &Path, locks: &LockOptions) -> Result<Mbox> {
        Self::whole(Windowed::open_locked(path, locks)?)
    }

    /// Reads the mbox into memory without locking (for an mbox no one
    /// writes to any more, or a copy). Uses as much memory as the file is
    /// big.
    pub fn open_unlocked(path: &Path) -> Result<Mbox> {
        Self::whole(Windowed::open_unlocked(path)?)
    }

    fn whole(file: Windowed) -> Result<Mbox> {
        Ok(Mbox {
            data: file.window(0..file.len())?,
            path: file.path().to_path_buf(),
        })
    }

    /// The mbox's bytes.
    pub fn data(&self) -> &[u8] {
        self.data.bytes()
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the bytes are memory-mapped (rather than read).
    pub fn is_mapped(&self) -> bool {
        self.data.is_mapped()
    }

    /// Notices from locking (a stale dotlock taken over), for the log.
    pub fn lock_notices(&self) -> &[String] {
        self.data.lock_notices()
    }

    /// Decides the variant (see [`detect`]).
    pub fn detect(&self) -> Result<Detection> {
        detect(self.data()).map_err(|e| e.at(&self.path))
    }

    /// The messages, read as `variant`.
    pub fn reader(&self, variant: Variant) -> Result<Reader<'_>> {
        Reader::new(self.data(), variant).map_err(|e| e.at(&self.path))
    }
}

impl fmt::Debug for Mbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbox")
            .field("path", &self.path)
            .field("len", &self.data().len())
            .field("mapped", &self.is_mapped())
            .field("locked", &self.data.is_locked())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::lock::{LockKind, LockMode};
    use crate::sys;
    use std::time::Duration;

    #[test]
    fn variant_names() {
        for v in [
            Variant::Mboxo,
            Variant::Mboxrd,
            Variant::Mboxcl,
            Variant::Mboxcl2,
        ] {
            assert_eq!(v.as_str().parse::<Variant>(), Ok(v));
        }
        assert_eq!(" MBOXRD ".parse::<Variant>(), Ok(Variant::Mboxrd));
        assert!("mbox".parse::<Variant>().is_err());
    }

    #[test]
    fn open_locked_maps_and_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox");
        std::fs::write(&p, "From a Tue Jan  2 03:04:05 2024\nS: 1\n\nhi\n\n").unwrap();
        let opts = LockOptions {
            timeout: Duration::from_millis(50),
            ..LockOptions::reader()
        };
        let mbox = Mbox::open_locked(&p, &opts).unwrap();
        assert!(mbox.is_mapped());
        assert_eq!(mbox.detect().unwrap().variant, Variant::Mboxrd);
        assert_eq!(mbox.reader(Variant::Mboxrd).unwrap().count(), 1);
        // A second reader shares; a writer cannot get in.
        let again = Mbox::open_locked(&p, &opts).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        assert!(!sys::ofd_try_lock(&f, LockMode::Exclusive).unwrap());
        drop((mbox, again));
        assert!(sys::ofd_try_lock(&f, LockMode::Exclusive).unwrap());
    }

    #[test]
    fn empty_and_unlocked_and_not_mbox() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty");
        std::fs::write(&p, "").unwrap();
        let m = Mbox::open_locked(&p, &LockOptions::reader()).unwrap();
        assert_eq!(m.reader(Variant::Mboxrd).unwrap().count(), 0);
        assert_eq!(m.detect().unwrap().variant, Variant::Mboxrd);

        let q = dir.path().join("notmbox");
        std::fs::write(&q, "Subject: x\n\nhi\n").unwrap();
        let m = Mbox::open_unlocked(&q).unwrap();
        assert!(!m.is_mapped());
        match m.detect().unwrap_err() {
            Error::BadMbox { path, offset, .. } => assert_eq!((path, offset), (q.clone(), 0)),
            e => panic!("{e:?}"),
        }
        let none = LockOptions {
            methods: vec![],
            ..LockOptions::reader()
        };
        assert!(!Mbox::open_locked(&q, &none).unwrap().is_mapped());
        let dot = LockOptions {
            methods: vec![LockKind::Dotlock],
            ..LockOptions::reader()
        };
        let m = Mbox::open_locked(&q, &dot).unwrap();
        assert!(crate::lock::lock_path(&q).exists());
        drop(m);
        assert!(!crate::lock::lock_path(&q).exists());
        assert!(matches!(
            Mbox::open_locked(&dir.path().join("missing"), &LockOptions::reader()),
            Err(Error::Io { .. })
        ));
    }
}
