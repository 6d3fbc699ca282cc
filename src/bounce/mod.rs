//! Failure reports ("bounces"): every recipient that failed for good is
//! reported to the envelope sender (or to the recipient's `errors_to`),
//! never to `From:` or `Reply-To:`, in one report per attempt and
//! destination address listing every recipient that failed in it.
//!
//! A report is an ordinary message in the queue, with the null sender. It is
//! made in three durable steps, so that a crash between any two neither
//! loses it nor makes it twice ([`spool::Report`]):
//!
//! 1. the intent, `b INDEX ID`, in the original's journal, naming the
//!    report's message ID before anything of it exists;
//! 2. the report's `-D` and `-H`, committed;
//! 3. `B INDEX ID` in the original's journal.
//!
//! Only after step 3 may the original leave the queue. An intent without
//! its end is finished by the next attempt on the original: if the report
//! is queued, only step 3 is left; if not, it is made again under the same
//! ID ([`spool::Queue::draft_with_id`]).
//!
//! A message with the null sender is itself a report: its failures are
//! reported to nobody (no loops). The delivery agent freezes it instead,
//! as Exim does ("Frozen (delivery error message)").

pub mod rate;
pub mod report;

use std::collections::{BTreeMap, HashMap};

use spool::{
    Caller, DsnNotify, Envelope, LockedMessage, MessageId, Queue, RcptState, Recipient, Report,
};

use crate::config::Config;
use crate::log::{Arrival, Event, Kind, Logs, Origin, spooled_size};
use report::{Failure, Original, Reporter};

/// What settling a message's owed reports came to.
#[derive(Debug, Default)]
pub struct Settled {
    /// Reports queued now, to be delivered at once.
    pub made: Vec<MessageId>,
    /// Failures nobody is to be told about (the message is itself a
    /// report): the caller freezes it.
    pub unreported: bool,
}

/// Makes (or finishes making) every report message `d` owes: failure
/// reports, and success reports for `NOTIFY=SUCCESS`. Where a report goes
/// and whether a success was a relay come from the spool
/// ([`Report::Noted`]), so that a crash changes neither.
pub fn settle(
    cfg: &Config,
    queue: &Queue,
    logs: &Logs,
    d: &mut LockedMessage,
    now: i64,
) -> Result<Settled, spool::Error> {
    let relayed: HashMap<usize, String> = d
        .envelope()
        .recipients
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.report {
            Report::Noted {
                relayed: Some(h), ..
            } => Some((i, h.clone())),
            _ => None,
        })
        .collect();
    let relayed = &relayed;
    let mut settled = Settled::default();
    let env = d.envelope().clone();
    // Reports whose intent was recorded: finish them under their ID.
    let mut resumed: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    // New reports, by the address they go to and their kind (failures and
    // successes are separate reports, as in Exim).
    let mut fresh: BTreeMap<(String, bool), Vec<usize>> = BTreeMap::new();
    let mut waived = Vec::new();
    for (i, r) in env.recipients.iter().enumerate() {
        if !r.owes_report() {
            continue;
        }
        let failed = matches!(r.state, RcptState::Failed { .. });
        match &r.report {
            Report::Making(id) => resumed
                .entry((id.clone(), target(r, &env)))
                .or_default()
                .push(i),
            Report::MakingFor(id, to) => {
                resumed.entry((id.clone(), to.clone())).or_default().push(i)
            }
            _ if failed && !wants_failure_report(r) => waived.push((i, Report::Waived)),
            // A report is never reported on.
            _ if !failed && env.sender.is_empty() => waived.push((i, Report::Waived)),
            Report::Noted { to: Some(to), .. } if failed => {
                fresh.entry((to.clone(), failed)).or_default().push(i)
            }
            _ if env.sender.is_empty() && r.errors_to.is_none() => settled.unreported = true,
            _ => fresh.entry((target(r, &env), failed)).or_default().push(i),
        }
    }
    if !waived.is_empty() {
        d.record_reports(&waived)?;
    }
    for ((id, to), indexes) in resumed {
        let Ok(id) = MessageId::parse(&id) else {
            continue;
        };
        if !queue.contains(&id)? {
            // The crash came before the report was committed.
            if let Some(draft) = queue.draft_with_id(id)? {
                write(cfg, queue, logs, d, draft, &to, &indexes, now, relayed)?;
            }
        }
        let made: Vec<(usize, Report)> = indexes
            .iter()
            .map(|&i| (i, Report::Made(id.to_string())))
            .collect();
        d.record_reports(&made)?;
        settled.made.push(id);
    }
    for ((to, _), indexes) in fresh {
        let draft = queue.draft()?;
        let id = draft.id();
        // The intent names the address too when it is not the usual one,
        // so that a report made again after a crash goes there as well.
        let intent: Vec<(usize, Report)> = indexes
            .iter()
            .map(|&i| {
                let report = if to == target(&env.recipients[i], &env) {
                    Report::Making(id.to_string())
                } else {
                    Report::MakingFor(id.to_string(), to.clone())
                };
                (i, report)
            })
            .collect();
        d.record_reports(&intent)?;
        write(cfg, queue, logs, d, draft, &to, &indexes, now, relayed)?;
        let made: Vec<(usize, Report)> = indexes
            .iter()
            .map(|&i| (i, Report::Made(id.to_string())))
            .collect();
        d.record_reports(&made)?;
        settled.made.push(id);
    }
    Ok(settled)
}

/// Where recipient `r`'s failure is reported.
fn target(r: &Recipient, env: &Envelope) -> String {
    r.errors_to.clone().unwrap_or_else(|| env.sender.clone())
}

/// RFC 3461: no NOTIFY means FAILURE and DELAY; otherwise only a NOTIFY
/// with FAILURE (never with NEVER) asks for a failure report.
fn wants_failure_report(r: &Recipient) -> bool {
    let n = r.notify.0 & !DsnNotify::LAST_HOP;
    n & (DsnNotify::SUCCESS | DsnNotify::FAILURE | DsnNotify::DELAY | DsnNotify::NEVER) == 0
        || (n & DsnNotify::FAILURE != 0 && n & DsnNotify::NEVER == 0)
}

/// Whether recipient `r` asked for a success report.
pub fn wants_success_report(r: &Recipient) -> bool {
    r.notify.0 & DsnNotify::SUCCESS != 0 && r.notify.0 & DsnNotify::NEVER == 0
}

/// Composes the report for `indexes` of `d` into `draft` and commits it: a
/// failure report, or a success report when they were delivered.
#[allow(clippy::too_many_arguments)]
fn write(
    cfg: &Config,
    queue: &Queue,
    logs: &Logs,
    d: &LockedMessage,
    draft: spool::Draft,
    to: &str,
    indexes: &[usize],
    now: i64,
    relayed: &HashMap<usize, String>,
) -> Result<(), spool::Error> {
    let id = draft.id();
    let env = d.envelope();
    let deliveries: Vec<report::Delivery> = indexes
        .iter()
        .filter_map(|&i| {
            let r = &env.recipients[i];
            match &r.state {
                RcptState::Delivered { at } => Some(report::Delivery {
                    address: r.address.clone(),
                    orcpt: r.orcpt.clone(),
                    action: if relayed.contains_key(&i) {
                        report::Success::Relayed
                    } else {
                        report::Success::Delivered
                    },
                    remote: relayed.get(&i).cloned(),
                    at: *at,
                }),
                _ => None,
            }
        })
        .collect();
    let failures: Vec<Failure> = indexes
        .iter()
        .filter_map(|&i| {
            let r = &env.recipients[i];
            match &r.state {
                RcptState::Failed { at, why } => Some(Failure {
                    address: r.address.clone(),
                    orcpt: r.orcpt.clone(),
                    why: why.clone(),
                    at: *at,
                }),
                _ => None,
            }
        })
        .collect();
    let header = header_bytes(d);
    // The body is read only when it may be returned.
    let whole = header.len() as u64 + 1 + env.body_size.unwrap_or(0);
    let mut body = Vec::new();
    if !failures.is_empty()
        && env.dsn_ret != Some(spool::DsnRet::Headers)
        && whole <= cfg.bounce_return_size_limit
    {
        let mut b = d.body()?;
        std::io::Read::read_to_end(&mut b, &mut body).map_err(|e| spool::Error::Io {
            op: "read",
            path: b.path().to_path_buf(),
            source: e,
        })?;
    }
    let caller = reporting_user();
    let reporter = Reporter {
        host: &cfg.primary_hostname,
        return_size_limit: cfg.bounce_return_size_limit,
        login: &caller.login,
    };
    let original_id = d.id();
    let original = Original {
        id: original_id.as_str(),
        sender: &env.sender,
        arrival: env.arrival.secs,
        envid: env.dsn_envid.as_deref(),
        ret: env.dsn_ret,
        header: &header,
        body: &body,
        international: !env.sender.is_ascii()
            || env.recipients.iter().any(|r| !r.address.is_ascii())
            || !header.is_ascii(),
    };
    let composed = if failures.is_empty() {
        report::success_report(&reporter, &original, to, id.as_str(), &deliveries, now)
    } else {
        report::failure_report(&reporter, &original, to, id.as_str(), &failures, now)
    };
    enqueue(cfg, queue, logs, d.id(), draft, to, &caller, &composed).map(drop)
}

/// Commits a composed report to `to` in `draft`, with the null sender, and
/// logs its arrival as Exim logs a bounce's (`<= <> R=ORIGINAL`). Over
/// `bounce_rate_limit` for `to` this hour, it is queued held until the
/// hour ends (logged once per address and hour).
#[allow(clippy::too_many_arguments)]
fn enqueue(
    cfg: &Config,
    queue: &Queue,
    logs: &Logs,
    original: MessageId,
    mut draft: spool::Draft,
    to: &str,
    caller: &Caller,
    composed: &report::Composed,
) -> Result<MessageId, spool::Error> {
    draft.write(&composed.body)?;
    let mut report_env = Envelope::new("", &[to]);
    let now = crate::clock::now() as u64;
    if let rate::Admit::Hold { until, first } =
        rate::admit_in(queue.root(), to, now, cfg.bounce_rate_limit)
    {
        report_env.recipients[0].state = RcptState::Deferred {
            first: now,
            at: now,
            until,
            attempts: 0,
            why: spool::Diagnosis::text("held: over bounce_rate_limit"),
        };
        if first {
            logs.main(&Event::other(
                None,
                format!(
                    "bounce_rate_limit: more than {} reports to {to} this hour; the rest are held until {}",
                    cfg.bounce_rate_limit,
                    crate::clock::log_stamp(until as i64)
                ),
            ));
        }
    }
    report_env.caller = caller.clone();
    report_env.protocol = Some("local".into());
    report_env.local = true;
    report_env.ident = Some(caller.login.clone());
    // Exim marks a message it made to report errors so.
    report_env.extra.push(("localerror".into(), None));
    let staged = draft.finish(&report_env, &composed.headers)?;
    let id = queue.commit(staged)?;

    let size = spooled_size(&composed.headers, composed.body.len());
    let mut arrival = Arrival::new("", Origin::Local(caller.login.clone()), "local", size);
    arrival.bounce_of = Some(original.to_string());
    let event = Event::new(Some(id), Kind::Arrival(arrival));
    logs.main(&event);
    let _ = queue.append_msglog(&id, &crate::log::stamped(&event));
    Ok(id)
}

/// The user reports come from.
fn reporting_user() -> Caller {
    crate::sys::real_user()
        .ok()
        .flatten()
        .unwrap_or_else(Caller::from_ids)
}

/// The header lines of `d` as stored (deleted ones left out).
fn header_bytes(d: &LockedMessage) -> Vec<u8> {
    d.header_file()
        .headers
        .iter()
        .filter(|h| !h.is_deleted())
        .flat_map(|h| h.text.iter().copied())
        .collect()
}

/// Exim's default `delay_warning_condition`: no warning for mailing-list
/// mail, bulk or junk precedence, or anything automatically submitted.
fn excluded_from_warnings(header: &[u8]) -> bool {
    let text = String::from_utf8_lossy(header).to_ascii_lowercase();
    text.lines().any(|l| {
        let (name, value) = l.split_once(':').unwrap_or((l, ""));
        let value = value.trim();
        match name.trim() {
            "list-id" | "list-post" | "list-subscribe" => true,
            "precedence" => matches!(value, "bulk" | "list" | "junk"),
            "auto-submitted" => value != "no",
            _ => false,
        }
    })
}

/// A delay warning, when one is due: message `d` has waited past the
/// next of `queue.delay_warning`'s times, its sender is not `<>`, it is
/// not list or automatic mail, and some deferred recipients want one (no
/// NOTIFY, or NOTIFY with DELAY). Made in three steps like a report: its
/// intent (`-warning_intent N ID`, the `-H` rewritten), the warning
/// queued, then the count, so that a crash neither loses nor doubles it.
pub fn warn(
    cfg: &Config,
    queue: &Queue,
    logs: &Logs,
    d: &mut LockedMessage,
    schedule: &crate::retry::Schedule,
    now: i64,
) -> Result<Option<MessageId>, spool::Error> {
    let env = d.envelope().clone();
    // A warning whose intent was recorded before a crash: queued already
    // (only the count is left), or made now under its recorded ID.
    let resumed = d.warning_intent();
    if let Some((n, id)) = resumed
        && queue.contains(&id)?
    {
        d.warning_made(n);
        return Ok(None);
    }
    let due = cfg.queue.next_warning(env.warning_count);
    let late = due.is_some_and(|due| (now as u64).saturating_sub(env.arrival.secs) >= due);
    if env.sender.is_empty() || (resumed.is_none() && !late) {
        return Ok(None);
    }
    let header = header_bytes(d);
    if excluded_from_warnings(&header) {
        return Ok(None);
    }
    let mut first = u64::MAX;
    let delays: Vec<Failure> = env
        .recipients
        .iter()
        .filter(|r| {
            let n = r.notify.0;
            n == 0 || (n & DsnNotify::DELAY != 0 && n & DsnNotify::NEVER == 0)
        })
        .filter_map(|r| match &r.state {
            RcptState::Deferred {
                first: f, at, why, ..
            } => {
                first = first.min(if *f == 0 { env.arrival.secs } else { *f });
                Some(Failure {
                    address: r.address.clone(),
                    orcpt: r.orcpt.clone(),
                    why: why.clone(),
                    at: *at,
                })
            }
            _ => None,
        })
        .collect();
    if delays.is_empty() {
        return Ok(None);
    }
    let caller = reporting_user();
    // The intent first (its ID, durably), then the warning, then the
    // count: a crash in between neither loses it nor sends it twice.
    let (n, draft) = match resumed {
        Some((n, id)) => match queue.draft_with_id(id)? {
            Some(draft) => (n, draft),
            None => {
                d.warning_made(n);
                return Ok(None);
            }
        },
        None => {
            let draft = queue.draft()?;
            let n = env.warning_count + 1;
            d.record_warning_intent(n, &draft.id())?;
            (n, draft)
        }
    };
    let dsn_id = draft.id();
    let original_id = d.id();
    let composed = report::delay_report(
        &Reporter {
            host: &cfg.primary_hostname,
            return_size_limit: cfg.bounce_return_size_limit,
            login: &caller.login,
        },
        &Original {
            id: original_id.as_str(),
            sender: &env.sender,
            arrival: env.arrival.secs,
            envid: env.dsn_envid.as_deref(),
            ret: env.dsn_ret,
            header: &header,
            body: &[],
            international: !env.sender.is_ascii()
                || env.recipients.iter().any(|r| !r.address.is_ascii())
                || !header.is_ascii(),
        },
        &env.sender,
        dsn_id.as_str(),
        &delays,
        first.saturating_add(schedule.last_cutoff()),
        now,
    );
    let id = enqueue(
        cfg,
        queue,
        logs,
        original_id,
        draft,
        &env.sender,
        &caller,
        &composed,
    )?;
    d.warning_made(n);
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spool::{Diagnosis, QueueOptions, RcptOutcome};

    /// A queue holding one message from alice whose one recipient failed,
    /// and what settling needs.
    fn failed_message() -> (tempfile::TempDir, Config, Queue, Logs, MessageId) {
        let (dir, cfg, queue, logs) = spool_with("");
        let (id, d) = queued_and_failed(&queue, "alice@example.org");
        d.finish().unwrap();
        (dir, cfg, queue, logs, id)
    }

    /// A configuration (with `extra`), its spool and logs in a fresh
    /// directory.
    fn spool_with(extra: &str) -> (tempfile::TempDir, Config, Queue, Logs) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::from_str(
            "test",
            &format!(
                "data_dir = {:?}\nprimary_hostname = \"mx.example.org\"\n{extra}",
                dir.path()
            ),
        )
        .unwrap();
        let queue = Queue::open(&dir.path().join("spool"), QueueOptions::default()).unwrap();
        let logs = Logs::new(dir.path().join("log"));
        (dir, cfg, queue, logs)
    }

    /// A message from `sender` to one recipient, queued, its recipient
    /// failed; still locked.
    fn queued_and_failed(queue: &Queue, sender: &str) -> (MessageId, LockedMessage) {
        let env = Envelope::new(sender, &["bob@remote.test"]);
        let id = queue
            .enter(&env, &[spool::Header::new("Subject: x\n")], b"body\n")
            .unwrap();
        let mut d = queue.begin_delivery(&id).unwrap();
        d.record(
            0,
            RcptOutcome::Failed {
                why: Diagnosis::text("Unrouteable address"),
            },
        )
        .unwrap();
        (id, d)
    }

    fn reports_to(queue: &Queue, original: &MessageId) -> Vec<MessageId> {
        queue
            .ids()
            .unwrap()
            .into_iter()
            .filter(|id| id != original)
            .collect()
    }

    #[test]
    fn one_report_is_made_and_the_original_settles() {
        let (_dir, cfg, queue, logs, id) = failed_message();
        let mut d = queue.begin_delivery(&id).unwrap();
        let settled = settle(&cfg, &queue, &logs, &mut d, 0).unwrap();
        assert_eq!(settled.made.len(), 1);
        assert!(d.envelope().is_complete());
        let made = reports_to(&queue, &id);
        assert_eq!(made, settled.made);
        let hf = queue.read(&made[0]).unwrap();
        assert_eq!(hf.envelope.sender, "");
        assert_eq!(hf.envelope.recipients[0].address, "alice@example.org");
        // Settling again makes nothing more.
        assert!(
            settle(&cfg, &queue, &logs, &mut d, 0)
                .unwrap()
                .made
                .is_empty()
        );
        assert_eq!(reports_to(&queue, &id).len(), 1);
    }

    /// A crash after the intent, before the report was committed: the next
    /// attempt makes it under the recorded ID, once.
    #[test]
    fn an_intent_without_its_report_is_made_under_its_id() {
        let (_dir, cfg, queue, logs, id) = failed_message();
        let draft = queue.draft().unwrap();
        let planned = draft.id();
        let mut d = queue.begin_delivery(&id).unwrap();
        d.record_reports(&[(0, Report::Making(planned.to_string()))])
            .unwrap();
        drop(draft); // the crash: its temporary file goes
        drop(d);
        let mut d = queue.begin_delivery(&id).unwrap();
        assert_eq!(
            d.envelope().recipients[0].report,
            Report::Making(planned.to_string())
        );
        let settled = settle(&cfg, &queue, &logs, &mut d, 0).unwrap();
        assert_eq!(settled.made, vec![planned]);
        assert_eq!(reports_to(&queue, &id), vec![planned]);
        assert_eq!(
            d.envelope().recipients[0].report,
            Report::Made(planned.to_string())
        );
    }

    /// A crash after the report was committed, before `B`: only the end is
    /// recorded; no second report.
    #[test]
    fn an_intent_whose_report_is_queued_is_not_made_twice() {
        let (_dir, cfg, queue, logs, id) = failed_message();
        let mut d = queue.begin_delivery(&id).unwrap();
        let first = settle(&cfg, &queue, &logs, &mut d, 0).unwrap().made[0];
        // Back to the state just before `B`.
        d.record_reports(&[(0, Report::Making(first.to_string()))])
            .unwrap();
        drop(d);
        let mut d = queue.begin_delivery(&id).unwrap();
        let again = settle(&cfg, &queue, &logs, &mut d, 0).unwrap();
        assert_eq!(again.made, vec![first]);
        assert_eq!(reports_to(&queue, &id), vec![first]);
        assert!(d.envelope().is_complete());
    }

    /// A deferred message and what warning it needs (delay_warning 1s).
    fn deferred_message() -> (tempfile::TempDir, Config, Queue, Logs, MessageId) {
        let (dir, cfg, queue, logs) = spool_with("[queue]\ndelay_warning = [\"1s\"]");
        let env = Envelope::new("alice@example.org", &["bob@remote.test"]);
        let id = queue
            .enter(&env, &[spool::Header::new("Subject: x\n")], b"body\n")
            .unwrap();
        let mut d = queue.begin_delivery(&id).unwrap();
        d.record(
            0,
            RcptOutcome::Deferred {
                until: u64::MAX,
                why: Diagnosis::text("451 later"),
            },
        )
        .unwrap();
        d.finish().unwrap();
        (dir, cfg, queue, logs, id)
    }

    #[test]
    fn delay_warnings_are_neither_lost_nor_doubled_across_a_crash() {
        let schedule = crate::retry::Schedule::parse("F,1h,1m").unwrap();
        let later = crate::clock::now() + 10;
        // A crash after the intent, before the warning was queued: made
        // under the recorded ID.
        let (_dir, cfg, queue, logs, id) = deferred_message();
        let mut d = queue.begin_delivery(&id).unwrap();
        let planned = queue.draft().unwrap().id();
        d.record_warning_intent(1, &planned).unwrap();
        drop(d);
        let mut d = queue.begin_delivery(&id).unwrap();
        let made = warn(&cfg, &queue, &logs, &mut d, &schedule, later).unwrap();
        assert_eq!(made, Some(planned));
        assert_eq!(d.envelope().warning_count, 1);
        assert_eq!(d.warning_intent(), None);
        // Again, now that it is queued: only counted, none made.
        d.record_warning_intent(2, &planned).unwrap();
        assert_eq!(
            warn(&cfg, &queue, &logs, &mut d, &schedule, later).unwrap(),
            None
        );
        assert_eq!(d.envelope().warning_count, 2);
        assert_eq!(reports_to(&queue, &id), vec![planned]);
    }

    /// What an attempt noted for a report (a router's errors_to) is in the
    /// spool: a later attempt, after a crash, still sends it there.
    #[test]
    fn a_noted_destination_survives_to_the_report() {
        let (_dir, cfg, queue, logs, id) = failed_message();
        let mut d = queue.begin_delivery(&id).unwrap();
        d.record_reports(&[(
            0,
            Report::Noted {
                to: Some("owner@example.org".into()),
                relayed: None,
            },
        )])
        .unwrap();
        d.finish().unwrap();
        let mut d = queue.begin_delivery(&id).unwrap();
        let made = settle(&cfg, &queue, &logs, &mut d, 0).unwrap().made;
        let report = queue.read(&made[0]).unwrap();
        assert_eq!(report.envelope.recipients[0].address, "owner@example.org");

        // And an intent for it, made again after a crash, still goes there.
        let (_dir, cfg, queue, logs, id) = failed_message();
        let planned = queue.draft().unwrap().id();
        let mut d = queue.begin_delivery(&id).unwrap();
        d.record_reports(&[(
            0,
            Report::MakingFor(planned.to_string(), "owner@example.org".into()),
        )])
        .unwrap();
        d.finish().unwrap();
        let mut d = queue.begin_delivery(&id).unwrap();
        let made = settle(&cfg, &queue, &logs, &mut d, 0).unwrap().made;
        assert_eq!(made, vec![planned]);
        let report = queue.read(&planned).unwrap();
        assert_eq!(report.envelope.recipients[0].address, "owner@example.org");
    }

    #[test]
    fn a_report_of_a_report_is_not_made() {
        let (_dir, cfg, queue, logs, _) = failed_message();
        let (_, mut d) = queued_and_failed(&queue, "");
        let settled = settle(&cfg, &queue, &logs, &mut d, 0).unwrap();
        assert!(settled.made.is_empty() && settled.unreported);
        assert!(!d.envelope().is_complete());
    }

    #[test]
    fn notify_decides_whether_a_failure_is_reported() {
        let with = |n: u8| Recipient {
            notify: DsnNotify(n),
            ..Recipient::new("a@b")
        };
        assert!(wants_failure_report(&with(0)));
        assert!(wants_failure_report(&with(DsnNotify::FAILURE)));
        assert!(wants_failure_report(&with(
            DsnNotify::FAILURE | DsnNotify::DELAY
        )));
        assert!(!wants_failure_report(&with(DsnNotify::NEVER)));
        assert!(!wants_failure_report(&with(DsnNotify::SUCCESS)));
        assert!(!wants_failure_report(&with(DsnNotify::DELAY)));
    }
}
