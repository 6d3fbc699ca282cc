//! Policy for the SMTP stages, in the order of Exim's ACLs (connect, helo,
//! mail, rcpt, data), and the accept path that puts a message in the spool.
//!
//! - relaying: only local domains are accepted unless the client is in
//!   `relay_from_hosts`; the relay forms (`%` hack, `!` path, a quoted local
//!   part with `@`, a trailing dot in the domain) are refused always, as
//!   Exim's default ACL refuses local parts with `@ % ! / |`;
//! - recipients are verified through the routers (unknown → `550 5.1.1`);
//! - with `smtp.verify_sender`, so is the sender of a client outside
//!   `relay_from_hosts` (`550 5.1.0`/`5.1.8`/`5.7.27`, `451 4.1.8`);
//! - a local Maildir recipient over its `maildirsize` quota gets
//!   `452 4.2.2` or `552 5.2.2` at RCPT time, per `over_quota`.

use std::net::SocketAddr;
use std::sync::Arc;

use spool::{Envelope, Header, HostAddress, split_message};

use super::{Shared, host_of};
use crate::clock;
use crate::log::{self, Arrival, MessageIdField, Rejected, Stage, spooled_size};
use crate::router::{Routed, TransportDriver};
use smtp::session::{Message, Session};
use smtp::{Address, Event, Reply, Stamp, Status, Verdict, received_header, relay_form};

/// Decides HELO, MAIL, RCPT and VRFY.
pub async fn decide(shared: &Arc<Shared>, session: &Session, event: Event) -> Verdict {
    match event {
        Event::Rcpt { to, .. } => {
            let peer = session.peer();
            let helo = session.helo().map(|h| h.1.to_string());
            let from = session
                .envelope()
                .and_then(|e| e.from.as_ref())
                .map(|a| a.as_str().to_string())
                .unwrap_or_default();
            // The sender first, as Exim's `verify = sender` in its RCPT
            // ACL: one answer for the whole transaction, repeated.
            let v = match verify_sender(shared, peer, &from).await {
                Some(refusal) => refusal.into(),
                None => rcpt(shared, peer, &to).await,
            };
            if let Verdict::Reply(r) = &v
                && !r.is_positive()
            {
                let rejected = Rejected {
                    origin: host_of(peer, helo.as_deref()),
                    sender: Some(from),
                    temporary: r.code() < 500,
                    stage: Stage::Rcpt(to.as_str().to_string()),
                    reason: Some(r.lines().join(" ")),
                };
                shared
                    .logs
                    .reject(&log::Event::new(None, log::Kind::Rejected(rejected)), None);
            }
            v
        }
        Event::Vrfy { query } => {
            let addr = if query.contains('@') {
                query.clone()
            } else {
                format!("{query}@{}", shared.cfg().primary_hostname)
            };
            let cfg = shared.cfg();
            let routed = tokio::task::spawn_blocking(move || cfg.routing.route(&cfg, &addr)).await;
            match routed {
                Ok(Routed::Deliver(_)) => Reply::new(
                    250,
                    Status::new(2, 1, 5),
                    format!("<{query}> is deliverable"),
                )
                .into(),
                Ok(Routed::Unrouteable { .. }) => Reply::new(
                    550,
                    Status::new(5, 1, 1),
                    format!("<{query}>: unknown user"),
                )
                .into(),
                _ => smtp::local_problem("Temporary failure, try again later").into(),
            }
        }
        Event::Mail { from, params } => {
            // A full spool is found before the client sends its data.
            match shared.space().short(params.size.unwrap_or(0)) {
                None => Verdict::Accept,
                Some(short) => {
                    if shared.space().time_to_log() {
                        shared.logs.main(&log::Event::other(
                            None,
                            format!(
                                "rejected MAIL FROM:<{}> {}: {short}",
                                from.as_ref().map(|a| a.as_str()).unwrap_or_default(),
                                host_of(session.peer(), session.helo().map(|h| h.1))
                            ),
                        ));
                    }
                    Reply::new(
                        452,
                        Status::new(4, 3, 1),
                        "Insufficient system storage, try again later",
                    )
                    .into()
                }
            }
        }
        _ => Verdict::Accept,
    }
}

/// Sender verification (`smtp.verify_sender`): MAIL FROM's address is
/// routed like a recipient. Not for local submissions, clients in
/// `relay_from_hosts` (they are ours), or `<>` (a report, which has no
/// address to check). The refusal, if the sender cannot take replies.
async fn verify_sender(
    shared: &Arc<Shared>,
    peer: Option<SocketAddr>,
    from: &str,
) -> Option<Reply> {
    let cfg = &shared.cfg();
    let peer = peer?;
    if !cfg.smtp.verify_sender || from.is_empty() || cfg.relay_allowed(peer.ip()) {
        return None;
    }
    let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    let local = cfg.is_local_domain(domain);
    let (cfg, addr) = (cfg.clone(), from.to_string());
    let routed = tokio::task::spawn_blocking(move || cfg.routing.route(&cfg, &addr)).await;
    let refuse = |code, status: Status, why: String| {
        Some(Reply::new(
            code,
            status,
            format!("Sender verify failed: <{from}>: {why}"),
        ))
    };
    match routed {
        Ok(Routed::Deliver(dests)) if cfg_callout(shared) => {
            // A remote sender: ask its host (`smtp.sender_callout`).
            // Never this host (a callout to ourselves would recurse):
            // routing drops loopback answers already (ignore_target_hosts),
            // and here go this host's own listen and interface addresses.
            let own = crate::dnslookup::local_addresses(&shared.cfg());
            let hosts: Vec<_> = dests
                .iter()
                .find(|d| d.driver == TransportDriver::Smtp && !d.hosts.is_empty())
                .map(|d| d.hosts.clone())?
                .into_iter()
                .filter(|h| !own.contains(&h.ip))
                .collect();
            if hosts.is_empty() {
                return None;
            }
            let helo = &shared.cfg().primary_hostname;
            match shared.callouts.verify(helo, &hosts, from).await {
                super::callout::Answer::Accepted => None,
                super::callout::Answer::Refused(why) => {
                    refuse(550, Status::new(5, 1, 0), format!("callout: {why}"))
                }
                super::callout::Answer::Unknown(why) => {
                    shared.logs.main(&log::Event::other(
                        None,
                        format!("sender verify callout for <{from}> did not complete: {why}"),
                    ));
                    Some(Reply::new(
                        451,
                        Status::new(4, 4, 0),
                        "Could not complete sender verify callout",
                    ))
                }
            }
        }
        Ok(Routed::Deliver(_) | Routed::Freeze { .. }) => None,
        // RFC 7505 §4.2: a sender whose domain has a null MX takes no mail.
        Ok(Routed::Unrouteable {
            status: Some(s), ..
        }) if s == Status::new(5, 1, 10) => refuse(
            550,
            Status::new(5, 7, 27),
            "its domain accepts no mail (null MX)".into(),
        ),
        Ok(Routed::Unrouteable { reason, .. }) if local => refuse(
            550,
            Status::new(5, 1, 0),
            format!("unknown user ({reason})"),
        ),
        Ok(Routed::Unrouteable { reason, .. }) => refuse(550, Status::new(5, 1, 8), reason),
        Ok(Routed::Defer { reason, .. }) => refuse(
            451,
            Status::new(4, 1, 8),
            format!("{reason}; try again later"),
        ),
        Err(_) => refuse(451, Status::new(4, 1, 8), "temporary local problem".into()),
    }
}

fn cfg_callout(shared: &Shared) -> bool {
    shared.cfg().smtp.sender_callout
}

async fn rcpt(shared: &Arc<Shared>, peer: Option<SocketAddr>, to: &Address) -> Verdict {
    if let Some(form) = relay_form(to) {
        return Reply::new(
            550,
            Status::new(5, 7, 1),
            format!("Relay not permitted ({form})"),
        )
        .into();
    }
    let address = if to.is_bare_postmaster() {
        format!("postmaster@{}", shared.cfg().primary_hostname)
    } else {
        to.as_str().to_string()
    };
    let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    let local = shared.cfg().is_local_domain(domain);
    let relay_ok = peer.is_some_and(|p| shared.cfg().relay_allowed(p.ip()));
    if !local && !relay_ok {
        return smtp::relay_not_permitted().into();
    }
    let cfg = shared.cfg();
    let maildir = shared.maildir();
    let quota_of = move |routed: &Routed| match routed {
        Routed::Deliver(dests) => dests
            .iter()
            .filter(|d| d.driver == TransportDriver::Maildir)
            .find_map(|d| maildir.over_quota_now(&d.path))
            .and_then(|e| over_quota_reply(&e)),
        _ => None,
    };
    // Routing that reads only local files (aliases, Maildirs and their
    // quota files) is answered here; one that needs the password database
    // or the DNS goes to a thread that may block.
    let checked = match cfg.routing.route_quick(&cfg, &address) {
        Some(routed) => {
            let quota = quota_of(&routed);
            Ok((routed, quota))
        }
        None => {
            tokio::task::spawn_blocking(move || {
                let routed = cfg.routing.route(&cfg, &address);
                let quota = quota_of(&routed);
                (routed, quota)
            })
            .await
        }
    };
    match checked {
        Ok((Routed::Deliver(_), None)) => Verdict::Accept,
        Ok((Routed::Deliver(_), Some(reply))) => reply.into(),
        // A redirect's `:fail: text` and `:defer: text`: the text is the
        // reply, as in Exim.
        Ok((
            Routed::Unrouteable {
                reason,
                status: Some(status),
                ..
            },
            _,
        )) if status == Status::new(5, 0, 0) => Reply::new(550, status, reason).into(),
        Ok((
            Routed::Defer {
                reason,
                status: Some(status),
                ..
            },
            _,
        )) if status == Status::new(4, 0, 0) => Reply::new(451, status, reason).into(),
        Ok((
            Routed::Unrouteable {
                address, reason, ..
            },
            _,
        )) if local => Reply::new(
            550,
            Status::new(5, 1, 1),
            format!("<{address}>: unknown user ({reason})"),
        )
        .into(),
        Ok((
            Routed::Unrouteable {
                address,
                reason,
                status: Some(status),
            },
            _,
        )) => Reply::new(550, status, format!("<{address}>: {reason}")).into(),
        Ok((Routed::Unrouteable { address, .. }, _)) => Reply::new(
            550,
            Status::new(5, 1, 2),
            format!("<{address}>: Unrouteable address"),
        )
        .into(),
        // Accepted; the delivery attempt defers it and freezes the message
        // for an operator, as Exim does.
        Ok((Routed::Freeze { .. }, _)) => Verdict::Accept,
        Ok((
            Routed::Defer {
                reason,
                status: Some(status),
                ..
            },
            _,
        )) => Reply::new(
            451,
            status,
            format!("Temporary failure, try again later ({reason})"),
        )
        .into(),
        Ok((Routed::Defer { reason, .. }, _)) => {
            smtp::local_problem(format!("Temporary failure, try again later ({reason})")).into()
        }
        Err(_) => smtp::local_problem("Temporary local problem").into(),
    }
}

/// The reply for a Maildir over its quota: `452 4.2.2` when the policy
/// defers, `552 5.2.2` when it rejects; `None` for any other error.
pub fn over_quota_reply(e: &mailstore::Error) -> Option<Reply> {
    match e {
        mailstore::Error::OverQuota {
            permanent: true, ..
        } => Some(Reply::new(
            552,
            Status::new(5, 2, 2),
            format!("Mailbox full: {}", short(e)),
        )),
        mailstore::Error::OverQuota { .. } => Some(Reply::new(
            452,
            Status::new(4, 2, 2),
            format!("Mailbox full, try again later: {}", short(e)),
        )),
        _ => None,
    }
}

/// The `Received:` header Sluice adds, in Exim's form, with LF line ends
/// (the spool's and the Maildir's).
pub fn received(shared: &Shared, env: &smtp::session::SmtpEnvelope, id: &str) -> Vec<u8> {
    let header = received_header(
        env,
        &Stamp {
            host: &shared.cfg().primary_hostname,
            id,
            peer_name: None,
            date: &clock::rfc5322(clock::now()),
        },
    );
    to_lf(header.as_bytes())
}

fn short(e: &mailstore::Error) -> String {
    // The path is the server's business, not the client's.
    match e {
        mailstore::Error::OverQuota {
            used_bytes,
            limit_bytes,
            used_count,
            limit_count,
            ..
        } => {
            format!("{used_bytes}/{limit_bytes} bytes, {used_count}/{limit_count} messages")
        }
        other => other.to_string(),
    }
}

/// CRLF → LF: the spool stores LF line ends, as Exim's does.
pub fn to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    to_lf_in_place(&mut out);
    out
}

/// [`to_lf`] within `data` itself (the result is never longer), so that a
/// message held whole is not held twice.
pub fn to_lf_in_place(data: &mut Vec<u8>) {
    let (mut read, mut write) = (0, 0);
    while let Some(cr) = memchr::memchr(b'\r', &data[read..]).map(|i| read + i) {
        // A CR before an LF is dropped; any other CR is kept.
        let end = if data.get(cr + 1) == Some(&b'\n') {
            cr
        } else {
            cr + 1
        };
        data.copy_within(read..end, write);
        write += end - read;
        read = cr + 1;
    }
    let len = data.len();
    data.copy_within(read..len, write);
    data.truncate(write + len - read);
}

/// [`to_lf_in_place`] for the next piece of content converted piece by
/// piece (a message written out while it arrives): a CR at the end of
/// `piece` waits in `pending_cr`, and is dropped if the next piece starts
/// with LF, so that the pieces together read as [`to_lf`] of the whole,
/// wherever they were cut. A CR still pending at the end is the content's
/// last octet.
pub fn to_lf_piece(piece: &mut Vec<u8>, pending_cr: &mut bool) {
    if piece.is_empty() {
        return;
    }
    if std::mem::take(pending_cr) && piece[0] != b'\n' {
        // A bare CR before this piece (rare: SMTP refuses a message with
        // one): kept.
        piece.insert(0, b'\r');
    }
    if piece.last() == Some(&b'\r') {
        piece.pop();
        *pending_cr = true;
    }
    to_lf_in_place(piece);
}

/// Puts an accepted message in the spool and answers `250 OK id=...` once
/// it is durable (`451` when the spool cannot take it).
pub async fn accept_message(
    shared: &Arc<Shared>,
    mut msg: Message,
    local: Option<&Arc<crate::cmd::local_sender::Local>>,
    inbound: Option<super::streaming::Inbound>,
) -> Verdict {
    // Content the connection took from the session while it arrived:
    // written out already, or given back.
    let streamed = match inbound {
        None => None,
        Some(super::streaming::Inbound::Active(a)) => Some(a),
        Some(super::streaming::Inbound::Gathering(mut taken))
        | Some(super::streaming::Inbound::Held(mut taken)) => {
            if !taken.is_empty() {
                taken.extend_from_slice(&msg.data);
                msg.data = taken;
            }
            None
        }
    };
    // A local user over their hourly rate on the submission socket.
    let now = crate::clock::now();
    if let Some(l) = local
        && let Some(limits) = &l.limits
        && let Some(why) = limits.over_rate(&shared.logs, &shared.cfg(), &l.caller, now)
    {
        return Reply::new(452, Status::new(4, 7, 0), why).into();
    }
    let v = match streamed {
        // Only messages from the network are streamed (not a local
        // submitter's, whose sender and headers are fixed at the end).
        Some(active) => super::direct::deliver_streamed(shared, Box::new(msg), active).await,
        None => accept(shared, msg, local).await,
    };
    // The rate check counted the message; one not accepted gives its
    // place back.
    if let Some(l) = local
        && let Some(limits) = &l.limits
        && !matches!(&v, Verdict::Reply(r) if r.is_positive())
    {
        limits.release(l.caller.uid, now);
    }
    v
}

async fn accept(
    shared: &Arc<Shared>,
    mut msg: Message,
    local: Option<&Arc<crate::cmd::local_sender::Local>>,
) -> Verdict {
    // A local (-bs) submitter who may not set this sender: MAIL FROM is
    // ignored, as -f is.
    if let Some(local) = local.map(|l| &l.submitter).filter(|l| !l.trusted) {
        let asked = msg
            .envelope
            .from
            .as_ref()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let (sender, _) = crate::cmd::local_sender::sender(
            Some(asked),
            false,
            &shared.cfg().untrusted_set_sender,
            &local.login_address,
        );
        msg.envelope.from = if sender.is_empty() {
            None
        } else {
            sender.parse().ok()
        };
    }
    let msg = match super::direct::deliver(shared, Box::new(msg), local.cloned()).await {
        super::direct::Direct::Answered(v) => return v,
        super::direct::Direct::Spool(msg) => *msg,
    };
    let local = local.cloned();
    spool(shared, move |s| stage(s, &msg, local.as_deref())).await
}

/// Puts in the spool the message `make` writes (on a blocking thread);
/// once it is durable, logs its arrival, hands it to a delivery, and
/// answers `250` (`451`/`452` when the spool cannot take it).
pub(super) async fn spool(
    shared: &Arc<Shared>,
    make: impl FnOnce(&Shared) -> Result<(spool::StagedMessage, Arrival), spool::Error> + Send + 'static,
) -> Verdict {
    let s = shared.clone();
    let staged = tokio::task::spawn_blocking(move || {
        let (staged, arrival) = make(&s)?;
        // With Batch this only queues the job for the committer thread;
        // with Strict it flushes here, which is why it runs off the runtime.
        Ok::<_, spool::Error>((s.queue.submit(staged), arrival))
    })
    .await;
    let (entry, arrival) = match staged {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return spool_failure(shared, &e),
        Err(_) => return smtp::local_problem("Temporary local problem").into(),
    };
    match entry.wait_async().await {
        Ok(id) => {
            shared
                .logs
                .main(&log::Event::new(Some(id), log::Kind::Arrival(arrival)));
            if !shared.cfg().queue_only {
                shared.runner.arrived(id);
            }
            Reply::queued(id.as_str()).into()
        }
        Err(e) => spool_failure(shared, &e),
    }
}

fn spool_failure(shared: &Shared, e: &spool::Error) -> Verdict {
    shared.logs.panic(&format!("spool write failed: {e}"));
    if e.is_no_space() {
        return Reply::new(
            452,
            Status::new(4, 3, 1),
            "Insufficient system storage, try again later",
        )
        .into();
    }
    smtp::local_problem("Local problem writing the spool, try again later").into()
}

/// Writes the message into the spool under temporary names; returns it
/// and its `<=` log event.
fn stage(
    shared: &Shared,
    msg: &Message,
    local: Option<&crate::cmd::local_sender::Local>,
) -> Result<(spool::StagedMessage, Arrival), spool::Error> {
    let env = &msg.envelope;
    let data = to_lf(&msg.data);
    let queue = &shared.queue;
    let mut draft = queue.draft()?;
    let id = draft.id();
    let (all, body_at) =
        spool_headers(shared, env, id.as_str(), &data, local.map(|l| &l.submitter));
    let senv = spool_envelope(msg, local);
    draft.write(&data[body_at..])?;
    let staged = draft.finish(&senv, &all)?;

    Ok((staged, arrival(env, &all, data.len() - body_at)))
}

/// The envelope the spool keeps for `msg`: sender, recipients with their
/// DSN parameters, who submitted it and from where.
pub fn spool_envelope(msg: &Message, local: Option<&crate::cmd::local_sender::Local>) -> Envelope {
    let env = &msg.envelope;
    let from = env
        .from
        .as_ref()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let rcpts: Vec<String> = env
        .recipients
        .iter()
        .map(|r| r.address.as_str().to_string())
        .collect();
    let rcpt_refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let mut senv = Envelope::new(from.clone(), &rcpt_refs);
    // DSN (RFC 3461), as the client gave it, in Exim's -H layout.
    senv.dsn_ret = env.params.ret.map(|r| match r {
        smtp::client::Ret::Full => spool::DsnRet::Full,
        smtp::client::Ret::Headers => spool::DsnRet::Headers,
    });
    senv.dsn_envid = env.params.envid.clone();
    for (r, given) in senv.recipients.iter_mut().zip(&env.recipients) {
        r.orcpt = given.params.orcpt.clone();
        if let Some(n) = given.params.notify {
            r.notify = spool::DsnNotify::from_flags(n.success, n.failure, n.delay);
        }
    }
    senv.caller = local.map_or_else(
        || crate::sys::process_caller().clone(),
        |l| l.caller.clone(),
    );
    senv.protocol = Some(env.protocol.clone());
    senv.helo_name = Some(env.helo.clone());
    if let Some(p) = env.peer {
        senv.host_address = Some(HostAddress {
            ip: p.to_string(),
            port: 0,
        });
    }
    senv
}

/// The headers of a message as the spool holds them, and where its body
/// starts in `data` (LF line ends): the `Received:` header naming `id` on
/// top of the message's own, with a local submitter's `Sender:` rules
/// applied. The spool path and the direct path both write these.
pub fn spool_headers(
    shared: &Shared,
    env: &smtp::session::SmtpEnvelope,
    id: &str,
    data: &[u8],
    submitter: Option<&crate::cmd::local_sender::Submitter>,
) -> (Vec<Header>, usize) {
    let (headers, body_at) = split_message(data);
    let mut all = Vec::with_capacity(headers.len() + 1);
    all.push(Header::new(received(shared, env, id)));
    all.extend(headers);
    if let Some(local) = submitter {
        local.fix(&shared.cfg(), &mut all);
    }
    (all, body_at)
}

/// The `<=` event of a message with `headers` (the `Received:` line
/// included) and a body of `body_len` bytes.
pub fn arrival(env: &smtp::session::SmtpEnvelope, headers: &[Header], body_len: usize) -> Arrival {
    let from = env.from.as_ref().map(|a| a.as_str()).unwrap_or_default();
    let mut arrival = Arrival::new(
        from,
        host_of(env.peer.map(|ip| SocketAddr::new(ip, 0)), Some(&env.helo)),
        &env.protocol,
        spooled_size(headers, body_len),
    );
    arrival.tls = env.tls.as_ref().map(super::tls::x_field);
    arrival.message_id = MessageIdField::of(headers);
    arrival
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_to_lf_keeps_everything_else() {
        assert_eq!(to_lf(b"a\r\nb\r\n\r\n"), b"a\nb\n\n");
        assert_eq!(to_lf(b"a\rb\n"), b"a\rb\n");
        assert_eq!(to_lf(b"\r"), b"\r");
    }

    #[test]
    fn crlf_to_lf_in_place_is_to_lf() {
        // The rule, one octet at a time: a CR is dropped when an LF
        // follows it.
        let reference = |data: &[u8]| -> Vec<u8> {
            (0..data.len())
                .filter(|&i| !(data[i] == b'\r' && data.get(i + 1) == Some(&b'\n')))
                .map(|i| data[i])
                .collect()
        };
        // Every string of up to 7 bytes over {a, CR, LF}.
        let alphabet = [b'a', b'\r', b'\n'];
        for len in 0..=7u32 {
            for n in 0..3usize.pow(len) {
                let mut k = n;
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        let c = alphabet[k % 3];
                        k /= 3;
                        c
                    })
                    .collect();
                let mut in_place = s.clone();
                to_lf_in_place(&mut in_place);
                assert_eq!(in_place, reference(&s), "{s:?}");
                assert_eq!(to_lf(&s), in_place, "{s:?}");
            }
        }
    }
}
