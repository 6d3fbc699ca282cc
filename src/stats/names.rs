//! Strings kept once, each with a number: the keys of the report's tables
//! and the ends of relays.
//!
//! A busy log has a million recipient addresses, and a relay as many
//! distinct pairs of ends (`host[ip] sender`, `host[ip] recipient`) as
//! messages. Each name is kept once in one buffer and found through a
//! table of 4-byte numbers: about the name's length plus 16 bytes each,
//! where a hash map of strings cost an allocation per key and a table
//! entry several times the key's size.

use std::hash::{BuildHasher, BuildHasherDefault};

use hashbrown::HashTable;

use super::hash::KeyHasher;

#[derive(Clone, Default)]
pub struct Names {
    /// Every name, one after the other.
    text: String,
    /// Where name `i` starts in `text`; it ends where `i + 1` starts.
    /// Four bytes, as `text` is kept under 4 GiB.
    starts: Vec<u32>,
    /// The numbers, found by the hash of their name.
    index: HashTable<u32>,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|(_, n)| n)).finish()
    }
}

/// The hash names are found by; [`Names::id_hashed`] takes it made.
pub fn hash(s: &str) -> u64 {
    BuildHasherDefault::<KeyHasher>::default().hash_one(s.as_bytes())
}

/// Name `id` of `text` cut at `starts`; empty for a number never given.
fn name<'a>(text: &'a str, starts: &[u32], id: u32) -> &'a str {
    let i = id as usize;
    let Some(&start) = starts.get(i) else {
        return "";
    };
    let end = starts.get(i + 1).map_or(text.len(), |&e| e as usize);
    text.get(start as usize..end).unwrap_or("")
}

impl Names {
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// The name numbered `id`; empty for a number never given.
    pub fn get(&self, id: u32) -> &str {
        name(&self.text, &self.starts, id)
    }

    /// The number of `name`, given it now if it has none.
    pub fn id(&mut self, name: &str) -> u32 {
        self.id_hashed(hash(name), name)
    }

    /// [`Names::id`] with the name's [`hash`] already made. Past 4 GiB of
    /// names (tens of millions of keys in one table, more memory than a
    /// report can use) a new name gets a number never given: what is
    /// counted under it is not shown.
    pub fn id_hashed(&mut self, h: u64, key: &str) -> u32 {
        let (text, starts) = (&self.text, &self.starts);
        if let Some(&id) = self.index.find(h, |&id| name(text, starts, id) == key) {
            return id;
        }
        let room = self.text.len() + key.len() <= u32::MAX as usize;
        let (true, Ok(id)) = (room, u32::try_from(self.starts.len())) else {
            return u32::MAX;
        };
        // Under 2^32: there was room.
        self.starts.push(self.text.len() as u32);
        self.text.push_str(key);
        let (text, starts) = (&self.text, &self.starts);
        self.index
            .insert_unique(h, id, |&id| hash(name(text, starts, id)));
        id
    }

    /// Every name with its number, in the order they were given.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        (0..self.len() as u32).map(|id| (id, self.get(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_once_with_its_number() {
        let mut n = Names::default();
        let words: Vec<String> = (0..5000)
            .map(|i| format!("host{}[10.0.0.{}] a{i}@x", i % 7, i % 250))
            .collect();
        let ids: Vec<u32> = words.iter().map(|w| n.id(w)).collect();
        assert_eq!(n.len(), 5000);
        for (w, id) in words.iter().zip(&ids) {
            assert_eq!(n.id(w), *id, "found again, not added");
            assert_eq!(n.get(*id), w);
        }
        assert_eq!(n.len(), 5000);
        assert_eq!(n.id(""), 5000);
        assert_eq!(n.get(5000), "");
        assert_eq!(n.id("host0[10.0.0.0] a0@x"), 0);
        assert_eq!(n.get(99_999), "");
    }
}
