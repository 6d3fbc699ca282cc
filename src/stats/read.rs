//! Reading logs: files (plain, gzipped or rotated), standard input, and
//! the pieces they are cut into for the worker threads.
//!
//! Input is read through a buffer in pieces of [`CHUNK`] bytes, each cut
//! after its last newline (the rest goes with the next piece), so memory
//! holds at most a few pieces, never a whole file. Each worker counts the
//! pieces it takes into a [`Tally`] of its own; the messages each piece
//! leaves open are joined in input order, which is what lets a message
//! whose lines fall into two pieces be counted once and right (see
//! [`Tally::merge_open`]).
//!
//! Files are read in the order of their first time stamp, so that
//! `mainlog mainlog.1 mainlog.2.gz` in any order counts each message's
//! arrival before its deliveries, as one log read from the start would.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::shard::Router;
use super::{Options, Piece, Tally};

/// Bytes per piece handed to a worker.
pub const CHUNK: usize = 1 << 20;

/// The two bytes a gzip stream starts with (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Where lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// `-` is standard input.
    pub fn from_arg(p: &Path) -> Input {
        if p.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::File(p.to_path_buf())
        }
    }

    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "standard input".to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }

    /// A buffered reader of the text, gunzipped when the data is gzip
    /// (told by its first bytes, whatever the name says).
    pub fn open(&self) -> io::Result<Box<dyn BufRead + Send>> {
        let raw: Box<dyn Read + Send> = match self {
            Input::Stdin => Box::new(io::stdin()),
            Input::File(p) => Box::new(File::open(p)?),
        };
        let mut buffered = BufReader::with_capacity(1 << 16, raw);
        let gzip = buffered.fill_buf()?.starts_with(&GZIP_MAGIC);
        Ok(if gzip {
            // Multi: `cat a.gz b.gz` is one valid gzip file of two members.
            Box::new(BufReader::with_capacity(
                1 << 16,
                flate2::bufread::MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        })
    }
}

/// The civil second of the first stamped line among the first lines of
/// `input` (without opening standard input), for ordering files.
fn first_stamp(input: &Input) -> Option<i64> {
    let Input::File(_) = input else {
        return None;
    };
    let mut r = input.open().ok()?;
    let mut line = Vec::new();
    for _ in 0..1000 {
        line.clear();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&line);
        if let Some((stamp, _, _)) = crate::log::parse::split(&text) {
            let civil = super::zone::civil_seconds(&stamp.time)?;
            let off = stamp.zone.as_deref().and_then(super::zone::offset);
            return Some(civil - i64::from(off.unwrap_or(0)));
        }
    }
    None
}

/// `inputs` in the order to read them: by first time stamp, files that
/// have none (empty ones) first. With standard input among them the order
/// given is kept (standard input cannot be looked into beforehand).
pub fn ordered(inputs: &[Input]) -> Vec<Input> {
    if inputs.contains(&Input::Stdin) {
        return inputs.to_vec();
    }
    let mut keyed: Vec<(Option<i64>, Input)> =
        inputs.iter().map(|i| (first_stamp(i), i.clone())).collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// A read error, with the input it came from.
#[derive(Debug)]
pub struct ReadError {
    pub input: String,
    pub error: io::Error,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.input, self.error)
    }
}

/// Cuts a reader into pieces that end at a newline (the last piece of an
/// input may end without one). Calls `each` with every piece in order.
fn pieces(
    r: &mut dyn BufRead,
    size: usize,
    mut buffer: impl FnMut() -> Vec<u8>,
    mut each: impl FnMut(Vec<u8>) -> bool,
) -> io::Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        // A used buffer when there is one: a fresh one of megabytes costs
        // a page fault per page.
        let mut buf = buffer();
        buf.clear();
        buf.append(&mut carry);
        buf.reserve(size);
        let start = buf.len();
        // Fill up to `size` more bytes (or the end).
        let mut eof = false;
        while buf.len() < start + size {
            let want = (start + size - buf.len()) as u64;
            let n = (&mut *r).take(want).read_to_end(&mut buf)?;
            if n == 0 {
                eof = true;
                break;
            }
        }
        if eof {
            // The last piece, which may end without a newline.
            if !buf.is_empty() {
                each(buf);
            }
            return Ok(());
        }
        // Keep the unfinished last line for the next piece; a piece with
        // no newline at all (one huge line) grows until it has one.
        match memchr::memrchr(b'\n', &buf) {
            Some(i) => {
                carry.extend_from_slice(&buf[i + 1..]);
                buf.truncate(i + 1);
                if !each(buf) {
                    return Ok(());
                }
            }
            None => carry = buf,
        }
    }
}

/// Counts the lines of one piece.
pub fn tally_piece(t: &mut Tally, piece: &[u8]) {
    // One check of the whole piece is cheaper than one per line.
    if let Ok(text) = std::str::from_utf8(piece) {
        for line in text.split('\n') {
            if !line.is_empty() {
                t.line(line);
            }
        }
        return;
    }
    for line in piece.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        match std::str::from_utf8(line) {
            Ok(s) => t.line(s),
            // Logs are ASCII (Exim escapes the rest); keep what can be
            // read of anything else.
            Err(_) => t.line(&String::from_utf8_lossy(line)),
        }
    }
}

/// Counts `inputs` (already in reading order) on `threads` workers.
pub fn tally(inputs: &[Input], opts: Options, threads: usize) -> Result<Tally, ReadError> {
    let threads = threads.max(1);
    if threads == 1 {
        let mut t = Tally::new(opts);
        for input in inputs {
            let err = |error| ReadError {
                input: input.name(),
                error,
            };
            let mut r = input.open().map_err(err)?;
            let spare = std::cell::Cell::new(Vec::new());
            pieces(
                &mut *r,
                CHUNK,
                || spare.take(),
                |p| {
                    tally_piece(&mut t, &p);
                    spare.set(p);
                    true
                },
            )
            .map_err(err)?;
        }
        return Ok(t);
    }
    let (work_tx, work_rx) = crossbeam::channel::bounded::<(usize, Vec<u8>)>(threads);
    let (done_tx, done_rx) = crossbeam::channel::unbounded::<(usize, Piece)>();
    // Buffers go back to the reader once counted.
    let (free_tx, free_rx) = crossbeam::channel::unbounded::<Vec<u8>>();
    std::thread::scope(|scope| {
        // Each worker counts its pieces into a tally of its own and hands
        // back only the messages each piece left open: those are joined
        // here in input order; the counts are added once at the end. The
        // keyed tables are shared out by key: between pieces a worker adds
        // what the others sent it.
        let workers: Vec<_> = Router::ring(threads)
            .into_iter()
            .map(|router| {
                let work_rx = work_rx.clone();
                let done_tx = done_tx.clone();
                let free_tx = free_tx.clone();
                scope.spawn(move || {
                    let mut t = Tally::routed(opts, router);
                    for (seq, piece) in work_rx {
                        t.begin_piece(seq == 0);
                        tally_piece(&mut t, &piece);
                        let _ = free_tx.send(piece);
                        t.read_mail();
                        if done_tx.send((seq, t.end_piece())).is_err() {
                            break;
                        }
                    }
                    t.close_routes();
                    t
                })
            })
            .collect();
        drop(done_tx);
        drop(free_tx);
        drop(work_rx);
        let reader = scope.spawn(move || -> Result<(), ReadError> {
            let mut seq = 0;
            for input in inputs {
                let err = |error| ReadError {
                    input: input.name(),
                    error,
                };
                let mut r = input.open().map_err(err)?;
                pieces(
                    &mut *r,
                    CHUNK,
                    || free_rx.try_recv().unwrap_or_default(),
                    |p| {
                        let ok = work_tx.send((seq, p)).is_ok();
                        seq += 1;
                        ok
                    },
                )
                .map_err(err)?;
            }
            Ok(())
        });
        let mut total = Tally::new(opts);
        let mut waiting: BTreeMap<usize, Piece> = BTreeMap::new();
        let mut next = 0;
        for (seq, open) in done_rx {
            waiting.insert(seq, open);
            while let Some(open) = waiting.remove(&next) {
                total.merge_open(open);
                next += 1;
            }
        }
        let failed = || ReadError {
            input: "input".to_string(),
            error: io::Error::other("a counting thread failed"),
        };
        // The workers' counts into the first worker's tally (their keyed
        // tables are moved, not added: no two hold a key), then what was
        // settled here.
        let mut all: Option<Tally> = None;
        for w in workers {
            let t = w.join().map_err(|_| failed())?;
            match &mut all {
                Some(a) => a.merge(t),
                None => all = Some(t),
            }
        }
        let total = match all {
            Some(mut a) => {
                a.merge(total);
                a
            }
            None => total,
        };
        match reader.join() {
            Ok(Ok(())) => Ok(total),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(failed()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_end_at_newlines_and_lose_nothing() {
        let mut text = Vec::new();
        for i in 0..3000 {
            text.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        text.extend_from_slice(b"last without newline");
        let mut got = Vec::new();
        let mut n = 0;
        pieces(&mut &text[..], 1000, Vec::new, |p| {
            n += 1;
            assert!(p.ends_with(b"\n") || p.ends_with(b"newline"));
            got.extend_from_slice(&p);
            true
        })
        .unwrap();
        assert!(n > 1, "{n} pieces");
        assert_eq!(got, text);
    }

    #[test]
    fn gzip_is_told_by_its_bytes() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mainlog.1");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(b"2026-12-03 08:27:55 x\n").unwrap();
        gz.finish().unwrap();
        let mut text = String::new();
        Input::File(path)
            .open()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "2026-12-03 08:27:55 x\n");
    }
}
