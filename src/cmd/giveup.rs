//! `sluice queue giveup ID...` (`-Mg`): an administrator gives up on
//! messages. Every recipient not yet delivered fails ("delivery cancelled
//! by administrator", 5.0.0) and is reported to the sender, as after any
//! permanent failure; the log says `ID cancelled by USER`, as Exim's does.
//! A message with the null sender (itself a report) is reported to nobody
//! and leaves the queue: giving up is how an administrator ends a frozen
//! report.

use std::sync::Arc;

use mailstore::error::sysexits;
use spool::{Diagnosis, Error, MessageId, RcptOutcome, Report};

use crate::app::App;
use crate::config::Config;
use crate::log::Action;

pub fn run(cfg: &Arc<Config>, ids: &[String]) -> i32 {
    let app = match App::open_for_command(cfg) {
        Ok(app) => app,
        Err(code) => return code,
    };
    let who = crate::sys::process_caller().login.clone();
    let mut code = sysexits::OK;
    for text in ids {
        match give_up(&app, text, &who) {
            Ok(id) => {
                // The reports are made, and the message finished, by an
                // attempt like any other.
                app.deliverer.attempt(&id, true, false);
                println!("Message {id} has been cancelled");
            }
            Err(msg) => {
                eprintln!("{msg}");
                code = 1;
            }
        }
    }
    app.deliverer.deliver_made();
    app.deliverer
        .close_remote(std::time::Duration::from_secs(10));
    code
}

/// Fails the pending recipients of message `text` and thaws it.
fn give_up(app: &App, text: &str, who: &str) -> Result<MessageId, String> {
    let id = MessageId::parse(text)
        .map_err(|_| format!("{text}: message not found (not a message ID)"))?;
    let mut d = match app.queue.begin_delivery(&id) {
        Ok(d) => d,
        Err(Error::NotFound { .. }) => return Err(format!("{id}: message not found")),
        Err(Error::Locked { .. }) => {
            return Err(format!(
                "{id}: spool file is locked (another process is handling this message)"
            ));
        }
        Err(e) => return Err(format!("{id}: {e}")),
    };
    let why = Diagnosis {
        text: "delivery cancelled by administrator".into(),
        status: Some("5.0.0".into()),
        remote: None,
    };
    let pending: Vec<(usize, RcptOutcome)> = d
        .envelope()
        .undelivered()
        .map(|(i, _)| (i, RcptOutcome::Failed { why: why.clone() }))
        .collect();
    let fail = |e: Error| format!("{id}: {e}");
    d.record_all(&pending).map_err(fail)?;
    if d.envelope().sender.is_empty() {
        // A report's failures are reported to nobody.
        let waived: Vec<(usize, Report)> = d
            .envelope()
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.owes_report())
            .map(|(i, _)| (i, Report::Waived))
            .collect();
        d.record_reports(&waived).map_err(fail)?;
    }
    d.thaw().map_err(fail)?;
    let finished = d.finish().map_err(fail)?;
    app.logs
        .main(&crate::cmd::queue::operator(id, Action::Cancelled, who));
    if finished == spool::Finished::Removed {
        app.logs.main(&crate::log::Event::completed(id));
    }
    Ok(id)
}
