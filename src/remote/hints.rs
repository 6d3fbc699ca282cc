//! Retry hints per remote host: when a host failed (refused, timed out,
//! 421, a failed handshake), the next time it is worth trying, and why it
//! failed, as Exim's retry database keeps them (`sluice queue hints` is its
//! `exinext`).
//!
//! The file is a cache, not a record: it is written whole (temporary file
//! and rename) and never synced, and carries a checksum of its body. A torn,
//! stale or unreadable file is ignored, and losing it only means a host is
//! tried again earlier than it would have been. Nothing a sender was told
//! depends on it.
//!
//! ```text
//! sluice-hints 1 <sha256 of the lines below, hex>
//! <host>\t<address>\t<first failure>\t<last failure>\t<next try>\t<error>
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::retry::Schedule;

const MAGIC: &str = "sluice-hints 1 ";

/// What is known of one host's failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostHint {
    /// The host's name (an address literal for IP routes).
    pub host: String,
    pub address: String,
    /// Unix seconds.
    pub first_failure: u64,
    pub last_failure: u64,
    pub next_try: u64,
    /// How many failures since the first (for the retry rule's growth).
    pub failures: u32,
    pub error: String,
}

/// The hints of every host, keyed by `host [address]`.
#[derive(Debug, Default)]
pub struct Hints {
    path: Option<PathBuf>,
    hosts: HashMap<String, HostHint>,
}

fn key(host: &str, address: &str) -> String {
    format!("{host} [{address}]")
}

impl Hints {
    /// Reads the hints at `path`; anything wrong with the file gives an
    /// empty set (and the file is rewritten at the next change).
    pub fn load(path: &Path) -> Hints {
        let hosts = std::fs::read(path)
            .ok()
            .and_then(|data| parse(&data))
            .unwrap_or_default();
        Hints {
            path: Some(path.to_path_buf()),
            hosts: hosts
                .into_iter()
                .map(|h| (key(&h.host, &h.address), h))
                .collect(),
        }
    }

    /// Hints kept in memory only (tests, `-bt`).
    pub fn in_memory() -> Hints {
        Hints::default()
    }

    /// Whether `host [address]` is in its retry wait at `now`.
    pub fn waiting(&self, host: &str, address: &str, now: u64) -> Option<&HostHint> {
        self.hosts
            .get(&key(host, address))
            .filter(|h| h.next_try > now)
    }

    /// Records a failure of `host [address]` at `now`; its next try comes
    /// from `schedule`, counted from its first failure. Past the rule's
    /// last cutoff the host is tried at each attempt (its recipients' own
    /// retry times decide when they give up).
    pub fn failed(
        &mut self,
        host: &str,
        address: &str,
        now: u64,
        error: &str,
        schedule: &Schedule,
    ) {
        let k = key(host, address);
        let h = self.hosts.entry(k).or_insert_with(|| HostHint {
            host: host.to_string(),
            address: address.to_string(),
            first_failure: now,
            last_failure: now,
            next_try: now,
            failures: 0,
            error: String::new(),
        });
        h.last_failure = now;
        h.failures = h.failures.saturating_add(1);
        h.next_try = schedule
            .next(h.first_failure, now, h.failures.saturating_sub(1))
            .unwrap_or(now);
        h.error = error.replace(['\t', '\n', '\r'], " ");
        self.save();
    }

    /// Forgets the failures of a host that took a message.
    pub fn succeeded(&mut self, host: &str, address: &str) {
        if self.hosts.remove(&key(host, address)).is_some() {
            self.save();
        }
    }

    /// Every hint, sorted by host.
    pub fn all(&self) -> Vec<&HostHint> {
        let mut v: Vec<_> = self.hosts.values().collect();
        v.sort_by(|a, b| (&a.host, &a.address).cmp(&(&b.host, &b.address)));
        v
    }

    /// Writes the file whole, unsynced (see the module docs); a failure to
    /// write is not an error worth more than a lost cache.
    fn save(&self) {
        let Some(path) = &self.path else { return };
        let mut body = String::new();
        for h in self.all() {
            body.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                h.host, h.address, h.first_failure, h.last_failure, h.next_try, h.error
            ));
        }
        let sum = hex(&Sha256::digest(body.as_bytes()));
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = (|| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(format!("{MAGIC}{sum}\n{body}").as_bytes())?;
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hosts in a hints file, or None when it is not one whole and intact.
fn parse(data: &[u8]) -> Option<Vec<HostHint>> {
    let text = std::str::from_utf8(data).ok()?;
    let (first, body) = text.split_once('\n')?;
    let sum = first.strip_prefix(MAGIC)?;
    if hex(&Sha256::digest(body.as_bytes())) != sum {
        return None;
    }
    body.lines()
        .map(|line| {
            let f: Vec<&str> = line.splitn(6, '\t').collect();
            let [host, address, first, last, next, error] = f.as_slice() else {
                return None;
            };
            Some(HostHint {
                host: host.to_string(),
                address: address.to_string(),
                first_failure: first.parse().ok()?,
                last_failure: last.parse().ok()?,
                next_try: next.parse().ok()?,
                failures: 1,
                error: error.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule::parse("F,2h,15m; G,16h,1h,1.5; F,4d,6h").unwrap()
    }

    #[test]
    fn a_failure_waits_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db/hints");
        let mut h = Hints::load(&path);
        h.failed(
            "mx1.example",
            "127.0.0.2",
            1000,
            "Connection refused",
            &schedule(),
        );
        assert!(h.waiting("mx1.example", "127.0.0.2", 1001).is_some());
        assert!(h.waiting("mx1.example", "127.0.0.3", 1001).is_none());
        let again = Hints::load(&path);
        let w = again.waiting("mx1.example", "127.0.0.2", 1001).unwrap();
        assert_eq!(w.error, "Connection refused");
        assert_eq!(w.next_try, 1000 + 15 * 60);
        let mut again = again;
        again.succeeded("mx1.example", "127.0.0.2");
        assert!(Hints::load(&path).all().is_empty());
    }

    #[test]
    fn a_torn_or_altered_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hints");
        let mut h = Hints::load(&path);
        h.failed("a", "127.0.0.2", 1000, "x", &schedule());
        h.failed("b", "127.0.0.3", 1000, "y", &schedule());
        let data = std::fs::read(&path).unwrap();
        for cut in [0, 5, data.len() / 2, data.len() - 1] {
            std::fs::write(&path, &data[..cut]).unwrap();
            assert!(Hints::load(&path).all().is_empty(), "cut at {cut}");
        }
        let mut altered = data.clone();
        let last = altered.len() - 2;
        altered[last] ^= 1;
        std::fs::write(&path, &altered).unwrap();
        assert!(Hints::load(&path).all().is_empty());
        std::fs::write(&path, &data).unwrap();
        assert_eq!(Hints::load(&path).all().len(), 2);
    }
}
