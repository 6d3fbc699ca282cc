//! Appending one message to an mbox, all or nothing.
//!
//! [`Appender::append`]:
//!
//! 1. reads the message's header block (at most [`MAX_HEADER_BYTES`]) and,
//!    for mboxcl/mboxcl2, spools the quoted body to an unnamed temporary
//!    file to learn its length: all before any lock is taken;
//! 2. opens or creates the mbox (mode 0600, not through a symlink) and
//!    takes the configured locks;
//! 3. notes the mbox's length, then writes: a line ending if the mbox does
//!    not end with a blank line, the `From_` line, the message with the
//!    variant's quoting (and a `Content-Length` header for mboxcl/mboxcl2),
//!    a final line ending if it lacks one, and the blank line that
//!    separates messages;
//! 4. `fdatasync`s the mbox;
//! 5. releases the locks.
//!
//! If anything in 3 or 4 fails, the mbox is cut back to the length noted
//! in 3 and a temporary error is returned: readers never see half a
//! message once the lock is gone. (After a failed `fdatasync` the cut is
//! not synced either: fsync is never retried on a descriptor whose sync
//! failed, and the kernel may already have dropped the dirty pages.)
//!
//! What a crash leaves: before step 4 completes, a crash of the process
//! may leave a partial entry at the end, which the next append keeps
//! separate by adding the missing blank line; a power cut may lose any of
//! the unsynced bytes. Success is reported only after step 4.
//!
//! The message is streamed: memory use stays flat whatever its size (the
//! header block is held in memory, bounded).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use durable::{Io, RealIo};

use super::Variant;
use super::from_line;
use super::meta;
use super::quote::Quoter;
use crate::error::{Error, Result};
use crate::lock::{LockMode, LockOptions, MboxLock};
use crate::sys;

/// Largest header block accepted (Exim's default `header_maxsize` is 1 MiB;
/// this leaves room without letting a message without a blank line be held
/// in memory whole).
pub const MAX_HEADER_BYTES: usize = 8 << 20;

/// Size of the pieces written to the mbox.
const WRITE_CHUNK: usize = 64 << 10;

/// How often a held dotlock is refreshed during a long append, well within
/// the 5 minutes after which other programs call it stale.
const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// How to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOptions {
    /// The variant to write. mboxrd (the default) is the only one that
    /// reads back exactly; mboxcl and mboxcl2 spool the body to a temporary
    /// file first, to know its length.
    pub variant: Variant,
    /// Locks to take (default: dotlock, then fcntl).
    pub locks: LockOptions,
    /// Mode of a newly created mbox (default 0600).
    pub create_mode: u32,
    /// Owner and group to give a newly created mbox (a delivery agent
    /// running as root creating a user's mailbox).
    pub owner: Option<(u32, u32)>,
    /// Remove `Status`, `X-Status`, `X-UID`, `X-IMAP`, `X-IMAPbase`,
    /// `X-Keywords` and `Content-Length` from the message's headers
    /// (default: yes). These are mail readers' private metadata; a sender
    /// could otherwise mark mail read or corrupt a reader's UIDs. Dovecot
    /// asks delivery agents to do this.
    pub strip_metadata: bool,
    /// Follow a symlink at the mbox path (default: no, as Exim's
    /// `allow_symlink`): a privileged delivery agent must not be sent
    /// elsewhere by a link a user planted.
    pub follow_symlinks: bool,
}

impl Default for AppendOptions {
    fn default() -> AppendOptions {
        AppendOptions {
            variant: Variant::Mboxrd,
            locks: LockOptions::writer(),
            create_mode: 0o600,
            owner: None,
            strip_metadata: true,
            follow_symlinks: false,
        }
    }
}

/// Where a message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Offset of its `From_` line in the mbox.
    pub offset: u64,
    /// Bytes written from there (including the separating blank line).
    pub length: u64,
    /// Whether the mbox was created by this append.
    pub created: bool,
    /// Things worth a log line: a stale dotlock taken over, a lock that
    /// could not be released cleanly (the message is stored all the same).
    pub notices: Vec<String>,
}

/// Appends messages to mbox files. All durable I/O goes through `I`, so
/// tests can inject faults ([`durable::sim::Recorder`]).
#[derive(Debug)]
pub struct Appender<I: Io = RealIo> {
    io: I,
    options: AppendOptions,
}

impl Appender<RealIo> {
    /// An appender on the real filesystem.
    pub fn new(options: AppendOptions) -> Appender<RealIo> {
        Appender {
            io: RealIo,
            options,
        }
    }
}

/// The message bytes, ready to write once the lock is held.
struct Prepared {
    from_line: Vec<u8>,
    /// Quoted header block (with a Content-Length header and the blank line
    /// for mboxcl/mboxcl2).
    header: Vec<u8>,
    /// mboxcl/mboxcl2: the quoted body, spooled, and its length.
    spooled: Option<(File, u64)>,
    /// Whether the header block ended (blank line) before the input did.
    header_complete: bool,
}

/// Why writing the entry failed.
enum WriteError {
    Mbox(&'static str, io::Error),
    Input(io::Error),
}

impl<I: Io> Appender<I> {
    /// An appender doing its I/O through `io`.
    pub fn with_io(io: I, options: AppendOptions) -> Appender<I> {
        Appender { io, options }
    }

    /// The I/O seam (tests inspect a recorder through it).
    pub fn io(&self) -> &I {
        &self.io
    }

    /// The options.
    pub fn options(&self) -> &AppendOptions {
        &self.options
    }

    /// Appends `message` (RFC 5322 bytes, LF or CRLF line endings) to the
    /// mbox at `path`, creating it if missing. `sender` is the envelope
    /// sender (empty for a bounce: written as `MAILER-DAEMON`); `received`
    /// goes into the `From_` line as local time.
    ///
    /// Errors are temporary except a header block over
    /// [`MAX_HEADER_BYTES`] ([`Error::BadMessage`]).
    pub fn append(
        &self,
        path: &Path,
        sender: &str,
        received: SystemTime,
        message: impl Read,
    ) -> Result<Appended> {
        let mut input = BufReader::with_capacity(WRITE_CHUNK, message);
        let prepared = self.prepare(&mut input, sender, received)?;

        let mut created = false;
        let mut lock = MboxLock::acquire(path, LockMode::Exclusive, &self.options.locks, |p| {
            self.open_or_create(p, &mut created)
        })?;
        let old_len = lock
            .file_mut()
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io("seek to the end of the mbox", path, e))?;
        let prefix = separator_prefix(lock.file(), old_len)
            .map_err(|e| Error::io("read the end of the mbox", path, e))?;

        let written = self.write_entry(&mut lock, path, prefix, &prepared, &mut input);
        let synced = written.and_then(|n| {
            self.io
                .sync_data(lock.file(), path)
                .map(|()| n)
                .map_err(|e| WriteError::Mbox("fdatasync mbox", e))
        });
        let length = match synced {
            Ok(n) => n,
            Err(failure) => {
                let undo = self.io.truncate(lock.file(), path, old_len);
                return Err(match (failure, undo) {
                    (WriteError::Input(source), Ok(())) => Error::MessageInput { source },
                    (WriteError::Mbox(op, source), Ok(())) => Error::io(op, path, source),
                    (WriteError::Input(source) | WriteError::Mbox(_, source), Err(undo)) => {
                        Error::AppendUndo {
                            path: path.to_path_buf(),
                            len: old_len,
                            source,
                            undo,
                        }
                    }
                });
            }
        };
        let mut notices = lock.notices().to_vec();
        if let Err(e) = lock.release() {
            notices.push(format!(
                "message stored, but releasing the locks failed: {e}"
            ));
        }
        Ok(Appended {
            offset: old_len + prefix.len() as u64,
            length: length - prefix.len() as u64,
            created,
            notices,
        })
    }

    /// Everything that can be done before locking.
    fn prepare(
        &self,
        input: &mut impl BufRead,
        sender: &str,
        received: SystemTime,
    ) -> Result<Prepared> {
        let secs = match received.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        let from_line = from_line::format(sender, secs);
        let (raw_header, header_complete) = read_header_block(input)?;
        let variant = self.options.variant;
        let stripped = if self.options.strip_metadata {
            meta::strip(&raw_header).0
        } else if variant.uses_content_length() {
            // Our own Content-Length replaces the sender's.
            meta::strip_only(&raw_header, &["content-length"]).0
        } else {
            std::borrow::Cow::Borrowed(&raw_header[..])
        };
        let mut header = Vec::with_capacity(stripped.len() + 32);
        let mut quoter = Quoter::new(variant);
        if !variant.uses_content_length() {
            quoter.push(&stripped, &mut header);
            quoter.finish(&mut header);
            return Ok(Prepared {
                from_line,
                header,
                spooled: None,
                header_complete,
            });
        }
        let (fields, eol) = split_blank_line(&stripped);
        let (spool, len) = if header_complete {
            spool_body(input, variant)?
        } else {
            (tempfile::tempfile().map_err(spool_error)?, 0)
        };
        quoter.push(fields, &mut header);
        quoter.finish(&mut header);
        if !header.is_empty() && !header.ends_with(b"\n") {
            header.extend_from_slice(eol);
        }
        header.extend_from_slice(format!("Content-Length: {len}").as_bytes());
        header.extend_from_slice(eol);
        header.extend_from_slice(eol);
        Ok(Prepared {
            from_line,
            header,
            spooled: Some((spool, len)),
            header_complete,
        })
    }

    fn open_or_create(&self, path: &Path, created: &mut bool) -> Result<File> {
        // Create, then open again: the file `create_new` returns is
        // write-only, and the end of the mbox must be readable (another
        // writer may append between our create and our lock). Another
        // program may also create the mbox between our open and our create.
        for _ in 0..3 {
            match sys::open_for_append(path, self.options.follow_symlinks) {
                Ok(f) => {
                    let meta = f.metadata().map_err(|e| Error::io("stat mbox", path, e))?;
                    if !meta.is_file() {
                        return Err(Error::io(
                            "open mbox",
                            path,
                            io::Error::other("not a regular file"),
                        ));
                    }
                    return Ok(f);
                }
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(Error::io(
                        "open mbox",
                        path,
                        io::Error::other(
                            "is a symbolic link, which is not followed (follow_symlinks)",
                        ),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("open mbox", path, e)),
            }
            match self.io.create_new(path, self.options.create_mode) {
                Ok(f) => {
                    if let Some((uid, gid)) = self.options.owner {
                        sys::fchown(&f, uid, gid)
                            .map_err(|e| Error::io("chown new mbox", path, e))?;
                    }
                    let dir = match path.parent() {
                        Some(d) if !d.as_os_str().is_empty() => d,
                        _ => Path::new("."),
                    };
                    // The new directory entry must survive a power cut as
                    // the data will.
                    self.io
                        .sync_dir(dir)
                        .map_err(|e| Error::io("fsync mailbox directory", dir, e))?;
                    *created = true;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create mbox", path, e)),
            }
        }
        Err(Error::io(
            "open mbox",
            path,
            io::Error::other("created and removed by someone else meanwhile"),
        ))
    }

    /// Writes the entry; returns the bytes written (prefix included).
    fn write_entry(
        &self,
        lock: &mut MboxLock,
        path: &Path,
        prefix: &[u8],
        p: &Prepared,
        input: &mut impl BufRead,
    ) -> Result<u64, WriteError> {
        let mut out = Out {
            io: &self.io,
            lock,
            path,
            buf: Vec::with_capacity(WRITE_CHUNK * 2),
            written: 0,
            refreshed: Instant::now(),
        };
        out.buf.extend_from_slice(prefix);
        out.buf.extend_from_slice(&p.from_line);
        out.buf.extend_from_slice(&p.header);
        let mut last = p.header.last().copied();
        match &p.spooled {
            Some((spool, len)) => {
                let mut spool = spool;
                spool
                    .seek(SeekFrom::Start(0))
                    .map_err(|e| WriteError::Mbox("rewind spool file", e))?;
                let mut left = *len;
                let mut chunk = vec![0u8; WRITE_CHUNK];
                while left > 0 {
                    let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = spool
                        .read(&mut chunk[..want])
                        .map_err(|e| WriteError::Mbox("read spool file", e))?;
                    if n == 0 {
                        return Err(WriteError::Mbox(
                            "read spool file",
                            io::ErrorKind::UnexpectedEof.into(),
                        ));
                    }
                    out.put(&chunk[..n])?;
                    last = Some(chunk[n - 1]);
                    left -= n as u64;
                }
            }
            None => {
                // The quoter continues from the header block, which ended at
                // a line start (or the message ended inside it).
                let mut quoter = Quoter::new(self.options.variant);
                if p.header_complete {
                    loop {
                        let chunk = input.fill_buf().map_err(WriteError::Input)?;
                        if chunk.is_empty() {
                            break;
                        }
                        quoter.push(chunk, &mut out.buf);
                        last = chunk.last().copied();
                        let n = chunk.len();
                        input.consume(n);
                        out.flush_if_full()?;
                    }
                    quoter.finish(&mut out.buf);
                }
            }
        }
        if last.is_some_and(|b| b != b'\n') {
            out.buf.push(b'\n');
        }
        out.buf.push(b'\n'); // the blank line before the next From_ line
        out.flush()?;
        Ok(out.written)
    }
}

/// The buffered writer of one entry.
struct Out<'a, I: Io> {
    io: &'a I,
    lock: &'a mut MboxLock,
    path: &'a Path,
    buf: Vec<u8>,
    written: u64,
    refreshed: Instant,
}

impl<I: Io> Out<'_, I> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.buf.extend_from_slice(bytes);
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> Result<(), WriteError> {
        if self.buf.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.io
            .write_all(self.lock.file_mut(), self.path, &self.buf)
            .map_err(|e| WriteError::Mbox("append to mbox", e))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        if self.refreshed.elapsed() >= REFRESH_EVERY {
            // A failed refresh is not a failed append; the lock is still
            // ours for minutes.
            let _ = self.lock.refresh();
            self.refreshed = Instant::now();
        }
        Ok(())
    }
}

/// What must come before a new `From_` line so that it follows a blank
/// line: nothing for an empty mbox or one ending in a blank line.
fn separator_prefix(file: &File, len: u64) -> io::Result<&'static [u8]> {
    if len == 0 {
        return Ok(b"");
    }
    let n = len.min(3) as usize;
    let mut tail = [0u8; 3];
    file.read_exact_at(&mut tail[..n], len - n as u64)?;
    let tail = &tail[..n];
    Ok(
        if tail.ends_with(b"\n\n") || tail.ends_with(b"\n\r\n") || tail == b"\n" {
            b""
        } else if tail.ends_with(b"\n") {
            b"\n"
        } else {
            b"\n\n"
        },
    )
}

/// Reads the header block, through the blank line that ends it. The flag
/// says whether that blank line was found (else the input ended first).
fn read_header_block(input: &mut impl BufRead) -> Result<(Vec<u8>, bool)> {
    let mut h = Vec::new();
    loop {
        let start = h.len();
        let room = (MAX_HEADER_BYTES + 1).saturating_sub(h.len()) as u64;
        let n = input
            .by_ref()
            .take(room)
            .read_until(b'\n', &mut h)
            .map_err(|source| Error::MessageInput { source })?;
        if h.len() > MAX_HEADER_BYTES {
            return Err(Error::BadMessage {
                what: "message".into(),
                why: format!(
                    "header block larger than {} MiB (no blank line ends it)",
                    MAX_HEADER_BYTES >> 20
                ),
            });
        }
        if n == 0 {
            return Ok((h, false));
        }
        let line = &h[start..];
        if line == b"\n" || line == b"\r\n" {
            return Ok((h, true));
        }
    }
}

/// The header fields without the blank line that ends them, and the line
/// ending the message uses.
fn split_blank_line(h: &[u8]) -> (&[u8], &'static [u8]) {
    if let Some(f) = h.strip_suffix(b"\r\n\r\n") {
        (&h[..f.len() + 2], b"\r\n")
    } else if h == b"\r\n" {
        (b"", b"\r\n")
    } else if let Some(f) = h.strip_suffix(b"\n\n") {
        (&h[..f.len() + 1], b"\n")
    } else if h == b"\n" {
        (b"", b"\n")
    } else if h.ends_with(b"\r\n") {
        (h, b"\r\n")
    } else {
        (h, b"\n")
    }
}

fn spool_error(e: io::Error) -> Error {
    Error::io("create spool file", std::env::temp_dir(), e)
}

/// Copies the rest of the input, quoted, into an unnamed temporary file
/// (in `$TMPDIR`, deleted on close), ending it with a line ending; returns
/// the file and its length.
fn spool_body(input: &mut impl BufRead, variant: Variant) -> Result<(File, u64)> {
    let mut spool = tempfile::tempfile().map_err(spool_error)?;
    let mut quoter = Quoter::new(variant);
    let mut buf = Vec::with_capacity(WRITE_CHUNK * 2);
    let mut len = 0u64;
    let mut last = None;
    let write = |spool: &mut File, buf: &mut Vec<u8>, len: &mut u64| -> Result<()> {
        spool
            .write_all(buf)
            .map_err(|e| Error::io("write spool file", std::env::temp_dir(), e))?;
        *len += buf.len() as u64;
        buf.clear();
        Ok(())
    };
    loop {
        let chunk = input
            .fill_buf()
            .map_err(|source| Error::MessageInput { source })?;
        if chunk.is_empty() {
            break;
        }
        quoter.push(chunk, &mut buf);
        last = chunk.last().copied();
        let n = chunk.len();
        input.consume(n);
        if buf.len() >= WRITE_CHUNK {
            write(&mut spool, &mut buf, &mut len)?;
        }
    }
    quoter.finish(&mut buf);
    if last.is_some_and(|b| b != b'\n') {
        buf.push(b'\n');
    }
    write(&mut spool, &mut buf, &mut len)?;
    Ok((spool, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mbox::{Reader, detect};
    use durable::sim::{Op, Recorder};

    fn opts(variant: Variant) -> AppendOptions {
        AppendOptions {
            variant,
            locks: LockOptions {
                timeout: Duration::from_secs(2),
                ..LockOptions::writer()
            },
            ..AppendOptions::default()
        }
    }

    fn when() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645)
    }

    #[test]
    fn separator_prefix_table() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        let table: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"x\n\n", b""),
            (b"x\r\n\r\n", b""),
            (b"\n", b""),
            (b"x\n", b"\n"),
            (b"x\r\n", b"\n"),
            (b"x", b"\n\n"),
        ];
        for (content, want) in table {
            std::fs::write(&p, content).unwrap();
            let f = File::open(&p).unwrap();
            assert_eq!(
                separator_prefix(&f, content.len() as u64).unwrap(),
                *want,
                "{content:?}"
            );
        }
    }

    #[test]
    fn split_blank_line_table() {
        let table: &[(&[u8], &[u8], &[u8])] = &[
            (b"A: 1\n\n", b"A: 1\n", b"\n"),
            (b"A: 1\r\n\r\n", b"A: 1\r\n", b"\r\n"),
            (b"\n", b"", b"\n"),
            (b"\r\n", b"", b"\r\n"),
            (b"A: 1", b"A: 1", b"\n"),
            (b"A: 1\r\n", b"A: 1\r\n", b"\r\n"),
        ];
        for (h, fields, eol) in table {
            assert_eq!(split_blank_line(h), (*fields, *eol), "{h:?}");
        }
    }

    /// Appends each message, then reads the mbox back with `variant`.
    fn round_trip(variant: Variant, messages: &[&[u8]]) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox");
        let app = Appender::new(opts(variant));
        for (i, m) in messages.iter().enumerate() {
            let a = app
                .append(&p, &format!("s{i}@example.org"), when(), *m)
                .unwrap();
            assert_eq!(a.created, i == 0);
        }
        let data = std::fs::read(&p).unwrap();
        let det = detect(&data).unwrap();
        assert_eq!(
            det.variant.uses_content_length(),
            variant.uses_content_length(),
            "{det:?}"
        );
        Reader::new(&data, variant)
            .unwrap()
            .enumerate()
            .map(|(i, m)| {
                assert_eq!(m.from_line().sender_lossy(), format!("s{i}@example.org"));
                m.bytes().into_owned()
            })
            .collect()
    }

    #[test]
    fn round_trips_per_variant() {
        let msgs: &[&[u8]] = &[
            b"Subject: a\n\nFrom here\n>From there\n>>From everywhere\n\nFrom x Tue Jan  2 03:04:05 2024\n",
            b"Subject: b\n\nno final newline",
            b"",
            b"Subject: crlf\r\n\r\nFrom me\r\n",
            b"Subject: headers only\n",
            b"Subject: binary\n\n\x00\xff\xfe\n\n",
        ];
        let expect = |m: &[u8]| -> Vec<u8> {
            let mut v = m.to_vec();
            if !v.is_empty() && !v.ends_with(b"\n") {
                v.push(b'\n');
            }
            v
        };
        // mboxrd: exact.
        let got = round_trip(Variant::Mboxrd, msgs);
        let want: Vec<Vec<u8>> = msgs.iter().map(|m| expect(m)).collect();
        assert_eq!(got, want);
        // mboxcl2: exact but with our Content-Length header.
        let got = round_trip(Variant::Mboxcl2, msgs);
        for (g, m) in got.iter().zip(msgs) {
            let (stripped, meta) = meta::strip(g);
            assert!(
                meta.content_length.is_some(),
                "{}",
                String::from_utf8_lossy(g)
            );
            let mut w = expect(m);
            if !w.is_empty()
                && !w.windows(2).any(|x| x == b"\n\n")
                && !w.windows(4).any(|x| x == b"\r\n\r\n")
            {
                w.push(b'\n'); // a blank line now ends the header block
            }
            if w.is_empty() {
                w = b"\n".to_vec();
            }
            assert_eq!(
                String::from_utf8_lossy(&stripped),
                String::from_utf8_lossy(&w)
            );
        }
        // mboxo: lossy for >From lines only.
        let got = round_trip(Variant::Mboxo, &msgs[..1]);
        assert_eq!(
            got[0],
            b"Subject: a\n\nFrom here\nFrom there\n>>From everywhere\n\nFrom x Tue Jan  2 03:04:05 2024\n"
        );
        let got = round_trip(Variant::Mboxcl, &msgs[..1]);
        assert!(got[0].ends_with(
            b"\n\nFrom here\nFrom there\n>>From everywhere\n\nFrom x Tue Jan  2 03:04:05 2024\n"
        ));
    }

    #[test]
    fn strips_private_headers_unless_told_not_to() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox");
        let msg: &[u8] = b"Status: RO\nX-UID: 5\nSubject: s\nContent-Length: 1\n\nbody\n";
        Appender::new(opts(Variant::Mboxrd))
            .append(&p, "a@b", when(), msg)
            .unwrap();
        let keep = AppendOptions {
            strip_metadata: false,
            ..opts(Variant::Mboxrd)
        };
        Appender::new(keep).append(&p, "a@b", when(), msg).unwrap();
        let data = std::fs::read(&p).unwrap();
        let got: Vec<_> = Reader::new(&data, Variant::Mboxrd)
            .unwrap()
            .map(|m| m.bytes().into_owned())
            .collect();
        assert_eq!(got, vec![b"Subject: s\n\nbody\n".to_vec(), msg.to_vec()]);
    }

    #[test]
    fn fixes_an_mbox_that_lacks_its_final_blank_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox");
        std::fs::write(&p, "From a Tue Jan  2 03:04:05 2024\nS: 1\n\nno newline").unwrap();
        let a = Appender::new(opts(Variant::Mboxrd))
            .append(&p, "b@c", when(), &b"S: 2\n\nx\n"[..])
            .unwrap();
        let data = std::fs::read(&p).unwrap();
        assert!(data[a.offset as usize..].starts_with(b"From b@c "));
        assert_eq!(a.offset + a.length, data.len() as u64);
        let got: Vec<_> = Reader::new(&data, Variant::Mboxrd)
            .unwrap()
            .map(|m| m.bytes().into_owned())
            .collect();
        assert_eq!(
            got,
            vec![b"S: 1\n\nno newline\n".to_vec(), b"S: 2\n\nx\n".to_vec()]
        );
    }

    #[test]
    fn failed_write_or_sync_leaves_the_old_length() {
        let big: Vec<u8> = b"Subject: big\n\n"
            .iter()
            .copied()
            .chain(std::iter::repeat_n(b"From line of text\n".iter().copied(), 20_000).flatten())
            .collect();
        for (op, nth) in [
            (Op::Write, 0),
            (Op::Write, 1),
            (Op::Write, 3),
            (Op::SyncData, 0),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("inbox");
            let first = Appender::new(opts(Variant::Mboxrd));
            first
                .append(&p, "a@b", when(), &b"S: 1\n\nkeep me\n"[..])
                .unwrap();
            let before = std::fs::read(&p).unwrap();
            let app = Appender::with_io(Recorder::new(), opts(Variant::Mboxrd));
            app.io().fail(op, nth);
            let err = app.append(&p, "c@d", when(), &big[..]).unwrap_err();
            assert!(err.is_temporary(), "{err}");
            assert!(
                matches!(&err, Error::Io { path, .. } if path == &p),
                "{err:?}"
            );
            assert_eq!(std::fs::read(&p).unwrap(), before, "{op:?} {nth}");
            // Locks were released: the next append goes through.
            first
                .append(&p, "e@f", when(), &b"S: 3\n\nnext\n"[..])
                .unwrap();
            let data = std::fs::read(&p).unwrap();
            assert_eq!(Reader::new(&data, Variant::Mboxrd).unwrap().count(), 2);
        }
    }

    #[test]
    fn failed_input_leaves_the_old_length() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::BrokenPipe, "peer went away"));
                }
                let n = buf.len().min(self.0);
                let src = b"Subject: x\n\n".iter().chain(std::iter::repeat(&b'y'));
                for (d, s) in buf[..n].iter_mut().zip(src) {
                    *d = *s;
                }
                self.0 -= n;
                Ok(n)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox");
        let app = Appender::new(opts(Variant::Mboxrd));
        app.append(&p, "a@b", when(), &b"S: 1\n\nkeep\n"[..])
            .unwrap();
        let before = std::fs::read(&p).unwrap();
        let err = app.append(&p, "a@b", when(), Broken(300_000)).unwrap_err();
        assert!(matches!(err, Error::MessageInput { .. }), "{err:?}");
        assert!(err.is_temporary());
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[test]
    fn huge_header_block_is_refused_permanently() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox");
        let junk = vec![b'x'; MAX_HEADER_BYTES + 10];
        let err = Appender::new(opts(Variant::Mboxrd))
            .append(&p, "a@b", when(), &junk[..])
            .unwrap_err();
        assert!(matches!(err, Error::BadMessage { .. }));
        assert!(!err.is_temporary());
        assert!(!p.exists(), "nothing is created for a refused message");
    }

    #[test]
    fn creates_with_mode_0600_and_refuses_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox");
        Appender::new(opts(Variant::Mboxrd))
            .append(&p, "a@b", when(), &b"S: 1\n\nx\n"[..])
            .unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let err = Appender::new(opts(Variant::Mboxrd))
            .append(&link, "a@b", when(), &b"S: 1\n\nx\n"[..])
            .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let follow = AppendOptions {
            follow_symlinks: true,
            ..opts(Variant::Mboxrd)
        };
        Appender::new(follow)
            .append(&link, "a@b", when(), &b"S: 1\n\nx\n"[..])
            .unwrap();
        let data = std::fs::read(&p).unwrap();
        assert_eq!(Reader::new(&data, Variant::Mboxrd).unwrap().count(), 2);
    }

    #[test]
    fn new_mbox_directory_entry_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox");
        let app = Appender::with_io(Recorder::new(), opts(Variant::Mboxrd));
        app.append(&p, "a@b", when(), &b"S: 1\n\nx\n"[..]).unwrap();
        let rec = app.io();
        let cut = rec.power_cut(rec.events().len());
        let img = cut
            .files
            .get(&p)
            .copied()
            .expect("mbox survives a power cut");
        assert!(img.is_whole());
        assert_eq!(img.written, std::fs::metadata(&p).unwrap().len());
    }
}
