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
}
