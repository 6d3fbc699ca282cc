//! LMTP delivery: Sluice as the delivery agent of another MTA (Postfix's
//! `lmtp` transport, Exim's `lmtp` transport). The message does not go
//! through the spool: each recipient's Maildir delivery is made durable
//! (through the shared group committer) before its `250` is sent, one reply
//! per recipient, as RFC 2033 asks.

use std::sync::Arc;

use mailstore::maildir::{DeliverOptions, Maildir, QuotaVerdict};

use super::Shared;
use super::policy::{self, to_lf};
use crate::router::{Routed, TransportDriver};
use smtp::session::Message;
use smtp::{Reply, Status, Verdict};

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
///
/// The main log gets what the spool path writes: the arrival (`<=`, with
/// `P=lmtp`), one `=>` per delivered recipient and `Completed`, so that
/// every message ID there has a whole story; recipients refused after the
/// data go to the reject log, as those refused at RCPT do.
pub async fn deliver(shared: &Arc<Shared>, msg: &Message) -> Vec<Verdict> {
    let s = shared.clone();
    let m = msg.clone();
    let staged = tokio::task::spawn_blocking(move || stage_all(&s, &m)).await;
    let (id, arrival, pending) = match staged {
        Ok(p) => p,
        Err(_) => {
            let r: Verdict =
                Reply::new(451, Status::new(4, 3, 0), "Temporary local problem").into();
            return vec![r; msg.envelope.recipients.len()];
        }
    };
    let mut verdicts = Vec::with_capacity(pending.len());
    let mut delivered = Vec::new();
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
                    delivered.push(log);
                    Reply::new(250, Status::new(2, 0, 0), "delivered").into()
                }
                Err(e) => {
                    shared.logs.panic(&format!("LMTP delivery failed: {e}"));
                    Reply::new(451, Status::new(4, 3, 0), "Local problem, try again later").into()
                }
            },
        });
    }
    let env = &msg.envelope;
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
            shared.logs.reject(
                &format!("{host} F=<{from}> rejected after DATA for <{addr}>: {text}"),
                None,
            );
        }
    }
    if !delivered.is_empty() {
        shared.logs.main(&format!("{id} {arrival}"));
        for line in &delivered {
            shared.logs.main(line);
        }
        shared.logs.main(&format!("{id} Completed"));
    }
    verdicts
}

/// Routes and stages every recipient, hands the Maildir files to the
/// committer in one go (so they share a flush), and returns what to await.
/// Also returns the message ID and the rest of its `<=` line.
fn stage_all(shared: &Shared, msg: &Message) -> (spool::MessageId, String, Vec<Pending>) {
    let env = &msg.envelope;
    let queue = shared.deliverer.queue();
    let id = queue.id_generator().next();
    let data = to_lf(&msg.data);
    let mut message = policy::received(shared, env, id.as_str());
    message.extend_from_slice(&data);
    let arrival = arrival_line(env, &data, message.len());

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
            Err(e) => {
                let reply = policy::over_quota_reply(&e).unwrap_or_else(|| {
                    shared.logs.panic(&format!("LMTP {addr}: {e}"));
                    Reply::new(451, Status::new(4, 3, 0), "Local problem, try again later")
                });
                out.push(Some(Pending::Done(reply.into())));
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
                    "{id} => {} <{addr}> R={} T={}",
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
    let pending = out
        .into_iter()
        .map(|p| {
            p.unwrap_or_else(|| {
                Pending::Done(Reply::new(451, Status::new(4, 3, 0), "Local problem").into())
            })
        })
        .collect();
    (id, arrival, pending)
}

/// The `<=` line after the ID: sender, host, `P=lmtp`, size (with the
/// Received: line, as delivered) and the Message-ID.
fn arrival_line(env: &smtp::session::Envelope, data: &[u8], size: usize) -> String {
    let from = env
        .from
        .as_ref()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| "<>".to_string());
    let host = super::host_of(
        env.peer.map(|ip| std::net::SocketAddr::new(ip, 0)),
        Some(&env.helo),
    );
    let mut line = format!("<= {from} {host} P={} S={size}", env.protocol);
    let (headers, _) = spool::split_message(data);
    if let Some(m) = headers
        .iter()
        .find(|h| h.is("message-id"))
        .and_then(|h| std::str::from_utf8(&h.text).ok())
        .and_then(|t| t.split_once(':').map(|(_, v)| v.trim().to_string()))
    {
        line.push_str(&format!(" id={m}"));
    }
    line
}
