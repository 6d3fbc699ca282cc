//! Relayed messages: counted by their two ends, listed in key order.
//!
//! An end is `host[ip] address` (lowercased), and a relay-heavy log has
//! about as many distinct relays as messages: a million relays of a
//! million recipients. Each end is kept as two names, the text up to its
//! first space (the host, shared by many ends) and the rest (the
//! address), so a relay costs four numbers and its count, and each host
//! and address is kept once however many relays name it.
//!
//! While counting, [`Relayed`] finds a relay by a hash table of numbers
//! into its rows; the report's [`Relays`] keeps the rows of each worker's
//! shard sorted and lists them merged, without copying them into one.

use std::cmp::Ordering;
use std::hash::{BuildHasher, BuildHasherDefault};

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use super::hash::KeyHasher;
use super::names::Names;

/// One end of a relay, as its two stored parts: `head` up to the first
/// space, `tail` from it (empty when there is none). Shown joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End<'a> {
    head: &'a str,
    tail: &'a str,
}

impl<'a> End<'a> {
    fn split(end: &'a str) -> End<'a> {
        match end.find(' ') {
            Some(p) => End {
                head: &end[..p],
                tail: &end[p..],
            },
            None => End {
                head: end,
                tail: "",
            },
        }
    }
}

impl std::fmt::Display for End<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.head)?;
        f.write_str(self.tail)
    }
}

impl PartialEq<&str> for End<'_> {
    fn eq(&self, other: &&str) -> bool {
        other.len() == self.head.len() + self.tail.len()
            && other.starts_with(self.head)
            && other.ends_with(self.tail)
    }
}

impl Ord for End<'_> {
    /// The order of the joined text.
    fn cmp(&self, other: &End<'_>) -> Ordering {
        let (a, b) = (self.head.as_bytes(), other.head.as_bytes());
        let n = a.len().min(b.len());
        match a[..n].cmp(&b[..n]) {
            Ordering::Equal => {}
            o => return o,
        }
        if a.len() == b.len() {
            return self.tail.cmp(other.tail);
        }
        // One head is the start of the other: the rest byte by byte.
        let rest_a = a[n..].iter().chain(self.tail.as_bytes());
        let rest_b = b[n..].iter().chain(other.tail.as_bytes());
        rest_a.cmp(rest_b)
    }
}

impl PartialOrd for End<'_> {
    fn partial_cmp(&self, other: &End<'_>) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for End<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A relay's four names (from's head and tail, to's) and how often.
#[derive(Debug, Clone, Copy)]
struct Row {
    ends: [u32; 4],
    messages: u64,
}

fn hash_ends(ends: &[u32; 4]) -> u64 {
    BuildHasherDefault::<KeyHasher>::default().hash_one(ends)
}

/// The relays of one shard while counting.
#[derive(Clone, Default)]
pub struct Relayed {
    names: Names,
    rows: Vec<Row>,
    /// The rows, found by the hash of their names' numbers.
    index: HashTable<u32>,
}

impl std::fmt::Debug for Relayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Relayed {
    /// Counts `n` messages relayed from `from` to `to`.
    pub fn add(&mut self, from: &str, to: &str, n: u64) {
        let (from, to) = (End::split(from), End::split(to));
        let ends = [
            self.names.id(from.head),
            self.names.id(from.tail),
            self.names.id(to.head),
            self.names.id(to.tail),
        ];
        let h = hash_ends(&ends);
        let rows = &self.rows;
        if let Some(&i) = self.index.find(h, |&i| rows[i as usize].ends == ends) {
            self.rows[i as usize].messages += n;
            return;
        }
        // More than 4 billion relays would not fit in memory first.
        let i = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        self.rows.push(Row { ends, messages: n });
        let rows = &self.rows;
        self.index
            .insert_unique(h, i, |&i| hash_ends(&rows[i as usize].ends));
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds `other`'s relays (moved when this holds none).
    pub fn absorb(&mut self, other: Relayed) {
        if self.rows.is_empty() {
            *self = other;
            return;
        }
        for (from, to, n) in other.iter() {
            self.add(&from.to_string(), &to.to_string(), n);
        }
    }

    fn end(&self, head: u32, tail: u32) -> End<'_> {
        End {
            head: self.names.get(head),
            tail: self.names.get(tail),
        }
    }

    fn row(&self, r: &Row) -> (End<'_>, End<'_>, u64) {
        let [a, b, c, d] = r.ends;
        (self.end(a, b), self.end(c, d), r.messages)
    }

    /// Every relay, in the order first counted (in key order once sorted).
    pub fn iter(&self) -> impl Iterator<Item = (End<'_>, End<'_>, u64)> {
        self.rows.iter().map(|r| self.row(r))
    }

    /// In key order, the index let go (nothing is added after).
    fn sorted(mut self) -> Relayed {
        self.index = HashTable::new();
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_unstable_by(|x, y| {
            let (xf, xt, _) = self.row(x);
            let (yf, yt, _) = self.row(y);
            xf.cmp(&yf).then_with(|| xt.cmp(&yt))
        });
        self.rows = rows;
        self
    }
}

/// Every relay of a report, in key order: a list of
/// `{from, to, messages}` in JSON. Kept as the shards counted them, each
/// sorted, and listed merged.
#[derive(Debug, Clone, Default)]
pub struct Relays {
    parts: Vec<Relayed>,
}

impl Relays {
    /// The relays of `parts`; a relay in several parts is listed once,
    /// its counts added.
    pub fn new(parts: Vec<Relayed>) -> Relays {
        Relays {
            parts: parts
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(Relayed::sorted)
                .collect(),
        }
    }

    /// From (from, to, messages) triples: equal keys are added.
    pub fn of<'a>(relays: impl Iterator<Item = (&'a str, &'a str, u64)>) -> Relays {
        let mut r = Relayed::default();
        for (from, to, n) in relays {
            r.add(from, to, n);
        }
        Relays::new(vec![r])
    }

    /// The relays of both, as one list (equal relays added).
    pub fn and(&self, other: &Relays) -> Relays {
        Relays {
            parts: self.parts.iter().chain(&other.parts).cloned().collect(),
        }
    }

    /// How many distinct relays.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// (from, to, messages) in key order.
    pub fn iter(&self) -> Merged<'_> {
        Merged {
            parts: &self.parts,
            next: vec![0; self.parts.len()],
        }
    }
}

/// The sorted parts' rows, merged into one order.
pub struct Merged<'a> {
    parts: &'a [Relayed],
    /// Each part's next row.
    next: Vec<usize>,
}

impl<'a> Iterator for Merged<'a> {
    type Item = (End<'a>, End<'a>, u64);

    fn next(&mut self) -> Option<Self::Item> {
        let head = |i: usize, at: usize| {
            let p: &'a Relayed = &self.parts[i];
            p.rows.get(at).map(|r| p.row(r))
        };
        let mut least: Option<(End<'a>, End<'a>)> = None;
        for (i, &at) in self.next.iter().enumerate() {
            if let Some((f, t, _)) = head(i, at)
                && least.is_none_or(|(lf, lt)| (f, t) < (lf, lt))
            {
                least = Some((f, t));
            }
        }
        let (from, to) = least?;
        let mut messages = 0;
        for (i, at) in self.next.iter_mut().enumerate() {
            if let Some((f, t, n)) = head(i, *at)
                && (f, t) == (from, to)
            {
                messages += n;
                *at += 1;
            }
        }
        Some((from, to, messages))
    }
}

impl PartialEq for Relays {
    fn eq(&self, other: &Relays) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Serialize for Relays {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Row<'a> {
            from: End<'a>,
            to: End<'a>,
            messages: u64,
        }
        s.collect_seq(
            self.iter()
                .map(|(from, to, messages)| Row { from, to, messages }),
        )
    }
}

impl<'de> Deserialize<'de> for Relays {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Relays, D::Error> {
        #[derive(Deserialize)]
        struct Row {
            from: String,
            to: String,
            messages: u64,
        }
        let rows = Vec::<Row>::deserialize(d)?;
        Ok(Relays::of(
            rows.iter()
                .map(|r| (r.from.as_str(), r.to.as_str(), r.messages)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_order_as_their_joined_text() {
        let texts = [
            "a[1] x@y",
            "a[1]b x@y",
            "a[1] x@z",
            "a[1]",
            "a[1]  x@y",
            "(h e l o)[2] s@t",
            "",
            "a[1]!",
        ];
        for a in texts {
            for b in texts {
                assert_eq!(End::split(a).cmp(&End::split(b)), a.cmp(b), "{a:?} {b:?}");
                assert_eq!(End::split(a).to_string(), a);
                assert!(End::split(a) == a);
            }
        }
    }

    #[test]
    fn parts_list_merged_in_order_with_equal_relays_added() {
        let mut one = Relayed::default();
        let mut two = Relayed::default();
        one.add("h[1] s@a", "mx[9] r@b", 1);
        one.add("h[1] s@a", "mx[9] r@b", 2);
        one.add("h[2] s@a", "mx[9] r@c", 1);
        two.add("h[1] s@a", "mx[9] r@a", 5);
        two.add("h[1] s@a", "mx[9] r@b", 10);
        two.add("g[1] q@a", "mx[9] r@b", 1);
        let r = Relays::new(vec![one, Relayed::default(), two]);
        let got: Vec<(String, String, u64)> = r
            .iter()
            .map(|(f, t, n)| (f.to_string(), t.to_string(), n))
            .collect();
        let want = [
            ("g[1] q@a", "mx[9] r@b", 1),
            ("h[1] s@a", "mx[9] r@a", 5),
            ("h[1] s@a", "mx[9] r@b", 13),
            ("h[2] s@a", "mx[9] r@c", 1),
        ];
        let want: Vec<(String, String, u64)> = want
            .iter()
            .map(|(f, t, n)| (f.to_string(), t.to_string(), *n))
            .collect();
        assert_eq!(got, want);
        assert_eq!(r.len(), 4);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.starts_with(r#"[{"from":"g[1] q@a","to":"mx[9] r@b","messages":1}"#));
        let back: Relays = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
