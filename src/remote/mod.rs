//! Remote delivery: the `smtp` transport's engine. The delivery agent hands
//! it [`Job`]s (one message's recipients for one destination); it queues
//! them per destination ([`pool`]), carries them over reused connections
//! ([`connection`]) on a runtime of its own, tries the hosts in order, and
//! hands each job's per-recipient results back through the job's callback.
//!
//! - [`tls`]: client TLS per policy (`may`, `encrypt`, `verify`), `CV=`.
//! - [`stream`]: TCP from a source address, TLS, Unix sockets.
//! - [`hints`]: per-host retry hints, a cache that is never synced.
//!
//! Hosts are tried in the order routing gave them, every address of a host
//! before the next host, up to `hosts_max_try` addresses. A host error
//! (refused, timeout, 421, TLS failure, garbage) moves the unfinished
//! recipients to the next address; a reply to a recipient (2xx, 4xx, 5xx)
//! or to the message settles those recipients. A message whose end of data
//! got no reply is deferred "possibly delivered" and not sent elsewhere in
//! the same attempt.

pub mod connection;
pub mod hints;
pub mod pool;
pub mod stream;
pub mod tls;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use smtp::Status;
use smtp::client::{Cause, ClientConfig, Envelope, Outcome as ClientOutcome, TransactionResult};

use crate::clock;
use crate::retry::Schedule;
use crate::transport::Outcome;
use connection::{ConnectError, Live, Step};
use hints::Hints;
use pool::{DestKey, Next, Pool};

/// One address of one host, in the order it is to be tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The host's name (the address itself for IP literals).
    pub host: String,
    pub ip: IpAddr,
    pub port: u16,
    /// The MX preference, when the host came from an MX record.
    pub mx: Option<u16>,
}

/// A transport's settings, resolved once from its configuration.
#[derive(Debug)]
pub struct Settings {
    pub transport: String,
    pub client: Arc<ClientConfig>,
    pub tls: tls::ClientTls,
    /// SMTPS: TLS from the first byte.
    pub implicit_tls: bool,
    /// Greet with the address literal of the connection's source address
    /// (`helo_data` unset and `primary_hostname` not qualified).
    pub helo_literal: bool,
    /// LMTP over a Unix socket instead of TCP.
    pub socket: Option<PathBuf>,
    /// Source addresses, one per family.
    pub interface: Vec<IpAddr>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub hosts_max_try: usize,
    pub connection_max_messages: usize,
    pub max_per_destination: usize,
    /// The port of hosts that name none.
    pub port: u16,
    /// The transport's own hosts, used instead of the router's.
    pub hosts: Vec<String>,
}

/// One message's recipients for one destination.
pub struct Job {
    pub settings: Arc<Settings>,
    pub addresses: Vec<Address>,
    /// The envelope, its recipients those of this job.
    pub envelope: Envelope,
    /// The spool's index of each envelope recipient, in the same order.
    pub indexes: Vec<usize>,
    /// The message as stored (LF line ends); the session converts.
    pub data: Arc<Vec<u8>>,
    /// Called once with every recipient's result, before the connection
    /// sends its next message's end of data.
    pub done: Box<dyn FnOnce(Vec<RcptResult>) + Send>,
}

/// What became of one recipient, with what its log line needs.
#[derive(Debug, Clone)]
pub struct RcptResult {
    pub index: usize,
    /// The address sent (after redirection).
    pub address: String,
    pub outcome: Outcome,
    pub detail: Detail,
}

/// The host and session behind a result (`H=`, `X=`, `CV=`, `C=`, flags).
#[derive(Debug, Clone, Default)]
pub struct Detail {
    pub host: Option<Address>,
    /// `X=` (`TLS1.3:TLS_AES_256_GCM_SHA384:256`).
    pub tls: Option<String>,
    pub cert_verified: Option<bool>,
    /// The reply that accepted the message, escaped (`C="..."`).
    pub confirmation: Option<String>,
    /// Delivered in the same transaction as an address logged before it
    /// (Exim's `->` instead of `=>`).
    pub continued: bool,
    /// Lines about hosts this job could not reach, for the message's log
    /// before its recipients' lines (Exim's `H=host [ip] Connection
    /// refused`).
    pub host_lines: Vec<String>,
    /// The host offered DSN, so the recipients' NOTIFY went on with the
    /// message and reports are its business now (no `relayed` report).
    pub dsn: bool,
    /// Exim's errno for `defer (N)`: the system's for a failed connect,
    /// -44/-45/-46 for a 4xx to RCPT/MAIL/DATA, -53 when every host is in
    /// its retry wait.
    pub errno: i32,
}

/// The engine: its runtime, its destinations, the hosts' retry hints.
pub struct Remote {
    runtime: OnceLock<tokio::runtime::Runtime>,
    inner: Arc<Inner>,
}

/// Where the engine's notices go (the main log).
pub type Notice = Arc<dyn Fn(String) + Send + Sync>;

struct Inner {
    pool: Pool,
    notice: Option<Notice>,
    /// Set when the daemon stops: no job starts any more.
    stopping: std::sync::atomic::AtomicBool,
    hints: Mutex<Hints>,
    schedule: Schedule,
}

impl Remote {
    /// An engine with at most `max_connections` connections open at once,
    /// its hints kept at `hints` (None: in memory only). Its threads start
    /// with its first job.
    pub fn new(
        max_connections: usize,
        hints: Option<&Path>,
        schedule: Schedule,
        notice: Option<Notice>,
    ) -> Remote {
        Remote {
            runtime: OnceLock::new(),
            inner: Arc::new(Inner {
                pool: Pool::new(max_connections),
                notice,
                stopping: std::sync::atomic::AtomicBool::new(false),
                hints: Mutex::new(match hints {
                    Some(p) => Hints::load(p),
                    None => Hints::in_memory(),
                }),
                schedule,
            }),
        }
    }

    /// Makes the limit on connections open at once `n`
    /// (`remote_max_connections` reloaded); connections over a lowered
    /// limit finish their work first.
    pub fn set_max_connections(&self, n: usize) {
        self.inner.pool.set_max(n);
    }

    fn runtime(&self) -> Option<&tokio::runtime::Runtime> {
        if self.runtime.get().is_none() {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("remote")
                .enable_all()
                .build()
                .ok()?;
            let _ = self.runtime.set(rt);
        }
        self.runtime.get()
    }

    /// Queues a job for its destination.
    pub fn submit(&self, job: Job) {
        let key = DestKey {
            transport: job.settings.transport.clone(),
            hosts: {
                let mut h: Vec<String> = job
                    .addresses
                    .iter()
                    .map(|a| format!("{} [{}]:{}", a.host, a.ip, a.port))
                    .collect();
                h.sort();
                h
            },
        };
        let Some(rt) = self.runtime() else {
            let results = unfinished(&job, "cannot start the remote delivery threads", 0, None);
            (job.done)(results);
            return;
        };
        let settings = job.settings.clone();
        if self
            .inner
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            (job.done)(Vec::new());
            return;
        }
        if self
            .inner
            .pool
            .push(&key, job, settings.max_per_destination)
        {
            rt.spawn(run_connection(self.inner.clone(), key, settings));
        }
    }

    /// Stops handing out jobs: those not started are handed back with no
    /// result (their recipients stay as they were, due at the next start);
    /// transactions under way run to their end. The caller waits for
    /// those ([`crate::delivery::Deliverer::drain`]).
    pub fn stop(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for job in self.inner.pool.take_waiting() {
            (job.done)(Vec::new());
        }
    }

    /// Stops, then waits up to `timeout` for open connections to say QUIT
    /// and close (a command that delivered and is about to exit; the
    /// daemon once its transactions are done), so that peers see a proper
    /// end of session rather than a dropped TLS connection.
    pub fn close(&self, timeout: std::time::Duration) {
        self.stop();
        let end = std::time::Instant::now() + timeout;
        while self.inner.pool.open() > 0 && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Connections open now, and the most ever open at once.
    #[cfg(test)]
    pub fn connections(&self) -> (usize, usize) {
        self.inner.pool.connections()
    }

    /// The hosts' retry hints.
    #[cfg(test)]
    pub fn hints(&self) -> Vec<hints::HostHint> {
        self.inner
            .hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .all()
            .into_iter()
            .cloned()
            .collect()
    }
}

/// A connection's life: jobs from the destination's queue until it has
/// none for [`pool::IDLE`], or the connection has carried
/// `connection_max_messages`.
async fn run_connection(inner: Arc<Inner>, key: DestKey, settings: Arc<Settings>) {
    loop {
        let Ok(permit) = inner.pool.global().acquire_owned().await else {
            return;
        };
        let mut live: Option<Live> = None;
        // A job whose envelope went behind the previous message's end of
        // data (or was taken for it) comes first.
        let mut carried: Option<Job> = None;
        loop {
            let job = match carried.take() {
                Some(job) => job,
                None => match inner.pool.next(&key).await {
                    Next::Job(job) => job,
                    Next::Close => break,
                },
            };
            if inner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                // Raced with stop(): hand the job back untried.
                (job.done)(Vec::new());
                break;
            }
            (live, carried) = deliver(&inner, &key, job, live).await;
            if let Some(l) =
                live.take_if(|l| l.messages >= settings.connection_max_messages || l.is_closed())
            {
                l.quit(&settings).await;
                inner.pool.dropped();
            }
        }
        if let Some(l) = live.take() {
            l.quit(&settings).await;
            inner.pool.dropped();
        }
        // Given back, unless a lowered limit is owed it.
        inner.pool.owed(permit);
        // Jobs that arrived as this connection closed are taken by a new
        // one (this task, again).
        if !inner.pool.closed(&key) {
            return;
        }
    }
}

/// Delivers one job: on `live` if there is one, else on a new connection
/// to each address in turn. Returns the connection when it can carry more,
/// and the next job for the destination when its envelope was pipelined
/// behind this one's end of data ([`Live::next_sent`]; when the connection
/// is gone, it is delivered afresh).
async fn deliver(
    inner: &Inner,
    key: &DestKey,
    job: Job,
    mut live: Option<Live>,
) -> (Option<Live>, Option<Job>) {
    let settings = job.settings.clone();
    // Envelope positions still to be delivered somewhere.
    let mut pending: Vec<usize> = (0..job.envelope.recipients.len()).collect();
    let mut results: Vec<Option<RcptResult>> = vec![None; pending.len()];
    let mut last: Option<(String, i32, Option<Address>)> = None;
    let mut tries = 0usize;
    let mut host_lines: Vec<String> = Vec::new();
    let mut next_job: Option<Job> = None;
    let mut next_address = 0usize;
    let mut all_waiting = true;
    while !pending.is_empty() {
        let mut l = match live.take() {
            Some(l) if !l.is_closed() => l,
            Some(l) => {
                l.quit(&settings).await;
                inner.pool.dropped();
                continue;
            }
            None => {
                let Some(addr) = next_candidate(inner, &job.addresses, &mut next_address) else {
                    break;
                };
                all_waiting = false;
                if tries >= settings.hosts_max_try {
                    break;
                }
                tries += 1;
                match connect(inner, &settings, &addr).await {
                    Ok(l) => {
                        // The most connections ever open at once bounds
                        // what a kill can make be sent twice: one
                        // transaction per connection.
                        if let (Some(n), Some(notice)) = (inner.pool.opened(), &inner.notice) {
                            notice(format!(
                                "outbound connections: {n} open at once, the most so far"
                            ));
                        }
                        l
                    }
                    Err(e) => {
                        inner.pool.trouble(key);
                        host_failed(inner, &addr, &e.text());
                        if let ConnectError::Io { text, .. } = &e {
                            // Exim's line of its own for a host that could
                            // not be reached: `H=name [ip] Connection refused`.
                            host_lines.push(format!("H={} [{}] {text}", addr.host, addr.ip));
                        }
                        last = Some((e.text(), e.errno(), Some(addr)));
                        continue;
                    }
                }
            }
        };
        let mut envelope = job.envelope.clone();
        envelope.recipients = pending
            .iter()
            .map(|&k| job.envelope.recipients[k].clone())
            .collect();
        // The envelope went already if the previous message sent it.
        let envelope = (!l.next_sent).then_some(envelope);
        let may_pipeline = next_job.is_none()
            && l.messages + 2 <= settings.connection_max_messages
            && !inner.stopping.load(std::sync::atomic::Ordering::SeqCst);
        let mut take = || {
            let j = inner.pool.try_next(key)?;
            let envelope = j.envelope.clone();
            next_job = Some(j);
            Some(envelope)
        };
        let next: Option<connection::NextEnvelope<'_>> =
            if may_pipeline { Some(&mut take) } else { None };
        let step = l.transact(&settings, envelope, &job.data, next).await;
        match step {
            Step::Done(result) => {
                let before = results.iter().flatten().count();
                pending = settle(
                    inner,
                    &l,
                    &pending,
                    result,
                    &mut results,
                    &mut last,
                    &mut host_lines,
                );
                let progress = results.iter().flatten().count() > before;
                if l.is_closed() {
                    l.quit(&settings).await;
                    inner.pool.dropped();
                } else {
                    live = Some(l);
                    if next_job.is_some() {
                        // The next message is on this connection already;
                        // what is left of this one (nothing, unless the
                        // session broke) waits for a later attempt.
                        break;
                    }
                    if !progress {
                        // The session took nothing (the peer put every
                        // recipient off to a next transaction): stop
                        // rather than loop; they are deferred below.
                        break;
                    }
                }
            }
            Step::Closed(e) => {
                // A 421 or a broken session: fewer connections at once.
                inner.pool.trouble(key);
                let text = e
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "Remote host closed connection".into());
                host_failed(inner, &l.address, &text);
                host_lines.push(host_line(&l.address, &text, e.as_ref()));
                last = Some((text, 0, Some(l.address.clone())));
                inner.pool.dropped();
            }
            Step::Ready | Step::TlsFailed(_) => {
                inner.pool.dropped();
            }
        }
    }
    // What no host settled.
    for k in pending {
        if results[k].is_some() {
            continue;
        }
        let (text, errno, host) = match (&last, all_waiting) {
            (Some((t, n, h)), _) => (t.clone(), *n, h.clone()),
            (None, true) => ("retry time not reached for any host".to_string(), -53, None),
            (None, false) => ("all hosts tried".to_string(), 0, None),
        };
        results[k] = Some(RcptResult {
            index: 0,
            address: String::new(),
            outcome: Outcome::Deferred {
                status: Status::new(4, 4, 1),
                diagnostic: text,
            },
            detail: Detail {
                host,
                errno,
                ..Detail::default()
            },
        });
    }
    // Each result takes its spool index and address from the job.
    let results: Vec<RcptResult> = results
        .into_iter()
        .zip(job.indexes.iter().zip(&job.envelope.recipients))
        .filter_map(|(r, (&index, rcpt))| {
            r.map(|r| RcptResult {
                index,
                address: rcpt.address.clone(),
                ..r
            })
        })
        .collect();
    if results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Delivered))
    {
        inner.pool.fine(key);
    }
    // The hosts that could not be reached ride on the first result.
    let mut results = results;
    if let Some(first) = results.first_mut() {
        first.detail.host_lines = host_lines;
    }
    let done = job.done;
    // The results are recorded (a write(2) to the message's journal)
    // before this connection carries another message.
    let _ = tokio::task::spawn_blocking(move || done(results)).await;
    (live, next_job)
}

/// The next address not in its retry wait.
fn next_candidate(inner: &Inner, addresses: &[Address], next: &mut usize) -> Option<Address> {
    let now = clock::now() as u64;
    let hints = inner.hints.lock().unwrap_or_else(|p| p.into_inner());
    while *next < addresses.len() {
        let a = &addresses[*next];
        *next += 1;
        if hints.waiting(&a.host, &a.ip.to_string(), now).is_none() {
            return Some(a.clone());
        }
    }
    None
}

/// Opens a connection; a failed STARTTLS handshake under `tls = may`
/// reconnects in clear text.
async fn connect(inner: &Inner, settings: &Settings, addr: &Address) -> Result<Live, ConnectError> {
    match connection::open(settings, addr, false).await {
        Err(ConnectError::Tls(why)) if connection::falls_back(settings.tls.policy) => {
            let _ = why;
            connection::open(settings, addr, true).await
        }
        Ok(l) => {
            inner
                .hints
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .succeeded(&addr.host, &addr.ip.to_string());
            Ok(l)
        }
        Err(e) => Err(e),
    }
}

fn host_failed(inner: &Inner, addr: &Address, why: &str) {
    let now = clock::now() as u64;
    inner
        .hints
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .failed(&addr.host, &addr.ip.to_string(), now, why, &inner.schedule);
}

/// Turns a transaction's results into recipients' results; returns the
/// envelope positions to try again (at the next host after a host error,
/// in the next transaction after a 452).
/// Exim's line for a host that failed mid-session, written before the
/// next host is tried: `H=name [ip]: SMTP error from ...`, with the text of
/// the error number after a timeout, as Exim adds it.
fn host_line(address: &Address, text: &str, e: Option<&smtp::client::HostError>) -> String {
    let timeout = e.is_some_and(|e| matches!(e.kind(), smtp::client::HostErrorKind::Timeout));
    format!(
        "H={} [{}]: {text}{}",
        address.host,
        address.ip,
        if timeout {
            ": Connection timed out"
        } else {
            ""
        }
    )
}

fn settle(
    inner: &Inner,
    l: &Live,
    pending: &[usize],
    result: TransactionResult,
    results: &mut [Option<RcptResult>],
    last: &mut Option<(String, i32, Option<Address>)>,
    host_lines: &mut Vec<String>,
) -> Vec<usize> {
    let detail = Detail {
        host: Some(l.address.clone()),
        tls: l.tls.as_ref().map(|t| crate::server::tls::x_field(&t.info)),
        cert_verified: l.tls.as_ref().map(|t| t.verified),
        confirmation: None,
        continued: false,
        host_lines: Vec::new(),
        dsn: l.offers_dsn(),
        errno: 0,
    };
    let mut again = Vec::new();
    let mut delivered_before = false;
    for (r, &k) in result.recipients.into_iter().zip(pending) {
        let outcome = match r.outcome {
            ClientOutcome::Delivered(response) => {
                let continued = std::mem::replace(&mut delivered_before, true);
                Some((
                    Outcome::Delivered,
                    Detail {
                        confirmation: Some(response.log_text()),
                        continued,
                        ..detail.clone()
                    },
                ))
            }
            ClientOutcome::Failed(cause) => Some((
                Outcome::Failed {
                    status: cause.status(),
                    diagnostic: cause.to_string(),
                    // The host, when it answered (not for a refusal made
                    // here, such as a message over its SIZE).
                    remote: matches!(cause, Cause::Remote(_))
                        .then(|| format!("{} [{}]", l.address.host, l.address.ip)),
                },
                detail.clone(),
            )),
            ClientOutcome::Deferred {
                cause: Cause::Host(e),
                possibly_delivered: false,
            } => {
                // The connection broke: the next host may do better.
                host_failed(inner, &l.address, &e.to_string());
                // Exim's line for a host that failed mid-session, once
                // per session: `H=name [ip]: SMTP error ...`.
                let line = host_line(&l.address, &e.to_string(), Some(&e));
                if host_lines.last() != Some(&line) {
                    host_lines.push(line);
                }
                *last = Some((e.to_string(), 0, Some(l.address.clone())));
                again.push(k);
                None
            }
            ClientOutcome::Deferred {
                cause,
                possibly_delivered,
            } => {
                let mut diagnostic = cause.to_string();
                if possibly_delivered {
                    diagnostic.push_str(" (possibly delivered)");
                }
                let errno = match cause.describe_command().as_deref() {
                    Some(c) if c.contains("RCPT TO") => -44,
                    Some(c) if c.contains("MAIL FROM") => -45,
                    Some(_) => -46,
                    None => 0,
                };
                Some((
                    Outcome::Deferred {
                        status: cause.status(),
                        diagnostic,
                    },
                    Detail {
                        errno,
                        ..detail.clone()
                    },
                ))
            }
            ClientOutcome::NotAttempted(_) => {
                again.push(k);
                None
            }
        };
        if let Some((outcome, detail)) = outcome {
            results[k] = Some(RcptResult {
                index: 0,
                address: String::new(),
                outcome,
                detail,
            });
        }
    }
    again
}

/// Every recipient of `job` deferred with `why` (the engine could not run).
fn unfinished(job: &Job, why: &str, errno: i32, host: Option<Address>) -> Vec<RcptResult> {
    job.indexes
        .iter()
        .zip(&job.envelope.recipients)
        .map(|(&index, rcpt)| RcptResult {
            index,
            address: rcpt.address.clone(),
            outcome: Outcome::Deferred {
                status: Status::new(4, 3, 0),
                diagnostic: why.to_string(),
            },
            detail: Detail {
                host: host.clone(),
                errno,
                ..Detail::default()
            },
        })
        .collect()
}

#[cfg(test)]
mod tests;
