//! A league table while counting: figures by key, each key kept once.
//!
//! The keys are [`Names`] (one buffer, found by number); the figures are
//! a vector indexed by the same number. A million recipient addresses
//! cost about their text plus 40 bytes each.

use super::names::{self, Names};
use super::report::Tallied;

#[derive(Debug, Clone, Default)]
pub struct Table {
    keys: Names,
    figures: Vec<Tallied>,
}

impl Table {
    /// Adds `t` to the figures of `key`, whose [`names::hash`] is `h`.
    pub fn add_hashed(&mut self, h: u64, key: &str, t: Tallied) {
        let id = self.keys.id_hashed(h, key) as usize;
        if id == self.figures.len() {
            self.figures.push(Tallied::default());
        }
        if let Some(f) = self.figures.get_mut(id) {
            f.add(t);
        }
    }

    pub fn add(&mut self, key: &str, t: Tallied) {
        self.add_hashed(names::hash(key), key, t);
    }

    /// Adds every key of `other`.
    pub fn add_table(&mut self, other: &Table) {
        for (k, t) in other.iter() {
            self.add(k, t);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.figures.is_empty()
    }

    /// Every key with its figures, in the order they were first added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Tallied)> {
        self.keys
            .iter()
            .zip(&self.figures)
            .map(|((_, k), t)| (k, *t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_add_up_by_key() {
        let mut t = Table::default();
        for i in 0..30_000u64 {
            let j = i % 10_000;
            let key = format!("r{j}@dest{}.example", j % 7);
            t.add(
                &key,
                Tallied {
                    messages: 1,
                    addresses: 2,
                    bytes: i,
                },
            );
        }
        assert_eq!(t.iter().count(), 10_000);
        let all: Vec<_> = t.iter().collect();
        let (k, f) = all[3];
        assert_eq!(k, "r3@dest3.example");
        assert_eq!(f.messages, 3);
        assert_eq!(f.addresses, 6);
        assert_eq!(f.bytes, 3 + 10_003 + 20_003);
        let mut u = Table::default();
        u.add_table(&t);
        u.add_table(&t);
        assert_eq!(u.iter().count(), 10_000);
        assert_eq!(u.iter().nth(3).unwrap().1.messages, 6);
    }
}
