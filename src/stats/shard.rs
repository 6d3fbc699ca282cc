//! The large tables shared out among the worker threads by key.
//!
//! Each worker owns the keys whose hash falls to it ([`owner`]) and keeps
//! only those: a key met in another worker's piece of the log is written
//! as a record into that worker's outbox, and the owner adds it between
//! its own pieces. A million recipient addresses are then kept once, not
//! once per thread, and the report adds no tables at the end (the
//! workers' keys are disjoint).
//!
//! Records are plain bytes made and read by this module only:
//!
//! ```text
//! tally:  which(u8 < RELAY) hash(u64) len(u32) key  messages addresses bytes (u64 each)
//! relay:  RELAY             len(u32) from len(u32) to  messages(u64)
//! ```
//!
//! A relay is owned by the hash of its `to` end (its records carry that).

use crossbeam::channel::{Receiver, Sender};

use super::report::Tallied;

/// The tables records can be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    SendingHosts,
    SendingAddresses,
    SendingLocal,
    DestinationHosts,
    DestinationAddresses,
    DestinationLocal,
}

const WHICH: [Which; 6] = [
    Which::SendingHosts,
    Which::SendingAddresses,
    Which::SendingLocal,
    Which::DestinationHosts,
    Which::DestinationAddresses,
    Which::DestinationLocal,
];

const RELAY: u8 = 255;

/// An outbox is posted when it holds this much.
const POST_AT: usize = 64 << 10;

/// The shard (of `shards`) that owns a key of hash `h`. The high half of
/// the hash: the tables take their buckets from the low bits.
pub fn owner(h: u64, shards: usize) -> usize {
    (((h >> 32) * shards as u64) >> 32) as usize
}

/// One record, borrowed from its buffer.
#[derive(Debug, PartialEq)]
pub enum Update<'a> {
    Tally {
        which: Which,
        hash: u64,
        key: &'a str,
        figures: Tallied,
    },
    Relay {
        from: &'a str,
        to: &'a str,
        messages: u64,
    },
}

/// A worker's links to the others.
#[derive(Debug, Clone)]
pub struct Router {
    me: usize,
    /// One per shard; mine stays empty.
    outboxes: Vec<Vec<u8>>,
    /// One per shard, none for mine; all gone once closed.
    peers: Vec<Option<Sender<Vec<u8>>>>,
    inbox: Receiver<Vec<u8>>,
}

impl Router {
    /// The routers of `n` workers, the `i`th for worker `i`.
    pub fn ring(n: usize) -> Vec<Router> {
        let (senders, inboxes): (Vec<_>, Vec<_>) =
            (0..n).map(|_| crossbeam::channel::unbounded()).unzip();
        inboxes
            .into_iter()
            .enumerate()
            .map(|(me, inbox)| Router {
                me,
                outboxes: vec![Vec::new(); n],
                peers: senders
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i != me).then(|| s.clone()))
                    .collect(),
                inbox,
            })
            .collect()
    }

    pub fn me(&self) -> usize {
        self.me
    }

    pub fn shards(&self) -> usize {
        self.outboxes.len()
    }

    /// The owner of a key of hash `h` when it is not this worker.
    pub fn elsewhere(&self, h: u64) -> Option<usize> {
        let o = owner(h, self.shards());
        (o != self.me).then_some(o)
    }

    pub fn tally(&mut self, to: usize, which: Which, hash: u64, key: &str, t: Tallied) {
        let b = &mut self.outboxes[to];
        b.push(which as u8);
        b.extend_from_slice(&hash.to_le_bytes());
        put_str(b, key);
        for n in [t.messages, t.addresses, t.bytes] {
            b.extend_from_slice(&n.to_le_bytes());
        }
        self.post_if_full(to);
    }

    pub fn relay(&mut self, owner: usize, from: &str, to: &str, messages: u64) {
        let b = &mut self.outboxes[owner];
        b.push(RELAY);
        put_str(b, from);
        put_str(b, to);
        b.extend_from_slice(&messages.to_le_bytes());
        self.post_if_full(owner);
    }

    fn post_if_full(&mut self, to: usize) {
        if self.outboxes[to].len() >= POST_AT {
            self.post(to);
        }
    }

    fn post(&mut self, to: usize) {
        let records = std::mem::take(&mut self.outboxes[to]);
        if records.is_empty() {
            return;
        }
        if let Some(Some(peer)) = self.peers.get(to) {
            // The owner waits for its inbox until every sender is gone:
            // it cannot have gone first.
            let _ = peer.send(records);
        }
    }

    /// Records that came for this worker, without waiting.
    pub fn mail(&self) -> Option<Vec<u8>> {
        self.inbox.try_recv().ok()
    }

    /// Posts what the outboxes hold and lets go of the others: no more
    /// records will come from this worker.
    pub fn close(&mut self) {
        for to in 0..self.shards() {
            self.post(to);
        }
        self.peers.clear();
    }

    /// The next records for this worker, waiting for them; none once
    /// every other worker has closed and everything is read.
    pub fn wait(&self) -> Option<Vec<u8>> {
        self.inbox.recv().ok()
    }
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    // Keys are parts of one log line: far below 4 GiB.
    b.extend_from_slice(&(s.len() as u32).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// Reads the records of `buf`, in order.
pub fn updates(buf: &[u8]) -> Updates<'_> {
    Updates { rest: buf }
}

pub struct Updates<'a> {
    rest: &'a [u8],
}

impl<'a> Updates<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = u32::from_le_bytes(self.bytes(4)?.try_into().ok()?);
        std::str::from_utf8(self.bytes(len as usize)?).ok()
    }

    fn next_update(&mut self) -> Option<Update<'a>> {
        let kind = *self.bytes(1)?.first()?;
        if kind == RELAY {
            let from = self.str()?;
            let to = self.str()?;
            let messages = self.u64()?;
            return Some(Update::Relay { from, to, messages });
        }
        let which = *WHICH.get(usize::from(kind))?;
        let hash = self.u64()?;
        let key = self.str()?;
        let figures = Tallied {
            messages: self.u64()?,
            addresses: self.u64()?,
            bytes: self.u64()?,
        };
        Some(Update::Tally {
            which,
            hash,
            key,
            figures,
        })
    }
}

impl<'a> Iterator for Updates<'a> {
    type Item = Update<'a>;

    fn next(&mut self) -> Option<Update<'a>> {
        let u = self.next_update();
        if u.is_none() {
            // Made here, so never cut short; stop rather than misread.
            self.rest = &[];
        }
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_cover_every_shard_evenly() {
        let mut seen = [0u32; 3];
        for i in 0..30_000u64 {
            let h = super::super::names::hash(&format!("r{i}@example.org"));
            seen[owner(h, 3)] += 1;
        }
        for n in seen {
            assert!((9_000..11_000).contains(&n), "{seen:?}");
        }
        assert_eq!(owner(u64::MAX, 1), 0);
        assert_eq!(owner(u64::MAX, 4), 3);
    }

    #[test]
    fn records_reach_their_owner_as_they_were_sent() {
        let mut ring = Router::ring(2);
        let b = ring.pop().unwrap();
        let mut a = ring.pop().unwrap();
        assert_eq!((a.me(), b.me()), (0, 1));
        let t = Tallied {
            messages: 1,
            addresses: 2,
            bytes: u64::MAX,
        };
        a.tally(1, Which::DestinationLocal, 7, "u1", t);
        a.relay(1, "mx[10.0.0.1] s@x", "mx.dest[203.0.113.1] r@y", 3);
        assert_eq!(b.mail(), None, "held until posted");
        a.close();
        let got = b.wait().unwrap();
        let all: Vec<Update> = updates(&got).collect();
        assert_eq!(
            all,
            [
                Update::Tally {
                    which: Which::DestinationLocal,
                    hash: 7,
                    key: "u1",
                    figures: t,
                },
                Update::Relay {
                    from: "mx[10.0.0.1] s@x",
                    to: "mx.dest[203.0.113.1] r@y",
                    messages: 3,
                },
            ]
        );
        assert_eq!(b.wait(), None, "a closed, nothing left");
        // A record cut short is not read at all.
        assert_eq!(updates(&got[..got.len() - 1]).count(), 1);
    }
}
