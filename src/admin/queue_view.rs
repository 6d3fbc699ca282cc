//! What the admin listener knows of the queue: the frozen messages, kept
//! from one spool scan at start and the main log since, and a summary for
//! the status page (count, oldest, frozen, waiting recipients per domain).
//!
//! Freezing, thawing and removing are done by other processes (`sluice
//! queue freeze`, `-Mf`, `-Mrm`), whose only trace the daemon can see is
//! their log line, so the frozen count follows the main log rather than
//! this process's own events. The log is read from where it stood before
//! the scan: a change made during the scan is seen by both, and adding or
//! removing an ID twice is harmless.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use spool::{MessageId, Queue};

use super::follow::Follower;
use crate::log::{Action, Kind, parse};

/// The frozen messages.
#[derive(Debug)]
pub struct Frozen {
    ids: HashSet<MessageId>,
    log: Follower,
}

impl Frozen {
    /// Scans the spool once (every `-H` file is read) and follows
    /// `mainlog` from its end as it was before the scan.
    pub fn scan(queue: &Queue, mainlog: &Path) -> Frozen {
        let log = Follower::at_end(mainlog);
        let mut ids = HashSet::new();
        if let Ok(messages) = queue.messages(false) {
            for hf in messages.flatten() {
                if hf.envelope.frozen.is_some() {
                    ids.insert(hf.id);
                }
            }
        }
        Frozen { ids, log }
    }

    /// The number frozen now, after the log lines written since the last
    /// call.
    pub fn count(&mut self) -> u64 {
        let ids = &mut self.ids;
        // A log that cannot be read leaves the count where it was.
        let _ = self.log.read_new(|line| apply(ids, line));
        self.ids.len() as u64
    }
}

/// One log line's effect on the frozen set.
fn apply(ids: &mut HashSet<MessageId>, line: &str) {
    // Most lines are arrivals and deliveries: skip them unparsed.
    if !(line.contains("rozen") || line.contains(" Completed") || line.contains(" by ")) {
        return;
    }
    let Some(l) = parse::line(line) else { return };
    let Some(id) = l.event.id else { return };
    match l.event.kind {
        Kind::Frozen { .. }
        | Kind::Operator {
            action: Action::Froze,
            ..
        } => {
            ids.insert(id);
        }
        Kind::Operator { .. } | Kind::Completed(_) => {
            ids.remove(&id);
        }
        _ => {}
    }
}

/// The queue at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub messages: u64,
    /// The oldest message and its arrival (Unix seconds).
    pub oldest: Option<(String, u64)>,
    pub frozen: u64,
    /// Recipients still to deliver, per domain, most first (at most
    /// [`DOMAINS`]).
    pub domains: Vec<(String, u64)>,
    /// Messages that could not be read (being delivered and removed).
    pub unreadable: u64,
}

/// How many domains the summary lists.
pub const DOMAINS: usize = 20;

/// Reads every message of the queue once.
pub fn summarize(queue: &Queue) -> Summary {
    let mut s = Summary::default();
    let mut domains: BTreeMap<String, u64> = BTreeMap::new();
    let Ok(messages) = queue.messages(false) else {
        return s;
    };
    for m in messages {
        let Ok(hf) = m else {
            s.unreadable += 1;
            continue;
        };
        s.messages += 1;
        let env = &hf.envelope;
        if env.frozen.is_some() {
            s.frozen += 1;
        }
        let at = env.arrival.secs;
        if s.oldest.as_ref().is_none_or(|(_, t)| at < *t) {
            s.oldest = Some((hf.id.to_string(), at));
        }
        for (_, r) in env.undelivered() {
            let domain = r
                .address
                .rsplit_once('@')
                .map_or("(local)", |(_, d)| d)
                .to_ascii_lowercase();
            *domains.entry(domain).or_insert(0) += 1;
        }
    }
    let mut d: Vec<(String, u64)> = domains.into_iter().collect();
    d.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    d.truncate(DOMAINS);
    s.domains = d;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_freeze_thaw_and_remove() {
        let mut ids = HashSet::new();
        let id = "1tixMn-00000000C5j-1wRa";
        apply(
            &mut ids,
            &format!("2026-12-04 10:00:00 {id} Frozen (delivery error message)"),
        );
        assert_eq!(ids.len(), 1);
        apply(
            &mut ids,
            &format!("2026-12-04 10:00:01 {id} unfrozen by root"),
        );
        assert!(ids.is_empty());
        apply(
            &mut ids,
            &format!("2026-12-04 10:00:02 {id} frozen by root"),
        );
        assert_eq!(ids.len(), 1);
        apply(
            &mut ids,
            &format!("2026-12-04 10:00:03 {id} => bob <bob@example.org> R=r T=t"),
        );
        assert_eq!(ids.len(), 1, "a delivery line changes nothing");
        apply(
            &mut ids,
            &format!("2026-12-04 10:00:04 {id} removed by root"),
        );
        assert!(ids.is_empty());
        apply(&mut ids, &format!("2026-12-04 10:00:05 {id} Frozen"));
        apply(&mut ids, &format!("2026-12-04 10:00:06 {id} Completed"));
        assert!(ids.is_empty());
    }
}
