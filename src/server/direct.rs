//! Direct delivery: a message's copies for local Maildirs are written into
//! them before its `250`, without the spool.
//!
//! The spool exists so that an accepted message survives until it is
//! delivered. For a recipient whose every destination is a local Maildir,
//! the delivery itself can be made durable before the reply, as an LMTP
//! server does: the spool files would be written, synced, read back and
//! removed for nothing. SMTP has one reply for all recipients, so the
//! copies made here are made for all such recipients or for none: any copy
//! that cannot be staged sends the whole message down the spool path, as
//! if this module did not exist.
//!
//! A message with other recipients too (an mbox, a pipe, a remote address,
//! one asking for a success report) is split: the spool files are written
//! for the whole message with the copies made here recorded as intents in
//! its `-J` file, staged with the copies and published before them in the
//! same job. After the commit the copies are recorded as delivered and the
//! rest is delivered from the spool as usual.
//!
//! | step | a crash or a lost connection here leaves |
//! |---|---|
//! | stage every copy in its Maildir's `tmp/` (and the spool files, split) | only `tmp/` files, no delivery; the client sends again (Maildir removes its old `tmp/` files) |
//! | one data barrier for every file (the group committer's) | the same |
//! | publish the spool files (split), then every copy into `new/` (`RENAME_NOREPLACE`), one job | some files visible, perhaps not durable: the client, without a `250`, sends again; the RFC 1047 window every MTA has. A split message in the spool has intents for its copies: its delivery looks for them by name and makes only the missing ones |
//! | directory barrier | the copies (and the spool files) durable; still no `250` |
//! | `<=`, `=>` (and `Completed` unless split) in one write to mainlog | the delivery logged |
//! | split: the copies recorded as delivered (unsynced), the rest handed to a delivery | if lost, the intents have the delivery look for the copies first |
//! | `250 OK id=ID` | done |
//!
//! A rename failing after others succeeded keeps those (a reader may have
//! opened them): their recipients are delivered, and the message goes to
//! the spool under the same ID with them recorded so, for the others to
//! get their copies under the same `<ID>.<n>` names; if the spool cannot
//! take it, `451`, and the log names who has the message already (the one
//! case where a 4xx follows a delivery). A split message's job is all or
//! none. A failed sync takes back everything the batch published: the
//! message then goes to the spool afresh.

use std::sync::Arc;

use spool::MessageId;

use super::Shared;
use super::policy::{self, to_lf};
use super::streaming::{Active, Finished};
use crate::delivery::{local_copy_name, local_delivered_event, local_prefix, stored_head};
use crate::log::Event;
use crate::router::{Destination, Routed, TransportDriver};
use crate::transport::maildir::{Staged, StagedFile, Target};
use smtp::session::{Message, SmtpEnvelope};
use smtp::{Reply, Verdict};

/// What became of a message offered for direct delivery.
pub enum Direct {
    /// Delivered (or refused at the final dot): this is the reply.
    Answered(Verdict),
    /// Not for this path: the spool takes it.
    Spool(Box<Message>),
}

/// Delivers `msg` straight into its recipients' Maildirs when it may
/// (see [`eligible`]), else hands it back for the spool.
pub async fn deliver(
    shared: &Arc<Shared>,
    msg: Box<Message>,
    local: Option<Arc<crate::cmd::local_sender::Local>>,
) -> Direct {
    if !eligible(&shared.cfg(), &msg.envelope) {
        return Direct::Spool(msg);
    }
    let s = shared.clone();
    let submitter = local.clone();
    let staged = tokio::task::spawn_blocking(move || {
        let plan = stage(&s, &msg, submitter.as_deref());
        (plan, msg)
    })
    .await;
    let (plan, msg) = match staged {
        Ok(x) => x,
        // The staging thread panicked and took the message with it.
        Err(_) => {
            return Direct::Answered(smtp::local_problem("Temporary local problem").into());
        }
    };
    match plan {
        Plan::Spool => Direct::Spool(msg),
        Plan::Refuse(reply) => Direct::Answered(reply.into()),
        Plan::Ready(ticket, ready) => settle(shared, msg, local, ticket, ready).await,
    }
}

/// Waits for the copies' commit and answers: the log lines, then `250`.
async fn settle(
    shared: &Arc<Shared>,
    msg: Box<Message>,
    local: Option<Arc<crate::cmd::local_sender::Local>>,
    ticket: durable::Ticket,
    ready: Ready,
) -> Direct {
    match ticket.wait_async().await {
        Ok(()) => {
            for file in ready.files {
                // Counted in maildirsize; the file is durable already.
                let _ = file.finish(Ok(()));
            }
            // Written before the reply: a kill after the 250 never leaves
            // a delivered message without its lines.
            shared.logs.main_all(&ready.lines);
            if let Some(delivered) = ready.spooled {
                let s = shared.clone();
                let id = ready.id;
                // The direct copies recorded as delivered, then the rest
                // delivered from the spool. Should the record be lost (a
                // kill, or a queue runner holding the message), the
                // delivery finds the copies by name: their intents say to
                // look.
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = record_delivered(&s.queue, &id, &delivered);
                    s.runner.arrived(id);
                })
                .await;
            }
            if let Source::Draft(draft) = ready.source {
                // Not needed: dropping it removes its files.
                tokio::task::spawn_blocking(move || drop(draft));
            }
            Direct::Answered(Reply::queued(ready.id.as_str()).into())
        }
        Err(durable::CommitError::Partly {
            published,
            path,
            source,
        }) => {
            let why = format!("rename {}: {source}", path.display());
            Direct::Answered(spool_the_rest(shared, msg, local, ready, published, why).await)
        }
        Err(e) => {
            // The committer removed whatever the batch had written; the
            // spool takes the message and delivers it afresh.
            let outcome = match ready.source {
                Source::Lost => "not accepted",
                _ => "spooled",
            };
            shared.logs.panic(&format!(
                "{} direct delivery failed, {outcome}: {e}",
                ready.id
            ));
            match ready.source {
                Source::Memory { .. } => Direct::Spool(msg),
                Source::Draft(draft) => Direct::Answered(
                    spool_draft(shared, msg, *draft, ready.headers, ready.body_len).await,
                ),
                Source::Lost => {
                    Direct::Answered(smtp::local_problem("Temporary local problem").into())
                }
            }
        }
    }
}

/// Completes a message written while it arrived
/// ([`super::streaming`]): the copies take this path if every one was
/// written and the routing has not changed since; else they are removed
/// and the spool draft written beside them becomes the spooled message.
pub async fn deliver_streamed(
    shared: &Arc<Shared>,
    msg: Box<Message>,
    active: Box<Active>,
) -> Verdict {
    let fin = active.finish(&msg.data).await;
    let s = shared.clone();
    let planned = tokio::task::spawn_blocking(move || {
        let plan = plan_streamed(&s, &msg, fin);
        (plan, msg)
    })
    .await;
    let (plan, msg) = match planned {
        Ok(x) => x,
        Err(_) => return smtp::local_problem("Temporary local problem").into(),
    };
    match plan {
        Streamed::Ready(ticket, ready) => match settle(shared, msg, None, ticket, ready).await {
            Direct::Answered(v) => v,
            // Only a message held in memory is handed back.
            Direct::Spool(_) => smtp::local_problem("Temporary local problem").into(),
        },
        Streamed::Refuse(reply) => reply.into(),
        Streamed::Spool(draft, headers, body_len) => {
            spool_draft(shared, msg, draft, headers, body_len).await
        }
        Streamed::Fail => smtp::local_problem("Temporary local problem").into(),
    }
}

enum Streamed {
    Ready(durable::Ticket, Ready),
    Refuse(Reply),
    /// The draft, the headers, the body's size.
    Spool(spool::Draft, Vec<spool::Header>, usize),
    /// Nothing to deliver from (the draft failed and so did a copy).
    Fail,
}

/// Hands every written copy to the committer as one job (with the spool
/// files for the other recipients, split, when there are any), or takes
/// the copies back and says what else to do. Blocking.
fn plan_streamed(shared: &Shared, msg: &Message, fin: Finished) -> Streamed {
    let Finished {
        id,
        headers,
        routed,
        copies,
        draft,
        body_len,
    } = fin;
    let io = shared.queue.committer().io();
    let body_len = usize::try_from(body_len).unwrap_or(usize::MAX);
    // The copies written, and why others were not.
    let count = copies.len();
    let mut written = Vec::with_capacity(count);
    let mut errors = Vec::new();
    for (rcpt, address, dest, staged) in copies {
        match staged {
            Ok(Staged::File(file)) => written.push(Copy {
                rcpt,
                address,
                dest,
                file,
            }),
            Err(e) => errors.push(e),
            Ok(_) => {}
        }
    }
    // A stream that could not start its writers has nothing to give.
    let Some(id) = id else {
        discard(io, written);
        return Streamed::Fail;
    };
    // Routing again at the final dot, as for a message held in memory (a
    // reload may also have set queue_only meanwhile).
    let unchanged = direct_routes(shared, &msg.envelope) == routed;
    let whole = routed.len() == msg.envelope.recipients.len();
    if count == 0 || !unchanged || written.len() < count {
        discard(io, written);
        // One recipient over its quota at the real size: told now.
        let refusal = match errors.first() {
            Some(e) if whole && count == 1 && unchanged => policy::over_quota_reply(e),
            _ => None,
        };
        return match (refusal, draft) {
            (Some(reply), _) => Streamed::Refuse(reply),
            (None, Some(draft)) => Streamed::Spool(draft, headers, body_len),
            (None, None) => Streamed::Fail,
        };
    }
    let (split, source) = if whole {
        let source = draft.map_or(Source::Lost, |d| Source::Draft(Box::new(d)));
        (None, source)
    } else {
        // Split: the draft becomes the spooled message with the copies as
        // intents.
        let delivered: Vec<usize> = routed.iter().map(|(i, _)| *i).collect();
        let senv = policy::spool_envelope(msg, None);
        match draft.map(|d| d.finish_with_intents(&senv, &headers, &delivered)) {
            Some(Ok(staged)) => (Some((staged, delivered)), Source::Lost),
            _ => {
                discard(io, written);
                return Streamed::Fail;
            }
        }
    };
    let (ticket, ready) = submit_copies(shared, msg, id, headers, body_len, written, split, source);
    Streamed::Ready(ticket, ready)
}

/// Spools a streamed message from its draft (the body in it already) and
/// answers as the spool path does.
async fn spool_draft(
    shared: &Arc<Shared>,
    msg: Box<Message>,
    draft: spool::Draft,
    headers: Vec<spool::Header>,
    body_len: usize,
) -> Verdict {
    policy::spool(shared, move |_| {
        let senv = policy::spool_envelope(&msg, None);
        let arrival = policy::arrival(&msg.envelope, &headers, body_len);
        Ok((draft.finish(&senv, &headers)?, arrival))
    })
    .await
}

/// What can be told from the envelope alone: no `queue_only`, few enough
/// recipients.
fn eligible(cfg: &crate::config::Config, env: &SmtpEnvelope) -> bool {
    let rcpts = &env.recipients;
    !cfg.queue_only && !rcpts.is_empty() && rcpts.len() <= cfg.direct_max_recipients
}

/// The recipients that take this path and their destinations, routed now;
/// none when the message may not take it ([`eligible`]). Blocking
/// (routing).
pub(super) fn direct_routes(shared: &Shared, env: &SmtpEnvelope) -> Vec<(usize, Vec<Destination>)> {
    let cfg = shared.cfg();
    if !eligible(&cfg, env) {
        return Vec::new();
    }
    env.recipients
        .iter()
        .enumerate()
        .filter_map(|(i, r)| direct_destinations(&cfg, r).map(|d| (i, d)))
        .collect()
}

enum Plan {
    Spool,
    Refuse(Reply),
    /// The committer's ticket for the job, and what to do after it.
    Ready(durable::Ticket, Ready),
}

/// Every copy staged and handed to the committer as one job.
struct Ready {
    id: MessageId,
    files: Vec<StagedFile>,
    /// `<=`, one `=>` per copy, and `Completed` unless some recipients
    /// were spooled.
    lines: Vec<Event>,
    /// With some recipients spooled: the indexes of those delivered here.
    spooled: Option<Vec<usize>>,
    /// Per copy, in `files`' order: its recipient's index and how many
    /// files its job publishes.
    copies: Vec<(usize, usize)>,
    /// What the spool would need, should the copies be published only in
    /// part: the headers as it keeps them, and the body.
    headers: Vec<spool::Header>,
    source: Source,
    /// The body's size (LF line ends), for a `<=` line written later.
    body_len: usize,
}

/// Where the body is, should the spool need it after all.
enum Source {
    /// In memory: the message (LF line ends) and where its body starts.
    Memory { data: Vec<u8>, body_at: usize },
    /// Written into a spool draft while it arrived (a streamed message).
    Draft(Box<spool::Draft>),
    /// Nowhere: writing the draft failed.
    Lost,
}

/// A rename failed after others succeeded (EIO, ENOSPC growing `new/`):
/// the copies published are delivered and durable, the rest removed. The
/// message is spooled under the same ID with the recipients whose copies
/// are all published recorded as delivered, so the others get theirs under
/// the same names. If the spool cannot take it either, the client gets a
/// `451` although some recipients have the message (its resend will reach
/// them again), and the log says who.
async fn spool_the_rest(
    shared: &Arc<Shared>,
    msg: Box<Message>,
    local: Option<Arc<crate::cmd::local_sender::Local>>,
    ready: Ready,
    published: usize,
    why: String,
) -> Verdict {
    let Ready {
        id,
        files,
        mut lines,
        copies,
        headers,
        source,
        ..
    } = ready;
    // `lines`: `<=`, one `=>` per copy, and `Completed` unless split.
    if lines
        .last()
        .is_some_and(|e| matches!(e.kind, crate::log::Kind::Completed(_)))
    {
        lines.pop();
    }
    let mut kept = vec![lines[0].clone()];
    let mut whole: std::collections::BTreeMap<usize, bool> = Default::default();
    let mut left = published;
    for (k, (&(rcpt, n), file)) in copies.iter().zip(files).enumerate() {
        let this = left >= n;
        left = left.saturating_sub(n);
        if this {
            // Counted in maildirsize; durable already.
            let _ = file.finish(Ok(()));
            kept.push(lines[k + 1].clone());
        }
        *whole.entry(rcpt).or_insert(true) &= this;
    }
    let delivered: Vec<usize> = whole
        .into_iter()
        .filter(|&(_, w)| w)
        .map(|(i, _)| i)
        .collect();
    let names: Vec<String> = delivered
        .iter()
        .map(|&i| msg.envelope.recipients[i].address.as_str().to_string())
        .collect();
    let s = shared.clone();
    let spooled = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let draft = match source {
            Source::Memory { data, body_at } => {
                let mut draft = s
                    .queue
                    .draft_with_id(id)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("{id} is queued already"))?;
                draft.write(&data[body_at..]).map_err(|e| e.to_string())?;
                draft
            }
            // Drafted under this ID, the body in it already.
            Source::Draft(draft) => *draft,
            Source::Lost => return Err("the streamed body was not kept".into()),
        };
        let mut senv = policy::spool_envelope(&msg, local.as_deref());
        let at = spool::Timestamp::now().secs;
        for &i in &delivered {
            senv.recipients[i].state = spool::RcptState::Delivered { at };
        }
        let staged = draft.finish(&senv, &headers).map_err(|e| e.to_string())?;
        s.queue.commit(staged).map_err(|e| e.to_string())?;
        Ok(())
    })
    .await
    .unwrap_or_else(|_| Err("the spooling thread panicked".into()));
    let delivered_to = names.join(", ");
    match spooled {
        Ok(()) => {
            shared.logs.panic(&format!(
                "{id} direct delivery published in part ({why}); delivered to {delivered_to}, the rest spooled"
            ));
            shared.logs.main_all(&kept);
            shared.runner.arrived(id);
            Reply::queued(id.as_str()).into()
        }
        Err(e) => {
            let note =
                format!("{id} not accepted after delivery to {delivered_to}: {why}; spool: {e}");
            shared.logs.panic(&note);
            kept.push(Event::other(Some(id), note));
            shared.logs.main_all(&kept);
            smtp::local_problem("Local problem: delivered to some recipients only, try again later")
                .into()
        }
    }
}

/// A recipient this path delivers: every destination a local Maildir, and
/// no success report asked for (such a report is made from the spool).
pub(super) fn direct_destinations(
    cfg: &crate::config::Config,
    r: &smtp::session::Recipient,
) -> Option<Vec<Destination>> {
    if r.params.notify.is_some_and(|n| n.success) {
        return None;
    }
    match cfg.routing.route(cfg, r.address.as_str()) {
        Routed::Deliver(dests)
            if !dests.is_empty()
                && dests
                    .iter()
                    .all(|d| d.driver == TransportDriver::Maildir && d.refused.is_none()) =>
        {
            Some(dests)
        }
        _ => None,
    }
}

/// Routes every recipient and stages a copy for each Maildir destination,
/// and, when some recipients are not for this path, the spool files for
/// them (with the copies made here as intents) in the same job; on the
/// first copy that cannot be staged, takes back what was staged.
fn stage(shared: &Shared, msg: &Message, local: Option<&crate::cmd::local_sender::Local>) -> Plan {
    let env = &msg.envelope;
    // Routing again at the final dot: an alias file or a user may have
    // changed since RCPT.
    let routed = direct_routes(shared, env);
    if routed.is_empty() {
        return Plan::Spool;
    }
    let mixed = routed.len() < env.recipients.len();
    // The spool names the message when it keeps some of its recipients.
    let mut draft = if mixed {
        match shared.queue.draft() {
            Ok(d) => Some(d),
            Err(_) => return Plan::Spool,
        }
    } else {
        None
    };
    let id = draft
        .as_ref()
        .map_or_else(|| shared.queue.id_generator().next(), |d| d.id());
    let data = to_lf(&msg.data);
    let (all, body_at) =
        policy::spool_headers(shared, env, id.as_str(), &data, local.map(|l| &l.submitter));
    // The bytes a queue delivery reads back from the spool.
    let head = stored_head(&all);
    let body = &data[body_at..];
    let sender = env.from.as_ref().map(|a| a.as_str()).unwrap_or_default();

    let io = shared.queue.committer().io();
    let maildir = shared.maildir();
    let mut copies = Vec::new();
    let single = !mixed && routed.len() == 1 && routed[0].1.len() == 1;
    // Takes back every staged copy (the draft removes its own files when
    // dropped).
    let give_up = |copies: Vec<Copy>, why: Option<Reply>| {
        discard(io, copies);
        why.map_or(Plan::Spool, Plan::Refuse)
    };
    for (i, dests) in &routed {
        let i = *i;
        let addr = env.recipients[i].address.as_str();
        let several = dests.len() > 1;
        for (k, dest) in dests.iter().enumerate() {
            let mut prefix = local_prefix(dest, sender).into_bytes();
            prefix.extend_from_slice(&head);
            let target = Target {
                path: &dest.path,
                owner: dest.owner,
                folder: None,
                // The names a queue delivery would give them.
                base: Some(local_copy_name(&id, i, k, several)),
                // A fresh ID: no earlier attempt can have left it.
                look_first: false,
            };
            match maildir.stage(io, &target, &prefix, &mut &body[..]) {
                Ok(Staged::File(file)) => copies.push(Copy {
                    rcpt: i,
                    address: addr.to_string(),
                    dest: dest.clone(),
                    file,
                }),
                // Discarded over quota: the spool path says so in its own
                // way; it is not worth a second way here.
                Ok(Staged::Discarded) | Ok(Staged::Already) => {
                    return give_up(copies, None);
                }
                // One recipient over its quota at the real size: the
                // client is told now, and nobody gets a bounce.
                Err(e) if single => {
                    return give_up(copies, policy::over_quota_reply(&e));
                }
                Err(_) => return give_up(copies, None),
            }
        }
    }
    let split = match draft.take() {
        None => None,
        Some(mut draft) => {
            let delivered: Vec<usize> = routed.iter().map(|(i, _)| *i).collect();
            let senv = policy::spool_envelope(msg, local);
            let staged = draft
                .write(body)
                .and_then(|()| draft.finish_with_intents(&senv, &all, &delivered));
            match staged {
                Ok(staged) => Some((staged, delivered)),
                Err(_) => return give_up(copies, None),
            }
        }
    };
    let body_len = body.len();
    let source = Source::Memory { data, body_at };
    let (ticket, ready) = submit_copies(shared, msg, id, all, body_len, copies, split, source);
    Plan::Ready(ticket, ready)
}

/// A copy staged for recipient `rcpt` (its address as given) in `dest`.
struct Copy {
    rcpt: usize,
    address: String,
    dest: Destination,
    file: StagedFile,
}

/// Takes back staged copies (their files removed).
fn discard(io: &dyn durable::Io, copies: Vec<Copy>) {
    for mut c in copies {
        if let Some(job) = c.file.take_job() {
            job.discard(io);
        }
    }
}

/// Hands `copies` to the committer as one job, with the `<=` line, their
/// `=>` lines, and what the commit's outcome needs.
///
/// Every recipient direct (`split` is `None`): `Completed` too, and each
/// copy is a delivery of its own (a rename failing after others keeps
/// those, see [`spool_the_rest`]). A split message: the spool's files
/// (the message with the copies as intents, `split`) first in the job, its
/// `-H` last among them, so the copies are published only once the message
/// with their intents is, and a crash between leaves nothing undone that
/// the spool does not know of; the job is all or none.
#[allow(clippy::too_many_arguments)]
fn submit_copies(
    shared: &Shared,
    msg: &Message,
    id: MessageId,
    headers: Vec<spool::Header>,
    body_len: usize,
    copies: Vec<Copy>,
    split: Option<(spool::StagedMessage, Vec<usize>)>,
    source: Source,
) -> (durable::Ticket, Ready) {
    let mut job = durable::Job::new();
    let mut files = Vec::with_capacity(copies.len());
    let mut placed = Vec::with_capacity(copies.len());
    let mut lines = vec![Event::new(
        Some(id),
        crate::log::Kind::Arrival(policy::arrival(&msg.envelope, &headers, body_len)),
    )];
    for Copy {
        rcpt,
        address,
        dest,
        mut file,
    } in copies
    {
        let n = file.take_job().map_or(0, |j| {
            let n = j.dests().count();
            job.append(j);
            n
        });
        placed.push((rcpt, n));
        files.push(file);
        lines.push(local_delivered_event(&id, &address, &dest));
    }
    let spooled = match split {
        None => {
            lines.push(Event::completed(id));
            job.keep_published();
            None
        }
        Some((staged, delivered)) => {
            let mut spool_job = staged.into_job();
            spool_job.append(job);
            job = spool_job;
            Some(delivered)
        }
    };
    let ticket = shared.queue.committer().submit(job);
    let ready = Ready {
        id,
        files,
        lines,
        spooled,
        copies: placed,
        headers,
        source,
        body_len,
    };
    (ticket, ready)
}

/// Records the copies made here as delivered in the spooled message's
/// journal, unsynced: were it lost, their intents have the delivery look
/// for them by name.
fn record_delivered(queue: &spool::Queue, id: &MessageId, indexes: &[usize]) -> spool::Result<()> {
    let mut d = queue.begin_delivery(id)?;
    let outcomes: Vec<(usize, spool::RcptOutcome)> = indexes
        .iter()
        .map(|&i| (i, spool::RcptOutcome::Delivered))
        .collect();
    d.record_unsynced(&outcomes)
}
