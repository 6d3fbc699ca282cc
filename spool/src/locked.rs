//! Delivering a queued message: the lock, the journal, the end of an
//! attempt.
//!
//! [`Queue::begin_delivery`] opens the `-D` file and takes an
//! open-file-description lock on it (see [`durable::sys::ofd_try_lock`]), so two
//! queue runners (threads or processes, or Exim on a shared spool) never
//! deliver one message at once. While it holds the lock:
//!
//! 1. [`LockedMessage::start`] records an *intent* for a recipient before a
//!    delivery that cannot be found again begins (an mbox append): after a
//!    crash the recipient shows as in flight and is delivered again. A
//!    Maildir delivery records none: its file is named
//!    [`MessageId::delivery_name`] and looked for before any retry;
//! 2. [`LockedMessage::record`] records the outcome (delivered, failed, deferred
//!    until a time);
//! 3. [`LockedMessage::finish`] ends the attempt: a message with every recipient
//!    done is removed; otherwise the `-H` file is rewritten with the merged
//!    state (temporary file, `fdatasync`, atomic rename, directory sync)
//!    and the journal removed.
//!
//! Each record is appended to `<ID>-J` and flushed (`fdatasync`; the first
//! one also syncs the directory that holds the new journal) before the call
//! returns, so that what a caller was told survives a crash. A crash
//! re-delivers at most the recipients whose intent has no outcome
//! ([`LockedMessage::in_flight`]).
//!
//! Removal order: the `-H` goes first and its directory is synced (the
//! message is gone at that instant, as its appearance was the commit of its
//! entry); the `-D`, `-J` and message log follow. A crash in between leaves
//! files without `-H`, which [`Queue::clean_garbage`] removes.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use durable::{Persist, replace_file};

use crate::error::{Error, Result};
use crate::header_file::{Diagnosis, Envelope, HeaderFile, RcptState, Report};
use crate::id::MessageId;
use crate::journal::{self, Record};
use crate::layout::Layout;
use crate::queue::{Body, FILE_MODE, Queue};
use crate::sys;

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    /// Durably delivered.
    Delivered,
    /// Permanent failure.
    Failed { why: Diagnosis },
    /// Temporary failure; retry not before `until` (Unix seconds).
    Deferred { until: u64, why: Diagnosis },
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Every recipient is done: the message left the queue.
    Removed,
    /// Some recipients remain: the message stays, its state saved.
    Kept,
}

/// A locked message. Dropping it releases the lock; recorded outcomes stay
/// in the journal and are merged by the next reader.
pub struct LockedMessage {
    queue: Queue,
    layout: Layout,
    id: MessageId,
    data: File,
    hf: HeaderFile,
    journal: Option<File>,
    /// A journal exists on disk (from this attempt or an earlier one).
    journal_on_disk: bool,
    /// The journal's directory entry was synced during this attempt.
    journal_entry_synced: bool,
    /// The envelope changed outside the journal: `finish` rewrites the
    /// `-H` whatever else happened.
    dirty: bool,
}

impl std::fmt::Debug for LockedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedMessage")
            .field("id", &self.id)
            .finish()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The `-H` option naming a delay warning being made.
const WARNING_INTENT: &str = "warning_intent";

impl Queue {
    /// Locks message `id` for delivery (or an admin change) and reads it.
    /// [`Error::Locked`] when another process or thread holds it,
    /// [`Error::NotFound`] when it is not (or no longer) queued.
    pub fn begin_delivery(&self, id: &MessageId) -> Result<LockedMessage> {
        let layout = self.locate(id)?;
        let dpath = layout.data(id);
        let data = match OpenOptions::new().read(true).write(true).open(&dpath) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Gone with its -H (delivered meanwhile), or a damaged spool.
                return Err(match sys::exists(&layout.header(id)) {
                    Ok(true) => Error::Torn {
                        path: dpath,
                        why: "the -D file is missing".into(),
                    },
                    _ => Error::NotFound { id: id.to_string() },
                });
            }
            Err(e) => return Err(Error::io("open", dpath, e)),
        };
        if !durable::sys::ofd_try_lock(&data, true).map_err(|e| Error::io("lock", &dpath, e))? {
            return Err(Error::Locked {
                id: *id,
                path: dpath,
            });
        }
        // Read only now: whoever held the lock before may have changed it.
        let hf = self.read_at(&layout, id, true)?;
        let jpath = layout.journal(id);
        let journal_on_disk = sys::exists(&jpath).map_err(|e| Error::io("stat", &jpath, e))?;
        let d = LockedMessage {
            queue: self.clone(),
            layout,
            id: *id,
            data,
            hf,
            journal: None,
            journal_on_disk,
            journal_entry_synced: false,
            dirty: false,
        };
        // Check the body's length now rather than halfway through a
        // delivery.
        d.body()?;
        Ok(d)
    }
}

impl LockedMessage {
    pub fn id(&self) -> MessageId {
        self.id
    }

    pub fn header_file(&self) -> &HeaderFile {
        &self.hf
    }

    pub fn envelope(&self) -> &Envelope {
        &self.hf.envelope
    }

    /// The body, for reading (any number of times).
    pub fn body(&self) -> Result<Body> {
        let path = self.layout.data(&self.id);
        let file = self
            .data
            .try_clone()
            .map_err(|e| Error::io("dup", &path, e))?;
        Body::new(file, path, &self.id, self.hf.envelope.body_size)
    }

    /// Recipients whose delivery started and whose outcome was never
    /// recorded: check whether they landed before delivering again.
    pub fn in_flight(&self) -> Vec<usize> {
        self.hf
            .envelope
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.state, RcptState::InFlight { .. }))
            .map(|(i, _)| i)
            .collect()
    }

    /// Records, durably, that the delivery to recipient `index` starts.
    pub fn start(&mut self, index: usize) -> Result<()> {
        self.append(
            &[Record::state(index, RcptState::InFlight { since: now() })],
            self.queue.syncs(),
        )
    }

    /// Records, durably, the outcome for recipient `index`.
    pub fn record(&mut self, index: usize, outcome: RcptOutcome) -> Result<()> {
        self.record_all(&[(index, outcome)])
    }

    /// Records several outcomes with one flush (the recipients of one SMTP
    /// transaction).
    pub fn record_all(&mut self, outcomes: &[(usize, RcptOutcome)]) -> Result<()> {
        let records = self.records(outcomes)?;
        self.append(&records, self.queue.syncs())
    }

    /// Records outcomes without a flush: handed to `write(2)`, so that a
    /// killed process does not lose them, but not synced, so that a power
    /// cut may. For outcomes whose loss can only cause a delivery to be
    /// made again (a message sent over SMTP): the remote delivery writes
    /// each transaction's outcomes so before it starts the next one, and
    /// the end of the attempt syncs them with everything else.
    pub fn record_unsynced(&mut self, outcomes: &[(usize, RcptOutcome)]) -> Result<()> {
        let records = self.records(outcomes)?;
        self.append(&records, false)
    }

    /// Records, durably (synced whatever the durability: a report made
    /// twice or never is what the steps exist to prevent), where the
    /// failure reports of recipients stand.
    pub fn record_reports(&mut self, reports: &[(usize, Report)]) -> Result<()> {
        let records: Vec<Record> = reports
            .iter()
            .map(|(i, r)| Record::report(*i, r.clone()))
            .collect();
        self.append(&records, self.queue.syncs())
    }

    fn records(&self, outcomes: &[(usize, RcptOutcome)]) -> Result<Vec<Record>> {
        let at = now();
        let mut records = Vec::with_capacity(outcomes.len());
        for (index, outcome) in outcomes {
            let rcpt = self.recipient(*index)?;
            let state = match outcome {
                RcptOutcome::Delivered => RcptState::Delivered { at },
                RcptOutcome::Failed { why } => RcptState::Failed {
                    at,
                    why: why.clone(),
                },
                RcptOutcome::Deferred { until, why } => RcptState::Deferred {
                    // Kept from the first temporary failure: retry rules
                    // count from it.
                    first: match rcpt.state {
                        RcptState::Deferred { first, .. } if first != 0 => first,
                        _ => at,
                    },
                    at,
                    until: *until,
                    attempts: match &rcpt.state {
                        RcptState::Deferred { attempts, .. } => attempts.saturating_add(1),
                        _ => 1,
                    },
                    why: why.clone(),
                },
            };
            records.push(Record::state(*index, state));
        }
        Ok(records)
    }

    fn recipient(&self, index: usize) -> Result<&crate::header_file::Recipient> {
        let rs = &self.hf.envelope.recipients;
        rs.get(index).ok_or(Error::NoRecipient {
            id: self.id,
            index,
            count: rs.len(),
        })
    }

    fn append(&mut self, records: &[Record], sync: bool) -> Result<()> {
        for r in records {
            self.recipient(r.index)?;
        }
        let io = self.queue.io_arc();
        let jpath = self.layout.journal(&self.id);
        if self.journal.is_none() {
            let file = match io.create_new(&jpath, FILE_MODE) {
                Ok(f) => f,
                // From an earlier attempt: append to it.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
                    .append(true)
                    .open(&jpath)
                    .map_err(|e| Error::io("open", &jpath, e))?,
                Err(e) => return Err(Error::io("create", &jpath, e)),
            };
            self.journal = Some(file);
            self.journal_on_disk = true;
        }
        let Some(file) = self.journal.as_mut() else {
            return Err(Error::io("write", jpath, io::Error::other("no journal")));
        };
        let mut buf = Vec::new();
        for r in records {
            buf.extend(r.encode());
        }
        let fail = |op, e| {
            // After a failed write or sync the descriptor is not trusted
            // again (fsync is never retried on it): the next record opens
            // the journal afresh, and a torn line in it is skipped.
            Error::io(op, &jpath, e)
        };
        if let Err(e) = io.write_all(file, &jpath, &buf) {
            self.journal = None;
            return Err(fail("write", e));
        }
        if sync {
            if let Err(e) = io.sync_data(file, &jpath) {
                self.journal = None;
                return Err(fail("fdatasync", e));
            }
            // Once per attempt: the journal's name must survive as well
            // (it may have been created by an attempt whose sync failed).
            if !self.journal_entry_synced {
                let dir = self.layout.input_dir(&self.id);
                io.sync_dir(&dir)
                    .map_err(|e| Error::io("fsync directory", &dir, e))?;
                self.journal_entry_synced = true;
            }
        }
        journal::apply(&mut self.hf.envelope, records);
        Ok(())
    }

    /// Makes failed recipients due again (a report's failures, tried once
    /// more before they are ignored), durably.
    pub fn reopen(&mut self, indexes: &[usize]) -> Result<()> {
        let records: Vec<Record> = indexes
            .iter()
            .map(|&i| Record::state(i, RcptState::Pending))
            .collect();
        self.append(&records, self.queue.syncs())
    }

    /// Counts a delay warning sent; saved when the attempt ends.
    pub fn set_warning_count(&mut self, n: u32) {
        self.hf.envelope.warning_count = n;
        self.dirty = true;
    }

    /// The delay warning being made, if one is: its number and message
    /// ID (`-warning_intent N ID` in the `-H`).
    pub fn warning_intent(&self) -> Option<(u32, MessageId)> {
        let (_, v) = self
            .hf
            .envelope
            .extra
            .iter()
            .find(|(k, _)| k == WARNING_INTENT)?;
        let (n, id) = v.as_deref()?.split_once(' ')?;
        Some((n.parse().ok()?, MessageId::parse(id).ok()?))
    }

    /// Records, durably (the `-H` rewritten), that delay warning `n` is
    /// being made as message `id`: the intent that lets a crash neither
    /// lose it nor send it twice.
    pub fn record_warning_intent(&mut self, n: u32, id: &MessageId) -> Result<()> {
        self.hf.envelope.extra.retain(|(k, _)| k != WARNING_INTENT);
        self.hf
            .envelope
            .extra
            .push((WARNING_INTENT.into(), Some(format!("{n} {id}"))));
        self.rewrite()
    }

    /// Delay warning `n` is queued: counted, and its intent dropped (saved
    /// when the attempt ends; a crash before that finds the warning
    /// queued and only counts it).
    pub fn warning_made(&mut self, n: u32) {
        self.hf.envelope.extra.retain(|(k, _)| k != WARNING_INTENT);
        self.set_warning_count(n);
    }

    /// Freezes the message (`-Mf`). `Ok(false)` if it was frozen already.
    pub fn freeze(&mut self) -> Result<bool> {
        if self.hf.envelope.frozen.is_some() {
            return Ok(false);
        }
        self.hf.envelope.frozen = Some(now());
        self.hf.envelope.manual_thaw = false;
        self.rewrite()?;
        Ok(true)
    }

    /// Thaws the message (`-Mt`). `Ok(false)` if it was not frozen.
    pub fn thaw(&mut self) -> Result<bool> {
        if self.hf.envelope.frozen.is_none() {
            return Ok(false);
        }
        self.hf.envelope.frozen = None;
        self.hf.envelope.manual_thaw = true;
        self.rewrite()?;
        Ok(true)
    }

    /// Ends the attempt: removes the message when every recipient is done,
    /// otherwise saves the merged state into its `-H` file.
    pub fn finish(mut self) -> Result<Finished> {
        if self.hf.envelope.is_complete() {
            self.remove()?;
            return Ok(Finished::Removed);
        }
        if self.journal_on_disk || self.dirty {
            self.rewrite()?;
        }
        Ok(Finished::Kept)
    }

    /// Removes a message whose every recipient was delivered in this
    /// attempt, without recording the outcomes and without syncing the
    /// directory. For deliveries that are idempotent (Maildir files named
    /// after the ID and recipient, published without replacing): a crash
    /// or power cut that loses the removal brings the message back, and
    /// its next attempt finds each delivery by name instead of making it
    /// again. Saves the journal's flush and the directory's.
    pub fn remove_delivered(self) -> Result<()> {
        self.remove_files(false)
    }

    /// Removes the message whatever its state (`-Mrm`).
    pub fn remove(self) -> Result<()> {
        let sync = self.queue.syncs();
        self.remove_files(sync)
    }

    fn remove_files(self, sync: bool) -> Result<()> {
        let io = self.queue.io();
        let h = self.layout.header(&self.id);
        match io.remove_file(&h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", h, e)),
        }
        if sync {
            let dir = self.layout.input_dir(&self.id);
            io.sync_dir(&dir)
                .map_err(|e| Error::io("fsync directory", &dir, e))?;
        }
        let rest: [PathBuf; 3] = [
            self.layout.data(&self.id),
            self.layout.journal(&self.id),
            self.layout.msglog(&self.id),
        ];
        for p in rest {
            match io.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // The message is gone already; what is left is garbage
                // for clean_garbage, not a failure of the removal.
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Writes the current state as the new `-H` file (atomically replacing
    /// the old one) and drops the journal it now contains.
    fn rewrite(&mut self) -> Result<()> {
        let io = self.queue.io();
        let persist = if self.queue.syncs() {
            Persist::Durable
        } else {
            Persist::Cache
        };
        let bytes = self.hf.to_bytes()?;
        // `<ID>-H.new`: left only by an attempt that crashed while
        // rewriting; we hold the message's lock, so it is ours to replace.
        let tmp = self.layout.rewrite(&self.id);
        let h = self.layout.header(&self.id);
        replace_file(io, &h, &tmp, FILE_MODE, &bytes, persist, |_| Ok(()))
            .map_err(|e| Error::io("rewrite", h, e))?;
        // Only now is the journal's content durable elsewhere.
        self.journal = None;
        self.dirty = false;
        if self.journal_on_disk {
            let j = self.layout.journal(&self.id);
            match io.remove_file(&j) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", j, e)),
            }
            self.journal_on_disk = false;
        }
        self.hf.header_size = self.hf.headers.iter().map(|h| h.text.len() as u64).sum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_file::Envelope;
    use crate::queue::QueueOptions;
    use durable::Durability;
    use durable::sim::{Op, Recorder};
    use std::sync::Arc;

    fn queue(dir: &std::path::Path) -> Queue {
        Queue::open(
            dir,
            QueueOptions {
                durability: Durability::Strict,
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn enter(q: &Queue) -> MessageId {
        let env = Envelope::new("a@x", &["r0@x", "r1@x", "r2@x"]);
        q.enter(&env, &[], b"body\n").unwrap()
    }

    #[test]
    fn one_holder_at_a_time_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path());
        let id = enter(&q);
        let d = q.begin_delivery(&id).unwrap();
        let q2 = q.clone();
        let other = std::thread::spawn(move || q2.begin_delivery(&id).map(|_| ()));
        assert!(matches!(other.join().unwrap(), Err(Error::Locked { .. })));
        assert!(matches!(q.remove(&id), Err(Error::Locked { .. })));
        drop(d);
        assert!(q.begin_delivery(&id).is_ok());
    }

    #[test]
    fn outcomes_survive_a_dropped_attempt_and_merge_on_finish() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path());
        let id = enter(&q);
        let mut d = q.begin_delivery(&id).unwrap();
        assert_eq!(d.body().unwrap().read_all().unwrap(), b"body\n");
        d.start(0).unwrap();
        d.record(0, RcptOutcome::Delivered).unwrap();
        d.start(1).unwrap();
        // The process "dies" here: recipient 1 is in flight.
        drop(d);
        assert!(q.layout().journal(&id).exists());
        let e = q.read(&id).unwrap().envelope;
        assert!(matches!(e.recipients[0].state, RcptState::Delivered { .. }));
        assert!(matches!(e.recipients[1].state, RcptState::InFlight { .. }));

        let mut d = q.begin_delivery(&id).unwrap();
        assert_eq!(d.in_flight(), vec![1]);
        d.record_all(&[
            (
                1,
                RcptOutcome::Failed {
                    why: Diagnosis::text("550 no such user"),
                },
            ),
            (
                2,
                RcptOutcome::Deferred {
                    until: 4_000_000_000,
                    why: Diagnosis::text("451 later"),
                },
            ),
        ])
        .unwrap();
        assert!(matches!(
            d.record(3, RcptOutcome::Delivered),
            Err(Error::NoRecipient { count: 3, .. })
        ));
        assert_eq!(d.finish().unwrap(), Finished::Kept);
        // Merged into -H, journal gone.
        assert!(!q.layout().journal(&id).exists());
        let raw = String::from_utf8(q.header_file_bytes(&id).unwrap()).unwrap();
        assert!(raw.contains("-rcpt_state 1 failed "), "{raw}");
        assert!(raw.contains("-rcpt_state 2 deferred "), "{raw}");
        // Exim's non-recipients tree of the done addresses.
        assert!(raw.contains("\nYN r1@x\nNN r0@x\n3\n"), "{raw}");
        // The first failure is kept across deferrals (retry rules count
        // from it): set it far back, and see it survive the next one.
        let first = raw
            .lines()
            .find_map(|l| l.strip_prefix("-rcpt_first 2 "))
            .expect("-rcpt_first written");
        let raw = raw.replace(&format!("-rcpt_first 2 {first}\n"), "-rcpt_first 2 1000\n");
        std::fs::write(q.layout().header(&id), raw).unwrap();

        let mut d = q.begin_delivery(&id).unwrap();
        d.record(
            2,
            RcptOutcome::Deferred {
                until: 4_000_000_100,
                why: Diagnosis::text("451 again"),
            },
        )
        .unwrap();
        assert!(matches!(
            d.envelope().recipients[2].state,
            RcptState::Deferred {
                attempts: 2,
                first: 1000,
                ..
            }
        ));
        d.record(2, RcptOutcome::Delivered).unwrap();
        // The failed recipient owes its report: the message stays.
        assert!(d.envelope().recipients[1].owes_report());
        assert!(!d.envelope().is_complete());
        d.record_reports(&[(1, Report::Making("1xZGKj-00028r-0y".into()))])
            .unwrap();
        assert!(!d.envelope().is_complete());
        d.record_reports(&[(1, Report::Made("1xZGKj-00028r-0y".into()))])
            .unwrap();
        assert_eq!(d.finish().unwrap(), Finished::Removed);
        assert!(matches!(q.read(&id), Err(Error::NotFound { .. })));
        assert!(
            q.clean_garbage(std::time::Duration::ZERO)
                .unwrap()
                .is_empty()
        );
    }

    /// A strict queue whose I/O a recorder sees, for power-cut replays.
    fn recorded_queue(dir: &std::path::Path) -> (Arc<Recorder>, Queue) {
        let rec = Arc::new(Recorder::new());
        let q = Queue::open_with_io(
            dir,
            QueueOptions {
                durability: Durability::Strict,
                ..Default::default()
            },
            rec.clone(),
        )
        .unwrap();
        (rec, q)
    }

    #[test]
    fn acknowledged_records_survive_every_power_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, q) = recorded_queue(dir.path());
        let id = enter(&q);
        let mut d = q.begin_delivery(&id).unwrap();
        for i in 0..3 {
            d.record(i, RcptOutcome::Delivered).unwrap();
            rec.mark(format!("ack {i}"));
        }
        let j = q.layout().journal(&id);
        for cut in rec.cut_points() {
            let pc = rec.power_cut(cut);
            let acked = pc.marks.iter().filter(|m| m.starts_with("ack ")).count();
            if acked == 0 {
                continue;
            }
            let img =
                pc.files.get(&j).copied().unwrap_or_else(|| {
                    panic!("cut {cut}: {acked} records acknowledged, no journal")
                });
            // Each record has the same length here: what survives holds
            // at least the acknowledged ones.
            let one = Record::state(0, RcptState::Delivered { at: now() })
                .encode()
                .len() as u64;
            assert!(img.durable >= acked as u64 * one, "cut {cut}: {img:?}");
        }
    }

    /// The three steps of a failure report (intent `b`, the report
    /// queued, `B`) under every simulated power cut: a report that
    /// survives has its intent surviving too (recovery then finds it by ID
    /// and never makes a second), and an end (`B`) that survives has its
    /// report surviving (never lost). With no `b`, recovery makes one.
    #[test]
    fn failure_reports_are_neither_lost_nor_doubled_by_power_cuts() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, q) = recorded_queue(dir.path());
        let id = enter(&q);
        let mut d = q.begin_delivery(&id).unwrap();
        d.record(
            0,
            RcptOutcome::Failed {
                why: Diagnosis::text("550 no such user"),
            },
        )
        .unwrap();
        rec.mark("failed");
        let mut draft = q.draft().unwrap();
        let report = draft.id();
        d.record_reports(&[(0, Report::Making(report.to_string()))])
            .unwrap();
        rec.mark("intent");
        draft.write(b"the report\n").unwrap();
        let staged = draft
            .finish(
                &Envelope::new("", &["a@x"]),
                &[crate::Header::new("Subject: r\n")],
            )
            .unwrap();
        q.commit(staged).unwrap();
        rec.mark("queued");
        d.record_reports(&[(0, Report::Made(report.to_string()))])
            .unwrap();
        rec.mark("made");

        // Where each record ends in the journal.
        let j = q.layout().journal(&id);
        let text = std::fs::read(&j).unwrap();
        let mut ends = Vec::new();
        let mut at = 0u64;
        for line in text.split_inclusive(|&b| b == b'\n') {
            at += line.len() as u64;
            ends.push(at);
        }
        assert_eq!(ends.len(), 3, "failed, b, B");
        let (b_end, big_b_end) = (ends[1], ends[2]);
        let h = q.layout().header(&report);
        let mut cuts = 0;
        for cut in rec.cut_points() {
            let pc = rec.power_cut(cut);
            let journal = pc.files.get(&j).map_or(0, |i| i.durable);
            let queued = pc
                .files
                .get(&h)
                .is_some_and(|i| i.is_whole() && i.durable > 0);
            let has = |m: &str| pc.marks.iter().any(|x| x == m);
            // What was acknowledged survives.
            if has("intent") {
                assert!(journal >= b_end, "cut {cut}: intent acknowledged, lost");
            }
            if has("queued") {
                assert!(queued, "cut {cut}: report acknowledged, lost");
            }
            // A report on disk implies its intent on disk: never twice.
            if queued {
                assert!(journal >= b_end, "cut {cut}: a report without its intent");
            }
            // An end on disk implies its report on disk: never lost.
            if journal >= big_b_end {
                assert!(queued, "cut {cut}: B without its report");
            }
            cuts += 1;
        }
        assert!(cuts > 5, "{cuts} cut points");
    }

    #[test]
    fn failed_journal_sync_is_a_temporary_error() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, q) = recorded_queue(dir.path());
        let id = enter(&q);
        // Entering took two data syncs; the journal's is the third.
        rec.fail(Op::SyncData, 2);
        let mut d = q.begin_delivery(&id).unwrap();
        let e = d.record(0, RcptOutcome::Delivered).unwrap_err();
        assert!(e.is_temporary(), "{e}");
        assert_eq!(d.envelope().recipients[0].state, RcptState::Pending);
        d.record(0, RcptOutcome::Delivered).unwrap();
    }
}
