//! Local delivery of queued messages: route each due recipient, write
//! Maildir files through the committer the spool shares (so deliveries of
//! many messages share flushes), append to mboxes, record each outcome in
//! the message's journal, log as Exim does, and remove the message only
//! when every recipient's delivery is durable.
//!
//! Exactly once across crashes: a recipient's Maildir file is named after
//! the message ID and recipient number (`<ID>.<n>`) and published without
//! ever replacing a file. Any attempt but the first one right after arrival
//! looks for that name in `new/` and `cur/` before delivering, so a
//! delivery that landed before a crash is recorded, not made again. That is
//! why a message delivered in full at its first attempt needs no journal
//! and no flush of its removal: a removal lost to a power cut only brings
//! back a message whose deliveries are all found by name.

use std::io::Read;
use std::sync::Arc;

use crossbeam::channel::{self, Receiver, Sender};
use mailstore::maildir::{DeliverOptions, Maildir, QuotaVerdict};
use mailstore::mbox::{AppendOptions, Appender};
use spool::{Delivery, Finished, MessageId, Outcome, Queue, RcptState};

use crate::clock;
use crate::config::Config;
use crate::log::{Address, Deferred, Delivered, Event, Failed, Kind, Logs, UNKNOWN_ERRNO};
use crate::retry::Schedule;
use crate::router::{Destination, Routed, Routing, TransportDriver};

/// How an attempt on one message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Every recipient is done: the message left the queue.
    Completed,
    /// Some recipients remain (deferred), or the message was frozen.
    Kept,
    /// Nothing was tried: locked by another runner, frozen, not due, gone.
    Skipped,
}

/// Delivers queued messages.
pub struct Deliverer {
    cfg: Arc<Config>,
    routing: Routing,
    queue: Queue,
    logs: Arc<Logs>,
    schedule: Schedule,
}

/// What happened to one destination of a recipient.
enum DestResult {
    Delivered,
    Deferred(String),
    Failed(String),
}

impl Deliverer {
    pub fn new(cfg: Arc<Config>, routing: Routing, queue: Queue, logs: Arc<Logs>) -> Deliverer {
        // The retry rules were parsed and checked when the configuration
        // was loaded.
        let schedule = cfg.queue.retry.clone();
        Deliverer {
            cfg,
            routing,
            queue,
            logs,
            schedule,
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Removes spool garbage older than `queue.garbage_after` (leftovers of
    /// crashed entries and removals), logging each file removed.
    pub fn clean_garbage(&self) {
        match self.queue.clean_garbage(self.cfg.queue.garbage_after) {
            Ok(removed) => {
                for p in removed {
                    self.logs.main(&Event::other(
                        None,
                        format!("removed spool garbage {}", p.display()),
                    ));
                }
            }
            Err(e) => self.logs.panic(&format!("cleaning spool garbage: {e}")),
        }
    }

    /// Tries the due recipients of message `id` (all of them with `force`,
    /// also when frozen, as `-qff`/`-M`). `arrival` says this is the attempt
    /// the accept path starts right after queueing: no earlier attempt can
    /// have delivered anything, so Maildirs need not be searched.
    pub fn attempt(&self, id: &MessageId, force: bool, arrival: bool) -> Attempt {
        self.attempt_many(&[(*id, force, arrival)])
            .pop()
            .unwrap_or(Attempt::Skipped)
    }

    /// [`Deliverer::attempt`] for several messages at once: all their
    /// Maildir files are handed to the committer together, so that they
    /// share one flush however few delivery threads there are.
    pub fn attempt_many(&self, batch: &[Job]) -> Vec<Attempt> {
        let mut results: Vec<Option<Attempt>> = Vec::with_capacity(batch.len());
        let mut prepared: Vec<(usize, Box<Prepared>)> = Vec::new();
        let mut jobs = Vec::new();
        for (k, (id, force, arrival)) in batch.iter().enumerate() {
            match self.prepare(id, *force, *arrival) {
                Step::Done(a) => results.push(Some(a)),
                Step::Ready(mut p) => {
                    jobs.append(&mut p.jobs);
                    results.push(None);
                    prepared.push((k, p));
                }
            }
        }
        let mut tickets = self.queue.committer().submit_all(jobs).into_iter();
        for (k, p) in prepared {
            let mine: Vec<durable::Ticket> = tickets.by_ref().take(p.job_slots.len()).collect();
            results[k] = Some(self.complete(p, mine));
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Attempt::Skipped))
            .collect()
    }

    /// Locks, routes and stages one message (nothing durable yet).
    fn prepare(&self, id: &MessageId, force: bool, arrival: bool) -> Step {
        let mut d = match self.queue.begin_delivery(id) {
            Ok(d) => d,
            Err(spool::Error::Locked { .. } | spool::Error::NotFound { .. }) => {
                return Step::Done(Attempt::Skipped);
            }
            Err(e) => {
                self.logs
                    .panic(&format!("{id} cannot be read for delivery: {e}"));
                return Step::Done(Attempt::Skipped);
            }
        };
        let env = d.envelope().clone();
        if env.frozen.is_some() && !force {
            return Step::Done(Attempt::Skipped);
        }
        let now = clock::now() as u64;
        let due: Vec<usize> = env
            .undelivered()
            .filter(|(_, r)| {
                force || !matches!(r.state, RcptState::Deferred { until, .. } if until > now)
            })
            .map(|(i, _)| i)
            .collect();
        if due.is_empty() {
            // Nothing left to do: finish removes a complete message.
            return Step::Done(self.finish(d, id));
        }
        // A message that may have been tried before (a queue run, a restart
        // after a crash or power cut): each Maildir delivery is looked for by
        // name first, so one that landed is not made twice.
        let fresh = arrival
            && d.in_flight().is_empty()
            && env.recipients.iter().all(|r| r.state == RcptState::Pending);
        let message = match self.message_bytes(&d) {
            Ok(m) => m,
            Err(e) => {
                self.logs.panic(&format!("{id} spool file unreadable: {e}"));
                return Step::Done(Attempt::Skipped);
            }
        };

        // Route first, so that the intents cover only real attempts.
        let lines: Vec<Event> = Vec::new();
        let mut plans: Vec<(usize, Result<Vec<Destination>, Routed>)> = Vec::new();
        for &i in &due {
            let addr = &env.recipients[i].address;
            let routed = match self.routing.route(&self.cfg, addr) {
                Routed::Deliver(dests) => Ok(dests),
                other => Err(other),
            };
            plans.push((i, routed));
        }
        // Maildir deliveries are found again by name; an mbox append is
        // not, so its start is recorded: after a crash the recipient shows
        // as in flight and the append is made again (mbox delivery is at
        // least once, Maildir delivery exactly once).
        let any_mbox = plans.iter().any(|(_, p)| {
            p.as_ref()
                .is_ok_and(|ds| ds.iter().any(|d| d.driver == TransportDriver::Mbox))
        });
        for (i, plan) in &plans {
            if any_mbox
                && plan.is_ok()
                && let Err(e) = d.start(*i)
            {
                self.logs
                    .panic(&format!("{id} cannot record a delivery intent: {e}"));
                return Step::Done(Attempt::Skipped);
            }
        }

        // Stage every Maildir file of this message and commit them together.
        let mut outcomes: Vec<(usize, Vec<(Destination, DestResult)>)> = Vec::new();
        let mut jobs = Vec::new();
        let mut job_slots: Vec<(usize, usize, Maildir, u64)> = Vec::new(); // (plan, dest, maildir, size)
        for (pi, (i, plan)) in plans.iter().enumerate() {
            let mut results = Vec::new();
            match plan {
                Err(Routed::Unrouteable { reason, .. }) => {
                    results.push((
                        self.unrouted(&env.recipients[*i].address),
                        DestResult::Failed(reason.clone()),
                    ));
                }
                Err(Routed::Defer { reason, .. }) => {
                    results.push((
                        self.unrouted(&env.recipients[*i].address),
                        DestResult::Deferred(reason.clone()),
                    ));
                }
                Err(Routed::Deliver(_)) => {}
                Ok(dests) => {
                    for (k, dest) in dests.iter().enumerate() {
                        let base = if dests.len() == 1 {
                            id.delivery_name(*i)
                        } else {
                            format!("{}_{k}", id.delivery_name(*i))
                        };
                        let r = match dest.driver {
                            TransportDriver::Mbox => self.append_mbox(dest, &env.sender, &message),
                            TransportDriver::Maildir => {
                                match self.stage_maildir(dest, &base, !fresh, &message) {
                                    Ok(Staged::Job(job, md, size)) => {
                                        job_slots.push((pi, results.len(), md, size));
                                        jobs.push(job);
                                        DestResult::Delivered // provisional: replaced below
                                    }
                                    Ok(Staged::Already) | Ok(Staged::Discarded) => {
                                        DestResult::Delivered
                                    }
                                    Err(r) => r,
                                }
                            }
                        };
                        results.push((dest.clone(), r));
                    }
                }
            }
            outcomes.push((*i, results));
        }
        Step::Ready(Box::new(Prepared {
            d,
            id: *id,
            env,
            now,
            due,
            any_mbox,
            lines,
            outcomes,
            jobs,
            job_slots,
        }))
    }

    /// Takes the commit results of a prepared message, records and logs the
    /// outcomes, and removes the message once every recipient is done.
    fn complete(&self, p: Box<Prepared>, tickets: Vec<durable::Ticket>) -> Attempt {
        let Prepared {
            mut d,
            id,
            env,
            now,
            due,
            any_mbox,
            mut lines,
            mut outcomes,
            job_slots,
            ..
        } = *p;
        let id = &id;
        for ((pi, ri, md, size), ticket) in job_slots.into_iter().zip(tickets) {
            let r = match ticket.wait() {
                Ok(()) => {
                    md.record_delivery(size);
                    DestResult::Delivered
                }
                // Our own name exists: an earlier attempt landed it.
                Err(durable::CommitError::Exists { .. }) => DestResult::Delivered,
                Err(e) => DestResult::Deferred(e.to_string()),
            };
            outcomes[pi].1[ri].1 = r;
        }

        // Record and log.
        let mut records = Vec::new();
        let mut any_failed = false;
        for (i, results) in &outcomes {
            let rcpt = &env.recipients[*i];
            let mut outcome = Outcome::Delivered;
            for (dest, r) in results {
                match r {
                    DestResult::Delivered => {
                        lines.push(Event::new(
                            Some(*id),
                            Kind::Delivered(Delivered {
                                address: Address {
                                    original: Some(rcpt.address.clone()),
                                    ..Address::new(local_part(&dest.address))
                                },
                                router: driver_name(&dest.router),
                                transport: driver_name(&dest.transport),
                                ..Delivered::default()
                            }),
                        ));
                    }
                    DestResult::Deferred(why) => {
                        // Retry times count from the arrival (Exim counts
                        // from the first failure, which is close after).
                        let first = env.arrival.secs;
                        let attempts = match &rcpt.state {
                            RcptState::Deferred { attempts, .. } => *attempts,
                            _ => 0,
                        };
                        match self.schedule.next(first, now, attempts) {
                            Some(until) => {
                                lines.push(Event::new(
                                    Some(*id),
                                    Kind::Deferred(Deferred {
                                        address: Address::new(rcpt.address.clone()),
                                        router: driver_name(&dest.router),
                                        transport: driver_name(&dest.transport),
                                        errno: UNKNOWN_ERRNO,
                                        message: Some(why.clone()),
                                        ..Deferred::default()
                                    }),
                                ));
                                if !matches!(outcome, Outcome::Failed { .. }) {
                                    outcome = Outcome::Deferred {
                                        until,
                                        reason: why.clone(),
                                    };
                                }
                            }
                            None => {
                                lines.push(failed(
                                    id,
                                    &rcpt.address,
                                    dest,
                                    format!("retry timeout exceeded: {why}"),
                                ));
                                outcome = Outcome::Failed {
                                    reason: format!("retry timeout exceeded: {why}"),
                                };
                            }
                        }
                    }
                    DestResult::Failed(why) => {
                        lines.push(failed(id, &rcpt.address, dest, why.clone()));
                        outcome = Outcome::Failed {
                            reason: why.clone(),
                        };
                    }
                }
            }
            any_failed |= matches!(outcome, Outcome::Failed { .. });
            records.push((*i, outcome));
        }
        // Every recipient delivered, to Maildirs only: nothing to record.
        // The message is removed without a flush; if a crash or power cut
        // loses that removal, the next attempt finds each file by name.
        let all_delivered = !any_mbox
            && records.iter().all(|(_, o)| *o == Outcome::Delivered)
            && env.undelivered().all(|(i, _)| due.contains(&i));
        if all_delivered {
            for l in &lines {
                self.logs.main(l);
            }
            return match d.remove_delivered() {
                Ok(()) => {
                    self.logs.main(&Event::completed(*id));
                    Attempt::Completed
                }
                Err(e) => {
                    self.logs
                        .panic(&format!("{id} cannot be removed after delivery: {e}"));
                    Attempt::Kept
                }
            };
        }
        for l in &lines {
            self.log(id, l);
        }
        if let Err(e) = d.record_all(&records) {
            self.logs
                .panic(&format!("{id} cannot record delivery outcomes: {e}"));
            return Attempt::Kept;
        }
        if any_failed {
            // No bounce messages yet: a permanent failure freezes the
            // message so that nothing accepted is removed unreported.
            if let Err(e) = d.freeze() {
                self.logs.panic(&format!("{id} cannot be frozen: {e}"));
            }
            self.log(
                id,
                &Event::new(
                    Some(*id),
                    Kind::Frozen {
                        reason: Some("delivery error message not sent".into()),
                    },
                ),
            );
            return Attempt::Kept;
        }
        self.finish(d, id)
    }

    fn finish(&self, d: Delivery, id: &MessageId) -> Attempt {
        match d.finish() {
            Ok(Finished::Removed) => {
                self.logs.main(&Event::completed(*id));
                Attempt::Completed
            }
            Ok(Finished::Kept) => Attempt::Kept,
            Err(e) => {
                self.logs.panic(&format!("{id} cannot be finished: {e}"));
                Attempt::Kept
            }
        }
    }

    fn log(&self, id: &MessageId, event: &Event) {
        self.logs.main(event);
        let _ = self.queue.append_msglog(id, &crate::log::stamped(event));
    }

    fn unrouted(&self, address: &str) -> Destination {
        Destination {
            address: address.to_string(),
            parent: None,
            router: "-".into(),
            transport: "-".into(),
            driver: TransportDriver::Maildir,
            path: Default::default(),
            owner: None,
        }
    }

    /// The message as stored: its headers (deleted ones left out), the
    /// blank line, the body.
    fn message_bytes(&self, d: &Delivery) -> Result<Vec<u8>, spool::Error> {
        let hf = d.header_file();
        let mut out = Vec::with_capacity((hf.size() + 1) as usize);
        for h in hf.headers.iter().filter(|h| !h.is_deleted()) {
            out.extend_from_slice(&h.text);
        }
        out.push(b'\n');
        let mut body = d.body()?;
        body.read_to_end(&mut out).map_err(|e| spool::Error::Io {
            op: "read",
            path: body.path().to_path_buf(),
            source: e,
        })?;
        Ok(out)
    }

    fn stage_maildir(
        &self,
        dest: &Destination,
        base: &str,
        in_flight: bool,
        message: &[u8],
    ) -> Result<Staged, DestResult> {
        let md = Maildir::create_owned(&dest.path, dest.owner).map_err(classify)?;
        if in_flight && md.find(base).map_err(classify)?.is_some() {
            return Ok(Staged::Already);
        }
        let size = message.len() as u64;
        match md
            .check_quota(size, self.cfg.over_quota)
            .map_err(classify)?
        {
            QuotaVerdict::Discard => return Ok(Staged::Discarded),
            QuotaVerdict::Fits { .. } => {}
        }
        let opts = DeliverOptions {
            host: self.cfg.primary_hostname.clone(),
            base_name: Some(base.to_string()),
            owner: dest.owner,
            allow_empty: true,
            ..Default::default()
        };
        let staged = md
            .stage(self.queue.committer().io(), &mut &message[..], &opts)
            .map_err(classify)?;
        Ok(Staged::Job(staged.into_job(), md, size))
    }

    fn append_mbox(&self, dest: &Destination, sender: &str, message: &[u8]) -> DestResult {
        let opts = AppendOptions {
            variant: self.cfg.mbox.format,
            locks: self.cfg.mbox.lock_options(true),
            owner: dest.owner,
            ..AppendOptions::default()
        };
        match Appender::new(opts).append(&dest.path, sender, std::time::SystemTime::now(), message)
        {
            Ok(done) => {
                // A stale lock taken over (naming the dead holder), a
                // damaged mbox end repaired: worth a line in mainlog.
                for n in &done.notices {
                    self.logs.main(&Event::other(None, n.as_str()));
                }
                DestResult::Delivered
            }
            Err(e) => classify(e),
        }
    }
}

/// A message locked, routed and staged, waiting for its commit.
struct Prepared {
    d: Delivery,
    id: MessageId,
    env: spool::Envelope,
    now: u64,
    due: Vec<usize>,
    any_mbox: bool,
    lines: Vec<Event>,
    outcomes: Vec<(usize, Vec<(Destination, DestResult)>)>,
    jobs: Vec<durable::Job>,
    /// (recipient plan, destination, Maildir, size) of each job, in order.
    job_slots: Vec<(usize, usize, Maildir, u64)>,
}

enum Step {
    Done(Attempt),
    Ready(Box<Prepared>),
}

enum Staged {
    Job(durable::Job, Maildir, u64),
    /// Found in the Maildir from an attempt that crashed before recording.
    Already,
    /// Over quota with `over_quota = "discard"`.
    Discarded,
}

fn classify(e: mailstore::Error) -> DestResult {
    if e.is_temporary() {
        DestResult::Deferred(e.to_string())
    } else {
        DestResult::Failed(e.to_string())
    }
}

fn local_part(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(l, _)| l)
}

/// A message to try, whether to force it, and whether it just arrived.
pub type Job = (MessageId, bool, bool);

/// Most messages one delivery thread takes into one flush.
const WORKER_BATCH: usize = 64;

/// A pool of delivery threads fed with message IDs.
pub struct Workers {
    tx: std::sync::Mutex<Option<Sender<Job>>>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Workers {
    /// Starts `n` threads delivering with `deliverer`.
    pub fn start(deliverer: Arc<Deliverer>, n: usize) -> Workers {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = channel::unbounded();
        let mut threads = Vec::new();
        for k in 0..n.max(1) {
            let (rx, d) = (rx.clone(), deliverer.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("delivery-{k}"))
                .spawn(move || {
                    while let Ok(first) = rx.recv() {
                        // Whatever else is waiting goes into the same
                        // flush (bounded, so that one thread does not hog
                        // a long queue run).
                        let mut batch = vec![first];
                        while batch.len() < WORKER_BATCH {
                            match rx.try_recv() {
                                Ok(j) => batch.push(j),
                                Err(_) => break,
                            }
                        }
                        d.attempt_many(&batch);
                    }
                });
            // A thread that cannot start leaves its messages to the others
            // (there is always at least the queue runner to retry them).
            if let Ok(t) = spawned {
                threads.push(t);
            }
        }
        Workers {
            tx: std::sync::Mutex::new(Some(tx)),
            threads: std::sync::Mutex::new(threads),
        }
    }

    /// Queues message `id` for an attempt; `arrival` for the first one,
    /// right after the message was queued.
    pub fn dispatch(&self, id: MessageId, force: bool, arrival: bool) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send((id, force, arrival));
        }
    }

    /// Lets the threads finish what was dispatched, then waits for them.
    pub fn finish(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// A queue run: every queued message (in arrival order) gets an attempt,
/// `threads` at a time. Returns (completed, kept, skipped).
pub fn queue_run(deliverer: &Deliverer, force: bool, threads: usize) -> (usize, usize, usize) {
    deliverer.clean_garbage();
    let ids = match deliverer.queue.ids() {
        Ok(ids) => ids,
        Err(e) => {
            deliverer.logs.panic(&format!("listing the queue: {e}"));
            return (0, 0, 0);
        }
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let counts = std::sync::Mutex::new((0usize, 0usize, 0usize));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(id) = ids.get(i) else { break };
                    let r = deliverer.attempt(id, force, false);
                    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
                    match r {
                        Attempt::Completed => c.0 += 1,
                        Attempt::Kept => c.1 += 1,
                        Attempt::Skipped => c.2 += 1,
                    }
                }
            });
        }
    });
    counts.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// A router or transport name for a log line: `-` (no router, an
/// unrouteable address) is left out, as Exim leaves out a missing one.
fn driver_name(name: &str) -> Option<String> {
    (name != "-").then(|| name.to_string())
}

/// The `**` event for a recipient that failed at `dest`.
fn failed(id: &MessageId, address: &str, dest: &Destination, why: String) -> Event {
    Event::new(
        Some(*id),
        Kind::Failed(Failed {
            address: Address::new(address),
            router: driver_name(&dest.router),
            transport: driver_name(&dest.transport),
            message: Some(why),
            ..Failed::default()
        }),
    )
}
