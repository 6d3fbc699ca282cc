//! The application context: what the daemon (`serve`, `smtp-stdio`),
//! `queue run` and `submit` share, opened once from the frozen
//! configuration.
//!
//! | part | what it is |
//! |------|------------|
//! | `cfg` | the configuration, routing included (`cfg.routing`) |
//! | `logs` | mainlog, rejectlog, paniclog under `log_dir` |
//! | `queue` | the spool and its group committer |
//! | `deliverer` | the delivery agent, on the same spool handle |
//!
//! One spool handle means one committer: the accept path's `-H`/`-D`
//! files and the delivery agent's Maildir files share its flushes. Nothing
//! here starts a thread; the delivery workers belong to the
//! [`crate::queue_runner::QueueRunner`] of the commands that deliver.

use std::fmt;
use std::sync::Arc;

use mailstore::error::sysexits;
use spool::Queue;

use crate::cmd::Failure;
use crate::config::Config;
use crate::delivery::Deliverer;
use crate::log::Logs;

/// Everything a command needs to take in, queue and deliver mail.
pub struct App {
    pub cfg: Arc<Config>,
    pub logs: Arc<Logs>,
    /// The accept path's handle on the spool (the same one the delivery
    /// agent uses).
    pub queue: Queue,
    pub deliverer: Arc<Deliverer>,
}

/// The spool could not be opened: nothing else is worth starting.
#[derive(Debug)]
pub struct OpenError(pub spool::Error);

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot open the spool: {}", self.0)
    }
}

impl OpenError {
    /// The failure of a command run by hand: 75 when trying again later
    /// may work (a full disk, a lock), 70 otherwise. The daemon exits 78
    /// instead, as for any other setup it cannot do.
    pub fn failure(&self) -> Failure {
        let code = if self.0.is_temporary() {
            sysexits::TEMPFAIL
        } else {
            sysexits::SOFTWARE
        };
        Failure::new(code, self.to_string())
    }
}

impl App {
    /// [`App::open`] for a command: on failure, says why on stderr and
    /// gives the exit code.
    pub fn open_for_command(cfg: &Arc<Config>) -> Result<App, i32> {
        App::open(cfg.clone()).map_err(|e| {
            let f = e.failure();
            eprintln!("sluice: {}", f.message);
            f.code
        })
    }

    /// Opens the logs, the spool (with its committer) and the delivery
    /// agent for `cfg`.
    pub fn open(cfg: Arc<Config>) -> Result<App, OpenError> {
        let queue = open_queue(&cfg).map_err(OpenError)?;
        Ok(App::with_queue(cfg, queue))
    }

    /// [`App::open`] with every durable write through `io` (the power-cut
    /// tests pass a `durable::sim::Recorder`).
    #[cfg(test)]
    pub fn open_with_io(cfg: Arc<Config>, io: Arc<dyn durable::Io>) -> Result<App, OpenError> {
        let opts = spool::QueueOptions {
            split: cfg.split_spool_directory,
            id_format: cfg.message_id_format,
            durability: cfg.durability,
            ..Default::default()
        };
        let queue = Queue::open_with_io(&cfg.spool_dir(), opts, io).map_err(OpenError)?;
        Ok(App::with_queue(cfg, queue))
    }

    fn with_queue(cfg: Arc<Config>, queue: Queue) -> App {
        let logs = Arc::new(Logs::new(cfg.log_dir()));
        let deliverer = Arc::new(Deliverer::new(cfg.clone(), queue, logs.clone()));
        // A clone of the delivery agent's handle, not a second open: a
        // second open would start a second committer.
        let queue = deliverer.queue().clone();
        App {
            cfg,
            logs,
            queue,
            deliverer,
        }
    }
}

/// Opens the configured spool with a committer of its own (the queue
/// commands, which deliver nothing, need only this).
pub fn open_queue(cfg: &Config) -> Result<Queue, spool::Error> {
    let opts = spool::QueueOptions {
        split: cfg.split_spool_directory,
        id_format: cfg.message_id_format,
        durability: cfg.durability,
        ..Default::default()
    };
    // The commit path through kept directory descriptors: every process
    // that commits through this queue (the daemon most of all) publishes
    // into the same few directories again and again.
    Queue::open_with_io(&cfg.spool_dir(), opts, Arc::new(durable::DirIo::default()))
}
