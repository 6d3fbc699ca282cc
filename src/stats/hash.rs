//! A fast hash for the report's tables.
//!
//! Most of the work of counting a log is looking keys up (a host, an
//! address, a message ID per line); the standard library's SipHash costs
//! more than the rest of a lookup for keys this short. This is the
//! multiply-and-rotate hash of Firefox and rustc (FxHash). It gives no
//! protection against keys chosen to collide: someone who can put many
//! such addresses into a log can slow a report down, not change it, and
//! the report is run by an administrator on logs at rest.

use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // The table takes its bucket from the low bits, which the
        // multiplication leaves depending on the low bits of the input
        // only: mix the high bits in (MurmurHash3's finalizer).
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A `HashMap` with [`KeyHasher`].
pub type Map<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// How long a key can be and still be kept in the table's own entry.
const INLINE: usize = 30;

/// A table key. Most keys (host names, addresses, domains) are short:
/// those are kept in the entry itself, so that a lookup reads one place in
/// memory, not the entry and then the key's own allocation. Tables are
/// looked up by the key's bytes (`map.get(key.as_bytes())`).
#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Key {
    pub fn new(s: &str) -> Key {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Key::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(s.into())
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(s) => s.as_bytes(),
        }
    }

    /// The key as text (it was made from text).
    pub fn as_str(&self) -> &str {
        match self {
            Key::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or(""),
            Key::Heap(s) => s,
        }
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

// The same hash as the bytes it is looked up by (Borrow's contract).
impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_find_what_they_hold() {
        let mut m: Map<Box<str>, u32> = Map::default();
        for i in 0..10_000u32 {
            m.insert(format!("key{i}@example.org").into(), i);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get("key777@example.org"), Some(&777));
        assert_eq!(m.get("key777@example.or"), None);
    }

    #[test]
    fn short_and_long_keys_are_found_by_their_bytes() {
        let mut m: Map<Key, u32> = Map::default();
        let long = "a-rather-long-address-of-more-than-thirty@example.org";
        for k in ["", "a", "b@example.org", long] {
            m.insert(Key::new(k), k.len() as u32);
        }
        for k in ["", "a", "b@example.org", long] {
            assert_eq!(m.get(k.as_bytes()), Some(&(k.len() as u32)), "{k}");
            assert_eq!(Key::new(k).as_str(), k);
        }
        assert_eq!(m.get(&b"b@example.or"[..]), None);
    }
}
