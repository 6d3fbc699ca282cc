//! What a run measured: counts, the times from the final dot to the `250`,
//! errors grouped by reply code, and the report printed from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// The value at `per_mille`/1000 of `sorted` by the nearest-rank method:
/// the smallest value with at least that share of the values at or below
/// it (rank ⌈p·n⌉, 1-based). Always one of the measured values, never an
/// interpolation. Integer per-mille so that p99 is exactly 990/1000.
pub fn nearest_rank<T: Copy>(sorted: &[T], per_mille: u32) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(per_mille.min(1000)) * n).div_ceil(1000).max(1);
    // rank ≤ n, so the index fits.
    Some(sorted[(rank - 1) as usize])
}

/// One worker's (or the whole run's) tally.
#[derive(Debug, Default)]
pub struct Tally {
    /// Time from the final dot to the `250`, one per accepted message.
    pub latencies: Vec<Duration>,
    /// Failed messages by error kind (a reply code or a transport failure).
    pub errors: BTreeMap<String, ErrorCount>,
}

/// How often one kind of error happened, and one instance for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    pub count: u64,
    pub example: String,
}

impl Tally {
    pub fn accepted(&mut self, latency: Duration) {
        self.latencies.push(latency);
    }

    pub fn failed(&mut self, kind: String, example: impl FnOnce() -> String) {
        self.errors
            .entry(kind)
            .and_modify(|e| e.count += 1)
            .or_insert_with(|| ErrorCount {
                count: 1,
                example: example(),
            });
    }

    pub fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (kind, e) in other.errors {
            self.errors
                .entry(kind)
                .and_modify(|mine| mine.count += e.count)
                .or_insert(e);
        }
    }

    pub fn failures(&self) -> u64 {
        self.errors.values().map(|e| e.count).sum()
    }
}

/// Milliseconds from the final dot to the `250`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// The run's summary, as printed (table) or serialized (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub server: String,
    /// "none", "starttls" or "tls" (implicit).
    pub tls: &'static str,
    pub connections: usize,
    /// Several messages per connection (true) or one connection each.
    pub reuse: bool,
    pub size: usize,
    /// Messages attempted.
    pub messages: u64,
    /// Messages answered with `250` after the final dot.
    pub accepted: u64,
    pub failed: u64,
    /// Wall time from the first connection to the last reply.
    pub seconds: f64,
    /// Accepted messages per second of wall time.
    pub messages_per_second: f64,
    /// Accepted message bytes (10^6) per second of wall time.
    pub megabytes_per_second: f64,
    /// Absent when no message was accepted.
    pub latency_ms: Option<Latency>,
    pub errors: BTreeMap<String, ErrorCount>,
}

/// The parts of a [`Report`] that describe the run rather than measure it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub server: String,
    pub tls: &'static str,
    pub connections: usize,
    pub reuse: bool,
    pub size: usize,
    pub messages: u64,
}

impl Report {
    pub fn new(info: RunInfo, mut tally: Tally, elapsed: Duration) -> Report {
        tally.latencies.sort_unstable();
        let ms = |p: u32| nearest_rank(&tally.latencies, p).map(|d| d.as_secs_f64() * 1e3);
        let latency_ms = match (ms(500), ms(900), ms(990), ms(1000)) {
            (Some(p50), Some(p90), Some(p99), Some(max)) => Some(Latency { p50, p90, p99, max }),
            _ => None,
        };
        let accepted = tally.latencies.len() as u64;
        let seconds = elapsed.as_secs_f64();
        let per_second = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
        Report {
            server: info.server,
            tls: info.tls,
            connections: info.connections,
            reuse: info.reuse,
            size: info.size,
            messages: info.messages,
            accepted,
            failed: tally.failures(),
            seconds,
            messages_per_second: per_second(accepted as f64),
            megabytes_per_second: per_second(accepted as f64 * info.size as f64 / 1e6),
            latency_ms,
            errors: tally.errors,
        }
    }

    /// Every attempted message was accepted.
    pub fn all_accepted(&self) -> bool {
        self.failed == 0 && self.accepted == self.messages
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            s,
            "sluice-load: {} messages of {} bytes to {} over {} connection{} ({}, tls: {})",
            self.messages,
            self.size,
            self.server,
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            if self.reuse {
                "many messages per connection"
            } else {
                "one message per connection"
            },
            self.tls,
        );
        let _ = writeln!(s, "  accepted      {:>10}", self.accepted);
        let _ = writeln!(s, "  failed        {:>10}", self.failed);
        let _ = writeln!(s, "  elapsed       {:>10.3} s", self.seconds);
        let _ = writeln!(s, "  messages/s    {:>10.1}", self.messages_per_second);
        let _ = writeln!(s, "  MB/s          {:>10.2}", self.megabytes_per_second);
        match &self.latency_ms {
            Some(l) => {
                let _ = writeln!(s, "  final dot to 250 (ms):");
                let _ = writeln!(s, "    {:>9} {:>9} {:>9} {:>9}", "p50", "p90", "p99", "max");
                let _ = writeln!(
                    s,
                    "    {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                    l.p50, l.p90, l.p99, l.max
                );
            }
            None => {
                let _ = writeln!(s, "  final dot to 250: no message accepted");
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "  errors:");
            for (kind, e) in &self.errors {
                let _ = writeln!(s, "    {kind:<10} {:>8}  e.g. {}", e.count, e.example);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_table() {
        let ten: Vec<u32> = (1..=10).collect();
        let hundred: Vec<u32> = (1..=100).collect();
        let thousand: Vec<u32> = (1..=1000).collect();
        let cases: &[(&[u32], u32, Option<u32>)] = &[
            (&[], 500, None),
            (&[7], 0, Some(7)),
            (&[7], 500, Some(7)),
            (&[7], 1000, Some(7)),
            (&[1, 2], 500, Some(1)),
            (&[1, 2], 501, Some(2)),
            (&ten, 500, Some(5)),
            (&ten, 900, Some(9)),
            (&ten, 990, Some(10)),
            (&ten, 1000, Some(10)),
            (&ten, 0, Some(1)),
            (&hundred, 500, Some(50)),
            (&hundred, 900, Some(90)),
            (&hundred, 990, Some(99)),
            (&hundred, 991, Some(100)),
            (&thousand, 990, Some(990)),
            (&thousand, 999, Some(999)),
            // Out of range means the maximum.
            (&ten, 5000, Some(10)),
        ];
        for &(v, p, want) in cases {
            assert_eq!(nearest_rank(v, p), want, "n={} p={p}", v.len());
        }
        // 4000 values (the benchmark's run): p99 is the 3960th.
        let v: Vec<u32> = (1..=4000).collect();
        assert_eq!(nearest_rank(&v, 990), Some(3960));
    }

    fn info(messages: u64) -> RunInfo {
        RunInfo {
            server: "127.0.0.1:25".into(),
            tls: "none",
            connections: 2,
            reuse: true,
            size: 1000,
            messages,
        }
    }

    #[test]
    fn report_from_tally() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        for ms in [4, 1, 3] {
            a.accepted(Duration::from_millis(ms));
        }
        b.accepted(Duration::from_millis(2));
        a.failed("451".into(), || "451 4.3.0 try later".into());
        b.failed("451".into(), || "451 second".into());
        b.failed("io".into(), || "DATA: connection reset".into());
        a.merge(b);
        let r = Report::new(info(7), a, Duration::from_secs(2));
        assert_eq!((r.accepted, r.failed), (4, 3));
        assert!(!r.all_accepted());
        assert_eq!(r.messages_per_second, 2.0);
        assert_eq!(r.megabytes_per_second, 0.002);
        let l = r.latency_ms.expect("latencies");
        assert_eq!((l.p50, l.p90, l.p99, l.max), (2.0, 4.0, 4.0, 4.0));
        assert_eq!(
            r.errors["451"],
            ErrorCount {
                count: 2,
                example: "451 4.3.0 try later".into()
            }
        );
        assert_eq!(r.errors["io"].count, 1);
        let table = r.table();
        assert!(table.contains("451"), "{table}");
        assert!(table.contains("accepted               4"), "{table}");
    }

    #[test]
    fn nothing_accepted() {
        let mut t = Tally::default();
        t.failed("connect".into(), || "connection refused".into());
        let r = Report::new(info(1), t, Duration::ZERO);
        assert_eq!(r.latency_ms, None);
        assert_eq!(r.messages_per_second, 0.0);
        assert!(!r.all_accepted());
        let json = serde_json::to_value(&r).expect("serializes");
        assert_eq!(json["latency_ms"], serde_json::Value::Null);
        assert_eq!(json["errors"]["connect"]["count"], 1);
        assert!(r.table().contains("no message accepted"));
    }

    #[test]
    fn all_accepted_needs_every_message() {
        let mut t = Tally::default();
        t.accepted(Duration::from_millis(1));
        assert!(Report::new(info(1), t, Duration::from_secs(1)).all_accepted());
        let mut t = Tally::default();
        t.accepted(Duration::from_millis(1));
        // A message neither accepted nor counted as failed is still no success.
        assert!(!Report::new(info(2), t, Duration::from_secs(1)).all_accepted());
    }
}
