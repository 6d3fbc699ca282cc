//! The daemon's counters, in Prometheus's exposition format.
//!
//! Fed by the log events the daemon writes (arrivals, deliveries,
//! rejections: one observer on [`crate::log::Logs`], so a counter and the
//! line it counts cannot disagree), by the committer (batch sizes and
//! flush times) and by the sessions (open sessions by state, TLS). The
//! queue gauges are set at each scrape by the caller. Only what this
//! process does is counted: a `sluice submit` that delivers through its
//! own queue run is not seen (README, "Metrics").
//!
//! The format is written by `prometheus-client`, the Prometheus
//! project's own crate, rather than by hand.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::log::event::DeliveryFlag;
use crate::log::{Event, Kind, Rejected, Stage, Which};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    transport: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// What a session is doing, for `sluice_smtp_sessions{state}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Between transactions (greeting, EHLO, after a message).
    Command,
    /// After MAIL, before the message data.
    Transaction,
    /// Receiving the message (DATA or BDAT) or waiting for its verdict.
    Data,
}

impl SessionState {
    const ALL: [SessionState; 3] = [
        SessionState::Command,
        SessionState::Transaction,
        SessionState::Data,
    ];

    fn label(self) -> &'static str {
        match self {
            SessionState::Command => "command",
            SessionState::Transaction => "transaction",
            SessionState::Data => "data",
        }
    }
}

/// The rejection reasons: a fixed list, so that no client can make a new
/// time series by choosing its words.
pub const REASONS: [&str; 9] = [
    "relay",
    "unknown_user",
    "quota",
    "size",
    "syntax",
    "rate",
    "policy",
    "tls",
    "other",
];

/// The five rates of the status page's last hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub received: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub failed: u64,
    pub rejected: u64,
}

/// Counts per minute of the last hour, in a ring.
#[derive(Debug)]
struct Recent {
    /// (minute since the epoch, counts of that minute).
    slots: [(i64, Rates); 60],
}

impl Recent {
    fn slot(&mut self, minute: i64) -> &mut Rates {
        let i = minute.rem_euclid(60) as usize;
        if self.slots[i].0 != minute {
            self.slots[i] = (minute, Rates::default());
        }
        &mut self.slots[i].1
    }

    fn last_hour(&self, minute: i64) -> Rates {
        let mut sum = Rates::default();
        for (m, r) in &self.slots {
            if *m > minute - 60 && *m <= minute {
                sum.received += r.received;
                sum.delivered += r.delivered;
                sum.deferred += r.deferred;
                sum.failed += r.failed;
                sum.rejected += r.rejected;
            }
        }
        sum
    }
}

/// Every metric of the daemon.
pub struct Metrics {
    registry: Registry,
    received: Family<ProtocolLabel, Counter>,
    bytes_received: Counter,
    deliveries: Family<DeliveryLabels, Counter>,
    rejections: Family<ReasonLabel, Counter>,
    queue_messages: Gauge,
    queue_frozen: Gauge,
    sessions: [Gauge; 3],
    tls_sessions: Counter,
    batch_messages: Histogram,
    flush_seconds: Histogram,
    recent: Mutex<Recent>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sluice");
        let received = Family::<ProtocolLabel, Counter>::default();
        registry.register(
            "messages_received",
            "Messages accepted, by protocol (P= of the arrival line)",
            received.clone(),
        );
        let bytes_received = Counter::default();
        registry.register(
            "bytes_received",
            "Bytes of the messages accepted (S= of the arrival lines)",
            bytes_received.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Delivery attempts per recipient, by transport and result (delivered, deferred, failed)",
            deliveries.clone(),
        );
        let rejections = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "rejections",
            "Refusals written to the reject log, by reason",
            rejections.clone(),
        );
        // Every reason and state from the start, at 0: a rate over a
        // series that appears only with its first event misses that event.
        for reason in REASONS {
            let _ = rejections.get_or_create(&ReasonLabel { reason });
        }
        let queue_messages = Gauge::default();
        registry.register(
            "queue_messages",
            "Messages on the queue",
            queue_messages.clone(),
        );
        let queue_frozen = Gauge::default();
        registry.register(
            "queue_frozen_messages",
            "Frozen messages on the queue",
            queue_frozen.clone(),
        );
        let by_state = Family::<StateLabel, Gauge>::default();
        registry.register(
            "smtp_sessions",
            "Open SMTP and LMTP sessions, by state",
            by_state.clone(),
        );
        let sessions = SessionState::ALL.map(|s| {
            by_state
                .get_or_create(&StateLabel { state: s.label() })
                .clone()
        });
        let tls_sessions = Counter::default();
        registry.register(
            "tls_sessions",
            "TLS handshakes completed (STARTTLS and implicit TLS)",
            tls_sessions.clone(),
        );
        let batch_messages = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]);
        registry.register(
            "commit_batch_messages",
            "Jobs (messages or deliveries) made durable together by one group commit",
            batch_messages.clone(),
        );
        let flush_seconds = Histogram::new([
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
        ]);
        registry.register(
            "commit_flush_seconds",
            "Time one group commit took (data barrier, renames, directory barrier)",
            flush_seconds.clone(),
        );
        Metrics {
            registry,
            received,
            bytes_received,
            deliveries,
            rejections,
            queue_messages,
            queue_frozen,
            sessions,
            tls_sessions,
            batch_messages,
            flush_seconds,
            recent: Mutex::new(Recent {
                slots: [(i64::MIN, Rates::default()); 60],
            }),
        }
    }

    /// Counts one log event (the observer of [`crate::log::Logs`]).
    pub fn observe(&self, event: &Event, which: Which) {
        // Which of the last hour's rates it adds to, if any; the ring is
        // locked for that alone, and not at all for the other lines.
        let rate: Option<fn(&mut Rates)> = if which == Which::Reject {
            let reason = match &event.kind {
                Kind::Rejected(r) => rejection_reason(r),
                Kind::Other(text) => other_reason(text),
                _ => "other",
            };
            self.rejections.get_or_create(&ReasonLabel { reason }).inc();
            Some(|r| r.rejected += 1)
        } else {
            match &event.kind {
                Kind::Arrival(a) if !a.fake_reject => {
                    let protocol = a.protocol.clone().unwrap_or_else(|| "local".to_string());
                    self.received
                        .get_or_create(&ProtocolLabel { protocol })
                        .inc();
                    self.bytes_received.inc_by(a.size);
                    Some(|r| r.received += 1)
                }
                Kind::Delivered(d) if d.flag != DeliveryFlag::Suppressed => {
                    self.delivery(d.transport.as_deref(), "delivered");
                    Some(|r| r.delivered += 1)
                }
                Kind::Deferred(d) => {
                    self.delivery(d.transport.as_deref(), "deferred");
                    Some(|r| r.deferred += 1)
                }
                Kind::Failed(f) => {
                    self.delivery(f.transport.as_deref(), "failed");
                    Some(|r| r.failed += 1)
                }
                _ => None,
            }
        };
        if let Some(add) = rate {
            let minute = crate::clock::now().div_euclid(60);
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            add(recent.slot(minute));
        }
    }

    fn delivery(&self, transport: Option<&str>, result: &'static str) {
        // A routing failure has no transport.
        let transport = transport.unwrap_or("none").to_string();
        self.deliveries
            .get_or_create(&DeliveryLabels { transport, result })
            .inc();
    }

    /// Counts one group commit (the committer's batch observer).
    pub fn batch(&self, jobs: usize, took: Duration) {
        self.batch_messages.observe(jobs as f64);
        self.flush_seconds.observe(took.as_secs_f64());
    }

    pub fn tls_established(&self) {
        self.tls_sessions.inc();
    }

    /// A new session, counted in `state` until it moves or ends.
    pub fn session(&self) -> SessionGauge<'_> {
        self.sessions[0].inc();
        SessionGauge {
            metrics: self,
            state: SessionState::Command,
        }
    }

    /// What happened in the hour up to now.
    pub fn last_hour(&self) -> Rates {
        let minute = crate::clock::now().div_euclid(60);
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_hour(minute)
    }

    /// The exposition: OpenMetrics text, which Prometheus reads (and which
    /// its `Accept` header asks for first).
    pub fn encode(&self, queue: u64, frozen: u64) -> String {
        self.queue_messages.set(queue as i64);
        self.queue_frozen.set(frozen as i64);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// One session's place in `sluice_smtp_sessions`.
pub struct SessionGauge<'a> {
    metrics: &'a Metrics,
    state: SessionState,
}

impl SessionGauge<'_> {
    pub fn set(&mut self, state: SessionState) {
        if state != self.state {
            self.metrics.sessions[self.state as usize].dec();
            self.metrics.sessions[state as usize].inc();
            self.state = state;
        }
    }
}

impl Drop for SessionGauge<'_> {
    fn drop(&mut self) {
        self.metrics.sessions[self.state as usize].dec();
    }
}

/// The reason of a rejection line, from its words: the log carries the
/// reply's text, not its code (as Exim's does), so the words Sluice's
/// replies use are the key; an enhanced status code at the start (an
/// LMTP or remote reply passed on) is read too.
pub fn rejection_reason(r: &Rejected) -> &'static str {
    if matches!(r.stage, Stage::AfterDataSize(_)) {
        return "size";
    }
    let text = r.reason.as_deref().unwrap_or("").to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    // `5.7.1` in `550 5.7.1 relay not permitted` (or at the start).
    let code = text
        .split_ascii_whitespace()
        .take(2)
        .find_map(smtp::Status::parse)
        .map(|s| (s.subject(), s.detail()));
    if has(&["relay"]) {
        "relay"
    } else if has(&[
        "unknown user",
        "user unknown",
        "no such user",
        "unrouteable",
        "not a maildir recipient",
    ]) || matches!(code, Some((1, 1)))
    {
        "unknown_user"
    } else if has(&["mailbox full", "quota"]) || matches!(code, Some((2, 2))) {
        "quota"
    } else if has(&["too big", "too large", "size limit"]) || matches!(code, Some((3, 4) | (2, 3)))
    {
        "size"
    } else if has(&["tls", "encryption"]) || matches!(code, Some((7, 10 | 11))) {
        "tls"
    } else if has(&["too many", "rate"]) {
        "rate"
    } else if has(&[
        "syntax",
        "malformed",
        "invalid",
        "unrecognized",
        "parameter",
    ]) || matches!(code, Some((5, _)))
    {
        "syntax"
    } else if has(&[
        "sender verify",
        "null mx",
        "denied",
        "not allowed",
        "blocked",
        "refused",
    ]) || matches!(code, Some((7, _) | (1, _)))
    {
        "policy"
    } else {
        "other"
    }
}

/// The reason of a rejection written as free text (connection limits,
/// a client dropped for its errors).
fn other_reason(text: &str) -> &'static str {
    if text.contains("too many syntax or protocol errors") {
        "syntax"
    } else if text.contains("too many connections") {
        "rate"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::parse;

    fn metrics_of(lines: &[&str]) -> String {
        let m = Metrics::new();
        for l in lines {
            let line = parse::line(l).expect(l);
            let which = if l.contains("rejected") {
                Which::Reject
            } else {
                Which::Main
            };
            m.observe(&line.event, which);
        }
        m.encode(7, 2)
    }

    #[test]
    fn log_events_become_counters() {
        let text = metrics_of(&[
            "2026-12-04 10:00:00 1tixMn-00000000C5j-1wRa <= a@example.org H=(c) [192.0.2.1] P=esmtp S=1000 id=x@y",
            "2026-12-04 10:00:00 1tixMn-00000000C5j-1wRa => bob <bob@example.org> R=local_user T=maildir_delivery",
            "2026-12-04 10:00:00 1tixMn-00000000C5j-1wRa -> carol <carol@example.org> R=local_user T=maildir_delivery",
            "2026-12-04 10:00:01 1tixMn-00000000C5j-1wRb <= a@example.org U=root P=local S=24",
            "2026-12-04 10:00:01 1tixMn-00000000C5j-1wRb == x@remote.example R=dnslookup T=remote_smtp defer (-44): SMTP error",
            "2026-12-04 10:00:01 1tixMn-00000000C5j-1wRb ** nobody@example.org: Unrouteable address",
        ]);
        for want in [
            "sluice_messages_received_total{protocol=\"esmtp\"} 1",
            "sluice_messages_received_total{protocol=\"local\"} 1",
            "sluice_bytes_received_total 1024",
            "sluice_deliveries_total{transport=\"maildir_delivery\",result=\"delivered\"} 2",
            "sluice_deliveries_total{transport=\"remote_smtp\",result=\"deferred\"} 1",
            "sluice_deliveries_total{transport=\"none\",result=\"failed\"} 1",
            "sluice_queue_messages 7",
            "sluice_queue_frozen_messages 2",
            "sluice_smtp_sessions{state=\"data\"} 0",
            "sluice_rejections_total{reason=\"relay\"} 0",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }

    #[test]
    fn rejections_count_by_reason_from_a_fixed_list() {
        let text = metrics_of(&[
            "2026-12-04 10:00:00 H=(c) [192.0.2.1] F=<a@x> rejected RCPT <b@elsewhere.example>: Relay not permitted",
            "2026-12-04 10:00:00 H=(c) [192.0.2.1] F=<a@x> rejected RCPT <nouser@example.org>: <nouser@example.org>: unknown user (no such login)",
            "2026-12-04 10:00:00 H=(c) [192.0.2.1] F=<a@x> temporarily rejected RCPT <full@example.org>: Mailbox full, try again later: 10 of 10 bytes",
            "2026-12-04 10:00:00 H=(c) [192.0.2.1] F=<a@x> rejected after DATA (99999 bytes): Message too big",
            "2026-12-04 10:00:00 H=(c) [192.0.2.1] F=<a@x> rejected RCPT <u@lmtp>: 5.1.1 user unknown here",
            "2026-12-04 10:00:00 H=(c) [192.0.2.1] F=<a@x> rejected RCPT <x@y>: something nobody has said before",
        ]);
        for (reason, n) in [
            ("relay", 1),
            ("unknown_user", 2),
            ("quota", 1),
            ("size", 1),
            ("other", 1),
            ("rate", 0),
        ] {
            let want = format!("sluice_rejections_total{{reason=\"{reason}\"}} {n}");
            assert!(text.contains(&want), "{want} missing from\n{text}");
        }
        assert!(!text.contains("nobody has said"));
    }

    #[test]
    fn session_gauges_follow_the_state_and_the_end() {
        let m = Metrics::new();
        let gauge = |m: &Metrics, s: &str| {
            let text = m.encode(0, 0);
            let key = format!("sluice_smtp_sessions{{state=\"{s}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&key))
                .unwrap()
                .to_string()
        };
        let mut a = m.session();
        let _b = m.session();
        a.set(SessionState::Data);
        assert_eq!(gauge(&m, "command"), "1");
        assert_eq!(gauge(&m, "data"), "1");
        drop(a);
        assert_eq!(gauge(&m, "data"), "0");
        assert_eq!(gauge(&m, "command"), "1");
    }

    #[test]
    fn batches_fill_the_histograms() {
        let m = Metrics::new();
        m.batch(3, Duration::from_millis(3));
        m.batch(40, Duration::from_millis(30));
        let text = m.encode(0, 0);
        assert!(
            text.contains("sluice_commit_batch_messages_sum 43.0"),
            "{text}"
        );
        assert!(
            text.contains("sluice_commit_batch_messages_count 2"),
            "{text}"
        );
        assert!(
            text.contains("sluice_commit_flush_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn the_last_hour_adds_minutes_and_forgets_older_ones() {
        let mut r = Recent {
            slots: [(i64::MIN, Rates::default()); 60],
        };
        r.slot(1000).received += 2;
        r.slot(1030).delivered += 1;
        assert_eq!(r.last_hour(1030).received, 2);
        r.slot(1060).received += 1; // same ring slot as 1000: replaces it
        assert_eq!(r.last_hour(1060).received, 1);
        assert_eq!(r.last_hour(1060).delivered, 1);
        assert_eq!(r.last_hour(1100).delivered, 0);
    }
}
