//! Connections per destination: jobs for one destination (the transport,
//! its sorted host list and port: so domains that share MX hosts share
//! connections, and transports with different TLS or AUTH settings never
//! do) wait in one queue; up to `max_connections_per_destination`
//! connections take from it, each carrying up to `connection_max_messages`
//! messages before it says QUIT, and a connection with nothing to do waits
//! [`IDLE`] for more before closing. `remote_max_connections` bounds the
//! connections of every destination together.
//!
//! A destination whose connections fail (refused, timed out, 421) has its
//! limit cut to one, and grows back by one per message delivered: a host
//! in trouble is not hammered by ten connections at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use super::Job;

/// How long an idle connection waits for another message.
pub const IDLE: Duration = Duration::from_secs(2);

/// Identifies a destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DestKey {
    pub transport: String,
    /// `name [address]:port`, sorted.
    pub hosts: Vec<String>,
}

struct Dest {
    jobs: VecDeque<Job>,
    connections: usize,
    idle: usize,
    limit: usize,
    max: usize,
    notify: Arc<Notify>,
}

/// The destinations and their queues.
pub struct Pool {
    dests: Mutex<HashMap<DestKey, Dest>>,
    /// Set by [`Pool::take_waiting`]: idle connections close at once.
    closing: std::sync::atomic::AtomicBool,
    global: Arc<Semaphore>,
    /// What `global` was made for (`remote_max_connections`), and the
    /// permits still owed to a lowered limit (taken back as connections
    /// close).
    max_total: Mutex<(usize, usize)>,
    /// Connections open now, and the most ever open at once (the crash
    /// test bounds duplicates with it).
    counters: Mutex<(usize, usize)>,
}

/// What a connection task should do next.
pub enum Next {
    Job(Job),
    /// Nothing came within the idle time: close.
    Close,
}

impl Pool {
    pub fn new(max_total: usize) -> Pool {
        Pool {
            dests: Mutex::new(HashMap::new()),
            closing: std::sync::atomic::AtomicBool::new(false),
            global: Arc::new(Semaphore::new(max_total.max(1))),
            max_total: Mutex::new((max_total.max(1), 0)),
            counters: Mutex::new((0, 0)),
        }
    }

    /// Makes the limit on connections open at once `n` (a reload of
    /// `remote_max_connections`). A higher one applies at once; a lower
    /// one takes back the permits free now and returns how many are still
    /// in use over the new limit: the caller takes those as their
    /// connections close ([`Pool::owed`]).
    pub fn set_max(&self, n: usize) -> usize {
        let n = n.max(1);
        let mut m = self.max_total.lock().unwrap_or_else(|p| p.into_inner());
        let (current, owed) = *m;
        // The limit in force now, debts paid.
        let effective = current - owed;
        if n >= effective {
            let mut more = n - effective;
            // Forgive debts first, then add.
            let forgiven = more.min(owed);
            more -= forgiven;
            self.global.add_permits(more);
            *m = (current + more, owed - forgiven);
            return m.1;
        }
        let cut = effective - n;
        let taken = self.global.forget_permits(cut);
        *m = (current - taken, owed + (cut - taken));
        m.1
    }

    /// Takes back one permit owed to a lowered limit, if any is owed;
    /// true when one was taken.
    pub fn owed(&self, permit: tokio::sync::OwnedSemaphorePermit) -> bool {
        let mut m = self.max_total.lock().unwrap_or_else(|p| p.into_inner());
        if m.1 == 0 {
            drop(permit);
            return false;
        }
        permit.forget();
        m.0 -= 1;
        m.1 -= 1;
        true
    }

    pub fn global(&self) -> Arc<Semaphore> {
        self.global.clone()
    }

    /// Queues `job`; returns true when the caller should start a new
    /// connection for its destination (none idle, and below the limit).
    pub fn push(&self, key: &DestKey, job: Job, max_per_dest: usize) -> bool {
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        let d = dests.entry(key.clone()).or_insert_with(|| Dest {
            jobs: VecDeque::new(),
            connections: 0,
            idle: 0,
            limit: max_per_dest.max(1),
            max: max_per_dest.max(1),
            notify: Arc::new(Notify::new()),
        });
        d.jobs.push_back(job);
        // Waiting jobs beyond what idle connections will take start a
        // connection each, up to the limit.
        if d.jobs.len() > d.idle && d.connections < d.limit {
            d.connections += 1;
            true
        } else {
            d.notify.notify_one();
            false
        }
    }

    /// Takes every job not yet started (the daemon is stopping).
    pub fn take_waiting(&self) -> Vec<Job> {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        let mut jobs = Vec::new();
        for d in dests.values_mut() {
            jobs.extend(d.jobs.drain(..));
            d.notify.notify_waiters();
        }
        jobs
    }

    /// The next job for a connection to `key`, waiting up to [`IDLE`].
    /// A wake-up whose job another connection took first waits on for the
    /// rest of the idle time (a spurious close would only open another
    /// connection a moment later).
    pub async fn next(&self, key: &DestKey) -> Next {
        let deadline = tokio::time::Instant::now() + IDLE;
        loop {
            let notify = {
                let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
                let Some(d) = dests.get_mut(key) else {
                    return Next::Close;
                };
                if let Some(j) = d.jobs.pop_front() {
                    return Next::Job(j);
                }
                if tokio::time::Instant::now() >= deadline
                    || self.closing.load(std::sync::atomic::Ordering::SeqCst)
                {
                    return Next::Close;
                }
                d.idle += 1;
                d.notify.clone()
            };
            let _ = tokio::time::timeout_at(deadline, notify.notified()).await;
            let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = dests.get_mut(key) {
                d.idle = d.idle.saturating_sub(1);
            }
        }
    }

    /// The next job for `key` if one is waiting now (to pipeline its
    /// envelope behind the message being sent).
    pub fn try_next(&self, key: &DestKey) -> Option<Job> {
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        dests.get_mut(key)?.jobs.pop_front()
    }

    /// A connection to `key` ended. Returns true when jobs are still
    /// waiting with no connection left to take them (the caller starts
    /// one); the destination is forgotten when nothing is left of it.
    pub fn closed(&self, key: &DestKey) -> bool {
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        let Some(d) = dests.get_mut(key) else {
            return false;
        };
        d.connections = d.connections.saturating_sub(1);
        if !d.jobs.is_empty() && d.connections == 0 {
            d.connections += 1;
            return true;
        }
        if d.jobs.is_empty() && d.connections == 0 {
            dests.remove(key);
        }
        false
    }

    /// A connection attempt to `key` failed: fewer connections at once.
    pub fn trouble(&self, key: &DestKey) {
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = dests.get_mut(key) {
            d.limit = 1;
        }
    }

    /// A message was delivered to `key`: the limit grows back.
    pub fn fine(&self, key: &DestKey) {
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = dests.get_mut(key) {
            d.limit = (d.limit + 1).min(d.max);
        }
    }

    /// A connection opened; returns the new most-at-once when this one
    /// raised it.
    pub fn opened(&self) -> Option<usize> {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.0 += 1;
        if c.0 > c.1 {
            c.1 = c.0;
            return Some(c.1);
        }
        None
    }

    pub fn dropped(&self) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.0 = c.0.saturating_sub(1);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Connections open now, and the most open at once since the start.
    #[cfg(test)]
    pub fn connections(&self) -> (usize, usize) {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_moves_up_and_down() {
        let pool = Pool::new(4);
        let g = pool.global();
        let held: Vec<_> = (0..3)
            .map(|_| g.clone().try_acquire_owned().unwrap())
            .collect();
        // Down to 2: the one free permit goes now, one is owed.
        assert_eq!(pool.set_max(2), 1);
        assert_eq!(g.available_permits(), 0);
        let mut held = held.into_iter();
        assert!(pool.owed(held.next().unwrap()), "the first to close pays");
        assert!(!pool.owed(held.next().unwrap()), "the next is given back");
        assert_eq!(g.available_permits(), 1);
        // Up to 5 with one in use: four free.
        assert_eq!(pool.set_max(5), 0);
        assert_eq!(g.available_permits(), 4);
        // Down to 1 with two in use, then up to 3 before either closes:
        // the debt is forgiven, not added on top.
        let another = g.clone().try_acquire_owned().unwrap();
        assert_eq!(pool.set_max(1), 1);
        assert_eq!(g.available_permits(), 0);
        assert_eq!(pool.set_max(3), 0);
        assert_eq!(g.available_permits(), 1);
        drop(held);
        drop(another);
        assert_eq!(g.available_permits(), 3);
    }
}
