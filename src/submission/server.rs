//! The daemon's side of the submission socket: who is calling (from the
//! socket, `SO_PEERCRED`), what they may do (their uid's limits), and the
//! same checks and queueing as a submission that writes the spool itself
//! ([`crate::cmd::submit::compose`] and [`crate::cmd::submit::enter`]).

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailstore::error::sysexits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::wire::{self, Reply};
use crate::cmd::Failure;
use crate::cmd::local_sender;
use crate::cmd::sendmail_args::DeliveryMode;
use crate::config::Config;
use crate::log::{Event, Logs};
use crate::server::Shared;

/// Submissions one uid may have under way at once.
pub const PER_UID: usize = 4;

/// Binds the configured socket: its directory made 0755 when missing, the
/// socket 0666 (or 0660 with `submission_group`), replacing one an
/// earlier run left. The socket systemd passes (`FileDescriptorName=
/// submit`) is taken instead when there is one, so that submissions wait
/// in its queue while the daemon restarts.
pub fn bind(cfg: &Config) -> Result<Option<UnixListener>, String> {
    if let Some(l) = crate::sys::systemd_socket("submit") {
        l.set_nonblocking(true)
            .map_err(|e| format!("the submission socket from systemd: {e}"))?;
        return UnixListener::from_std(l)
            .map(Some)
            .map_err(|e| format!("the submission socket from systemd: {e}"));
    }
    let Some(path) = cfg.submission_socket.as_deref() else {
        return Ok(None);
    };
    let fail = |e: std::io::Error| format!("cannot listen on {}: {e}", path.display());
    let l = crate::server::bind_unix(path).map_err(fail)?;
    let mode = match group(cfg)? {
        Some(gid) => {
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(fail)?;
            0o660
        }
        None => 0o666,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
    Ok(Some(l))
}

fn group(cfg: &Config) -> Result<Option<u32>, String> {
    if cfg.submission_group.is_empty() {
        return Ok(None);
    }
    match crate::sys::group_id(&cfg.submission_group) {
        Ok(Some(g)) => Ok(Some(g)),
        Ok(None) => Err(format!(
            "submission_group {:?}: no such group",
            cfg.submission_group
        )),
        Err(e) => Err(format!("submission_group {:?}: {e}", cfg.submission_group)),
    }
}

/// What each uid is doing.
#[derive(Default, Debug)]
pub struct Limits {
    uids: Mutex<HashMap<u32, Uid>>,
}

#[derive(Default, Debug)]
struct Uid {
    running: usize,
    /// When its messages of the last hour were queued (Unix seconds).
    queued: VecDeque<i64>,
    /// The hour its going over the rate was last logged in.
    logged: Option<i64>,
}

/// A submission slot of one uid, given back when dropped.
pub struct Slot {
    limits: Arc<Limits>,
    uid: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut u = self.limits.uids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(x) = u.get_mut(&self.uid) {
            x.running = x.running.saturating_sub(1);
            if x.running == 0 && x.queued.is_empty() {
                u.remove(&self.uid);
            }
        }
    }
}

/// Whether the limits let `uid` submit now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Go,
    /// Over `local_rate_limit`; `true` the first time this hour (log it).
    OverRate(bool),
}

impl Limits {
    fn enter(self: &Arc<Self>, uid: u32) -> Result<Slot, ()> {
        let mut u = self.uids.lock().unwrap_or_else(|p| p.into_inner());
        let x = u.entry(uid).or_default();
        if x.running >= PER_UID {
            return Err(());
        }
        x.running += 1;
        Ok(Slot {
            limits: self.clone(),
            uid,
        })
    }

    /// Why `caller` may not queue another message now (over
    /// `local_rate_limit`), logged once an hour; `None` when they may, the
    /// message then counted (see [`Limits::rate`]).
    pub fn over_rate(
        &self,
        logs: &Logs,
        cfg: &Config,
        caller: &spool::Caller,
        now: i64,
    ) -> Option<String> {
        match self.rate(caller.uid, cfg.local_rate_limit, now) {
            Verdict::Go => None,
            Verdict::OverRate(first) => {
                if first {
                    logs.main(&Event::other(
                        None,
                        format!(
                            "U={} local_rate_limit reached: {} messages in the last hour; further submissions deferred this hour",
                            caller.login, cfg.local_rate_limit
                        ),
                    ));
                }
                Some(format!(
                    "{} has sent {} messages in the last hour (local_rate_limit): nothing queued, try again later",
                    caller.login, cfg.local_rate_limit
                ))
            }
        }
    }

    /// Checks the hourly rate of `uid` at `now` (root has none) and, when
    /// it lets the message go, counts it at once: checking and counting
    /// under one lock, so that parallel submissions cannot all pass the
    /// check before any is counted. A message that is then not queued
    /// gives its place back ([`Limits::release`]).
    pub fn rate(&self, uid: u32, limit: u64, now: i64) -> Verdict {
        if uid == 0 || limit == 0 {
            return Verdict::Go;
        }
        let mut u = self.uids.lock().unwrap_or_else(|p| p.into_inner());
        let x = u.entry(uid).or_default();
        while x.queued.front().is_some_and(|t| *t <= now - 3600) {
            x.queued.pop_front();
        }
        if (x.queued.len() as u64) < limit {
            x.queued.push_back(now);
            return Verdict::Go;
        }
        let hour = now.div_euclid(3600);
        let first = x.logged != Some(hour);
        x.logged = Some(hour);
        Verdict::OverRate(first)
    }

    /// Takes back the place [`Limits::rate`] gave a message of `uid` at
    /// `now` that was not queued after all.
    pub fn release(&self, uid: u32, now: i64) {
        let mut u = self.uids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(x) = u.get_mut(&uid)
            && let Some(i) = x.queued.iter().rposition(|t| *t == now)
        {
            x.queued.remove(i);
        }
    }
}

/// Serves the submission socket until the task is dropped.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    let limits = Arc::new(Limits::default());
    let mut last_error: Option<std::time::Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let (shared, limits) = (shared.clone(), limits.clone());
                tokio::spawn(async move { connection(stream, shared, limits).await });
            }
            Err(e) => {
                crate::server::accept_failed(
                    &shared.logs,
                    "submission socket",
                    &mut last_error,
                    &e,
                )
                .await;
            }
        }
    }
}

/// A caller's connection, read through a buffer: the request line, then
/// the message or the SMTP session from what follows it.
type Conn = tokio::io::BufReader<UnixStream>;

async fn connection(stream: UnixStream, shared: Arc<Shared>, limits: Arc<Limits>) {
    let mut stream = Conn::new(stream);
    let reply = match handle(&mut stream, &shared, &limits).await {
        Ok(Handled::Session(local, slot)) => {
            // `-bs`: an SMTP session as this user, their slot held to its
            // end, their rate counted per message (server::policy).
            crate::server::serve_connection(
                Box::new(stream),
                None,
                smtp::Mode::Smtp,
                None,
                shared,
                Some(local),
            )
            .await;
            drop(slot);
            return;
        }
        Ok(Handled::Queued(id)) => Reply {
            exit: sysexits::OK,
            id: Some(id),
            message: String::new(),
        },
        Err(f) => Reply {
            exit: f.code,
            id: None,
            message: f.message,
        },
    };
    let _ = stream.write_all(&reply.to_line()).await;
    let _ = stream.shutdown().await;
    // A request refused before its message was read: what the client
    // still sends is read and dropped, since closing with unread bytes
    // resets the connection, and the reset can beat the reply to it.
    let mut sink = vec![0u8; 64 * 1024];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
}

/// What a connection asked for and got.
enum Handled {
    /// A message queued, with its ID.
    Queued(String),
    /// An SMTP session (`-bs`) for this user.
    Session(Arc<local_sender::Local>, Slot),
}

/// The request line of an SMTP session (`-bs`).
pub const SMTP_REQUEST: &[u8] = b"SMTP";

async fn handle(
    stream: &mut Conn,
    shared: &Arc<Shared>,
    limits: &Arc<Limits>,
) -> Result<Handled, Failure> {
    let cfg = shared.cfg();
    // The caller is who the kernel says connected: nothing they send
    // changes it.
    let cred = stream.get_ref().peer_cred().map_err(|e| {
        Failure::new(
            sysexits::SOFTWARE,
            format!("cannot tell who is calling: {e}"),
        )
    })?;
    let (uid, gid) = (cred.uid(), cred.gid());
    let user = tokio::task::spawn_blocking(move || crate::sys::user_by_uid(uid))
        .await
        .map_err(|e| Failure::new(sysexits::SOFTWARE, e.to_string()))?
        .map_err(|e| Failure::new(sysexits::TEMPFAIL, format!("looking up uid {uid}: {e}")))?
        .ok_or_else(|| {
            Failure::new(
                sysexits::NOUSER,
                format!("uid {uid} has no entry in the password database: nothing queued"),
            )
        })?;
    let caller = spool::Caller {
        login: user.name.clone(),
        uid,
        gid,
    };
    let slot = limits.enter(uid).map_err(|()| {
        Failure::new(
            sysexits::TEMPFAIL,
            format!(
                "{} has {PER_UID} submissions under way: try again later",
                caller.login
            ),
        )
    })?;

    let line = read_line(stream, cfg.smtp.command_timeout).await?;
    if line == SMTP_REQUEST {
        let (c, name, gid) = (cfg.clone(), user.name.clone(), user.gid);
        let caller2 = caller.clone();
        let trusted = tokio::task::spawn_blocking(move || {
            local_sender::is_trusted(&c, &caller2, &crate::sys::user_groups(&name, gid))
        })
        .await
        .unwrap_or(false);
        let local = local_sender::Local {
            submitter: local_sender::Submitter {
                login_address: format!("{}@{}", caller.login, cfg.qualify_domain),
                trusted,
            },
            caller,
            limits: Some(limits.clone()),
        };
        return Ok(Handled::Session(Arc::new(local), slot));
    }
    let args =
        wire::parse_request(&line).map_err(|e| Failure::new(sysexits::USAGE, e.to_string()))?;
    crate::cmd::submit::origin_allowed(&args, &caller)?;
    let input = read_message(stream, &cfg).await?;

    let now = crate::clock::now();
    if let Some(why) = limits.over_rate(&shared.logs, &cfg, &caller, now) {
        return Err(Failure::new(sysexits::TEMPFAIL, why));
    }

    let s = shared.clone();
    let done = tokio::task::spawn_blocking(move || {
        let cfg = s.cfg();
        let groups = crate::sys::user_groups(&user.name, user.gid);
        let trusted = local_sender::is_trusted(&cfg, &caller, &groups);
        let composed = crate::cmd::submit::compose(&cfg, &args, &input, &caller, trusted)?;
        if let Some(short) = s.space().short(input.len() as u64) {
            return Err(Failure::new(
                sysexits::TEMPFAIL,
                format!("{short}: nothing queued, try again later"),
            ));
        }
        let id = crate::cmd::submit::enter(&cfg, &s.queue, &s.logs, &args, composed, &caller)?;
        Ok((id, cfg.queue_only || args.delivery == DeliveryMode::Queue))
    })
    .await
    .map_err(|e| Failure::new(sysexits::SOFTWARE, e.to_string()))
    .and_then(|r| r);
    if done.is_err() {
        limits.release(uid, now);
    }
    let (id, queue_only) = done?;
    if !queue_only {
        // -odb and -odi alike: a delivery starts now; the caller does not
        // wait for it (its outcome is in the log and the queue).
        shared.runner.arrived(id);
    }
    drop(slot);
    Ok(Handled::Queued(id.to_string()))
}

/// The request line, within `timeout`.
async fn read_line(stream: &mut Conn, timeout: Duration) -> Result<Vec<u8>, Failure> {
    use tokio::io::AsyncBufReadExt;
    let mut line = Vec::new();
    let limit = wire::MAX_REQUEST_LINE as u64 + 1;
    match tokio::time::timeout(
        timeout,
        (&mut *stream).take(limit).read_until(b'\n', &mut line),
    )
    .await
    {
        Ok(Ok(_)) if line.last() == Some(&b'\n') => {
            line.pop();
            Ok(line)
        }
        Ok(Ok(_)) if line.len() as u64 >= limit => Err(Failure::new(
            sysexits::USAGE,
            "request line too long".to_string(),
        )),
        Ok(Ok(_)) => Err(Failure::new(
            sysexits::USAGE,
            "the request ended early".to_string(),
        )),
        Ok(Err(_)) => Err(Failure::new(
            sysexits::USAGE,
            "cannot read the request".to_string(),
        )),
        Err(_) => Err(Failure::new(
            sysexits::TEMPFAIL,
            "timed out reading the request".to_string(),
        )),
    }
}

/// The message, up to the end of the stream, each read within
/// `data_timeout`, and no more than a little past `message_size_limit`
/// (what is over is refused by the composition, as for sendmail).
async fn read_message(stream: &mut Conn, cfg: &Config) -> Result<Vec<u8>, Failure> {
    let cap = match cfg.message_size_limit {
        0 => usize::MAX,
        n => usize::try_from(n.saturating_add(64 * 1024)).unwrap_or(usize::MAX),
    };
    let mut input = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(cfg.smtp.data_timeout, stream.read(&mut buf)).await {
            Ok(Ok(0)) => return Ok(input),
            Ok(Ok(n)) => {
                if input.len() < cap {
                    let take = n.min(cap - input.len());
                    input.extend_from_slice(&buf[..take]);
                }
            }
            Ok(Err(e)) => {
                return Err(Failure::new(
                    sysexits::IOERR,
                    format!("reading the message: {e}"),
                ));
            }
            Err(_) => {
                return Err(Failure::new(
                    sysexits::TEMPFAIL,
                    "timed out reading the message".to_string(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_has_four_slots_and_an_hourly_rate() {
        let l = Arc::new(Limits::default());
        let slots: Vec<_> = (0..PER_UID).map(|_| l.enter(1000).unwrap()).collect();
        assert!(l.enter(1000).is_err());
        assert!(l.enter(1001).is_ok(), "another uid is not held up");
        drop(slots);
        assert!(l.enter(1000).is_ok());

        for t in 0..3 {
            assert_eq!(l.rate(1000, 3, 100 + t), Verdict::Go);
        }
        assert_eq!(l.rate(1000, 3, 200), Verdict::OverRate(true));
        assert_eq!(
            l.rate(1000, 3, 201),
            Verdict::OverRate(false),
            "logged once an hour"
        );
        assert_eq!(
            l.rate(1000, 3, 100 + 3600),
            Verdict::Go,
            "the first went out of the hour"
        );
        // A message not queued after all gives its place back.
        l.release(1000, 100 + 3600);
        assert_eq!(l.rate(1000, 3, 100 + 3600), Verdict::Go, "given back");
        assert_eq!(
            l.rate(1000, 3, 100 + 3600),
            Verdict::OverRate(true),
            "full again, logged in this new hour"
        );
        assert_eq!(l.rate(0, 3, 200), Verdict::Go, "root has no rate");
        assert_eq!(l.rate(1000, 0, 200), Verdict::Go, "0: no limit");
    }
}
