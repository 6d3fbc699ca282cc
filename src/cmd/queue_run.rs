//! `sluice queue run` (`-q`, `-qf`, `-M ID...`): one queue run in the
//! foreground, then exit. Each message is locked while it is tried, so a
//! run beside a daemon never delivers a message twice.

use std::sync::Arc;

use mailstore::error::sysexits;
use spool::MessageId;

use crate::app::App;
use crate::config::Config;
use crate::delivery::Attempt;
use crate::queue_runner::QueueRunner;

/// Runs the queue (all of it, or the messages `ids`); `force` tries every
/// recipient now, frozen messages included. Exit 1 when an ID is unknown.
pub fn run(cfg: &Arc<Config>, force: bool, ids: &[String]) -> i32 {
    let app = match App::open_for_command(cfg) {
        Ok(app) => app,
        Err(code) => return code,
    };
    if ids.is_empty() {
        // The daemon's engine, waited for.
        let runner = QueueRunner::start(&app);
        runner.run(force);
        runner.finish();
        return sysexits::OK;
    }
    // Named messages are tried here, one by one, so that each can be
    // reported on stderr.
    let mut code = sysexits::OK;
    for text in ids {
        let id = match MessageId::parse(text) {
            Ok(id) => id,
            Err(e) => {
                eprintln!("{e}");
                code = 1;
                continue;
            }
        };
        if app.queue.locate(&id).is_err() {
            // Exim's wording for an unknown ID.
            eprintln!("{id}: message not found");
            code = 1;
            continue;
        }
        if app.deliverer.attempt(&id, force, false) == Attempt::Skipped {
            eprintln!("{id}: not delivered now (locked by another process, or nothing due)");
        }
    }
    // Failure reports those attempts made get theirs now.
    app.deliverer.deliver_made();
    // Connections kept for more messages say QUIT before the process ends.
    app.deliverer
        .close_remote(std::time::Duration::from_secs(10));
    code
}
