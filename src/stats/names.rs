//! Strings kept once, each with a number: the ends of relays.
//!
//! A relay is a pair of ends (`host[ip] sender`, `host[ip] recipient`),
//! and a busy relay has as many distinct pairs as messages. Keeping each
//! end once in one buffer and the pairs as two numbers costs a few bytes
//! per pair beyond the ends themselves, where a pair of strings cost two
//! allocations per pair, and twice again when the report copied them.

use std::hash::{BuildHasher, BuildHasherDefault};

use hashbrown::HashTable;

use super::hash::KeyHasher;

#[derive(Clone, Default)]
pub struct Names {
    /// Every name, one after the other.
    text: String,
    /// Where name `i` starts in `text`; it ends where `i + 1` starts.
    starts: Vec<usize>,
    /// The numbers, found by the hash of their name.
    index: HashTable<u32>,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..self.len() as u32).map(|i| self.get(i)))
            .finish()
    }
}

fn hash(s: &str) -> u64 {
    BuildHasherDefault::<KeyHasher>::default().hash_one(s.as_bytes())
}

impl Names {
    fn len(&self) -> usize {
        self.starts.len()
    }

    /// The name numbered `id`; empty for a number never given.
    pub fn get(&self, id: u32) -> &str {
        let i = id as usize;
        let Some(&start) = self.starts.get(i) else {
            return "";
        };
        let end = self.starts.get(i + 1).copied().unwrap_or(self.text.len());
        &self.text[start..end]
    }

    /// The number of `name`, given it now if it has none.
    pub fn id(&mut self, name: &str) -> u32 {
        let h = hash(name);
        let (text, starts) = (&self.text, &self.starts);
        let get = |id: u32| {
            let i = id as usize;
            let end = starts.get(i + 1).copied().unwrap_or(text.len());
            &text[starts[i]..end]
        };
        if let Some(&id) = self.index.find(h, |&id| get(id) == name) {
            return id;
        }
        // More than 4 billion distinct ends would not fit in memory first.
        let id = u32::try_from(self.starts.len()).unwrap_or(u32::MAX);
        self.starts.push(self.text.len());
        self.text.push_str(name);
        let (text, starts) = (&self.text, &self.starts);
        self.index.insert_unique(h, id, |&id| {
            let i = id as usize;
            let end = starts.get(i + 1).copied().unwrap_or(text.len());
            hash(&text[starts[i]..end])
        });
        id
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
