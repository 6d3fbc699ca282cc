//! A large message written out while it arrives.
//!
//! The session keeps a message's content in memory until its end. Past
//! `smtp.stream_from` (1 MiB by default), a message received over SMTP is instead taken from the
//! session as it comes and written at once: its body into a spool draft
//! (`-D` under a temporary name), and, for each recipient that takes the
//! direct path ([`super::direct`]: local Maildirs only), a copy through the
//! Maildir transport into `tmp/`. At the final dot:
//!
//! - every recipient direct: the copies are committed as one job (one data
//!   barrier, the renames, one directory barrier, the log lines, `250`) and
//!   the draft is dropped;
//! - some direct: the draft is finished with the copies as intents and
//!   committed with them in one job (the split of a message held in
//!   memory);
//! - none direct, or a copy failed, or the routing changed meanwhile: the
//!   copies are removed and the draft is the spooled message.
//!
//! So a message costs the session a few chunks of memory whatever its size,
//! and a client's final dot waits for the last chunk's write and the
//! barriers, not for the whole message's.
//!
//! The size limit, the line checks and an abandoned transaction (`RSET`,
//! a dropped connection, a refused `BDAT` chunk) end the stream as soon as
//! the session knows: every `tmp/` file and the draft are removed before
//! the client gets its reply.
//!
//! | a crash or kill while streaming leaves | |
//! |---|---|
//! | `tmp/` files in the Maildirs | removed by age, as any cut-off delivery's |
//! | the draft's temporary spool files | never published: the spool ignores and clears them |
//!
//! One writer per file (a blocking thread each, at most
//! `direct_max_recipients` + 1 per message, [`MOST_WRITERS`] for all
//! streams), fed in order through a bounded queue: a disk slower than the
//! client slows the client's reads, never the memory.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use spool::{Draft, Header, MessageId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Shared;
use super::policy;
use crate::delivery::{local_copy_name, local_prefix, stored_head};
use crate::router::Destination;
use crate::transport::maildir::{Staged, Target};
use smtp::session::SmtpEnvelope;

/// Content taken at a time once a stream runs.
pub const CHUNK: usize = 256 << 10;

/// Chunks queued for one writer before the session waits for it.
const IN_FLIGHT: usize = 4;

/// A header section not ended within this many octets is not streamed.
const MOST_HEADER: usize = 4 << 20;

/// What the connection does with content it took from its session.
pub enum Inbound {
    /// Waiting for the end of the header section (the headers the spool
    /// and the copies start with depend on all of them).
    Gathering(Vec<u8>),
    /// Not streamed: the content taken, given back at the end.
    Held(Vec<u8>),
    /// Written out as it comes.
    Active(Box<Active>),
}

impl Inbound {
    /// A message past `smtp.stream_from`: gathering its header section.
    pub fn open() -> Inbound {
        Inbound::Gathering(Vec::new())
    }

    /// How much content to take from the session next (`None`: leave it
    /// there).
    pub fn wants(&self) -> Option<usize> {
        match self {
            Inbound::Gathering(_) => Some(1),
            Inbound::Active(_) => Some(CHUNK),
            Inbound::Held(_) => None,
        }
    }

    /// Drops what was taken and written: returns once every file written
    /// for it is removed.
    pub async fn abandon(this: Option<Inbound>) {
        if let Some(Inbound::Active(mut a)) = this {
            a.draft_tx = None;
            for c in &mut a.copies {
                c.tx = None;
            }
            if let Some(d) = a.draft.take() {
                let _ = d.await;
            }
            for c in std::mem::take(&mut a.copies) {
                // The writer saw the message abandoned and removed its file.
                let _ = c.writer.await;
            }
        }
    }

    /// Takes in `bytes`, the next content taken from the session.
    pub async fn step(
        shared: &Arc<Shared>,
        env: &SmtpEnvelope,
        this: Inbound,
        bytes: Vec<u8>,
    ) -> Inbound {
        let (buf, seen) = match this {
            Inbound::Active(mut a) => {
                a.feed(bytes).await;
                return Inbound::Active(a);
            }
            Inbound::Held(mut held) => {
                held.extend_from_slice(&bytes);
                return Inbound::Held(held);
            }
            // The first content: no copy.
            Inbound::Gathering(buf) if buf.is_empty() => (bytes, 0),
            Inbound::Gathering(mut buf) => {
                let seen = buf.len();
                buf.extend_from_slice(&bytes);
                (buf, seen)
            }
        };
        if !header_ended(&buf, seen) {
            return if buf.len() > MOST_HEADER {
                Inbound::Held(buf)
            } else {
                Inbound::Gathering(buf)
            };
        }
        let s = shared.clone();
        let env = env.clone();
        let started = tokio::task::spawn_blocking(move || match Active::start(&s, &env, &buf) {
            Some(a) => Inbound::Active(Box::new(a)),
            None => Inbound::Held(buf),
        })
        .await;
        // A panicked start took the content with it: the message cannot be
        // accepted whole; an empty stream that no copy will finish makes
        // the final dot answer 451.
        started.unwrap_or_else(|_| Inbound::Active(Box::new(Active::broken())))
    }
}

/// Writer threads all streams may hold at once: a stream holds one per
/// file for as long as its client takes to send, on tokio's blocking pool
/// (512 threads), which every connection's other blocking work needs too.
/// A message that would pass this is held in memory instead.
const MOST_WRITERS: usize = 128;

static WRITERS: AtomicUsize = AtomicUsize::new(0);

/// Writer threads reserved for one stream, given back when the last of
/// its threads (and the stream) lets go.
struct Reservation(usize);

impl Reservation {
    fn take(n: usize) -> Option<Reservation> {
        WRITERS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |busy| {
                (busy + n <= MOST_WRITERS).then_some(busy + n)
            })
            .ok()
            .map(|_| Reservation(n))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        WRITERS.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// Whether CRLF content `crlf` holds the end of its header section (a
/// blank line), looking only at what came after the first `seen` octets
/// (already looked at) and the three before them.
fn header_ended(crlf: &[u8], seen: usize) -> bool {
    crlf.starts_with(b"\r\n")
        || memchr::memmem::find(&crlf[seen.saturating_sub(3)..], b"\r\n\r\n").is_some()
}

/// A piece of the message for a writer.
enum Piece {
    Data(Arc<Vec<u8>>),
    /// The message is complete: the writer finishes its file.
    End,
}

/// One copy being written: its recipient, destination and writer.
struct CopyWriter {
    rcpt: usize,
    address: String,
    dest: Destination,
    tx: Option<mpsc::Sender<Piece>>,
    writer: JoinHandle<Result<Staged, mailstore::Error>>,
}

/// A stream in progress.
pub struct Active {
    id: Option<MessageId>,
    /// The headers as the spool keeps them (a `Received:` first).
    headers: Vec<Header>,
    /// Per recipient that has copies: its index and destinations.
    routed: Vec<(usize, Vec<Destination>)>,
    copies: Vec<CopyWriter>,
    draft_tx: Option<mpsc::Sender<Piece>>,
    draft: Option<JoinHandle<Option<Draft>>>,
    /// Body octets sent to the writers (line ends as stored: LF).
    body_len: u64,
    /// The last chunk ended in CR: whether it ends a line depends on the
    /// next one.
    pending_cr: bool,
}

/// What the writers made of a complete message.
pub struct Finished {
    pub id: Option<MessageId>,
    pub headers: Vec<Header>,
    pub routed: Vec<(usize, Vec<Destination>)>,
    /// Per copy: recipient index, address, destination, staging result.
    pub copies: Vec<(usize, String, Destination, Result<Staged, mailstore::Error>)>,
    /// The spool's draft with the whole body, unless writing it failed.
    pub draft: Option<Draft>,
    pub body_len: u64,
}

impl Active {
    /// A stream that can come to nothing (no draft, no copies).
    fn broken() -> Active {
        Active {
            id: None,
            headers: Vec::new(),
            routed: Vec::new(),
            copies: Vec::new(),
            draft_tx: None,
            draft: None,
            body_len: 0,
            pending_cr: false,
        }
    }

    /// Takes a spool draft and starts its writer and one per copy for the
    /// recipients that take the direct path; `None` when the writer
    /// threads or the draft cannot be had (the message is then handled
    /// whole). Blocking.
    fn start(shared: &Arc<Shared>, env: &SmtpEnvelope, crlf: &[u8]) -> Option<Active> {
        let routed = super::direct::direct_routes(shared, env);
        let files: usize = routed.iter().map(|(_, d)| d.len()).sum();
        let reserved = Arc::new(Reservation::take(files + 1)?);
        let draft = shared.queue.draft().ok()?;
        let id = draft.id();
        let mut pending_cr = false;
        let mut lf = crlf.to_vec();
        policy::to_lf_piece(&mut lf, &mut pending_cr);
        let (headers, body_at) = policy::spool_headers(shared, env, id.as_str(), &lf, None);
        let head = stored_head(&headers);
        let sender = env.from.as_ref().map(|a| a.as_str()).unwrap_or_default();
        let rt = tokio::runtime::Handle::current();

        let (draft_tx, mut draft_rx) = mpsc::channel::<Piece>(IN_FLIGHT);
        let held = reserved.clone();
        let draft = rt.spawn_blocking(move || {
            let _held = held;
            let mut draft = draft;
            loop {
                match draft_rx.blocking_recv() {
                    Some(Piece::Data(d)) => draft.write(&d).ok()?,
                    Some(Piece::End) => return Some(draft),
                    // Abandoned: dropping the draft removes its files.
                    None => return None,
                }
            }
        });
        let mut copies = Vec::new();
        for (i, dests) in &routed {
            let several = dests.len() > 1;
            for (k, dest) in dests.iter().enumerate() {
                let name = local_copy_name(&id, *i, k, several);
                let mut prefix = local_prefix(dest, sender).into_bytes();
                prefix.extend_from_slice(&head);
                let (tx, rx) = mpsc::channel::<Piece>(IN_FLIGHT);
                let (s, d, held) = (shared.clone(), dest.clone(), reserved.clone());
                let writer = rt.spawn_blocking(move || {
                    let _held = held;
                    let target = Target {
                        path: &d.path,
                        owner: d.owner,
                        folder: None,
                        base: Some(name),
                        look_first: false,
                    };
                    let mut reader = Pieces {
                        rx,
                        current: None,
                        at: 0,
                    };
                    s.maildir()
                        .stage(s.queue.committer().io(), &target, &prefix, &mut reader)
                });
                copies.push(CopyWriter {
                    rcpt: *i,
                    address: env.recipients[*i].address.as_str().to_string(),
                    dest: dest.clone(),
                    tx: Some(tx),
                    writer,
                });
            }
        }
        let mut active = Active {
            id: Some(id),
            headers,
            routed,
            copies,
            draft_tx: Some(draft_tx),
            draft: Some(draft),
            body_len: 0,
            pending_cr,
        };
        // The body's first octets came with the headers.
        let first = Arc::new(lf[body_at..].to_vec());
        active.body_len = first.len() as u64;
        for tx in active.senders() {
            // Room for IN_FLIGHT pieces: the queue is empty yet.
            let _ = tx.try_send(Piece::Data(first.clone()));
        }
        Some(active)
    }

    fn senders(&self) -> impl Iterator<Item = &mpsc::Sender<Piece>> {
        self.draft_tx
            .iter()
            .chain(self.copies.iter().filter_map(|c| c.tx.as_ref()))
    }

    /// Sends `content`, the next content (CRLF line ends), to every writer
    /// still writing.
    async fn feed(&mut self, mut content: Vec<u8>) {
        policy::to_lf_piece(&mut content, &mut self.pending_cr);
        self.send(Piece::Data(Arc::new(content))).await;
    }

    async fn send(&mut self, piece: Piece) {
        if let Piece::Data(d) = &piece {
            self.body_len += d.len() as u64;
        }
        let clone = |p: &Piece| match p {
            Piece::Data(d) => Piece::Data(d.clone()),
            Piece::End => Piece::End,
        };
        // A writer that stopped (its file failed) has dropped its end:
        // it is left out from then on; its result says why.
        if let Some(tx) = &self.draft_tx
            && tx.send(clone(&piece)).await.is_err()
        {
            self.draft_tx = None;
        }
        for c in &mut self.copies {
            if let Some(tx) = &c.tx
                && tx.send(clone(&piece)).await.is_err()
            {
                c.tx = None;
            }
        }
    }

    /// Sends the last content and waits for every writer.
    pub async fn finish(mut self, crlf_tail: &[u8]) -> Finished {
        let mut lf = crlf_tail.to_vec();
        policy::to_lf_piece(&mut lf, &mut self.pending_cr);
        if std::mem::take(&mut self.pending_cr) {
            lf.push(b'\r');
        }
        if !lf.is_empty() {
            self.send(Piece::Data(Arc::new(lf))).await;
        }
        self.send(Piece::End).await;
        let draft = match self.draft.take() {
            Some(d) => d.await.ok().flatten(),
            None => None,
        };
        let mut copies = Vec::with_capacity(self.copies.len());
        for c in std::mem::take(&mut self.copies) {
            let staged = c.writer.await.unwrap_or_else(|_| {
                Err(mailstore::Error::io(
                    "write",
                    &c.dest.path,
                    io::Error::other("the writing thread panicked"),
                ))
            });
            copies.push((c.rcpt, c.address, c.dest, staged));
        }
        Finished {
            id: self.id,
            headers: std::mem::take(&mut self.headers),
            routed: std::mem::take(&mut self.routed),
            copies,
            draft,
            body_len: self.body_len,
        }
    }
}

/// Reads the pieces a writer is sent; an abandoned message (the sender
/// gone without [`Piece::End`]) is an error, so the file is removed.
struct Pieces {
    rx: mpsc::Receiver<Piece>,
    current: Option<Arc<Vec<u8>>>,
    at: usize,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(cur) = &self.current
                && self.at < cur.len()
            {
                let n = buf.len().min(cur.len() - self.at);
                buf[..n].copy_from_slice(&cur[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(d)) => {
                    self.current = Some(d);
                    self.at = 0;
                }
                Some(Piece::End) => return Ok(0),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the message was abandoned before its end",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_are_converted_across_any_split() {
        let input: &[u8] = b"a\r\nb\rc\r\n\r\n\r\rd\r";
        let whole = policy::to_lf(input);
        for cut1 in 0..=input.len() {
            for cut2 in cut1..=input.len() {
                let mut out = Vec::new();
                let mut cr = false;
                for part in [&input[..cut1], &input[cut1..cut2], &input[cut2..]] {
                    let mut piece = part.to_vec();
                    policy::to_lf_piece(&mut piece, &mut cr);
                    out.extend_from_slice(&piece);
                }
                if cr {
                    out.push(b'\r');
                }
                assert_eq!(out, whole, "cuts {cut1} {cut2}");
            }
        }
    }

    #[test]
    fn writer_threads_are_reserved_within_the_budget() {
        // No unit test of this binary streams a message.
        let all = Reservation::take(MOST_WRITERS).expect("the whole budget is free");
        assert!(Reservation::take(1).is_none(), "over the budget");
        drop(all);
        let one = Reservation::take(1).expect("given back when dropped");
        drop(one);
        assert_eq!(WRITERS.load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_header_section_ends_at_its_blank_line() {
        assert!(header_ended(b"\r\nbody", 0));
        assert!(header_ended(b"A: b\r\n\r\nbody", 0));
        assert!(!header_ended(b"A: b\r\nC: d\r\n", 0));
        // A blank line split across two takes is found.
        assert!(header_ended(b"A: b\r\n\r\nbody", 5));
        assert!(header_ended(b"A: b\r\n\r\nbody", 7));
        assert!(!header_ended(b"A: b\r\nC: d\r\n", 9));
    }
}
