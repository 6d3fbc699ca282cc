//! The report: what `--json` writes and `--merge` reads back, and what the
//! text and HTML forms are drawn from. Every number is exact (bytes, not
//! eximstats's rounded volumes); the text form rounds as eximstats does.
//!
//! Merging reports of several hosts adds them up. Two kinds of figure
//! cannot be added exactly, as with eximstats's `-merge`: the number of
//! distinct hosts (a host seen by two servers counts twice), and the
//! league tables, which hold only their top rows (a key outside one
//! host's top 50 is missing from the sum).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::relays::Relays;

/// How many rows a league table keeps (eximstats's default `-t50`).
pub const TOP: usize = 50;

/// eximstats's default queue-time buckets, in seconds: a message counts in
/// the first bucket its time is under; the last column is "over 1d".
pub const QUEUE_LIMITS: [u64; 9] = [60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `sluice stats`.
    pub generator: String,
    /// The zone the times are shown in (`UTC`, `+0100`, `local (+0100)`).
    pub zone: String,
    /// The first and last line counted, in that zone.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Lines read (counted or not).
    pub lines: u64,
    pub received: Received,
    pub delivered: Delivered,
    pub delayed: Delayed,
    pub failed: Failed,
    pub rejected: Rejects,
    pub temporarily_rejected: Rejects,
    pub transports: Vec<Transport>,
    pub per_hour: PerHour,
    pub per_day: Vec<Day>,
    pub queue_time: QueueTimes,
    pub relayed: Relays,
    pub top: Top,
    pub rejection_reasons: Vec<Count>,
    pub temporary_rejection_reasons: Vec<Count>,
    pub rejected_hosts: Vec<Count>,
    pub temporarily_rejected_hosts: Vec<Count>,
    /// Each distinct `**` text and how often it was logged.
    pub errors: Vec<Count>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Received {
    pub messages: u64,
    pub bytes: u64,
    /// Distinct sending hosts (`local` for local submissions counts as one).
    pub hosts: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    /// `=>` lines: a message's first address of a delivery.
    pub messages: u64,
    /// The message's size, once per `=>`.
    pub bytes: u64,
    /// `=>` and `->` lines.
    pub addresses: u64,
    pub hosts: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delayed {
    /// Messages received here with at least one `==`.
    pub messages: u64,
    /// `==` lines.
    pub addresses: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    /// Messages received here with at least one `**`.
    pub messages: u64,
    /// `**` lines.
    pub addresses: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rejects {
    pub messages: u64,
    /// Distinct rejected hosts (`[ip]`, or `local`).
    pub hosts: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transport {
    pub name: String,
    pub messages: u64,
    pub bytes: u64,
}

/// Counts per hour of the day (0–23, in the report's zone), all days
/// together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerHour {
    pub received: Vec<u64>,
    pub delivered: Vec<u64>,
    pub deferred: Vec<u64>,
    pub failed: Vec<u64>,
}

impl Default for PerHour {
    fn default() -> PerHour {
        PerHour {
            received: vec![0; 24],
            delivered: vec![0; 24],
            deferred: vec![0; 24],
            failed: vec![0; 24],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// `YYYY-MM-DD` in the report's zone.
    pub date: String,
    pub received: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub failed: u64,
}

/// Time from arrival to `Completed`, for completed messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueTimes {
    /// Upper bounds of the buckets, seconds.
    pub limits: Vec<u64>,
    /// One count per limit, then the count over the last.
    pub all: Vec<u64>,
    /// The same for messages with at least one remote delivery.
    pub remote: Vec<u64>,
}

impl Default for QueueTimes {
    fn default() -> QueueTimes {
        QueueTimes {
            limits: QUEUE_LIMITS.to_vec(),
            all: vec![0; QUEUE_LIMITS.len() + 1],
            remote: vec![0; QUEUE_LIMITS.len() + 1],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub key: String,
    pub messages: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub key: String,
    pub messages: u64,
    /// Destination tables only: `=>` and `->` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<u64>,
    pub bytes: u64,
}

/// A league table: the top rows by message count and by volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct League {
    /// How many keys there were in all.
    pub keys: u64,
    pub by_count: Vec<Row>,
    pub by_volume: Vec<Row>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Top {
    /// By the `H=` of arrivals (`local` without one).
    pub sending_hosts: League,
    /// By the sender's domain (`<>` for bounces).
    pub sending_domains: League,
    pub sending_addresses: League,
    /// By `U=` of local arrivals.
    pub local_senders: League,
    /// By the `H=` of deliveries (`local` without one).
    pub host_destinations: League,
    /// By the recipient's domain.
    pub domain_destinations: League,
    pub address_destinations: League,
    /// Local deliveries by the logged local part (or file or pipe).
    pub local_destinations: League,
}

/// One key's figures while counting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tallied {
    pub messages: u64,
    pub addresses: u64,
    pub bytes: u64,
}

impl Tallied {
    pub fn add(&mut self, other: Tallied) {
        self.messages += other.messages;
        self.addresses += other.addresses;
        self.bytes += other.bytes;
    }
}

impl League {
    /// The top rows of `table`: by count (then volume, then key), and by
    /// volume (then count, then key), as eximstats orders them. Keys with
    /// no message (only `->` lines) are not listed, as in eximstats.
    pub fn of<'a>(table: impl Iterator<Item = (&'a str, Tallied)>, with_addresses: bool) -> League {
        let by_count = |a: &(&str, Tallied), b: &(&str, Tallied)| {
            b.1.messages
                .cmp(&a.1.messages)
                .then(b.1.bytes.cmp(&a.1.bytes))
                .then(a.0.cmp(b.0))
        };
        let by_volume = |a: &(&str, Tallied), b: &(&str, Tallied)| {
            b.1.bytes
                .cmp(&a.1.bytes)
                .then(b.1.messages.cmp(&a.1.messages))
                .then(a.0.cmp(b.0))
        };
        // The best rows so far in each order, never the whole table: a
        // log can have millions of addresses.
        let (mut count_rows, mut volume_rows) = (Vec::new(), Vec::new());
        let mut keys = 0u64;
        for row in table.filter(|(_, t)| t.messages > 0) {
            keys += 1;
            keep_best(&mut count_rows, row, by_count);
            keep_best(&mut volume_rows, row, by_volume);
        }
        let row = |(k, t): &(&str, Tallied)| Row {
            key: k.to_string(),
            messages: t.messages,
            addresses: with_addresses.then_some(t.addresses),
            bytes: t.bytes,
        };
        League {
            keys,
            by_count: first(&mut count_rows, by_count).iter().map(row).collect(),
            by_volume: first(&mut volume_rows, by_volume).iter().map(row).collect(),
        }
    }

    fn of_rows(rows: Vec<Row>) -> League {
        let with_addresses = rows.iter().any(|r| r.addresses.is_some());
        let table = rows.iter().map(|r| {
            (
                r.key.as_str(),
                Tallied {
                    messages: r.messages,
                    addresses: r.addresses.unwrap_or(0),
                    bytes: r.bytes,
                },
            )
        });
        League::of(table, with_addresses)
    }

    /// The sum of two leagues: the union of their rows, added by key.
    fn merge(&self, other: &League) -> League {
        // A row is in both lists of a league when it is near the top of
        // both: count it once; rows of the two leagues with one key add up.
        let mut added: BTreeMap<String, Row> = BTreeMap::new();
        for l in [self, other] {
            let mut seen = std::collections::BTreeSet::new();
            for row in l.by_count.iter().chain(&l.by_volume) {
                if !seen.insert(&row.key) {
                    continue;
                }
                let e = added.entry(row.key.clone()).or_insert_with(|| Row {
                    key: row.key.clone(),
                    messages: 0,
                    addresses: row.addresses.map(|_| 0),
                    bytes: 0,
                });
                e.messages += row.messages;
                e.bytes += row.bytes;
                if let (Some(a), Some(b)) = (e.addresses.as_mut(), row.addresses) {
                    *a += b;
                }
            }
        }
        let mut l = League::of_rows(added.into_values().collect());
        l.keys = self.keys + other.keys;
        l
    }
}

/// Adds `row` to `rows`, which are cut back to the best [`TOP`] in the
/// order `cmp` whenever they reach four times that.
fn keep_best<T>(rows: &mut Vec<T>, row: T, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    rows.push(row);
    if rows.len() >= 4 * TOP {
        rows.select_nth_unstable_by(TOP - 1, &cmp);
        rows.truncate(TOP);
    }
}

/// The first [`TOP`] of `rows` in the order `cmp`, sorted: a selection
/// then a sort of the few, not a sort of every key (a log can have
/// millions of addresses).
fn first<T>(rows: &mut [T], cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> &[T] {
    if rows.len() > TOP {
        rows.select_nth_unstable_by(TOP - 1, &cmp);
    }
    let n = rows.len().min(TOP);
    rows[..n].sort_by(&cmp);
    &rows[..n]
}

/// The top [`TOP`] counts, most first, then by key.
pub fn top_counts<'a>(counts: impl Iterator<Item = (&'a str, u64)>) -> Vec<Count> {
    let mut v: Vec<Count> = counts
        .map(|(k, n)| Count {
            key: k.to_string(),
            messages: n,
        })
        .collect();
    let n = first(&mut v, |a, b| {
        b.messages.cmp(&a.messages).then(a.key.cmp(&b.key))
    })
    .len();
    v.truncate(n);
    v
}

/// Counts by key, sorted by key (for tables listed whole).
/// Owned keys are moved in, not copied (every error text of a log).
pub fn all_counts<K: Into<String>>(counts: impl Iterator<Item = (K, u64)>) -> Vec<Count> {
    let mut v: Vec<Count> = counts
        .map(|(k, n)| Count {
            key: k.into(),
            messages: n,
        })
        .collect();
    v.sort_by(|a, b| a.key.cmp(&b.key));
    v
}

fn add_counts(a: &[Count], b: &[Count], whole: bool) -> Vec<Count> {
    let mut m: BTreeMap<&str, u64> = BTreeMap::new();
    for c in a.iter().chain(b) {
        *m.entry(&c.key).or_default() += c.messages;
    }
    if whole {
        all_counts(m.into_iter())
    } else {
        top_counts(m.into_iter())
    }
}

fn add_vec(a: &mut Vec<u64>, b: &[u64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

impl Report {
    /// The sum of two reports (of two hosts, or two periods).
    pub fn merge(&self, other: &Report) -> Report {
        let mut r = self.clone();
        r.from = match (&self.from, &other.from) {
            (Some(a), Some(b)) => Some(a.min(b).clone()),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        r.to = match (&self.to, &other.to) {
            (Some(a), Some(b)) => Some(a.max(b).clone()),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        if r.zone != other.zone {
            r.zone = format!("{} and {}", self.zone, other.zone);
        }
        r.lines += other.lines;
        r.received.messages += other.received.messages;
        r.received.bytes += other.received.bytes;
        r.received.hosts += other.received.hosts;
        r.delivered.messages += other.delivered.messages;
        r.delivered.bytes += other.delivered.bytes;
        r.delivered.addresses += other.delivered.addresses;
        r.delivered.hosts += other.delivered.hosts;
        r.delayed.messages += other.delayed.messages;
        r.delayed.addresses += other.delayed.addresses;
        r.failed.messages += other.failed.messages;
        r.failed.addresses += other.failed.addresses;
        r.rejected.messages += other.rejected.messages;
        r.rejected.hosts += other.rejected.hosts;
        r.temporarily_rejected.messages += other.temporarily_rejected.messages;
        r.temporarily_rejected.hosts += other.temporarily_rejected.hosts;

        let mut transports: BTreeMap<String, Transport> = BTreeMap::new();
        for t in self.transports.iter().chain(&other.transports) {
            let e = transports
                .entry(t.name.clone())
                .or_insert_with(|| Transport {
                    name: t.name.clone(),
                    ..Transport::default()
                });
            e.messages += t.messages;
            e.bytes += t.bytes;
        }
        r.transports = transports.into_values().collect();

        add_vec(&mut r.per_hour.received, &other.per_hour.received);
        add_vec(&mut r.per_hour.delivered, &other.per_hour.delivered);
        add_vec(&mut r.per_hour.deferred, &other.per_hour.deferred);
        add_vec(&mut r.per_hour.failed, &other.per_hour.failed);

        let mut days: BTreeMap<String, Day> = BTreeMap::new();
        for d in self.per_day.iter().chain(&other.per_day) {
            let e = days.entry(d.date.clone()).or_insert_with(|| Day {
                date: d.date.clone(),
                ..Day::default()
            });
            e.received += d.received;
            e.delivered += d.delivered;
            e.deferred += d.deferred;
            e.failed += d.failed;
        }
        r.per_day = days.into_values().collect();

        if r.queue_time.limits == other.queue_time.limits {
            add_vec(&mut r.queue_time.all, &other.queue_time.all);
            add_vec(&mut r.queue_time.remote, &other.queue_time.remote);
        }

        r.relayed = self.relayed.and(&other.relayed);

        let t = &mut r.top;
        let o = &other.top;
        t.sending_hosts = self.top.sending_hosts.merge(&o.sending_hosts);
        t.sending_domains = self.top.sending_domains.merge(&o.sending_domains);
        t.sending_addresses = self.top.sending_addresses.merge(&o.sending_addresses);
        t.local_senders = self.top.local_senders.merge(&o.local_senders);
        t.host_destinations = self.top.host_destinations.merge(&o.host_destinations);
        t.domain_destinations = self.top.domain_destinations.merge(&o.domain_destinations);
        t.address_destinations = self.top.address_destinations.merge(&o.address_destinations);
        t.local_destinations = self.top.local_destinations.merge(&o.local_destinations);

        r.rejection_reasons = add_counts(&self.rejection_reasons, &other.rejection_reasons, false);
        r.temporary_rejection_reasons = add_counts(
            &self.temporary_rejection_reasons,
            &other.temporary_rejection_reasons,
            false,
        );
        r.rejected_hosts = add_counts(&self.rejected_hosts, &other.rejected_hosts, false);
        r.temporarily_rejected_hosts = add_counts(
            &self.temporarily_rejected_hosts,
            &other.temporarily_rejected_hosts,
            false,
        );
        r.errors = add_counts(&self.errors, &other.errors, true);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(messages: u64, bytes: u64) -> Tallied {
        Tallied {
            messages,
            addresses: messages,
            bytes,
        }
    }

    #[test]
    fn leagues_order_as_eximstats() {
        let table = [
            ("b", t(2, 10)),
            ("a", t(2, 10)),
            ("c", t(1, 500)),
            ("d", t(2, 20)),
            ("only-more", t(0, 0)),
        ];
        let l = League::of(table.iter().map(|(k, v)| (*k, *v)), false);
        let keys = |rows: &[Row]| rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&l.by_count), ["d", "a", "b", "c"]);
        assert_eq!(keys(&l.by_volume), ["c", "d", "a", "b"]);
        assert_eq!(l.keys, 4);
    }

    #[test]
    fn merged_reports_add_up() {
        let mut a = Report::default();
        a.received.messages = 3;
        a.per_hour.received[5] = 3;
        a.top.sending_hosts = League::of([("h", t(3, 30))].into_iter(), false);
        a.errors = vec![Count {
            key: "x".into(),
            messages: 1,
        }];
        let mut b = Report::default();
        b.received.messages = 2;
        b.per_hour.received[5] = 2;
        b.top.sending_hosts = League::of([("h", t(2, 20)), ("g", t(1, 1))].into_iter(), false);
        b.errors = a.errors.clone();
        let m = a.merge(&b);
        assert_eq!(m.received.messages, 5);
        assert_eq!(m.per_hour.received[5], 5);
        assert_eq!(m.top.sending_hosts.by_count[0].messages, 5);
        assert_eq!(m.top.sending_hosts.by_count.len(), 2);
        assert_eq!(m.errors[0].messages, 2);
    }
}
