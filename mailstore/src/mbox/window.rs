//! Reading an mbox a window at a time, so that memory follows the windows
//! in use rather than the size of the file.
//!
//! [`Windowed`] is a locked mbox that maps (or, unlocked, reads) byte
//! ranges on demand: each [`Window`] is a mapping of its own, unmapped when
//! it is dropped, and it holds the locks until then. [`Windowed::spans`]
//! cuts the file into windows of whole messages, each of which a
//! [`Reader`] reads as if it were a file of its own; message offsets within
//! it are relative to [`Window::start`].
//!
//! The cut ([`cut`]) is made after the last message a window decides: the
//! rest is mapped again as the start of the next window. A message longer
//! than the window gets a window doubled as often as it takes to hold it
//! (so one message larger than a window costs up to twice its size).
//!
//! The same cutting, over a `&[u8]`, drives [`detect`](super::detect) (one
//! window the size of the data) and the tests, which cut small windows of
//! in-memory mboxes and compare with reading the whole.

use std::convert::Infallible;
use std::fmt;
use std::fs::File;
use std::ops::{Deref, Range};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

use super::detect::{Detection, detect_in};
use super::reader::{Cut, NotMbox, cut};
use super::{Reader, Variant};
use crate::error::{Error, Result};
use crate::lock::{LockMode, LockOptions, MboxLock};
use crate::sys;

/// Something an mbox can be read from a window at a time: the bytes in
/// memory, or a [`Windowed`] file.
pub(crate) trait Bytes {
    type Window: Deref<Target = [u8]>;
    type Error;
    fn len(&self) -> usize;
    /// The bytes of `range` (which lies within `0..len()`).
    fn window(&self, range: Range<usize>) -> Result<Self::Window, Self::Error>;
    /// `window` less everything from `len` on.
    fn shorten(window: Self::Window, len: usize) -> Self::Window;
}

impl<'a> Bytes for &'a [u8] {
    type Window = &'a [u8];
    type Error = Infallible;

    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn window(&self, range: Range<usize>) -> Result<&'a [u8], Infallible> {
        Ok(&self[range])
    }

    fn shorten(window: &'a [u8], len: usize) -> &'a [u8] {
        &window[..len]
    }
}

/// Why a window of whole messages could not be had.
#[derive(Debug)]
pub(crate) enum SpanError<E> {
    /// The file does not start with a `From_` line (offset 0).
    NotMbox(NotMbox),
    /// Mapping or reading the window failed.
    Read(E),
}

/// A window of whole messages and where it starts in the file.
pub(crate) struct Span<W> {
    pub start: usize,
    pub window: W,
}

/// Consecutive windows of whole messages covering the file (see the
/// module documentation). Stops after the first error.
pub(crate) struct Spans<'s, B: Bytes + ?Sized> {
    bytes: &'s B,
    variant: Variant,
    size: usize,
    pos: usize,
    failed: bool,
}

impl<'s, B: Bytes + ?Sized> Spans<'s, B> {
    /// Windows of about `size` bytes (at least one), read as `variant`.
    pub(crate) fn new(bytes: &'s B, variant: Variant, size: usize) -> Spans<'s, B> {
        Spans {
            bytes,
            variant,
            size: size.max(1),
            pos: 0,
            failed: false,
        }
    }
}

impl<B: Bytes + ?Sized> Iterator for Spans<'_, B> {
    type Item = Result<Span<B::Window>, SpanError<B::Error>>;

    fn next(&mut self) -> Option<Self::Item> {
        let len = self.bytes.len();
        if self.failed || self.pos >= len {
            return None;
        }
        let start = self.pos;
        let mut size = self.size;
        loop {
            let end = start.saturating_add(size).min(len);
            let window = match self.bytes.window(start..end) {
                Ok(w) => w,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(SpanError::Read(e)));
                }
            };
            if end == len {
                // The rest of the file: its last message ends with it.
                self.pos = len;
                return Some(Ok(Span { start, window }));
            }
            match cut(&window, self.variant, len - start) {
                Ok(Cut::At(at)) => {
                    self.pos = start + at;
                    let window = B::shorten(window, at);
                    return Some(Ok(Span { start, window }));
                }
                Ok(Cut::Grow) => size = size.saturating_mul(2),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(SpanError::NotMbox(e)));
                }
            }
        }
    }
}

/// An mbox opened to be read a window at a time: the open file, and the
/// locks that keep writers out while any window of it is mapped.
pub struct Windowed {
    opened: Arc<Opened>,
    len: usize,
    path: PathBuf,
}

/// The open mbox, shared by every window of it: the last one dropped
/// releases the locks.
enum Opened {
    /// Under its locks: windows are mapped.
    Locked(MboxLock),
    /// Without locks: windows are read into memory.
    Unlocked(File),
}

impl Opened {
    fn file(&self) -> &File {
        match self {
            Opened::Locked(l) => l.file(),
            Opened::Unlocked(f) => f,
        }
    }

    fn lock_notices(&self) -> &[String] {
        match self {
            Opened::Locked(l) => l.notices(),
            Opened::Unlocked(_) => &[],
        }
    }
}

impl Windowed {
    /// Takes the locks `locks` lists (shared `fcntl`/`flock`, dotlock).
    /// They are held until the `Windowed` and every window of it are
    /// dropped.
    ///
    /// With no lock methods at all, the file is opened without locks
    /// instead (see [`Windowed::open_unlocked`]): mapping an unlocked mbox
    /// would be unsafe.
    pub fn open_locked(path: &Path, locks: &LockOptions) -> Result<Windowed> {
        if locks.methods.is_empty() {
            return Self::open_unlocked(path);
        }
        let lock = MboxLock::acquire(path, LockMode::Shared, locks, |p| {
            sys::open_for_read(p).map_err(|e| Error::io("open mbox", p, e))
        })?;
        Self::opened(Opened::Locked(lock), path)
    }

    /// Opens the mbox without locking (for an mbox no one writes to any
    /// more, or a copy): windows are read into memory, not mapped.
    pub fn open_unlocked(path: &Path) -> Result<Windowed> {
        let file = File::open(path).map_err(|e| Error::io("open mbox", path, e))?;
        Self::opened(Opened::Unlocked(file), path)
    }

    fn opened(opened: Opened, path: &Path) -> Result<Windowed> {
        let len = opened
            .file()
            .metadata()
            .map_err(|e| Error::io("stat mbox", path, e))?
            .len();
        let len = usize::try_from(len).map_err(|_| {
            Error::io(
                "stat mbox",
                path,
                std::io::Error::other("larger than the address space"),
            )
        })?;
        Ok(Windowed {
            opened: Arc::new(opened),
            len,
            path: path.to_path_buf(),
        })
    }

    /// The mbox's size when it was opened (the locks keep it so).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether windows are mapped (rather than read).
    pub fn is_mapped(&self) -> bool {
        matches!(*self.opened, Opened::Locked(_))
    }

    /// Notices from locking (a stale dotlock taken over), for the log.
    pub fn lock_notices(&self) -> &[String] {
        self.opened.lock_notices()
    }

    /// The bytes of `range`, mapped (or read, unlocked).
    pub fn window(&self, range: Range<usize>) -> Result<Window> {
        let range = range.start.min(self.len)..range.end.min(self.len);
        let bytes = if range.is_empty() {
            WindowBytes::Read(Vec::new())
        } else {
            match &*self.opened {
                Opened::Locked(l) => WindowBytes::Mapped(map(l, range.clone(), &self.path)?),
                Opened::Unlocked(f) => {
                    let mut buf = vec![0; range.len()];
                    f.read_exact_at(&mut buf, range.start as u64)
                        .map_err(|e| Error::io("read mbox", &self.path, e))?;
                    WindowBytes::Read(buf)
                }
            }
        };
        Ok(Window {
            len: range.len(),
            bytes,
            start: range.start,
            opened: self.opened.clone(),
        })
    }

    /// Decides the variant (see [`detect`](super::detect)), reading
    /// windows of about `size` bytes one after the other.
    pub fn detect(&self, size: usize) -> Result<Detection> {
        detect_in(self, size).map_err(|e| self.span_error(e))
    }

    /// The file cut into windows of whole messages of about `size` bytes
    /// (more for a message that does not fit), in order; read each with
    /// [`Reader::new`]. Stops after an error: the file does not start with
    /// a `From_` line, or a window could not be mapped.
    pub fn spans(&self, variant: Variant, size: usize) -> impl Iterator<Item = Result<Window>> {
        Spans::new(self, variant, size).map(|s| s.map(|s| s.window).map_err(|e| self.span_error(e)))
    }

    fn span_error(&self, e: SpanError<Error>) -> Error {
        match e {
            SpanError::NotMbox(n) => n.at(&self.path),
            SpanError::Read(e) => e,
        }
    }

    /// A reader over the first window of about `size` bytes, to check that
    /// the file starts like an mbox.
    pub fn check_start(&self, variant: Variant, size: usize) -> Result<()> {
        match self.spans(variant, size).next() {
            Some(Ok(w)) => Reader::new(&w, variant)
                .map(drop)
                .map_err(|e| e.at(&self.path)),
            Some(Err(e)) => Err(e),
            None => Ok(()),
        }
    }
}

impl Bytes for Windowed {
    type Window = Window;
    type Error = Error;

    fn len(&self) -> usize {
        self.len
    }

    fn window(&self, range: Range<usize>) -> Result<Window> {
        Windowed::window(self, range)
    }

    fn shorten(mut window: Window, len: usize) -> Window {
        window.len = window.len.min(len);
        window
    }
}

impl fmt::Debug for Windowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Windowed")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

/// Bytes `start..start + len` of an mbox: mapped, and unmapped when
/// dropped, or read into memory. It keeps the mbox open and locked.
pub struct Window {
    // Field order matters: fields drop in declaration order, so the mapping
    // goes before the locks can be released.
    bytes: WindowBytes,
    len: usize,
    start: usize,
    opened: Arc<Opened>,
}

enum WindowBytes {
    /// Mapped: only while the locks are held. A writer that ignores them
    /// and truncates the file would make touching the lost pages kill this
    /// process with SIGBUS.
    Mapped(Mmap),
    Read(Vec<u8>),
}

impl Window {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        let all: &[u8] = match &self.bytes {
            WindowBytes::Mapped(m) => m,
            WindowBytes::Read(v) => v,
        };
        &all[..self.len]
    }

    /// Offset of the first byte in the file.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The bytes' place in the file.
    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.len
    }

    /// Whether the bytes are mapped (rather than read).
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, WindowBytes::Mapped(_))
    }

    /// Whether the mbox is held locked.
    pub fn is_locked(&self) -> bool {
        matches!(*self.opened, Opened::Locked(_))
    }

    /// Notices from locking the mbox (a stale dotlock taken over).
    pub fn lock_notices(&self) -> &[String] {
        self.opened.lock_notices()
    }
}

impl Deref for Window {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("range", &self.range())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

/// Maps `range` (not empty) of the locked mbox. The crate's only mapping
/// (see the SAFETY comment inside).
#[allow(unsafe_code)]
fn map(lock: &MboxLock, range: Range<usize>, path: &Path) -> Result<Mmap> {
    // SAFETY: the mapping is only read, and it lives inside a `Window`
    // that also holds the mbox locks (through `Opened`); the field order
    // makes it unmapped before they can be released. Every program that
    // writes mboxes under the same locks (delivery agents, mail readers)
    // is thereby kept from truncating or rewriting the file while it is
    // mapped. A program that writes without taking any lock could still do
    // so, which no reader of a shared mbox can prevent; that is the
    // documented contract of `open_locked`.
    let map = unsafe {
        MmapOptions::new()
            .offset(range.start as u64)
            .len(range.len())
            .map(lock.file())
    }
    .map_err(|e| Error::io("mmap mbox", path, e))?;
    // Scanning is sequential; tell the kernel to read ahead. A failure only
    // costs speed.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mbox::detect;
    use std::time::Duration;

    const D: &str = "Tue Jan  2 03:04:05 2024";

    /// Every message's range in the file, read window by window.
    fn by_spans(data: &[u8], v: Variant, size: usize) -> Vec<Range<usize>> {
        let mut got = Vec::new();
        for span in Spans::new(&data, v, size) {
            let Span { start, window } = span.unwrap_or_else(|_| panic!("size {size}"));
            assert!(!window.is_empty(), "empty window at {start}");
            let reader = Reader::new(window, v).unwrap();
            got.extend(reader.map(|m| start + m.range().start..start + m.range().end));
        }
        got
    }

    fn whole(data: &[u8], v: Variant) -> Vec<Range<usize>> {
        Reader::new(data, v).unwrap().map(|m| m.range()).collect()
    }

    fn msg(sender: &str, body: &str) -> String {
        format!("From {sender} {D}\nS: 1\n\n{body}\n\n")
    }

    fn cl(sender: &str, body: &str) -> String {
        format!(
            "From {sender} {D}\nContent-Length: {}\n\n{body}\n",
            body.len()
        )
    }

    #[test]
    fn windows_read_the_same_messages_as_the_whole() {
        let big = "a long line of a big message\n".repeat(40);
        let table: Vec<(&str, String, Variant)> = vec![
            ("empty", String::new(), Variant::Mboxrd),
            ("one message", msg("a", "hi"), Variant::Mboxrd),
            (
                "small ones",
                (0..20).map(|i| msg(&format!("s{i}"), "x")).collect(),
                Variant::Mboxrd,
            ),
            (
                "one larger than any window, between small ones",
                msg("a", "hi") + &msg("b", &big) + &msg("c", "ho"),
                Variant::Mboxrd,
            ),
            ("only a large one", msg("a", &big), Variant::Mboxrd),
            (
                "From lines in bodies, with and without a blank line or date",
                msg("a", &format!("x\n\nFrom nodate\nFrom b {D}\n\n>From q")) + &msg("b", "y"),
                Variant::Mboxrd,
            ),
            (
                "CRLF and no final newline",
                format!("From a {D}\r\nS: 1\r\n\r\nbody\r\n\r\nFrom b {D}\r\n\r\nend"),
                Variant::Mboxrd,
            ),
            (
                "Content-Length spans hiding a From_ line",
                (0..8)
                    .map(|i| {
                        cl(
                            &format!("s{i}"),
                            &format!("{}\n\nFrom x {D}\n", "y".repeat(i * 7)),
                        )
                    })
                    .collect(),
                Variant::Mboxcl2,
            ),
            (
                "a Content-Length that does not land, and one past the end",
                format!("From a {D}\nContent-Length: 5\n\nhello world\n\n")
                    + &cl("b", "ok")
                    + &format!("From c {D}\nContent-Length: 999\n\nshort\n"),
                Variant::Mboxcl2,
            ),
            (
                "Content-Length landing without a blank line",
                format!("From a {D}\nContent-Length: 3\n\nok\nFrom b {D}\n\n") + &cl("c", "z"),
                Variant::Mboxcl,
            ),
        ];
        for (name, data, v) in &table {
            let data = data.as_bytes();
            let want = whole(data, *v);
            // Windows from one byte (every message grows its own) to more
            // than the file (one window).
            for size in [1, 2, 7, 16, 33, 64, 100, 256, 1000, 4096, data.len() + 1] {
                assert_eq!(by_spans(data, *v, size), want, "{name}, windows of {size}");
            }
        }
    }

    #[test]
    fn a_window_ends_after_the_last_message_it_decides() {
        let a = msg("a", "one");
        let b = msg("b", "two");
        let data = a.clone() + &b + &msg("c", "three");
        let d = data.as_bytes();
        // Ending inside b's From_ line: a is not decided either.
        assert_eq!(
            cut(&d[..a.len() + 10], Variant::Mboxrd, d.len()),
            Ok(Cut::Grow)
        );
        // Ending inside b's body: cut after a.
        assert_eq!(
            cut(&d[..a.len() + 40], Variant::Mboxrd, d.len()),
            Ok(Cut::At(a.len()))
        );
        // Ending just before c's From_ line is whole: b is not decided yet.
        let c_line = a.len() + b.len() + format!("From c {D}").len();
        assert_eq!(
            cut(&d[..c_line], Variant::Mboxrd, d.len()),
            Ok(Cut::At(a.len()))
        );
        assert_eq!(
            cut(&d[..c_line + 1], Variant::Mboxrd, d.len()),
            Ok(Cut::At(a.len() + b.len()))
        );
        // Inside the first message: grow.
        assert_eq!(cut(&d[..10], Variant::Mboxrd, d.len()), Ok(Cut::Grow));
        assert_eq!(cut(&d[..a.len()], Variant::Mboxcl2, d.len()), Ok(Cut::Grow));
        // Not an mbox: said at once, however little is seen.
        assert!(cut(b"Subject: x\nmore", Variant::Mboxrd, 100).is_err());
        assert!(cut(b"Subj", Variant::Mboxrd, 100).is_err());
        assert_eq!(cut(b"Fro", Variant::Mboxrd, 100), Ok(Cut::Grow));
    }

    #[test]
    fn a_content_length_is_judged_only_once_it_is_seen() {
        let body = format!("x\n\nFrom y {D}\nmore\n");
        let a = cl("a", &body);
        let data = a.clone() + &cl("b", "ok");
        let d = data.as_bytes();
        // The inner From_ line is whole in the window, but the length leads
        // past it: a is not decided, and no warning is taken back later.
        let inner = a.find("From y").unwrap() + 20;
        assert_eq!(cut(&d[..inner], Variant::Mboxcl2, d.len()), Ok(Cut::Grow));
        let mut r = Reader::open_ended(&d[..inner], Variant::Mboxcl2, d.len());
        assert!(r.next().is_none());
        assert!(r.warnings().is_empty());
        assert_eq!(r.position(), 0);
        // Seen whole, with b's From_ line: a ends where its length says.
        let with_b = a.len() + format!("From b {D}\n").len();
        assert_eq!(
            cut(&d[..with_b], Variant::Mboxcl2, d.len()),
            Ok(Cut::At(a.len()))
        );
        // A length past the end of the mbox never lands: the separator
        // decides, as when reading the whole.
        let liar = format!("From a {D}\nContent-Length: 9999\n\nhi\n\n") + &msg("b", "ok");
        let l = liar.as_bytes();
        let first = liar.find("From b").unwrap();
        assert_eq!(
            cut(&l[..first + 40], Variant::Mboxcl2, l.len()),
            Ok(Cut::At(first))
        );
        let mut r = Reader::open_ended(&l[..first + 40], Variant::Mboxcl2, l.len());
        assert_eq!(r.by_ref().count(), 1);
        assert_eq!(r.warnings().len(), 1);
    }

    #[test]
    fn detection_is_the_same_in_windows() {
        let mut data = String::new();
        for i in 0..30 {
            let quoted = match i % 4 {
                0 => ">From x\n",
                1 => ">>From y\n",
                2 => "x\n\nFrom nodate\n",
                _ => "",
            };
            data += &msg(&format!("s{i}"), &format!("line\n{quoted}end"));
        }
        let cls: String = (0..10)
            .map(|i| {
                cl(
                    &format!("c{i}"),
                    &format!("b\n\nFrom z {D}\n{}", ">From q\n".repeat(i % 2)),
                )
            })
            .collect();
        let partial = cl("a", "x") + &msg("b", "y") + &cl("c", "z");
        for data in [data, cls, partial, String::new()] {
            let want = detect(data.as_bytes()).unwrap();
            for size in [1, 5, 40, 300, 5000] {
                let got = detect_in(&data.as_bytes(), size).unwrap();
                assert_eq!(got, want, "windows of {size}");
            }
        }
        assert!(matches!(
            detect_in(&&b"Subject: x\n\nFrom a Tue Jan  2 03:04:05 2024\n"[..], 4),
            Err(SpanError::NotMbox(NotMbox { offset: 0, .. }))
        ));
    }

    #[test]
    fn a_windowed_file_maps_windows_under_its_locks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox");
        let big = "a long line of a big message\n".repeat(400);
        let data: String = (0..200)
            .map(|i| msg(&format!("s{i}"), if i == 20 { &big } else { "hi" }))
            .collect();
        std::fs::write(&p, &data).unwrap();
        let opts = LockOptions {
            timeout: Duration::from_millis(50),
            ..LockOptions::reader()
        };
        let file = Windowed::open_locked(&p, &opts).unwrap();
        assert!(file.is_mapped());
        assert_eq!(file.len(), data.len());
        assert_eq!(file.detect(500).unwrap().variant, Variant::Mboxrd);
        let want = whole(data.as_bytes(), Variant::Mboxrd);
        let windows: Vec<Window> = file
            .spans(Variant::Mboxrd, 500)
            .collect::<Result<_>>()
            .unwrap();
        assert!(windows.len() > 10);
        assert!(windows.iter().all(|w| w.is_mapped()));
        let mut got = Vec::new();
        for w in &windows {
            assert_eq!(w.bytes(), &data.as_bytes()[w.range()]);
            let r = Reader::new(w, Variant::Mboxrd).unwrap();
            got.extend(r.map(|m| w.start() + m.range().start..w.start() + m.range().end));
        }
        assert_eq!(got, want);
        // The big message starts a window doubled until it holds it.
        let w20 = windows.iter().find(|w| w.len() > big.len()).unwrap();
        let first = Reader::new(w20, Variant::Mboxrd).unwrap().next().unwrap();
        assert!(first.bytes().len() > big.len());

        // The locks stay while any window is alive, not with the file.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        drop(file);
        let last = windows.into_iter().last().unwrap();
        assert!(!sys::ofd_try_lock(&f, LockMode::Exclusive).unwrap());
        drop(last);
        assert!(sys::ofd_try_lock(&f, LockMode::Exclusive).unwrap());
    }

    #[test]
    fn unlocked_windows_are_read_and_empty_files_have_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox");
        let data = msg("a", "hi") + &msg("b", "ho");
        std::fs::write(&p, &data).unwrap();
        let file = Windowed::open_unlocked(&p).unwrap();
        assert!(!file.is_mapped());
        let windows: Vec<Window> = file
            .spans(Variant::Mboxrd, 80)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(windows.len(), 2);
        assert!(windows.iter().all(|w| !w.is_mapped() && !w.is_locked()));
        assert_eq!(windows[1].bytes(), msg("b", "ho").as_bytes());

        let e = dir.path().join("empty");
        std::fs::write(&e, "").unwrap();
        let file = Windowed::open_locked(&e, &LockOptions::reader()).unwrap();
        assert!(file.is_empty());
        assert_eq!(file.spans(Variant::Mboxrd, 10).count(), 0);
        assert_eq!(file.detect(10).unwrap().variant, Variant::Mboxrd);
        file.check_start(Variant::Mboxrd, 10).unwrap();

        let n = dir.path().join("notmbox");
        std::fs::write(&n, "Subject: x\n\n".repeat(10)).unwrap();
        let file = Windowed::open_locked(&n, &LockOptions::reader()).unwrap();
        for e in [
            file.detect(16).unwrap_err(),
            file.check_start(Variant::Mboxrd, 16).unwrap_err(),
            file.check_start(Variant::Mboxrd, 1000).unwrap_err(),
        ] {
            assert!(matches!(e, Error::BadMbox { offset: 0, .. }), "{e:?}");
        }
    }
}
