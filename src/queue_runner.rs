//! The queue runner: one engine for the daemon's queue runs (at startup
//! and every `-q` interval), its deliveries on arrival, and
//! `sluice queue run`.
//!
//! A queue run cleans spool garbage, lists the queue and hands every ID to
//! the delivery workers, which batch what is waiting into shared flushes
//! and skip what is locked, frozen or not due. The daemon does not wait
//! for a run to end (its workers outlive it); the command line waits with
//! [`QueueRunner::finish`].

use std::sync::Arc;

use spool::{MessageId, Queue};

use crate::app::App;
use crate::delivery::{Deliverer, Workers};
use crate::log::Logs;

/// The delivery workers and what a queue run needs to feed them.
pub struct QueueRunner {
    deliverer: Arc<Deliverer>,
    queue: Queue,
    logs: Arc<Logs>,
    workers: Workers,
}

impl QueueRunner {
    /// Starts `queue.delivery_workers` delivery threads for `app`.
    pub fn start(app: &App) -> QueueRunner {
        QueueRunner {
            workers: Workers::start(app.deliverer.clone(), app.cfg.queue.delivery_workers),
            deliverer: app.deliverer.clone(),
            queue: app.queue.clone(),
            logs: app.logs.clone(),
        }
    }

    /// Hands a message just accepted to the workers. Its first attempt
    /// need not look for earlier deliveries in the Maildirs.
    pub fn arrived(&self, id: MessageId) {
        self.workers.dispatch(id, false, true);
    }

    /// A queue run over whatever is queued now; `force` tries every
    /// recipient, frozen messages included.
    pub fn run(&self, force: bool) {
        self.run_listed(self.queue.ids(), force);
    }

    /// A queue run over the IDs `listed` earlier (the daemon lists before
    /// it accepts its first connection; see `server::serve`).
    pub fn run_listed(&self, listed: spool::Result<Vec<MessageId>>, force: bool) {
        self.deliverer.clean_garbage();
        match listed {
            Ok(ids) => {
                for id in ids {
                    self.workers.dispatch(id, force, false);
                }
            }
            Err(e) => self.logs.panic(&format!("listing the queue: {e}")),
        }
    }

    /// Takes a reloaded configuration: the delivery agent's, and the
    /// number of delivery threads (`queue.delivery_workers`).
    pub fn reconfigure(&self, cfg: Arc<crate::config::Config>) {
        self.workers.resize(cfg.queue.delivery_workers);
        self.deliverer.reconfigure(cfg);
    }

    /// The delivery agent the workers deliver with.
    pub fn deliverer(&self) -> &Arc<Deliverer> {
        &self.deliverer
    }

    /// Lets the workers finish every attempt handed to them, then stops
    /// them.
    pub fn finish(&self) {
        self.workers.finish();
    }

    /// The daemon is stopping: the workers take no new batch and finish
    /// the ones under way, for at most `timeout`; what was not attempted
    /// stays queued for the next start.
    pub fn stop(&self, timeout: std::time::Duration) {
        self.workers.stop(timeout);
    }
}
