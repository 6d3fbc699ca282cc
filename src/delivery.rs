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
use smtp::Status;
use spool::{Finished, LockedMessage, MessageId, Queue, RcptState};

use crate::bounce;
use crate::clock;
use crate::config::Config;
use crate::log::{Address, Deferred, Delivered, Event, Failed, Kind, Logs, UNKNOWN_ERRNO};
use crate::remote::{self, Remote};
use crate::router::{Destination, Routed, TransportDriver};
use crate::transport::maildir::{MaildirTransport, StagedFile};
use crate::transport::mbox::MboxTransport;
use crate::transport::{Outcome, Recovery, Request, Started, Transport};

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
    /// The configuration, routing and retry rules included; replaced as a
    /// whole when the daemon reloads it ([`Deliverer::reconfigure`]).
    cfg: std::sync::RwLock<Arc<Config>>,
    queue: Queue,
    logs: Arc<Logs>,
    /// The local transports, made again from the configuration on reload
    /// (the Maildir transport keeping what it knows of Maildirs).
    maildir: std::sync::RwLock<Arc<MaildirTransport>>,
    mbox: std::sync::RwLock<Arc<MboxTransport>>,
    /// The smtp transport's engine (its threads start with its first job).
    remote: Remote,
    /// Messages whose remote deliveries are under way, for [`Deliverer::drain`].
    in_flight: std::sync::Mutex<usize>,
    drained: std::sync::Condvar,
    /// Where failure reports made during an attempt go for their own first
    /// attempt: the delivery threads' queue while they run
    /// ([`Workers::start`]), else a list for [`Deliverer::deliver_made`].
    dispatcher: std::sync::Mutex<Option<Sender<Dispatch>>>,
    made: std::sync::Mutex<Vec<MessageId>>,
}

/// The Maildir transport of `cfg`, with what is known of Maildirs.
fn maildir_transport(
    cfg: &Config,
    known: crate::transport::maildir::KnownMaildirs,
) -> MaildirTransport {
    MaildirTransport {
        host: cfg.primary_hostname.clone(),
        over_quota: cfg.over_quota,
        max_size: None,
        known,
    }
}

fn mbox_transport(cfg: &Config) -> MboxTransport {
    MboxTransport {
        variant: cfg.mbox.format,
        locks: cfg.mbox.lock_options(true),
    }
}

/// One due recipient of a message being delivered, and how far it got.
struct RcptAttempt {
    index: usize,
    address: String,
    routing: RcptRouting,
}

enum RcptRouting {
    /// No router took the address, or routing was deferred: the outcome is
    /// the router's.
    Unrouted(Outcome),
    /// One delivery per destination (several after a redirect to a list).
    Routed(Vec<DestAttempt>),
}

/// A delivery to one destination.
struct DestAttempt {
    dest: Destination,
    progress: Progress,
}

enum Progress {
    Done(Outcome),
    /// Settled by a remote host: the outcome and what its log line shows.
    Remote(Outcome, remote::Detail),
    /// Handed to the remote engine in a job; settled by its callback.
    Sent,
    /// A file handed to the committer; its ticket says when it is durable.
    Staged {
        file: StagedFile,
        ticket: Option<durable::Ticket>,
    },
}

/// A message locked, routed and started, waiting for its commit.
struct Prepared {
    d: LockedMessage,
    id: MessageId,
    env: spool::Envelope,
    now: u64,
    rcpts: Vec<RcptAttempt>,
    /// Every delivery of this attempt can be found again by name, or
    /// went to a remote host: a message delivered in full needs no journal
    /// and no synced removal (a removal lost to a power cut brings back a
    /// message whose Maildir files are found by name, or which is sent
    /// again: never a loss).
    found_by_name: bool,
    /// Jobs for the remote engine, submitted once local files are staged.
    jobs: Vec<remote::Job>,
    /// Commands to run, each on a thread of its own, like remote jobs.
    pipe_jobs: Vec<PipeJob>,
    /// Routing found only this host for a recipient: freeze, saying why.
    freeze: Option<String>,
}

impl Prepared {
    /// The staged deliveries, always in the same order (jobs are handed to
    /// the committer and tickets handed back in this order).
    fn staged(&mut self) -> impl Iterator<Item = (&mut StagedFile, &mut Option<durable::Ticket>)> {
        self.rcpts
            .iter_mut()
            .filter_map(|r| match &mut r.routing {
                RcptRouting::Routed(dests) => Some(dests),
                RcptRouting::Unrouted(_) => None,
            })
            .flatten()
            .filter_map(|d| match &mut d.progress {
                Progress::Staged { file, ticket } => Some((file, ticket)),
                _ => None,
            })
    }
}

enum Step {
    Done(Attempt),
    Ready(Box<Prepared>),
}

/// How an attempt ends, for its caller.
pub enum Pending {
    Now(Attempt),
    /// Remote deliveries are under way; the attempt's end is sent here.
    Later(Receiver<Attempt>),
}

/// One pipe delivery: a recipient's command and its message.
struct PipeJob {
    index: usize,
    /// The address the destination carries (its result is matched on it).
    address: String,
    settings: Arc<crate::transport::pipe::PipeSettings>,
    run: crate::transport::pipe::PipeRun,
    data: Arc<Vec<u8>>,
}

/// A message whose remote jobs are out.
struct InFlight {
    prepared: std::sync::Mutex<Option<Box<Prepared>>>,
    /// Jobs not yet settled.
    remaining: std::sync::atomic::AtomicUsize,
    done: Sender<Attempt>,
}

impl Deliverer {
    pub fn new(cfg: Arc<Config>, queue: Queue, logs: Arc<Logs>) -> Deliverer {
        // The retry rules were parsed and checked when the configuration
        // was loaded.
        let schedule = cfg.queue.retry.clone();
        let maildir = maildir_transport(&cfg, Default::default());
        let mbox = mbox_transport(&cfg);
        let remote = Remote::new(
            cfg.remote_max_connections,
            Some(&queue.root().join(crate::cmd::queue::HINTS_FILE)),
            schedule.clone(),
            Some({
                let logs = logs.clone();
                Arc::new(move |text: String| logs.main(&Event::other(None, text)))
            }),
        );
        Deliverer {
            cfg: std::sync::RwLock::new(cfg),
            queue,
            logs,
            maildir: std::sync::RwLock::new(Arc::new(maildir)),
            mbox: std::sync::RwLock::new(Arc::new(mbox)),
            remote,
            in_flight: std::sync::Mutex::new(0),
            drained: std::sync::Condvar::new(),
            dispatcher: std::sync::Mutex::new(None),
            made: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The configuration now.
    fn cfg(&self) -> Arc<Config> {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes a reloaded configuration for the attempts that start from now
    /// on: routing, retry rules, report settings, the local transports'
    /// settings, the limit on remote connections.
    pub fn reconfigure(&self, cfg: Arc<Config>) {
        let known = self.maildir().known.clone();
        *self.maildir.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(maildir_transport(&cfg, known));
        *self.mbox.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(mbox_transport(&cfg));
        self.remote.set_max_connections(cfg.remote_max_connections);
        *self.cfg.write().unwrap_or_else(|p| p.into_inner()) = cfg;
    }

    /// Where reports made from now on are sent for delivery (None: kept
    /// for [`Deliverer::deliver_made`]).
    fn set_dispatcher(&self, tx: Option<Sender<Dispatch>>) {
        *self.dispatcher.lock().unwrap_or_else(|p| p.into_inner()) = tx;
    }

    /// Hands messages made here (failure reports) to their first attempt.
    fn spawned(&self, ids: Vec<MessageId>) {
        let dispatcher = self.dispatcher.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            let sent = dispatcher.as_ref().is_some_and(|tx| {
                tx.send(Dispatch {
                    id,
                    force: false,
                    arrival: true,
                })
                .is_ok()
            });
            if !sent {
                self.made.lock().unwrap_or_else(|p| p.into_inner()).push(id);
            }
        }
    }

    /// Delivers the reports made by attempts that had no delivery threads
    /// to hand them to (a command line run), and those their failures
    /// make in turn.
    pub fn deliver_made(self: &Arc<Self>) {
        loop {
            let ids = std::mem::take(&mut *self.made.lock().unwrap_or_else(|p| p.into_inner()));
            if ids.is_empty() {
                return;
            }
            for id in ids {
                self.attempt(&id, false, true);
            }
        }
    }

    /// Makes the failure reports `d` owes ([`bounce::settle`]) and starts
    /// their delivery. Returns why the message must be frozen instead, if
    /// it must: failures of a message nobody can be told about.
    fn settle_reports(&self, d: &mut LockedMessage, id: &MessageId) -> Option<String> {
        if !d.envelope().recipients.iter().any(|r| r.owes_report()) {
            return None;
        }
        match bounce::settle(&self.cfg(), &self.queue, &self.logs, d, clock::now()) {
            Ok(settled) => {
                self.spawned(settled.made);
                settled
                    .unreported
                    .then(|| "delivery error message".to_string())
            }
            Err(e) => {
                // Kept, owing: the next attempt makes the report.
                self.logs
                    .panic(&format!("{id} cannot make its failure report: {e}"));
                None
            }
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The Maildir transport now (LMTP and direct delivery write through
    /// the same one).
    pub fn maildir(&self) -> Arc<MaildirTransport> {
        self.maildir
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn mbox(&self) -> Arc<MboxTransport> {
        self.mbox.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The remote engine's settings and the addresses to try, when the
    /// destination's transport is `smtp`.
    fn remote_target(
        &self,
        dest: &Destination,
    ) -> Option<(Arc<remote::Settings>, Vec<remote::Address>)> {
        if dest.driver != TransportDriver::Smtp {
            return None;
        }
        let settings = self.cfg().routing.remote_settings(&dest.transport)?.clone();
        Some((settings, dest.hosts.clone()))
    }

    /// The transport a destination names.
    fn transport(&self, driver: TransportDriver) -> Arc<dyn Transport> {
        match driver {
            TransportDriver::Maildir => self.maildir(),
            // Remote destinations go to the engine before this is asked
            // (`remote_target`); an smtp destination reaching here has no
            // settings, which `Routing::build` rules out.
            TransportDriver::Mbox | TransportDriver::Smtp => self.mbox(),
            TransportDriver::Blackhole => Arc::new(crate::transport::Blackhole),
            TransportDriver::Pipe => Arc::new(crate::transport::PipeMarker),
        }
    }

    /// Removes spool garbage older than `queue.garbage_after` (leftovers of
    /// crashed entries and removals), logging each file removed.
    pub fn clean_garbage(&self) {
        match self.queue.clean_garbage(self.cfg().queue.garbage_after) {
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
    /// have delivered anything, so Maildirs need not be searched. Waits for
    /// remote deliveries to end.
    pub fn attempt(self: &Arc<Self>, id: &MessageId, force: bool, arrival: bool) -> Attempt {
        let dispatch = Dispatch {
            id: *id,
            force,
            arrival,
        };
        match self.attempt_many(&[dispatch]).pop() {
            Some(Pending::Now(a)) => a,
            Some(Pending::Later(rx)) => rx.recv().unwrap_or(Attempt::Kept),
            None => Attempt::Skipped,
        }
    }

    /// [`Deliverer::attempt`] for several messages at once: all their
    /// Maildir files are handed to the committer together, so that they
    /// share one flush however few delivery threads there are. A message
    /// with remote recipients ends later, when the remote engine has
    /// settled them ([`Pending::Later`]).
    pub fn attempt_many(self: &Arc<Self>, batch: &[Dispatch]) -> Vec<Pending> {
        let mut results: Vec<Option<Pending>> = Vec::with_capacity(batch.len());
        let mut prepared: Vec<(usize, Box<Prepared>)> = Vec::new();
        let mut jobs = Vec::new();
        for (k, job) in batch.iter().enumerate() {
            match self.prepare(&job.id, job.force, job.arrival) {
                Step::Done(a) => results.push(Some(Pending::Now(a))),
                Step::Ready(mut p) => {
                    jobs.extend(p.staged().filter_map(|(f, _)| f.take_job()));
                    results.push(None);
                    prepared.push((k, p));
                }
            }
        }
        let mut tickets = self.queue.committer().submit_all(jobs).into_iter();
        for (k, mut p) in prepared {
            for (_, ticket) in p.staged() {
                *ticket = tickets.next();
            }
            results[k] = Some(if p.jobs.is_empty() && p.pipe_jobs.is_empty() {
                Pending::Now(self.complete(p))
            } else {
                Pending::Later(self.send_remote(p))
            });
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Pending::Now(Attempt::Skipped)))
            .collect()
    }

    /// Hands a prepared message's remote jobs to the engine. Each job's
    /// results are written to the message's journal as they come (unsynced:
    /// a kill loses none of them); the last one completes the attempt.
    fn send_remote(self: &Arc<Self>, mut p: Box<Prepared>) -> Receiver<Attempt> {
        let (tx, rx) = channel::bounded(1);
        let jobs = std::mem::take(&mut p.jobs);
        let pipe_jobs = std::mem::take(&mut p.pipe_jobs);
        let shared = Arc::new(InFlight {
            prepared: std::sync::Mutex::new(Some(p)),
            remaining: std::sync::atomic::AtomicUsize::new(jobs.len() + pipe_jobs.len()),
            done: tx,
        });
        *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        // Pipes run outside the delivery threads: a slow command holds
        // only its own thread.
        for job in pipe_jobs {
            let (me, shared) = (self.clone(), shared.clone());
            let run = move || {
                let outcome = crate::transport::pipe::deliver(&job.settings, &job.run, &job.data);
                let result = remote::RcptResult {
                    index: job.index,
                    address: job.address,
                    outcome,
                    detail: remote::Detail::default(),
                };
                me.remote_done(&shared, vec![result]);
            };
            if let Err(e) = std::thread::Builder::new().name("pipe".into()).spawn(run) {
                self.logs
                    .panic(&format!("cannot start a pipe delivery: {e}"));
            }
        }
        for mut job in jobs {
            let (me, shared) = (self.clone(), shared.clone());
            job.done = Box::new(move |results| me.remote_done(&shared, results));
            self.remote.submit(job);
        }
        rx
    }

    /// One remote job's results for an in-flight message.
    fn remote_done(&self, shared: &InFlight, results: Vec<remote::RcptResult>) {
        let mut guard = shared.prepared.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = guard.as_mut() else { return };
        let last = shared
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1;
        // Other jobs of this message are still out: what this one
        // delivered goes to the journal now (write(2), not synced), so that
        // a kill loses at most the transaction under way on each
        // connection. The last job's results are recorded by `complete`,
        // on this thread, before the connection carries another message.
        let delivered: Vec<(usize, spool::RcptOutcome)> = results
            .iter()
            .filter(|r| r.outcome == Outcome::Delivered)
            .map(|r| (r.index, spool::RcptOutcome::Delivered))
            .collect();
        if !last
            && !delivered.is_empty()
            && let Err(e) = p.d.record_unsynced(&delivered)
        {
            self.logs
                .panic(&format!("{} cannot record remote deliveries: {e}", p.id));
        }
        for line in results.iter().flat_map(|r| &r.detail.host_lines) {
            self.log(&p.id, &Event::other(Some(p.id), line.clone()));
        }
        for r in results {
            // The destination the job carried for this recipient.
            if let Some(dest) = p
                .rcpts
                .iter_mut()
                .filter(|rc| rc.index == r.index)
                .filter_map(|rc| match &mut rc.routing {
                    RcptRouting::Routed(dests) => Some(dests),
                    RcptRouting::Unrouted(_) => None,
                })
                .flatten()
                .find(|d| matches!(d.progress, Progress::Sent) && d.dest.address == r.address)
            {
                dest.progress = Progress::Remote(r.outcome, r.detail);
            }
        }
        if last {
            let p = guard.take();
            drop(guard);
            if let Some(p) = p {
                let attempt = self.complete(p);
                let _ = shared.done.try_send(attempt);
            }
            let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.drained.notify_all();
            }
        }
    }

    /// Waits until no message has remote deliveries under way.
    pub fn drain(&self) {
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = self.drained.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Closes the remote connections (QUIT), waiting up to `timeout`: for a
    /// command about to exit, once its deliveries are done.
    pub fn close_remote(&self, timeout: std::time::Duration) {
        self.remote.close(timeout);
    }

    /// Stops starting remote transactions and waits, up to `timeout`, for
    /// those under way. True when none is left.
    pub fn stop_remote(&self, timeout: std::time::Duration) -> bool {
        self.remote.stop();
        let deadline = std::time::Instant::now() + timeout;
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            n = self
                .drained
                .wait_timeout(n, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Locks, routes and starts the deliveries of one message (Maildir
    /// files staged, mbox appends made).
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
        let now = clock::now() as u64;
        let age = now.saturating_sub(d.envelope().arrival.secs);
        if d.envelope().frozen.is_some() {
            let limit = self.cfg().timeout_frozen_after.as_secs();
            if limit > 0 && age >= limit {
                return Step::Done(self.cancel_frozen(d, id));
            }
            if d.envelope().sender.is_empty()
                && age >= self.cfg().ignore_bounce_errors_after.as_secs()
            {
                // A report that could not be delivered gets one more try
                // (Exim's ignore_bounce_errors_after); a failure then
                // discards it (`complete`).
                let failed: Vec<usize> = d
                    .envelope()
                    .recipients
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.owes_report())
                    .map(|(i, _)| i)
                    .collect();
                if let Err(e) = d.reopen(&failed).and_then(|()| d.thaw().map(drop)) {
                    self.logs.panic(&format!("{id} cannot be thawed: {e}"));
                    return Step::Done(Attempt::Skipped);
                }
                self.log(id, &Event::other(Some(*id), "Unfrozen by errmsg timer"));
            } else if !force {
                return Step::Done(Attempt::Skipped);
            }
        }
        let env = d.envelope().clone();
        // One configuration for the whole attempt, even if it is reloaded
        // meanwhile.
        let cfg = self.cfg();
        let due: Vec<usize> = env
            .undelivered()
            .filter(|(_, r)| {
                force || !matches!(r.state, RcptState::Deferred { until, .. } if until > now)
            })
            .map(|(i, _)| i)
            .collect();
        if due.is_empty() {
            // Nothing left to deliver: reports still owed are made (after
            // a crash, or for a message frozen before it could be told),
            // then finish removes a complete message.
            if let Some(reason) = self.settle_reports(&mut d, id) {
                return Step::Done(self.freeze(d, id, reason));
            }
            return Step::Done(self.finish(d, id));
        }
        // A message that may have been tried before (a queue run, a restart
        // after a crash or power cut): a delivery that can be found by name
        // is looked for first, so one that landed is not made twice.
        let fresh = arrival
            && d.in_flight().is_empty()
            && env.recipients.iter().all(|r| r.state == RcptState::Pending);
        let message = match self.message_bytes(&d) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                self.logs.panic(&format!("{id} spool file unreadable: {e}"));
                return Step::Done(Attempt::Skipped);
            }
        };

        // Route first, so that intents cover only real attempts.
        let routed: Vec<(usize, Routed)> = due
            .iter()
            .map(|&i| (i, cfg.routing.route(&cfg, &env.recipients[i].address)))
            .collect();
        // A delivery that cannot be found again after a crash is announced
        // in the journal first: the recipient then shows as in flight, and
        // the delivery is made again (at least once).
        let mut found_by_name = true;
        for (i, r) in &routed {
            // A remote delivery records no intent: after a crash the
            // recipient is simply sent again.
            if let Routed::Deliver(dests) = r
                && dests.iter().any(|dest| {
                    self.remote_target(dest).is_none()
                        && self.transport(dest.driver).recovery() == Recovery::AtLeastOnce
                })
            {
                found_by_name = false;
                if let Err(e) = d.start(*i) {
                    self.logs
                        .panic(&format!("{id} cannot record a delivery intent: {e}"));
                    return Step::Done(Attempt::Skipped);
                }
            }
        }

        let io = self.queue.committer().io();
        let mut remote_groups: Vec<RemoteGroup> = Vec::new();
        let mut pipe_jobs: Vec<PipeJob> = Vec::new();
        let mut freeze = None;
        let rcpts = routed
            .into_iter()
            .map(|(i, r)| {
                let address = env.recipients[i].address.clone();
                let routing = match r {
                    Routed::Deliver(dests) => {
                        let several = dests.len() > 1;
                        RcptRouting::Routed(
                            dests
                                .into_iter()
                                .enumerate()
                                .map(|(k, dest)| {
                                    // A redirect's child routing refused:
                                    // its outcome is known already.
                                    if let Some(f) = &dest.refused {
                                        let outcome = if f.permanent {
                                            Outcome::Failed {
                                                status: f.status.unwrap_or_else(|| {
                                                    self.unrouteable_status(&dest.address)
                                                }),
                                                diagnostic: f.reason.clone(),
                                                remote: None,
                                            }
                                        } else {
                                            Outcome::Deferred {
                                                status: f.status.unwrap_or(Status::new(4, 3, 0)),
                                                diagnostic: f.reason.clone(),
                                            }
                                        };
                                        return DestAttempt {
                                            dest,
                                            progress: Progress::Done(outcome),
                                        };
                                    }
                                    if let Some(target) = &dest.pipe {
                                        let (local, domain) = dest
                                            .address
                                            .rsplit_once('@')
                                            .unwrap_or((&dest.address, ""));
                                        pipe_jobs.push(PipeJob {
                                            index: i,
                                            address: dest.address.clone(),
                                            settings: target.settings.clone(),
                                            run: crate::transport::pipe::PipeRun {
                                                command: target.command.clone(),
                                                uid: target.uid,
                                                gid: target.gid,
                                                home: target.home.clone(),
                                                local_part: local.to_string(),
                                                domain: domain.to_string(),
                                                sender: env.sender.clone(),
                                                recipient: dest.address.clone(),
                                                message_id: id.to_string(),
                                            },
                                            data: message.clone(),
                                        });
                                        return DestAttempt {
                                            dest,
                                            progress: Progress::Sent,
                                        };
                                    }
                                    if let Some((settings, addresses)) = self.remote_target(&dest) {
                                        let rcpt = &env.recipients[i];
                                        add_to_group(
                                            &mut remote_groups,
                                            settings,
                                            addresses,
                                            i,
                                            client_recipient(&dest.address, rcpt),
                                        );
                                        return DestAttempt {
                                            dest,
                                            progress: Progress::Sent,
                                        };
                                    }
                                    let name = local_copy_name(id, i, k, several);
                                    let prefix = local_prefix(&dest, &env.sender);
                                    let req = Request {
                                        io,
                                        path: &dest.path,
                                        owner: dest.owner,
                                        name,
                                        look_first: !fresh,
                                        sender: &env.sender,
                                        message: &message,
                                        prefix: prefix.as_bytes(),
                                    };
                                    let progress = match self.transport(dest.driver).start(&req) {
                                        Started::Done(o, notices) => {
                                            // A stale lock taken over (naming
                                            // its dead holder) and the like.
                                            for n in notices {
                                                self.logs.main(&Event::other(None, n));
                                            }
                                            Progress::Done(o)
                                        }
                                        Started::Staged(file) => {
                                            Progress::Staged { file, ticket: None }
                                        }
                                    };
                                    DestAttempt { dest, progress }
                                })
                                .collect(),
                        )
                    }
                    Routed::Unrouteable { reason, status, .. } => {
                        RcptRouting::Unrouted(Outcome::Failed {
                            status: status.unwrap_or_else(|| self.unrouteable_status(&address)),
                            diagnostic: reason,
                            remote: None,
                        })
                    }
                    Routed::Defer { reason, status, .. } => {
                        RcptRouting::Unrouted(Outcome::Deferred {
                            status: status.unwrap_or(Status::new(4, 3, 0)),
                            diagnostic: reason,
                        })
                    }
                    Routed::Freeze { reason, .. } => {
                        // Deferred, and the message frozen: only an
                        // operator can tell where it should go.
                        freeze = Some(reason.clone());
                        RcptRouting::Unrouted(Outcome::Deferred {
                            status: Status::new(4, 4, 6),
                            diagnostic: reason,
                        })
                    }
                };
                RcptAttempt {
                    index: i,
                    address,
                    routing,
                }
            })
            .collect();
        let jobs = remote_groups
            .into_iter()
            .map(|g| remote::Job {
                envelope: client_envelope(&env, &message, g.recipients),
                settings: g.settings,
                addresses: g.addresses,
                indexes: g.indexes,
                data: message.clone(),
                // Replaced by send_remote, once the message is prepared.
                done: Box::new(|_| {}),
            })
            .collect();
        Step::Ready(Box::new(Prepared {
            d,
            id: *id,
            env,
            now,
            rcpts,
            found_by_name,
            jobs,
            pipe_jobs,
            freeze,
        }))
    }

    /// X.1.1 (no such mailbox) for a local domain, X.1.2 (bad destination
    /// system) for any other: RFC 3463's codes for an address no router
    /// takes.
    fn unrouteable_status(&self, address: &str) -> Status {
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        if self.cfg().is_local_domain(domain) {
            Status::new(5, 1, 1)
        } else {
            Status::new(5, 1, 2)
        }
    }

    /// Takes the commit results of a prepared message, records and logs the
    /// outcomes, and removes the message once every recipient is done.
    fn complete(&self, p: Box<Prepared>) -> Attempt {
        let Prepared {
            mut d,
            id,
            env,
            now,
            rcpts,
            found_by_name,
            jobs: _,
            pipe_jobs: _,
            freeze,
        } = *p;
        let id = &id;
        let mut lines = Vec::new();
        let mut records = Vec::new();
        let mut any_failed = false;
        // Remote deliveries, for success reports (NOTIFY=SUCCESS): handed
        // to a host with DSN (it reports from now on), or relayed to one
        // without (`Action: relayed`, naming it).
        let mut passed_on = Vec::new();
        let mut relayed = std::collections::HashMap::new();
        // Failures whose reports a router's errors_to sends elsewhere.
        let mut errors_to = std::collections::HashMap::new();
        for rcpt in rcpts {
            let recorded = match rcpt.routing {
                RcptRouting::Unrouted(outcome) => self.judge(
                    id,
                    &env,
                    now,
                    &rcpt.address,
                    rcpt.index,
                    None,
                    outcome,
                    None,
                    &mut lines,
                ),
                RcptRouting::Routed(dests) => {
                    // The recipient's record is its worst destination's:
                    // failed over deferred over delivered.
                    let mut worst = spool::RcptOutcome::Delivered;
                    let mut judged = false;
                    for DestAttempt { dest, progress } in dests {
                        let mut detail = None;
                        let outcome = match progress {
                            Progress::Done(o) => o,
                            Progress::Remote(o, d) => {
                                // Only for a success report to come: noting
                                // costs a journal record.
                                let wants = env
                                    .recipients
                                    .get(rcpt.index)
                                    .is_some_and(bounce::wants_success_report);
                                if o == Outcome::Delivered && wants {
                                    if d.dsn {
                                        passed_on.push((rcpt.index, spool::Report::Waived));
                                    } else if let Some(h) = &d.host {
                                        relayed
                                            .insert(rcpt.index, format!("{} [{}]", h.host, h.ip));
                                    }
                                }
                                detail = Some(d);
                                o
                            }
                            // Never tried (the daemon is stopping): the
                            // recipient stays as it was, due at once.
                            Progress::Sent => continue,
                            Progress::Staged { file, ticket } => {
                                let committed = match ticket {
                                    Some(t) => t.wait(),
                                    None => Err(durable::CommitError::Stopped),
                                };
                                match file.finish(committed) {
                                    Ok(_) => Outcome::Delivered,
                                    Err(e) => Outcome::of_error(&e),
                                }
                            }
                        };
                        let r = self.judge(
                            id,
                            &env,
                            now,
                            &rcpt.address,
                            rcpt.index,
                            Some(&dest),
                            outcome,
                            detail.as_ref(),
                            &mut lines,
                        );
                        if let (spool::RcptOutcome::Failed { .. }, Some(e)) = (&r, &dest.errors_to)
                        {
                            errors_to.insert(rcpt.index, e.clone());
                        }
                        worst = match (worst, r) {
                            (f @ spool::RcptOutcome::Failed { .. }, _) => f,
                            (_, f @ spool::RcptOutcome::Failed { .. }) => f,
                            (z @ spool::RcptOutcome::Deferred { .. }, _) => z,
                            (_, r) => r,
                        };
                        judged = true;
                    }
                    if !judged {
                        continue;
                    }
                    worst
                }
            };
            any_failed |= matches!(recorded, spool::RcptOutcome::Failed { .. });
            records.push((rcpt.index, recorded));
        }
        // Every recipient delivered, each delivery findable by name: nothing
        // to record. The message is removed without a flush; if a crash or
        // power cut loses that removal, the next attempt finds each file by
        // name.
        let wants_success = env
            .recipients
            .iter()
            .any(|r| bounce::wants_success_report(r) && !r.report.is_settled());
        let all_delivered = found_by_name
            && !wants_success
            && records
                .iter()
                .all(|(_, o)| *o == spool::RcptOutcome::Delivered)
            && env
                .undelivered()
                .all(|(i, _)| records.iter().any(|(j, _)| *j == i));
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
        // What this attempt learnt for the reports to come, kept with
        // them: where a failure's report goes (a router's errors_to), and
        // the host a success was relayed to without DSN.
        for (&i, _) in errors_to.iter().chain(relayed.iter()) {
            let due = d
                .envelope()
                .recipients
                .get(i)
                .is_some_and(|r| r.report == spool::Report::Due);
            if due && !passed_on.iter().any(|(j, _)| *j == i) {
                passed_on.push((
                    i,
                    spool::Report::Noted {
                        to: errors_to.get(&i).cloned(),
                        relayed: relayed.get(&i).cloned(),
                    },
                ));
            }
        }
        if !passed_on.is_empty()
            && let Err(e) = d.record_reports(&passed_on)
        {
            self.logs
                .panic(&format!("{id} cannot record delivery outcomes: {e}"));
            return Attempt::Kept;
        }
        // Permanent failures are reported to the sender; those of a
        // message nobody can be told about freeze it, as does routing that
        // found only this host (an operator must say where it goes).
        let unreported = if any_failed || d.envelope().recipients.iter().any(|r| r.owes_report()) {
            self.settle_reports(&mut d, id)
        } else {
            None
        };
        // Still waiting for some: perhaps time to tell the sender.
        let waiting = d
            .envelope()
            .recipients
            .iter()
            .any(|r| matches!(r.state, RcptState::Deferred { .. }));
        if waiting {
            let cfg = self.cfg();
            match bounce::warn(
                &cfg,
                &self.queue,
                &self.logs,
                &mut d,
                &cfg.queue.retry,
                clock::now(),
            ) {
                Ok(Some(made)) => self.spawned(vec![made]),
                Ok(None) => {}
                Err(e) => self
                    .logs
                    .panic(&format!("{id} cannot make its delay warning: {e}")),
            }
        }
        // A report whose own failures nobody can be told about: frozen,
        // unless it is past ignore_bounce_errors_after (then discarded).
        let unreported = unreported.filter(|_| {
            let age = (clock::now() as u64).saturating_sub(d.envelope().arrival.secs);
            age < self.cfg().ignore_bounce_errors_after.as_secs()
                || !self.ignore_report_failures(&mut d, id)
        });
        if let Some(reason) = freeze.or(unreported) {
            return self.freeze(d, id, reason);
        }
        self.finish(d, id)
    }

    /// Discards the failures of a report: each logged `ADDR: error
    /// ignored`, as Exim logs it, and waived. False if that cannot be
    /// recorded (the report is frozen instead).
    fn ignore_report_failures(&self, d: &mut LockedMessage, id: &MessageId) -> bool {
        let owed: Vec<(usize, String)> = d
            .envelope()
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.owes_report())
            .map(|(i, r)| (i, r.address.clone()))
            .collect();
        let waived: Vec<(usize, spool::Report)> = owed
            .iter()
            .map(|(i, _)| (*i, spool::Report::Waived))
            .collect();
        if let Err(e) = d.record_reports(&waived) {
            self.logs
                .panic(&format!("{id} cannot record ignored errors: {e}"));
            return false;
        }
        for (_, address) in owed {
            self.log(
                id,
                &Event::other(Some(*id), format!("{address}: error ignored")),
            );
        }
        true
    }

    /// Gives up a message frozen for longer than `timeout_frozen_after`, as
    /// Exim does: `cancelled by timeout_frozen_after`, its pending
    /// recipients failed and reported (a report is just discarded).
    fn cancel_frozen(&self, mut d: LockedMessage, id: &MessageId) -> Attempt {
        let why = spool::Diagnosis {
            text: "delivery cancelled: frozen for longer than timeout_frozen_after".into(),
            status: Some("5.4.7".into()),
            remote: None,
        };
        let pending: Vec<(usize, spool::RcptOutcome)> = d
            .envelope()
            .undelivered()
            .map(|(i, _)| (i, spool::RcptOutcome::Failed { why: why.clone() }))
            .collect();
        let recorded = d.record_all(&pending).and_then(|()| {
            if d.envelope().sender.is_empty() {
                let waived: Vec<(usize, spool::Report)> = d
                    .envelope()
                    .recipients
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.owes_report())
                    .map(|(i, _)| (i, spool::Report::Waived))
                    .collect();
                d.record_reports(&waived)?;
            }
            d.thaw().map(drop)
        });
        if let Err(e) = recorded {
            self.logs.panic(&format!("{id} cannot be cancelled: {e}"));
            return Attempt::Kept;
        }
        self.log(
            id,
            &Event::new(
                Some(*id),
                Kind::Operator {
                    action: crate::log::Action::Cancelled,
                    by: "timeout_frozen_after".into(),
                },
            ),
        );
        if let Some(reason) = self.settle_reports(&mut d, id) {
            return self.freeze(d, id, reason);
        }
        self.finish(d, id)
    }

    /// Freezes the message, logging why (once: not again when it was
    /// frozen already).
    fn freeze(&self, mut d: LockedMessage, id: &MessageId, reason: String) -> Attempt {
        match d.freeze() {
            Ok(true) => self.log(
                id,
                &Event::new(
                    Some(*id),
                    Kind::Frozen {
                        reason: Some(reason),
                    },
                ),
            ),
            Ok(false) => {}
            Err(e) => self.logs.panic(&format!("{id} cannot be frozen: {e}")),
        }
        // The message stays: its journal's outcomes go into its -H.
        match d.finish() {
            Ok(_) => {}
            Err(e) => self.logs.panic(&format!("{id} cannot be finished: {e}")),
        }
        Attempt::Kept
    }

    /// Turns one delivery's outcome into its log line and the record the
    /// spool keeps: a deferral past the retry rules' last cutoff becomes a
    /// failure.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        id: &MessageId,
        env: &spool::Envelope,
        now: u64,
        address: &str,
        index: usize,
        dest: Option<&Destination>,
        outcome: Outcome,
        remote: Option<&remote::Detail>,
        lines: &mut Vec<Event>,
    ) -> spool::RcptOutcome {
        let router = dest.and_then(|d| driver_name(&d.router));
        let transport = dest.and_then(|d| driver_name(&d.transport));
        match outcome {
            Outcome::Delivered => {
                let dest_address = dest.map_or(address, |d| d.address.as_str());
                let mut delivered = local_delivered(address, dest_address, router, transport);
                if let Some(pipe) = dest.and_then(|d| d.pipe.as_ref()) {
                    // Exim's `=> |command <addr> R=router T=transport`.
                    delivered.address = Address {
                        original: Some(address.to_string()),
                        ..Address::new(format!("|{}", pipe.command))
                    };
                }
                if dest.is_some_and(|d| d.driver == TransportDriver::Blackhole) {
                    // Exim's `=> :blackhole: <addr> R=router`.
                    delivered.address = Address {
                        original: Some(address.to_string()),
                        ..Address::new(":blackhole:")
                    };
                    delivered.transport = None;
                }
                // (A pipe's result comes back the way a remote one does,
                // with no host.)
                if let Some(r) = remote.filter(|_| dest.is_none_or(|d| d.pipe.is_none())) {
                    // A remote delivery is logged with the whole address,
                    // the host and the session (Exim's remote `=>`).
                    delivered.address = Address {
                        original: (address != dest_address).then(|| address.to_string()),
                        ..Address::new(dest_address)
                    };
                    if r.continued {
                        delivered.flag = crate::log::event::DeliveryFlag::More;
                    }
                    delivered.host = r.host.as_ref().and_then(log_host);
                    delivered.tls = r.tls.clone();
                    delivered.cert_verified = r.cert_verified.map(|v| yes_no(v).to_string());
                    // `L` and `K` need Exim's +pipelining and +smtp_... log
                    // selectors, which its default (and so Sluice) leaves
                    // out.
                    delivered.confirmation = r.confirmation.clone();
                }
                lines.push(Event::new(Some(*id), Kind::Delivered(delivered)));
                spool::RcptOutcome::Delivered
            }
            Outcome::Deferred { .. } => {
                let mut why = outcome.diagnosis().unwrap_or_default();
                // The host whose reply deferred it (for `-Mvl` and a delay
                // warning's `Remote-MTA`).
                if let Some(r) = remote.filter(|r| matches!(r.errno, -46..=-44))
                    && let Some(h) = &r.host
                {
                    why.remote = Some(format!("{} [{}]", h.host, h.ip));
                }
                // Retry times count from this recipient's first temporary
                // failure, as Exim's do (from the arrival for a spool
                // written before the first failure was kept).
                let (first, attempts) = match &env.recipients[index].state {
                    RcptState::Deferred {
                        first, attempts, ..
                    } => (
                        if *first == 0 {
                            env.arrival.secs
                        } else {
                            *first
                        },
                        *attempts,
                    ),
                    _ => (now, 0),
                };
                match self.cfg().queue.retry.next(first, now, attempts) {
                    Some(until) => {
                        lines.push(Event::new(
                            Some(*id),
                            Kind::Deferred(Deferred {
                                address: Address::new(address),
                                router,
                                transport,
                                errno: remote
                                    .filter(|r| r.errno != 0)
                                    .map_or(UNKNOWN_ERRNO, |r| r.errno),
                                host: remote
                                    .filter(|r| r.errno == -44 || r.errno == -45 || r.errno == -46)
                                    .and_then(|r| r.host.as_ref())
                                    .and_then(log_host),
                                message: Some(why.text.clone()),
                                ..Deferred::default()
                            }),
                        ));
                        spool::RcptOutcome::Deferred { until, why }
                    }
                    None => {
                        // Given up: X.4.7, delivery time expired.
                        let why = spool::Diagnosis {
                            text: format!("retry timeout exceeded: {}", why.text),
                            status: Some(Status::new(5, 4, 7).to_string()),
                            remote: why.remote,
                        };
                        lines.push(failed(id, address, router, transport, None, &why.text));
                        spool::RcptOutcome::Failed { why }
                    }
                }
            }
            Outcome::Failed { .. } => {
                let why = outcome.diagnosis().unwrap_or_default();
                // A refusal by a remote host names it, as Exim's `**` does.
                let host = remote.and_then(|r| r.host.as_ref()).and_then(log_host);
                lines.push(failed(id, address, router, transport, host, &why.text));
                spool::RcptOutcome::Failed { why }
            }
        }
    }

    fn finish(&self, d: LockedMessage, id: &MessageId) -> Attempt {
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

    /// The message as stored: its headers (deleted ones left out), the
    /// blank line, the body.
    fn message_bytes(&self, d: &LockedMessage) -> Result<Vec<u8>, spool::Error> {
        let hf = d.header_file();
        let mut out = stored_head(&hf.headers);
        out.reserve(hf.size() as usize);
        let mut body = d.body()?;
        body.read_to_end(&mut out).map_err(|e| spool::Error::Io {
            op: "read",
            path: body.path().to_path_buf(),
            source: e,
        })?;
        Ok(out)
    }
}

/// Exim's `=>` for a local delivery: the local part delivered to, the
/// address the message was sent to, the router and the transport.
fn local_delivered(
    address: &str,
    dest_address: &str,
    router: Option<String>,
    transport: Option<String>,
) -> Delivered {
    Delivered {
        address: Address {
            original: Some(address.to_string()),
            ..Address::new(local_part(dest_address))
        },
        router,
        transport,
        ..Delivered::default()
    }
}

/// The `=>` event of `address` delivered to the local `dest` (what a
/// queue delivery logs, and a direct delivery at acceptance too).
pub(crate) fn local_delivered_event(id: &MessageId, address: &str, dest: &Destination) -> Event {
    Event::new(
        Some(*id),
        Kind::Delivered(local_delivered(
            address,
            &dest.address,
            driver_name(&dest.router),
            driver_name(&dest.transport),
        )),
    )
}

/// The name of recipient `i`'s copy of message `id` for its `k`-th local
/// destination (`several`: it has more than one): `<ID>.<i>`, or
/// `<ID>.<i>_<k>`. Every path that makes a copy names it so, and a retry
/// finds it by this name.
pub(crate) fn local_copy_name(id: &MessageId, i: usize, k: usize, several: bool) -> String {
    if several {
        format!("{}_{k}", id.delivery_name(i))
    } else {
        id.delivery_name(i)
    }
}

/// The start of every stored copy: the headers as the `-H` file holds them
/// (deleted ones left out) and the blank line.
pub(crate) fn stored_head(headers: &[spool::Header]) -> Vec<u8> {
    let mut head = Vec::with_capacity(headers.iter().map(|h| h.text.len()).sum::<usize>() + 1);
    for h in headers.iter().filter(|h| !h.is_deleted()) {
        head.extend_from_slice(&h.text);
    }
    head.push(b'\n');
    head
}

/// The lines a local transport writes above the message: `Return-path:`
/// and `Envelope-to:` as Exim's `return_path_add` and `envelope_to_add`
/// write them.
pub(crate) fn local_prefix(dest: &Destination, sender: &str) -> String {
    let mut p = String::new();
    if dest.return_path_add {
        p.push_str(&format!("Return-path: <{sender}>\n"));
    }
    if dest.envelope_to_add {
        p.push_str(&format!(
            "Envelope-to: {}\n",
            dest.parent.as_deref().unwrap_or(&dest.address)
        ));
    }
    p
}

fn local_part(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(l, _)| l)
}

/// A message handed to the delivery threads.
#[derive(Debug, Clone, Copy)]
pub struct Dispatch {
    pub id: MessageId,
    /// Try every recipient now, frozen messages too (`-qff`, `-M`).
    pub force: bool,
    /// The first attempt, right after the message was queued.
    pub arrival: bool,
}

/// Most messages one delivery thread takes into one flush.
const WORKER_BATCH: usize = 64;

/// A pool of delivery threads fed with message IDs.
pub struct Workers {
    deliverer: Arc<Deliverer>,
    tx: std::sync::Mutex<Option<Sender<Dispatch>>>,
    /// What every thread takes its batches from, for threads started later.
    rx: Receiver<Dispatch>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Set when the daemon stops: no thread takes another batch.
    stopped: Arc<std::sync::atomic::AtomicBool>,
    /// Dropped to wake the idle threads when `stopped` is set; a value
    /// sent wakes one idle thread to see whether it is one too many.
    wake: std::sync::Mutex<Option<Sender<()>>>,
    woken: Receiver<()>,
    /// How many threads there should be (`queue.delivery_workers`, which a
    /// reload changes), and how many there are.
    count: Arc<WorkerCount>,
}

#[derive(Default)]
struct WorkerCount {
    wanted: std::sync::atomic::AtomicUsize,
    running: std::sync::atomic::AtomicUsize,
}

impl WorkerCount {
    /// Whether the calling thread is one too many; if so it is counted
    /// out and must end.
    fn retire(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let running = self.running.load(SeqCst);
        running > self.wanted.load(SeqCst).max(1)
            && self
                .running
                .compare_exchange(running, running - 1, SeqCst, SeqCst)
                .is_ok()
    }
}

impl Workers {
    /// Starts `n` threads delivering with `deliverer`.
    pub fn start(deliverer: Arc<Deliverer>, n: usize) -> Workers {
        let (tx, rx): (Sender<Dispatch>, Receiver<Dispatch>) = channel::unbounded();
        // Failure reports made by these threads' attempts come back to them.
        deliverer.set_dispatcher(Some(tx.clone()));
        let (wake, woken) = channel::bounded::<()>(0);
        let w = Workers {
            deliverer,
            tx: std::sync::Mutex::new(Some(tx)),
            rx,
            threads: std::sync::Mutex::new(Vec::new()),
            stopped: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            wake: std::sync::Mutex::new(Some(wake)),
            woken,
            count: Arc::new(WorkerCount::default()),
        };
        w.resize(n);
        w
    }

    /// Makes the number of threads `n` (at least one): more are started at
    /// once; extra ones end after the batch they are delivering, or at
    /// once when idle.
    pub fn resize(&self, n: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        let n = n.max(1);
        self.count.wanted.store(n, SeqCst);
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        while self.count.running.load(SeqCst) < n {
            let k = threads.len();
            let (rx, d) = (self.rx.clone(), self.deliverer.clone());
            let (stopped, woken, count) =
                (self.stopped.clone(), self.woken.clone(), self.count.clone());
            count.running.fetch_add(1, SeqCst);
            let spawned = std::thread::Builder::new()
                .name(format!("delivery-{k}"))
                .spawn(move || {
                    loop {
                        if stopped.load(SeqCst) || count.retire() {
                            break;
                        }
                        let first = channel::select! {
                            recv(rx) -> m => match m {
                                Ok(m) => m,
                                Err(_) => break,
                            },
                            recv(woken) -> _ => continue,
                        };
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
            match spawned {
                Ok(t) => threads.push(t),
                // A thread that cannot start leaves its messages to the
                // others (there is always at least the queue runner to
                // retry them).
                Err(_) => {
                    self.count.running.fetch_sub(1, SeqCst);
                    break;
                }
            }
        }
        drop(threads);
        // Idle threads beyond `n` are waiting for work: wake them to leave.
        let extra = self.count.running.load(SeqCst).saturating_sub(n);
        if let Some(wake) = self.wake.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            for _ in 0..extra {
                let _ = wake.send_timeout((), std::time::Duration::from_millis(100));
            }
        }
    }

    /// Stops the threads after the batches under way (what is still
    /// waiting to be dispatched stays queued in the spool); waits at most
    /// `timeout` for them.
    pub fn stop(&self, timeout: std::time::Duration) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.deliverer.set_dispatcher(None);
        self.wake.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let (done, joined) = channel::bounded::<()>(1);
        let joiner = std::thread::Builder::new()
            .name("delivery-stop".into())
            .spawn(move || {
                for t in threads {
                    let _ = t.join();
                }
                let _ = done.send(());
            });
        if joiner.is_ok() {
            let _ = joined.recv_timeout(timeout);
        }
    }

    /// Queues message `id` for an attempt; `arrival` for the first one,
    /// right after the message was queued.
    pub fn dispatch(&self, id: MessageId, force: bool, arrival: bool) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(Dispatch { id, force, arrival });
        }
    }

    /// Lets the threads finish what was dispatched, then waits for them
    /// and for the remote deliveries they started.
    pub fn finish(&self) {
        // Reports made from now on are delivered below, after the threads.
        self.deliverer.set_dispatcher(None);
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        self.deliverer.drain();
        self.deliverer.deliver_made();
        self.deliverer
            .close_remote(std::time::Duration::from_secs(10));
    }
}

/// `H=name [ip]` of a remote host. Exim writes the port only with its
/// `outgoing_port` log selector, which its default leaves out. None for
/// a Unix socket (port 0), which has no host to name, as Exim's lmtp
/// transport logs none.
fn log_host(a: &remote::Address) -> Option<crate::log::Host> {
    (a.port != 0).then(|| crate::log::Host {
        name: Some(a.host.clone()),
        helo: None,
        ip: a.ip.to_string(),
        port: None,
    })
}

fn yes_no(v: bool) -> &'static str {
    if v { "yes" } else { "no" }
}

/// A recipient group of one message for one remote destination.
struct RemoteGroup {
    settings: Arc<remote::Settings>,
    addresses: Vec<remote::Address>,
    indexes: Vec<usize>,
    recipients: Vec<smtp::client::EnvelopeRecipient>,
}

fn add_to_group(
    groups: &mut Vec<RemoteGroup>,
    settings: Arc<remote::Settings>,
    addresses: Vec<remote::Address>,
    index: usize,
    rcpt: smtp::client::EnvelopeRecipient,
) {
    match groups
        .iter_mut()
        .find(|g| Arc::ptr_eq(&g.settings, &settings) && g.addresses == addresses)
    {
        Some(g) => {
            g.indexes.push(index);
            g.recipients.push(rcpt);
        }
        None => groups.push(RemoteGroup {
            settings,
            addresses,
            indexes: vec![index],
            recipients: vec![rcpt],
        }),
    }
}

/// A recipient as the SMTP client sends it, with its DSN parameters.
fn client_recipient(address: &str, r: &spool::Recipient) -> smtp::client::EnvelopeRecipient {
    let n = r.notify.0;
    let notify = (!r.notify.is_empty() && n & spool::DsnNotify::LAST_HOP == 0).then_some(
        if n & spool::DsnNotify::NEVER != 0 {
            smtp::client::Notify::NEVER
        } else {
            smtp::client::Notify {
                success: n & spool::DsnNotify::SUCCESS != 0,
                failure: n & spool::DsnNotify::FAILURE != 0,
                delay: n & spool::DsnNotify::DELAY != 0,
            }
        },
    );
    smtp::client::EnvelopeRecipient {
        address: address.to_string(),
        notify,
        orcpt: r.orcpt.clone(),
    }
}

/// The envelope a remote transaction sends for `env`.
fn client_envelope(
    env: &spool::Envelope,
    message: &[u8],
    recipients: Vec<smtp::client::EnvelopeRecipient>,
) -> smtp::client::Envelope {
    smtp::client::Envelope {
        from: env.sender.clone(),
        recipients,
        ret: env.dsn_ret.map(|r| match r {
            spool::DsnRet::Full => smtp::client::Ret::Full,
            spool::DsnRet::Headers => smtp::client::Ret::Headers,
        }),
        envid: env.dsn_envid.clone(),
        size: message.len() as u64,
        eight_bit: message.iter().any(|&b| b >= 0x80),
        smtputf8: env.sender.bytes().any(|b| b >= 0x80) || recipients_need_utf8(env),
    }
}

fn recipients_need_utf8(env: &spool::Envelope) -> bool {
    env.recipients
        .iter()
        .any(|r| r.address.bytes().any(|b| b >= 0x80))
}

/// A router or transport name for a log line: `-` (no router, an
/// unrouteable address) is left out, as Exim leaves out a missing one.
fn driver_name(name: &str) -> Option<String> {
    (name != "-").then(|| name.to_string())
}

/// The `**` event for a recipient that failed.
fn failed(
    id: &MessageId,
    address: &str,
    router: Option<String>,
    transport: Option<String>,
    host: Option<crate::log::Host>,
    why: &str,
) -> Event {
    Event::new(
        Some(*id),
        Kind::Failed(Failed {
            address: Address::new(address),
            router,
            transport,
            host,
            message: Some(why.to_string()),
            ..Failed::default()
        }),
    )
}
