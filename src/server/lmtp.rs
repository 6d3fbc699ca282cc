//! LMTP delivery: Sluice as the delivery agent of another MTA (Postfix's
//! `lmtp` transport, Exim's `lmtp` transport). The message does not go
//! through the spool: each recipient's Maildir delivery is made durable
//! (through the shared group committer) before its `250` is sent, one reply
//! per recipient, as RFC 2033 asks.

use std::sync::Arc;

use super::Shared;
use super::policy::{self, to_lf_in_place};
use crate::log::{Address, Arrival, Delivered, Event, Kind, Rejected, Stage};
use crate::router::{Routed, TransportDriver};
use crate::transport::Outcome;
use crate::transport::maildir::{Staged, StagedFile, Target};
use smtp::session::Message;
use smtp::{Reply, Status, Verdict};

enum Pending {
    Done(Verdict),
    /// Waiting for the committer; then logged and counted in the quota.
    Commit {
        ticket: durable::Ticket,
        file: StagedFile,
        log: Box<Event>,
    },
}

/// Delivers `msg` to each of its recipients; one verdict per recipient.
///
/// The main log gets what the spool path writes: the arrival (`<=`, with
/// `P=lmtp`), one `=>` per delivered recipient and `Completed`, so that
/// every message ID there has a whole story; recipients refused after the
/// data go to the reject log, as those refused at RCPT do.
pub async fn deliver(shared: &Arc<Shared>, msg: Message) -> Vec<Verdict> {
    let s = shared.clone();
    let env = msg.envelope.clone();
    let staged = tokio::task::spawn_blocking(move || stage_all(&s, msg)).await;
    let (id, arrival, pending) = match staged {
        Ok(p) => p,
        Err(_) => {
            let r: Verdict = smtp::local_problem("Temporary local problem").into();
            return vec![r; env.recipients.len()];
        }
    };
    let mut verdicts = Vec::with_capacity(pending.len());
    let mut delivered = Vec::new();
    for p in pending {
        verdicts.push(match p {
            Pending::Done(v) => v,
            Pending::Commit { ticket, file, log } => match file.finish(ticket.wait_async().await) {
                Ok(_) => {
                    delivered.push(log);
                    Reply::new(250, Status::new(2, 0, 0), "delivered").into()
                }
                Err(e) => local_failure(shared, "LMTP delivery failed", &e).into(),
            },
        });
    }
    let env = &env;
    let host = super::host_of(
        env.peer.map(|ip| std::net::SocketAddr::new(ip, 0)),
        Some(&env.helo),
    );
    let from = env.from.as_ref().map(|a| a.as_str()).unwrap_or_default();
    for (r, v) in env.recipients.iter().zip(&verdicts) {
        if let Verdict::Reply(reply) = v
            && !reply.is_positive()
        {
            let addr = r.address.as_str();
            let text = reply.lines().join(" ");
            // The reply names the recipient for the client; the log line
            // does already.
            let text = text.strip_prefix(&format!("<{addr}>: ")).unwrap_or(&text);
            let rejected = Rejected {
                origin: host.clone(),
                sender: Some(from.to_string()),
                temporary: reply.code() < 500,
                stage: Stage::AfterDataFor(addr.to_string()),
                reason: Some(text.to_string()),
            };
            shared
                .logs
                .reject(&Event::new(None, Kind::Rejected(rejected)), None);
        }
    }
    if !delivered.is_empty() {
        shared
            .logs
            .main(&Event::new(Some(id), Kind::Arrival(arrival)));
        for event in &delivered {
            shared.logs.main(event);
        }
        shared.logs.main(&Event::completed(id));
    }
    verdicts
}

/// Routes and stages every recipient, hands the Maildir files to the
/// committer in one go (so they share a flush), and returns what to await.
/// Also returns the message ID and its `<=` event.
fn stage_all(shared: &Shared, msg: Message) -> (spool::MessageId, Arrival, Vec<Pending>) {
    let Message {
        envelope: env,
        mut data,
        ..
    } = msg;
    let env = &env;
    let cfg = shared.cfg();
    let queue = &shared.queue;
    let id = queue.id_generator().next();
    // In place: a large message is held once, not twice, until its copies
    // are durable.
    to_lf_in_place(&mut data);
    let received = policy::received(shared, env, id.as_str());
    let arrival = {
        let (mut headers, body_at) = spool::split_message(&data);
        headers.insert(0, spool::Header::new(received.clone()));
        policy::arrival(env, &headers, data.len() - body_at)
    };

    let committer = queue.committer();
    let mut out: Vec<Option<Pending>> = Vec::new();
    let mut jobs = Vec::new();
    let mut slots = Vec::new();
    for (i, r) in env.recipients.iter().enumerate() {
        let addr = r.address.as_str();
        let refuse = |code: u16, st: Status, text: String| {
            Some(Pending::Done(Reply::new(code, st, text).into()))
        };
        let dests = match cfg.routing.route(&cfg, addr) {
            Routed::Deliver(d) => d,
            Routed::Unrouteable { reason, .. } => {
                out.push(refuse(
                    550,
                    Status::new(5, 1, 1),
                    format!("<{addr}>: {reason}"),
                ));
                continue;
            }
            Routed::Defer { reason, .. } | Routed::Freeze { reason, .. } => {
                out.push(Some(Pending::Done(
                    smtp::local_problem(format!("<{addr}>: {reason}")).into(),
                )));
                continue;
            }
        };
        // LMTP recipients are single mailboxes: the first Maildir destination
        // takes the message (a redirect to several is a job for SMTP).
        let Some(dest) = dests
            .into_iter()
            .find(|d| d.driver == TransportDriver::Maildir)
        else {
            out.push(refuse(
                550,
                Status::new(5, 3, 0),
                format!("<{addr}>: not a Maildir recipient"),
            ));
            continue;
        };
        // The Maildir transport every path shares; the Received: line goes
        // in as a prefix, so the message is not copied once more.
        let target = Target {
            path: &dest.path,
            owner: dest.owner,
            folder: None,
            base: Some(id.delivery_name(i)),
            look_first: false,
        };
        let staged = shared
            .maildir()
            .stage(committer.io(), &target, &received, &mut &data[..]);
        match staged {
            Ok(Staged::File(mut file)) => {
                let Some(job) = file.take_job() else {
                    out.push(Some(Pending::Done(
                        smtp::local_problem("Local problem").into(),
                    )));
                    continue;
                };
                jobs.push(job);
                let local = dest
                    .address
                    .rsplit_once('@')
                    .map_or(dest.address.as_str(), |(l, _)| l);
                let log = Box::new(Event::new(
                    Some(id),
                    Kind::Delivered(Delivered {
                        address: Address {
                            original: Some(addr.to_string()),
                            ..Address::new(local)
                        },
                        router: Some(dest.router.clone()),
                        transport: Some(dest.transport.clone()),
                        ..Delivered::default()
                    }),
                ));
                slots.push((out.len(), file, log));
                out.push(None);
            }
            Ok(Staged::Discarded) => {
                out.push(refuse(
                    250,
                    Status::new(2, 0, 0),
                    "accepted (over quota, discarded)".into(),
                ));
            }
            // A fresh ID: no earlier delivery can exist.
            Ok(Staged::Already) => {
                out.push(refuse(250, Status::new(2, 0, 0), "delivered".into()));
            }
            Err(e) => {
                let why = format!("LMTP {addr}");
                out.push(Some(Pending::Done(local_failure(shared, &why, &e).into())));
            }
        }
    }
    let tickets = committer.submit_all(jobs);
    for ((slot, file, log), ticket) in slots.into_iter().zip(tickets) {
        out[slot] = Some(Pending::Commit { ticket, file, log });
    }
    let pending = out
        .into_iter()
        .map(|p| p.unwrap_or_else(|| Pending::Done(smtp::local_problem("Local problem").into())))
        .collect();
    (id, arrival, pending)
}

/// The reply to a recipient whose Maildir delivery failed: the over-quota
/// replies as at RCPT, else the error's class and status with a text that
/// names no path (the details go to paniclog).
fn local_failure(shared: &Shared, context: &str, e: &mailstore::Error) -> Reply {
    if let Some(r) = policy::over_quota_reply(e) {
        return r;
    }
    shared.logs.panic(&format!("{context}: {e}"));
    let outcome = Outcome::of_error(e);
    match &outcome {
        Outcome::Failed { status, .. } => {
            Reply::new(outcome.reply_code(), *status, "Local delivery failed")
        }
        Outcome::Deferred { status, .. } => Reply::new(
            outcome.reply_code(),
            *status,
            "Local problem, try again later",
        ),
        Outcome::Delivered => Reply::new(250, Status::new(2, 0, 0), "delivered"),
    }
}
