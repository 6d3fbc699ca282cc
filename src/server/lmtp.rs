//! LMTP delivery: Sluice as the delivery agent of another MTA (Postfix's
//! `lmtp` transport, Exim's `lmtp` transport). The message does not go
//! through the spool: each recipient's Maildir delivery is made durable
//! (through the shared group committer) before its `250` is sent, one reply
//! per recipient, as RFC 2033 asks.

use std::sync::Arc;

use mailstore::maildir::{DeliverOptions, Maildir, QuotaVerdict};

use super::Shared;
use super::policy::to_lf;
use crate::clock;
use crate::router::{Routed, TransportDriver};
use crate::smtp::session::Message;
use crate::smtp::{Reply, Stamp, Status, Verdict, received_header};

enum Pending {
    Done(Verdict),
    /// Waiting for the committer; then logged and counted in the quota.
    Commit {
        ticket: durable::Ticket,
        maildir: Maildir,
        size: u64,
        log: String,
    },
}

/// Delivers `msg` to each of its recipients; one verdict per recipient.
pub async fn deliver(shared: &Arc<Shared>, msg: &Message) -> Vec<Verdict> {
    let s = shared.clone();
    let m = msg.clone();
    let staged = tokio::task::spawn_blocking(move || stage_all(&s, &m)).await;
    let pending = match staged {
        Ok(p) => p,
        Err(_) => {
            let r: Verdict =
                Reply::new(451, Status::new(4, 3, 0), "Temporary local problem").into();
            return vec![r; msg.envelope.recipients.len()];
        }
    };
    let mut verdicts = Vec::with_capacity(pending.len());
    for p in pending {
        verdicts.push(match p {
            Pending::Done(v) => v,
            Pending::Commit {
                ticket,
                maildir,
                size,
                log,
            } => match ticket.wait_async().await {
                Ok(()) => {
                    maildir.record_delivery(size);
                    shared.logs.main(&log);
                    Reply::new(250, Status::new(2, 0, 0), "delivered").into()
                }
                Err(e) => {
                    shared.logs.panic(&format!("LMTP delivery failed: {e}"));
                    Reply::new(451, Status::new(4, 3, 0), "Local problem, try again later").into()
                }
            },
        });
    }
    verdicts
}

/// Routes and stages every recipient, hands the Maildir files to the
/// committer in one go (so they share a flush), and returns what to await.
fn stage_all(shared: &Shared, msg: &Message) -> Vec<Pending> {
    let env = &msg.envelope;
    let queue = shared.deliverer.queue();
    let id = queue.id_generator().next();
    let data = to_lf(&msg.data);
    let received = received_header(
        env,
        &Stamp {
            host: &shared.cfg.primary_hostname,
            id: id.as_str(),
            peer_name: None,
            date: &clock::rfc5322(clock::now()),
        },
    );
    let mut message = to_lf(received.as_bytes());
    message.extend_from_slice(&data);

    let committer = queue.committer();
    let mut out: Vec<Option<Pending>> = Vec::new();
    let mut jobs = Vec::new();
    let mut slots = Vec::new();
    for (i, r) in env.recipients.iter().enumerate() {
        let addr = r.address.as_str();
        let refuse = |code: u16, st: Status, text: String| {
            Some(Pending::Done(Reply::new(code, st, text).into()))
        };
        let dests = match shared.routing.route(&shared.cfg, addr) {
            Routed::Deliver(d) => d,
            Routed::Unrouteable { reason, .. } => {
                out.push(refuse(
                    550,
                    Status::new(5, 1, 1),
                    format!("<{addr}>: {reason}"),
                ));
                continue;
            }
            Routed::Defer { reason, .. } => {
                out.push(refuse(
                    451,
                    Status::new(4, 3, 0),
                    format!("<{addr}>: {reason}"),
                ));
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
        let md = match Maildir::create_owned(&dest.path, dest.owner) {
            Ok(m) => m,
            Err(e) => {
                shared.logs.panic(&format!("LMTP {addr}: {e}"));
                out.push(refuse(
                    451,
                    Status::new(4, 3, 0),
                    "Local problem, try again later".into(),
                ));
                continue;
            }
        };
        match md.check_quota(message.len() as u64, shared.cfg.over_quota) {
            Ok(QuotaVerdict::Fits { .. }) => {}
            Ok(QuotaVerdict::Discard) => {
                out.push(refuse(
                    250,
                    Status::new(2, 0, 0),
                    "accepted (over quota, discarded)".into(),
                ));
                continue;
            }
            Err(mailstore::Error::OverQuota {
                permanent: true, ..
            }) => {
                out.push(refuse(
                    552,
                    Status::new(5, 2, 2),
                    format!("<{addr}>: Mailbox full"),
                ));
                continue;
            }
            Err(mailstore::Error::OverQuota { .. }) => {
                out.push(refuse(
                    452,
                    Status::new(4, 2, 2),
                    format!("<{addr}>: Mailbox full, try again later"),
                ));
                continue;
            }
            Err(e) => {
                shared.logs.panic(&format!("LMTP {addr}: {e}"));
                out.push(refuse(
                    451,
                    Status::new(4, 3, 0),
                    "Local problem, try again later".into(),
                ));
                continue;
            }
        }
        let opts = DeliverOptions {
            host: shared.cfg.primary_hostname.clone(),
            base_name: Some(id.delivery_name(i)),
            owner: dest.owner,
            allow_empty: true,
            ..Default::default()
        };
        match md.stage(committer.io(), &mut &message[..], &opts) {
            Ok(staged) => {
                let size = staged.size;
                jobs.push(staged.into_job());
                let log = format!(
                    "{id} => {} <{addr}> R={} T={} P=lmtp S={size}",
                    dest.address
                        .rsplit_once('@')
                        .map_or(dest.address.as_str(), |(l, _)| l),
                    dest.router,
                    dest.transport
                );
                slots.push((out.len(), md, size, log));
                out.push(None);
            }
            Err(e) => {
                shared.logs.panic(&format!("LMTP {addr}: {e}"));
                out.push(refuse(
                    451,
                    Status::new(4, 3, 0),
                    "Local problem, try again later".into(),
                ));
            }
        }
    }
    let tickets = committer.submit_all(jobs);
    for ((slot, maildir, size, log), ticket) in slots.into_iter().zip(tickets) {
        out[slot] = Some(Pending::Commit {
            ticket,
            maildir,
            size,
            log,
        });
    }
    out.into_iter()
        .map(|p| {
            p.unwrap_or_else(|| {
                Pending::Done(Reply::new(451, Status::new(4, 3, 0), "Local problem").into())
            })
        })
        .collect()
}
