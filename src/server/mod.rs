//! The daemon (`sluice serve`, `-bd`): SMTP (plain with STARTTLS, and
//! implicit TLS as on port 465) and LMTP (TCP or a Unix socket) listeners,
//! delivery workers and the queue runner.
//!
//! Each connection is a tokio task that only moves bytes between the socket
//! and the sans-IO [`smtp::Session`] and awaits policy and the spool.
//! Everything that touches the disk (spool entry, routing lookups, Maildir
//! staging) runs in `spawn_blocking` or on the delivery threads; fsyncs run
//! only on the committer's thread or those blocking threads, never on a
//! tokio worker.
//!
//! The accept path: the message is in memory (bounded by
//! `message_size_limit`; past `smtp.stream_from`, an SMTP message is
//! written out while it arrives instead, see [`streaming`]) → it is
//! written to the spool under temporary names and committed with the
//! group committer; once the `-H` and `-D` files and
//! their directory entries are durable, the `<=` line is logged, a delivery
//! worker is handed the message (unless `queue_only` is set), and `250
//! 2.0.0 OK id=<ID>` is sent.

pub mod callout;
pub mod direct;
pub mod lmtp;
pub mod policy;
pub mod streaming;
#[cfg(test)]
mod tests;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;

use crate::admin::metrics::SessionState;
use crate::app::App;
use crate::config::Config;
use crate::log::{self, Logs, Origin, Rejected, Stage};
use crate::queue_runner::QueueRunner;
use crate::transport::maildir::MaildirTransport;
use smtp::session::{Poll, Session, SessionConfig, TlsInfo};
use smtp::{CloseReason, Event, Mode, Notice, Verdict};

/// Any byte stream a session runs on (TCP, TLS over TCP, a Unix socket).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Command-line choices for the daemon.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Replace `smtp.listen` (`-oX`, `--listen`).
    pub listen: Vec<String>,
    /// Queue runs at this interval (`-q30m`); none when `None`.
    pub queue_interval: Option<Duration>,
    /// Where the configuration came from, to read it again on SIGHUP.
    pub sources: crate::config::Sources,
}

/// What every connection shares.
pub struct Shared {
    /// The configuration; replaced as a whole on SIGHUP ([`Shared::reload`]),
    /// so that a session sees one configuration at each step.
    cfg: std::sync::RwLock<Arc<Config>>,
    pub logs: Arc<Logs>,
    /// The accept path's own handle on the spool.
    pub queue: spool::Queue,
    /// Delivers what is accepted, and runs the queue.
    pub runner: QueueRunner,
    smtp: std::sync::RwLock<Arc<SessionConfig>>,
    lmtp: std::sync::RwLock<Arc<SessionConfig>>,
    /// The TLS acceptor (none when TLS could not be set up); made again on
    /// SIGHUP, so a renewed certificate is served without a restart.
    tls: std::sync::RwLock<Option<TlsAcceptor>>,
    /// Sender callouts under way, and their answers.
    pub callouts: callout::Callouts,
    /// Free space on the spool's and the log's filesystems, checked at MAIL.
    space: std::sync::RwLock<Arc<crate::space::SpaceCheck>>,
    connections: Mutex<Connections>,
    /// Set when the daemon is stopping: sessions between transactions get
    /// 421 at once, a message being received is finished first.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Sessions running (`serve_connection` calls), and a wake-up when
    /// one ends.
    sessions: std::sync::atomic::AtomicUsize,
    session_ended: tokio::sync::Notify,
    /// The counters of the admin listener's `/metrics`.
    pub metrics: Arc<crate::admin::metrics::Metrics>,
}

/// Counts a running session; dropping it wakes whoever waits for the
/// sessions to end.
struct Running<'a>(&'a Shared);

impl<'a> Running<'a> {
    fn new(shared: &'a Shared) -> Running<'a> {
        shared
            .sessions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Running(shared)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0
            .sessions
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.session_ended.notify_waiters();
    }
}

#[derive(Default)]
struct Connections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Releases a connection slot when the connection ends.
pub struct Slot {
    shared: Arc<Shared>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(n) = c.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&ip);
            }
        }
    }
}

/// A setting a running daemon cannot change: `new` gets `old` back, and
/// `key` is listed to be logged.
fn keep<T: PartialEq + Clone>(
    kept: &mut Vec<&'static str>,
    key: &'static str,
    new: &mut T,
    old: &T,
) {
    if new != old {
        kept.push(key);
        *new = old.clone();
    }
}

impl Shared {
    /// What every session of `app` shares; starts the delivery workers,
    /// and TLS when `with_tls` (without it the daemon still serves, only
    /// without STARTTLS).
    fn new(app: App, with_tls: bool) -> Arc<Shared> {
        let tls = if with_tls {
            match tls::server_config(&app.cfg) {
                Ok(c) => Some(TlsAcceptor::from(c)),
                Err(e) => {
                    app.logs.panic(&format!("TLS unavailable: {e}"));
                    None
                }
            }
        } else {
            None
        };
        Arc::new(Shared {
            smtp: std::sync::RwLock::new(Arc::new(session_config(
                &app.cfg,
                Mode::Smtp,
                tls.is_some(),
            ))),
            lmtp: std::sync::RwLock::new(Arc::new(session_config(
                &app.cfg,
                Mode::Lmtp,
                tls.is_some(),
            ))),
            runner: QueueRunner::start(&app),
            cfg: std::sync::RwLock::new(app.cfg.clone()),
            logs: app.logs.clone(),
            queue: app.queue.clone(),
            tls: std::sync::RwLock::new(tls),
            callouts: callout::Callouts::default(),
            space: std::sync::RwLock::new(Arc::new(crate::space::SpaceCheck::new(&app.cfg))),
            connections: Mutex::new(Connections::default()),
            stopping: tokio::sync::watch::Sender::new(false),
            sessions: std::sync::atomic::AtomicUsize::new(0),
            session_ended: tokio::sync::Notify::new(),
            // Counted only where they can be read: a daemon with the admin
            // listener (`sendmail -bs` and a daemon without one would feed
            // the observers on every event for nobody).
            metrics: if with_tls && !app.cfg.admin.listen.is_empty() {
                crate::admin::attach(&app.logs, app.queue.committer())
            } else {
                Arc::default()
            },
        })
    }

    /// The configuration now.
    pub fn cfg(&self) -> Arc<Config> {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The Maildir transport now, the delivery agent's (LMTP and direct
    /// delivery write through it; made again on reload).
    pub fn maildir(&self) -> Arc<MaildirTransport> {
        self.runner.deliverer().maildir()
    }

    /// The TLS acceptor now.
    pub fn tls(&self) -> Option<TlsAcceptor> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The free space checks of the configuration now.
    pub fn space(&self) -> Arc<crate::space::SpaceCheck> {
        self.space.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn session_config(&self, mode: Mode) -> Arc<SessionConfig> {
        let which = if mode == Mode::Lmtp {
            &self.lmtp
        } else {
            &self.smtp
        };
        which.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// SIGHUP: reopens the log files (after logrotate moved them) and
    /// reads the configuration again from `sources`. A configuration that
    /// does not load is logged and the old one kept. Sessions under way
    /// keep what they started with; new sessions, and deliveries that
    /// start from now on, use the new one. The keys below cannot change
    /// under a running daemon: they keep their values, with a log line.
    pub fn reload(&self, sources: &crate::config::Sources) {
        self.logs.reopen();
        let new = match crate::config::load(sources) {
            Ok(c) => c,
            Err(e) => {
                self.logs.main(&log::Event::other(
                    None,
                    format!("configuration not reloaded, the old one stays: {e}"),
                ));
                return;
            }
        };
        let old = self.cfg();
        let mut merged = (*new).clone();
        let mut kept = Vec::new();
        let k = &mut kept;
        let m = &mut merged;
        keep(k, "data_dir", &mut m.data_dir, &old.data_dir);
        keep(k, "durability", &mut m.durability, &old.durability);
        keep(
            k,
            "message_id_format",
            &mut m.message_id_format,
            &old.message_id_format,
        );
        keep(
            k,
            "split_spool_directory",
            &mut m.split_spool_directory,
            &old.split_spool_directory,
        );
        // Listeners and sockets are bound, and the admin token read, at
        // start.
        keep(k, "smtp.listen", &mut m.smtp.listen, &old.smtp.listen);
        keep(
            k,
            "smtp.tls_listen",
            &mut m.smtp.tls_listen,
            &old.smtp.tls_listen,
        );
        keep(
            k,
            "smtp.lmtp_listen",
            &mut m.smtp.lmtp_listen,
            &old.smtp.lmtp_listen,
        );
        keep(k, "admin.listen", &mut m.admin.listen, &old.admin.listen);
        keep(
            k,
            "admin.token_file",
            &mut m.admin.token_file,
            &old.admin.token_file,
        );
        keep(
            k,
            "admin.socket_group",
            &mut m.admin.socket_group,
            &old.admin.socket_group,
        );
        keep(
            k,
            "submission_socket",
            &mut m.submission_socket,
            &old.submission_socket,
        );
        keep(
            k,
            "submission_group",
            &mut m.submission_group,
            &old.submission_group,
        );
        for key in kept {
            self.logs.main(&log::Event::other(
                None,
                format!("restart needed for {key}: the running daemon keeps its value"),
            ));
        }
        let cfg = Arc::new(merged);
        // The certificate and key are read again (a renewal keeps their
        // names); ones that do not load leave the old in service.
        if self.tls().is_some() {
            match tls::server_config(&cfg) {
                Ok(c) => {
                    *self.tls.write().unwrap_or_else(|p| p.into_inner()) =
                        Some(TlsAcceptor::from(c));
                }
                Err(e) => self.logs.main(&log::Event::other(
                    None,
                    format!("TLS certificate not reloaded, the old one stays: {e}"),
                )),
            }
        }
        let tls = self.tls().is_some();
        *self.smtp.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(session_config(&cfg, Mode::Smtp, tls));
        *self.lmtp.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(session_config(&cfg, Mode::Lmtp, tls));
        *self.space.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(crate::space::SpaceCheck::new(&cfg));
        self.runner.reconfigure(cfg.clone());
        *self.cfg.write().unwrap_or_else(|p| p.into_inner()) = cfg.clone();
        self.logs.main(&log::Event::other(
            None,
            format!("configuration reloaded from {}", cfg.origin),
        ));
    }

    /// Tells every session the daemon is stopping.
    fn stop_sessions(&self) {
        self.stopping.send_replace(true);
    }

    /// Waits until no session runs, or until `deadline`; says whether
    /// they all ended.
    async fn sessions_ended(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let ended = self.session_ended.notified();
            if self.sessions.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return self.sessions.load(std::sync::atomic::Ordering::SeqCst) == 0;
            }
        }
    }

    /// Takes a connection slot, or says which limit refuses it.
    fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, &'static str> {
        let mut c = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.cfg().smtp.max_connections {
            return Err("too many connections");
        }
        if let Some(ip) = ip
            && c.per_ip.get(&ip).copied().unwrap_or(0) >= self.cfg().smtp.max_connections_per_host
        {
            return Err("too many connections from your host");
        }
        c.total += 1;
        if let Some(ip) = ip {
            *c.per_ip.entry(ip).or_insert(0) += 1;
        }
        Ok(Slot {
            shared: self.clone(),
            ip,
        })
    }
}

fn session_config(cfg: &Config, mode: Mode, tls: bool) -> SessionConfig {
    let mut s = SessionConfig::new(cfg.primary_hostname.clone(), mode);
    s.tls_available = tls;
    s.message_size_limit = cfg.message_size_limit;
    s.max_recipients = cfg.smtp.max_recipients;
    s.max_errors = cfg.smtp.max_errors;
    s.vrfy = cfg.smtp.vrfy;
    s.command_timeout = cfg.smtp.command_timeout;
    s.data_timeout = cfg.smtp.data_timeout;
    s.final_dot_timeout = cfg.smtp.final_dot_timeout;
    s
}

/// Opens the application context for the daemon; on failure logs it and
/// returns the exit code.
fn open_app(cfg: &Arc<Config>) -> Result<App, i32> {
    if cfg.data_dir_is_fallback {
        eprintln!(
            "sluice: warning: no data directory configured; using {} (set SLUICE_HOME or data_dir)",
            cfg.data_dir.display()
        );
    }
    App::open(cfg.clone()).map_err(|e| {
        // No App, so no logs of its own to write this with.
        Logs::new(cfg.log_dir()).panic(&e.to_string());
        mailstore::error::sysexits::CONFIG
    })
}

/// `sluice smtp-stdio` (`-bs`): one SMTP session on standard input and
/// output, as MUAs and inetd run it. Accepted messages are queued durably
/// and delivered before the command exits.
pub fn run_stdio(cfg: Arc<Config>) -> i32 {
    // A user who may not write the spool has the daemon run the session.
    if crate::submission::client::wanted(&cfg) {
        return crate::submission::client::smtp_session(&cfg);
    }
    let shared = match open_app(&cfg) {
        Ok(app) => Shared::new(app, false),
        Err(code) => return code,
    };
    let local = Arc::new(crate::cmd::local_sender::Local::of_process(&cfg));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            shared.logs.panic(&format!("cannot start the runtime: {e}"));
            return mailstore::error::sysexits::SOFTWARE;
        }
    };
    let s = shared.clone();
    runtime.block_on(async move {
        let stream = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
        serve_connection(Box::new(stream), None, Mode::Smtp, None, s, Some(local)).await;
    });
    shared.runner.finish();
    shared.queue.wait_before_exit();
    0
}

/// Runs the daemon until it is killed or gets SIGTERM/SIGINT: opens the
/// application context, binds the listeners (`opts.listen` in place of
/// `smtp.listen` when given) and [`serve`]s. Returns the exit code.
pub fn run(cfg: Arc<Config>, opts: ServeOptions) -> i32 {
    let app = match open_app(&cfg) {
        Ok(app) => app,
        Err(code) => return code,
    };
    let logs = app.logs.clone();
    let fail = move |what: String| {
        logs.panic(&what);
        mailstore::error::sysexits::CONFIG
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        // Before anything can announce the daemon.
        let stop = stop_signal();
        let listen = if opts.listen.is_empty() {
            &cfg.smtp.listen
        } else {
            &opts.listen
        };
        // The admin listener first: a token that cannot be read stops the
        // start before anything listens.
        let admin = if cfg.admin.listen.is_empty() {
            None
        } else {
            let token = match &cfg.admin.token_file {
                Some(p) => match crate::admin::read_token(p) {
                    Ok(t) => Some(t),
                    Err(e) => return fail(e),
                },
                None => None,
            };
            match crate::admin::bind(&cfg.admin).await {
                Ok(l) => Some((l, token)),
                Err(e) => return fail(e),
            }
        };
        // The submission socket: a daemon that cannot have it (not root,
        // /run not writable, another daemon's) still serves SMTP.
        let submit = match crate::submission::server::bind(&cfg) {
            Ok(l) => l,
            Err(e) => {
                app.logs.main(&log::Event::other(
                    None,
                    format!("submission socket not available, local users who cannot write the spool cannot submit: {e}"),
                ));
                None
            }
        };
        let mut bound = Vec::new();
        for (addrs, kind) in [
            (listen, Kind::Smtp),
            (&cfg.smtp.tls_listen, Kind::SmtpTls),
            (&cfg.smtp.lmtp_listen, Kind::Lmtp),
        ] {
            for a in addrs {
                match bind(a, kind).await {
                    Ok(l) => bound.push(l),
                    Err(e) => return fail(format!("cannot listen on {a}: {e}")),
                }
            }
        }
        serve_reloading(
            app,
            bound,
            Extra { admin, submit },
            opts.queue_interval,
            Some(opts.sources),
            stop,
        )
        .await
    })
}

/// Serves `listeners` until `shutdown` resolves (the binary passes
/// SIGTERM/SIGINT, tests a channel), with queue runs at startup and every
/// `queue_interval`. Returns the exit code. Then no listener accepts any
/// more; sessions under way and the delivery workers are left to the end
/// of the runtime and of the process.
#[cfg(test)]
pub async fn serve(
    app: App,
    listeners: Vec<Listener>,
    queue_interval: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) -> i32 {
    serve_reloading(
        app,
        listeners,
        Extra::default(),
        queue_interval,
        None,
        shutdown,
    )
    .await
}

/// [`serve`], reading the configuration again from `sources` and
/// reopening the logs on each SIGHUP.
pub async fn serve_reloading(
    app: App,
    listeners: Vec<Listener>,
    extra: Extra,
    queue_interval: Option<Duration>,
    sources: Option<crate::config::Sources>,
    shutdown: impl Future<Output = ()>,
) -> i32 {
    let logs = app.logs.clone();
    // Reading (or making) the TLS certificate is file I/O: off the runtime.
    let shared = match tokio::task::spawn_blocking(move || Shared::new(app, true)).await {
        Ok(s) => s,
        Err(e) => {
            logs.panic(&format!("cannot start the daemon: {e}"));
            return mailstore::error::sysexits::SOFTWARE;
        }
    };
    let reloading = sources.map(|sources| {
        let shared = shared.clone();
        // Installed before the daemon says it listens (SIGHUP's default
        // action ends the process).
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        tokio::spawn(async move {
            let Ok(mut hup) = hup else {
                return;
            };
            while hup.recv().await.is_some() {
                // Reading files: off the runtime.
                let (shared, sources) = (shared.clone(), sources.clone());
                let _ = tokio::task::spawn_blocking(move || shared.reload(&sources)).await;
            }
        })
    });
    let mut names: Vec<String> = listeners.iter().map(|l| l.describe()).collect();
    let submit_task = extra.submit.map(|listener| {
        let path = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_default();
        names.push(format!("submit=unix:{path}"));
        tokio::spawn(crate::submission::server::serve(listener, shared.clone()))
    });
    let admin_task = extra.admin.map(|(listener, token)| {
        names.push(listener.describe());
        let a = Arc::new(crate::admin::Admin::new(
            &shared.cfg(),
            shared.metrics.clone(),
            shared.queue.clone(),
            token,
        ));
        tokio::spawn(crate::admin::serve(listener, a, shared.logs.clone()))
    });
    shared.logs.main(&log::Event::other(
        None,
        format!(
            "sluice daemon started: pid={}, {}",
            std::process::id(),
            names.join(", ")
        ),
    ));
    // Tests and scripts wait for this line to know the ports.
    println!("listening {}", names.join(" "));
    // What an earlier run left queued (after a crash too), listed before
    // the first connection is accepted: the startup run delivers those
    // and only those, so that with `queue_only` what this daemon accepts
    // waits for a queue run however late the startup run gets going.
    let left = shared.queue.ids();
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(accept_loop(l, shared.clone())))
        .collect();
    let runner_shared = shared.clone();
    // Queue runs list the spool and clean garbage: blocking work, on a
    // thread of their own.
    std::thread::spawn(move || {
        runner_shared.runner.run_listed(left, false);
        if let Some(i) = queue_interval {
            loop {
                std::thread::sleep(i);
                runner_shared.runner.run(false);
            }
        }
    });
    shutdown.await;
    // The stop, in order, all within shutdown_timeout: no new connection
    // (the listeners close); 421 to every session between transactions, a
    // message being received finished and answered first; no new delivery
    // batch, the batches under way finished; remote transactions under way
    // get their final reply (else "possibly delivered"); then the
    // counters, and exit.
    let deadline = tokio::time::Instant::now() + shared.cfg().shutdown_timeout;
    if let Some(r) = reloading {
        r.abort();
        let _ = r.await;
    }
    for a in accepting.iter().chain(&admin_task).chain(&submit_task) {
        a.abort();
    }
    for a in accepting {
        // Dropping the task drops its listener: connections are refused.
        let _ = a.await;
    }
    shared
        .logs
        .main(&log::Event::other(None, "sluice daemon stopping on signal"));
    shared.stop_sessions();
    if !shared.sessions_ended(deadline).await {
        shared.logs.main(&log::Event::other(
            None,
            format!(
                "{} sessions still open after shutdown_timeout: closed",
                shared.sessions.load(std::sync::atomic::Ordering::SeqCst)
            ),
        ));
    }
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let stopping = shared.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let end = std::time::Instant::now() + remaining;
        stopping.runner.stop(remaining);
        let deliverer = stopping.runner.deliverer();
        deliverer.stop_remote(end.saturating_duration_since(std::time::Instant::now()));
        deliverer.close_remote(std::time::Duration::from_secs(5));
    })
    .await;
    // What this run's durability cost, for benchmarks (benches/syscalls.sh)
    // and operators comparing settings.
    let c = shared.queue.committer().stats();
    shared.logs.main(&log::Event::other(
        None,
        format!(
            "commit counters: batches={} jobs={} data_syncs={} dir_syncs={}",
            c.batches, c.jobs, c.data_syncs, c.dir_syncs
        ),
    ));
    // IDs made in this process (LMTP arrivals) must not be made again
    // by a successor with the same pid in the same instant.
    shared.queue.wait_before_exit();
    // The last handle on the delivery agent may be this one: its remote
    // engine has a runtime of its own, which must not be dropped here.
    let _ = tokio::task::spawn_blocking(move || drop(shared)).await;
    0
}

/// The daemon's listeners besides SMTP and LMTP.
#[derive(Default)]
pub struct Extra {
    /// The admin listener and its bearer token.
    pub admin: Option<(crate::admin::Listener, Option<String>)>,
    /// The submission socket.
    pub submit: Option<UnixListener>,
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled: a signal that comes in between (the
/// daemon has said it listens) must not find the default action, which
/// kills the process.
fn stop_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = signals else {
            // Without signal handling, run until killed.
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
}

/// What a TCP listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Smtp,
    SmtpTls,
    Lmtp,
}

/// A bound listening socket and the protocol it serves.
pub enum Listener {
    Tcp(TcpListener, Kind),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    fn describe(&self) -> String {
        match self {
            Listener::Tcp(l, k) => {
                let a = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                match k {
                    Kind::Smtp => format!("smtp={a}"),
                    Kind::SmtpTls => format!("smtps={a}"),
                    Kind::Lmtp => format!("lmtp={a}"),
                }
            }
            Listener::Unix(_, p) => format!("lmtp=unix:{}", p.display()),
        }
    }
}

/// Binds a Unix socket at `path` (LMTP, the admin listener, the
/// submission socket): its directory is made (mode 0755) when missing; a
/// socket left by a daemon that is gone is replaced, one that still
/// answers is not taken over, and anything else at `path` is an error.
/// Its mode and group are the caller's.
pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    if let Ok(m) = std::fs::symlink_metadata(path)
        && m.file_type().is_socket()
    {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "in use by another running daemon",
            ));
        }
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path)
}

/// Binds `addr` (`host:port`, or `unix:PATH` for LMTP) for `kind`.
pub async fn bind(addr: &str, kind: Kind) -> std::io::Result<Listener> {
    if let Some(path) = addr.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        return Ok(Listener::Unix(bind_unix(&path)?, path));
    }
    // A deep accept queue: under a burst of connections the kernel keeps
    // them for the accept loop instead of dropping their handshakes (the
    // kernel caps it at net.core.somaxconn).
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(l) => return Ok(Listener::Tcp(l, kind)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr}: no address to listen on"),
        )
    }))
}

/// The accept queue asked for (see [`bind`]).
const LISTEN_BACKLOG: u32 = 4096;

async fn accept_loop(l: Listener, shared: Arc<Shared>) {
    let mut last_accept_error = None;
    loop {
        match &l {
            Listener::Tcp(tcp, kind) => match tcp.accept().await {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let shared = shared.clone();
                    let kind = *kind;
                    tokio::spawn(async move {
                        let stream: Box<dyn Stream> = match kind {
                            Kind::SmtpTls => match &shared.tls() {
                                Some(acc) => match handshake(acc, sock, &shared).await {
                                    Some(t) => {
                                        let info = tls_info(t.get_ref().1);
                                        return serve_connection(
                                            Box::new(t),
                                            Some(peer),
                                            Mode::Smtp,
                                            Some(info),
                                            shared,
                                            None,
                                        )
                                        .await;
                                    }
                                    None => return,
                                },
                                None => return,
                            },
                            _ => Box::new(sock),
                        };
                        let mode = if kind == Kind::Lmtp {
                            Mode::Lmtp
                        } else {
                            Mode::Smtp
                        };
                        serve_connection(stream, Some(peer), mode, None, shared, None).await;
                    });
                }
                Err(e) => accept_failed(&shared.logs, "listener", &mut last_accept_error, &e).await,
            },
            Listener::Unix(unix, _) => match unix.accept().await {
                Ok((sock, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        serve_connection(Box::new(sock), None, Mode::Lmtp, None, shared, None).await
                    });
                }
                Err(e) => accept_failed(&shared.logs, "listener", &mut last_accept_error, &e).await,
            },
        }
    }
}

/// An accept that failed on `listener` (EMFILE, ENFILE, ENOMEM: out of
/// descriptors or memory under a flood): logged at most once a second,
/// then a short pause so that the loop does not spin while nothing can be
/// accepted. Every listener's accept loop ends here.
pub async fn accept_failed(
    logs: &Logs,
    listener: &str,
    last: &mut Option<std::time::Instant>,
    e: &std::io::Error,
) {
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
        *last = Some(std::time::Instant::now());
        logs.panic(&format!("{listener}: accept failed: {e}"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// The TLS handshake, bounded by the command timeout: a client that
/// connects and then says nothing must not hold a socket (or, after
/// STARTTLS, a connection slot) for ever. `None` when it failed or timed out.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    acc: &TlsAcceptor,
    stream: S,
    shared: &Shared,
) -> Option<tokio_rustls::server::TlsStream<S>> {
    match tokio::time::timeout(shared.cfg().smtp.command_timeout, acc.accept(stream)).await {
        Ok(Ok(t)) => Some(t),
        Ok(Err(_)) | Err(_) => None,
    }
}

fn tls_info(conn: &rustls::ServerConnection) -> TlsInfo {
    tls::session_info(conn)
}

/// Runs one session to its end.
pub async fn serve_connection(
    mut stream: Box<dyn Stream>,
    peer: Option<SocketAddr>,
    mode: Mode,
    implicit_tls: Option<TlsInfo>,
    shared: Arc<Shared>,
    local: Option<Arc<crate::cmd::local_sender::Local>>,
) {
    let config = shared.session_config(mode);
    let _running = Running::new(&shared);
    let metrics = shared.metrics.clone();
    let mut gauge = metrics.session();
    let mut stopping = shared.stopping.subscribe();
    let mut session = Session::new(config, peer);
    session.offer_dsn(shared.cfg().dsn_offered(peer.map(|p| p.ip())));
    if let Some(info) = implicit_tls {
        session.tls_established(info);
        metrics.tls_established();
    }
    let mut slot = None;
    // For the log line when the session gives up on a client.
    let mut last_refused: Option<String> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut pace = Pace::new(&shared.cfg().smtp);
    // Content taken from the session while a large message arrives, and
    // the transaction it was taken in.
    let mut inbound: Option<(u64, streaming::Inbound)> = None;
    loop {
        match session.poll() {
            Poll::Read => {
                // A large message is written out while it arrives; one
                // bound to be refused, or abandoned, is dropped with its
                // files before the reply goes out.
                if mode == Mode::Smtp
                    && local.is_none()
                    && (inbound.is_some() || session.content_kept() > 0)
                {
                    let began = tokio::time::Instant::now();
                    stream_step(&shared, &mut session, &mut inbound).await;
                    // The client is not made to pay for our disk.
                    pace.pause(began.elapsed());
                }
                let out = session.take_output();
                if !out.is_empty() {
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                    // A reply went out: the next command's time starts.
                    pace.replied();
                }
                // Stopping: a session between transactions is told so now;
                // a message on its way in is finished (and answered) first.
                let receiving = session.receiving_message();
                gauge.set(if receiving {
                    SessionState::Data
                } else if session.envelope().is_some() {
                    SessionState::Transaction
                } else {
                    SessionState::Command
                });
                if *stopping.borrow() && !receiving {
                    session.shutdown();
                    continue;
                }
                let read = tokio::time::timeout(
                    pace.timeout(session.timeout(), receiving),
                    stream.read(&mut buf),
                );
                let got = if receiving {
                    read.await
                } else {
                    tokio::select! {
                        r = read => r,
                        _ = stopping.wait_for(|s| *s) => {
                            session.shutdown();
                            continue;
                        }
                    }
                };
                match got {
                    Ok(Ok(0)) | Ok(Err(_)) => session.receive_eof(),
                    Ok(Ok(n)) if receiving && pace.too_slow(n) => {
                        shared.logs.main(&log::Event::other(
                            None,
                            format!(
                                "SMTP data rate below data_min_rate ({} bytes/s) from {}: connection dropped",
                                pace.min_rate,
                                host_of(peer, session.helo().map(|h| h.1))
                            ),
                        ));
                        session.timed_out();
                    }
                    Ok(Ok(n)) => session.receive(&buf[..n]),
                    Err(_) => {
                        // Exim's line for a client that went quiet.
                        shared.logs.main(&log::Event::other(
                            None,
                            format!(
                                "SMTP command timeout on connection from {}",
                                host_of(peer, session.helo().map(|h| h.1))
                            ),
                        ));
                        session.timed_out();
                    }
                }
            }
            Poll::Decide(Event::Connect) => {
                let verdict = match shared.admit(peer.map(|p| p.ip())) {
                    Ok(s) => {
                        slot = Some(s);
                        Verdict::Accept
                    }
                    Err(why) => {
                        shared.logs.reject(
                            &log::Event::other(
                                None,
                                format!("{} connection refused: {why}", host_of(peer, None)),
                            ),
                            None,
                        );
                        Verdict::Reply(smtp::Reply::new(
                            421,
                            smtp::Status::new(4, 7, 0),
                            format!("{} {why}, try again later", shared.cfg().primary_hostname),
                        ))
                    }
                };
                session.verdict(verdict);
            }
            Poll::Decide(Event::Message(msg)) if mode == Mode::Lmtp => {
                let verdicts = lmtp::deliver(&shared, *msg).await;
                session.verdicts(verdicts);
            }
            Poll::Decide(Event::Message(msg)) => {
                // Content taken in this transaction only (a pipelined
                // RSET and MAIL may have ended the one it was taken in).
                let taken = match inbound.take() {
                    Some((of, taken)) if of == session.transaction_serial() => Some(taken),
                    stale => {
                        streaming::Inbound::abandon(stale.map(|(_, i)| i)).await;
                        None
                    }
                };
                let v = policy::accept_message(&shared, *msg, local.as_ref(), taken).await;
                session.verdict(v);
            }
            Poll::Decide(event) => {
                let v = policy::decide(&shared, &session, event).await;
                session.verdict(v);
            }
            Poll::Notice(n) => {
                if let Notice::CommandRefused { command, .. } = &n {
                    last_refused = Some(command.clone());
                }
                log_notice(&shared, peer, &n)
            }
            Poll::StartTls { discarded } => {
                let out = session.take_output();
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                let Some(acc) = shared.tls() else {
                    return;
                };
                match handshake(&acc, stream, &shared).await {
                    Some(t) => {
                        let info = tls_info(t.get_ref().1);
                        if discarded > 0 {
                            shared.logs.main(&log::Event::other(
                                None,
                                format!(
                                    "{} discarded {discarded} octets pipelined after STARTTLS",
                                    host_of(peer, session.helo().map(|h| h.1))
                                ),
                            ));
                        }
                        stream = Box::new(t);
                        session.tls_established(info);
                        metrics.tls_established();
                    }
                    None => return,
                }
            }
            Poll::Close(reason) => {
                if reason == CloseReason::TooManyErrors {
                    // Exim's line, in the main and reject logs.
                    shared.logs.reject(
                        &log::Event::other(
                            None,
                            format!(
                                "SMTP call from {} dropped: too many syntax or protocol errors (last command was \"{}\")",
                                host_of(peer, session.helo().map(|h| h.1))
                                    .to_string()
                                    .trim_start_matches("H="),
                                last_refused.as_deref().unwrap_or("")
                            ),
                        ),
                        None,
                    );
                }
                let out = session.take_output();
                let _ = stream.write_all(&out).await;
                let _ = stream.shutdown().await;
                drop(slot);
                return;
            }
            Poll::Waiting => {
                // Every Decide is answered above; nothing else to wait for.
                return;
            }
        }
    }
}

/// Takes content from `session` for a large message's stream
/// ([`streaming`]): abandons what belongs to a transaction that ended
/// (refused, reset, or followed by another), opens a stream once a message
/// passes `smtp.stream_from`, and feeds it.
async fn stream_step(
    shared: &Arc<Shared>,
    session: &mut Session,
    inbound: &mut Option<(u64, streaming::Inbound)>,
) {
    let serial = session.transaction_serial();
    if inbound.as_ref().is_some_and(|(of, _)| {
        *of != serial || session.envelope().is_none() || session.content_refused()
    }) {
        streaming::Inbound::abandon(inbound.take().map(|(_, i)| i)).await;
    }
    let kept = session.content_kept();
    if inbound.is_none()
        && !session.content_refused()
        && let Ok(from) = usize::try_from(shared.cfg().smtp.stream_from)
        && from > 0
        && kept >= from
        && session.envelope().is_some()
    {
        *inbound = Some((serial, streaming::Inbound::open()));
    }
    let Some((of, st)) = inbound.take() else {
        return;
    };
    let taken = st.wants().and_then(|want| session.take_content(want));
    *inbound = Some(match (taken, session.envelope()) {
        (Some(bytes), Some(env)) => (of, streaming::Inbound::step(shared, env, st, bytes).await),
        _ => (of, st),
    });
}

/// How fast a client must be, beyond the wait for each read: a whole
/// command line within `command_timeout` of the last reply, and message
/// data at `data_min_rate` on average over each `data_rate_window` of a
/// transfer.
struct Pace {
    command_timeout: Duration,
    min_rate: u64,
    window_length: Duration,
    /// When the last reply went out.
    replied: tokio::time::Instant,
    /// The current window of a transfer and the bytes it brought.
    window: Option<(tokio::time::Instant, u64)>,
}

impl Pace {
    fn new(cfg: &crate::config::SmtpConfig) -> Pace {
        Pace {
            command_timeout: cfg.command_timeout,
            min_rate: cfg.data_min_rate,
            window_length: cfg.data_rate_window.max(Duration::from_secs(1)),
            replied: tokio::time::Instant::now(),
            window: None,
        }
    }

    fn replied(&mut self) {
        self.replied = tokio::time::Instant::now();
        self.window = None;
    }

    /// How long the next read may take: the session's own timeout, and,
    /// for a command, no later than `command_timeout` after the last
    /// reply (a line dripped in byte by byte does not restart the clock).
    fn timeout(&self, session: Duration, receiving: bool) -> Duration {
        if receiving {
            return session;
        }
        let left = (self.replied + self.command_timeout)
            .saturating_duration_since(tokio::time::Instant::now());
        session.min(left)
    }

    /// Leaves `d` out of the current window: time the server spent on its
    /// own work between two reads.
    fn pause(&mut self, d: Duration) {
        if let Some((start, _)) = &mut self.window {
            *start += d;
        }
    }

    /// Counts `n` bytes of message data; true when the window that just
    /// ended brought less than `data_min_rate` a second.
    fn too_slow(&mut self, n: usize) -> bool {
        if self.min_rate == 0 {
            return false;
        }
        let now = tokio::time::Instant::now();
        let (start, bytes) = self.window.get_or_insert((now, 0));
        *bytes += n as u64;
        let span = now.duration_since(*start);
        if span < self.window_length {
            return false;
        }
        let slow = (*bytes as f64) < self.min_rate as f64 * span.as_secs_f64();
        self.window = Some((now, 0));
        slow
    }
}

/// Exim's host field for logs: `H=(helo) [ip]`, or `U=local`.
pub fn host_of(peer: Option<SocketAddr>, helo: Option<&str>) -> Origin {
    crate::log::origin(peer.map(|p| p.ip()), helo)
}

fn log_notice(shared: &Shared, peer: Option<SocketAddr>, n: &Notice) {
    match n {
        Notice::CommandRefused { command, reply } => {
            // Exim logs protocol errors in the main log only when asked;
            // the ones that carry a policy meaning go to rejectlog.
            if reply.code() >= 500 && reply.code() != 500 && reply.code() != 503 {
                let rejected = Rejected {
                    origin: host_of(peer, None),
                    sender: None,
                    temporary: false,
                    stage: Stage::Other(command.clone()),
                    reason: Some(reply.lines().join(" ")),
                };
                shared
                    .logs
                    .reject(&log::Event::new(None, log::Kind::Rejected(rejected)), None);
            }
        }
        Notice::MessageRefused {
            envelope,
            size,
            reply,
        } => {
            let from = envelope
                .from
                .as_ref()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default();
            let rejected = Rejected {
                origin: host_of(peer, Some(&envelope.helo)),
                sender: Some(from),
                temporary: reply.code() < 500,
                stage: Stage::AfterDataSize(*size),
                reason: Some(reply.lines().join(" ")),
            };
            shared
                .logs
                .reject(&log::Event::new(None, log::Kind::Rejected(rejected)), None);
        }
    }
}
