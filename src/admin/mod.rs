//! The admin listener (`[admin] listen`): `/metrics` in Prometheus's
//! format, `/` a status page, `/queue` the queue as `sluice queue list
//! --json` prints it (docs/operations.md, "Metrics and status page").
//!
//! Who may ask what: on the Unix socket (mode 0660, group
//! `admin.socket_group`) everything, the file mode being the check. On TCP
//! `/metrics` (aggregates only) is open and `/` and `/queue`, which show
//! addresses, need `Authorization: Bearer <token>`: loopback is no
//! boundary on a host where every site's code runs as its own user. At
//! most [`MAX_CONNECTIONS`] at once, each with [`REQUEST_TIMEOUT`] to send
//! a head of at most [`http::MAX_HEAD`] bytes.

pub mod follow;
pub mod http;
pub mod metrics;
pub mod queue_view;
pub mod status;
pub mod today;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

use crate::config::{AdminConfig, Config};
use crate::log::{Event, Logs};
use crate::stats::zone::Zone;
use http::{HeadError, Method, Request, Response};
use metrics::Metrics;
use queue_view::{Frozen, Summary};
use today::Today;

pub const MAX_CONNECTIONS: usize = 8;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a queue count or summary is reused: a scraper polling every
/// second costs at most one count a second, the page one spool read a
/// minute.
const COUNT_FRESH: Duration = Duration::from_secs(1);
const SUMMARY_FRESH: Duration = Duration::from_secs(60);

/// A bound admin listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => {
                let a = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                format!("admin={a}")
            }
            Listener::Unix(_, p) => format!("admin=unix:{}", p.display()),
        }
    }
}

/// Reads the bearer token from `path`: refused unless only its owner can
/// read it, and unless it holds a token (the first line, trimmed).
pub fn read_token(path: &Path) -> Result<String, String> {
    let token = crate::config::read_private_first_line("admin.token_file", path)?;
    let token = token.trim();
    if token.len() < 16 {
        return Err(format!(
            "admin.token_file {}: the token must be at least 16 characters",
            path.display()
        ));
    }
    Ok(token.to_string())
}

/// Binds `cfg.listen`: `unix:PATH` (replacing a socket an earlier run
/// left, mode 0660, group `socket_group` when that group exists) or a TCP
/// address.
pub async fn bind(cfg: &AdminConfig) -> Result<Listener, String> {
    let addr = cfg.listen.as_str();
    if let Some(path) = addr.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        let l = crate::server::bind_unix(&path)
            .map_err(|e| format!("cannot listen on admin socket {}: {e}", path.display()))?;
        let gid = crate::sys::group_id(&cfg.socket_group).ok().flatten();
        if let Some(gid) = gid {
            let _ = std::os::unix::fs::chown(&path, None, Some(gid));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| format!("admin socket {}: {e}", path.display()))?;
        return Ok(Listener::Unix(l, path));
    }
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on admin address {addr}: {e}"))?;
    Ok(Listener::Tcp(l))
}

/// What the listener answers from.
pub struct Admin {
    pub metrics: Arc<Metrics>,
    token: Option<String>,
    queue: spool::Queue,
    host: String,
    mainlog: PathBuf,
    /// None until the spool scan at start is done.
    frozen: Mutex<Option<Frozen>>,
    today: Mutex<Option<Today>>,
    count: Mutex<Option<(Instant, u64)>>,
    summary: Mutex<Option<(Instant, Summary)>>,
}

impl Admin {
    pub fn new(
        cfg: &Config,
        metrics: Arc<Metrics>,
        queue: spool::Queue,
        token: Option<String>,
    ) -> Admin {
        Admin {
            metrics,
            token,
            queue,
            host: cfg.primary_hostname.clone(),
            mainlog: cfg.log_dir().join("mainlog"),
            frozen: Mutex::new(None),
            today: Mutex::new(None),
            count: Mutex::new(None),
            summary: Mutex::new(None),
        }
    }

    /// The spool scan for the frozen count: blocking, once, before the
    /// listener answers.
    fn scan(&self) {
        let f = Frozen::scan(&self.queue, &self.mainlog);
        *self.frozen.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    fn queue_count(&self) -> u64 {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, n)) = *c
            && at.elapsed() < COUNT_FRESH
        {
            return n;
        }
        let n = self.queue.count().unwrap_or(0);
        *c = Some((Instant::now(), n));
        n
    }

    fn frozen_count(&self) -> u64 {
        self.frozen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .map_or(0, Frozen::count)
    }

    fn summary(&self) -> Summary {
        let mut s = self.summary.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, sum)) = &*s
            && at.elapsed() < SUMMARY_FRESH
        {
            return sum.clone();
        }
        let sum = queue_view::summarize(&self.queue);
        *s = Some((Instant::now(), sum.clone()));
        sum
    }

    /// The answer to `req` (blocking: it reads the spool and the log).
    pub fn respond(&self, req: &Request, via_socket: bool) -> Response {
        if req.method == Method::Other {
            return Response::text(405, "only GET and HEAD");
        }
        let authorized = via_socket
            || match (&self.token, &req.bearer) {
                (Some(t), Some(given)) => http::token_matches(given, t),
                _ => false,
            };
        match req.path.as_str() {
            "/metrics" => Response::new(
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.metrics.encode(self.queue_count(), self.frozen_count()),
            ),
            "/" | "/queue" if !authorized => Response::text(
                401,
                "this page shows addresses: send Authorization: Bearer <token>",
            ),
            "/" => {
                let report = self
                    .today
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| Today::new(&self.mainlog, Zone::Local))
                    .report();
                let summary = self.summary();
                let page = status::render(&status::Status {
                    host: &self.host,
                    now: crate::clock::now(),
                    queue: &summary,
                    last_hour: self.metrics.last_hour(),
                    today: &report,
                });
                Response::new(200, "text/html; charset=utf-8", page)
            }
            "/queue" => {
                let mut body = Vec::new();
                if let Ok(messages) = self.queue.messages(true) {
                    // A message delivered and removed while listed is
                    // simply not shown.
                    for hf in messages.flatten() {
                        body.extend_from_slice(crate::cmd::queue::json_line(&hf).as_bytes());
                    }
                }
                Response::new(200, "application/x-ndjson", body)
            }
            _ => Response::text(404, "not found: /metrics, / or /queue"),
        }
    }
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: Listener, admin: Arc<Admin>, logs: Arc<Logs>) {
    let a = admin.clone();
    let _ = tokio::task::spawn_blocking(move || a.scan()).await;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut last_error: Option<Instant> = None;
    loop {
        let accepted: std::io::Result<(Box<dyn Conn>, bool)> = match &listener {
            Listener::Tcp(l) => l
                .accept()
                .await
                .map(|(s, _)| (Box::new(s) as Box<dyn Conn>, false)),
            Listener::Unix(l, _) => l
                .accept()
                .await
                .map(|(s, _)| (Box::new(s) as Box<dyn Conn>, true)),
        };
        let (mut stream, via_socket) = match accepted {
            Ok(x) => x,
            Err(e) => {
                crate::server::accept_failed(&logs, "admin listener", &mut last_error, &e).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the limit: told at once, not queued.
            let busy = Response::text(503, "too many admin connections").to_bytes(false);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(&mut stream, &busy)).await;
            });
            continue;
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ =
                tokio::time::timeout(REQUEST_TIMEOUT, connection(stream, via_socket, admin)).await;
        });
    }
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

async fn connection(mut stream: Box<dyn Conn>, via_socket: bool, admin: Arc<Admin>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let parsed = loop {
        if let Some(end) = http::head_end(&buf) {
            break http::parse_head(&buf[..end]);
        }
        if buf.len() > http::MAX_HEAD {
            break Err(HeadError::TooLarge);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let (response, head_only) = match parsed {
        Ok(req) => {
            let head_only = req.method == Method::Head;
            let a = admin.clone();
            match tokio::task::spawn_blocking(move || a.respond(&req, via_socket)).await {
                Ok(r) => (r, head_only),
                Err(_) => (Response::text(503, "internal error"), head_only),
            }
        }
        Err(HeadError::TooLarge) => (Response::text(431, "request head over 8 KiB"), false),
        Err(HeadError::Malformed(what)) => {
            (Response::text(400, &format!("bad request: {what}")), false)
        }
    };
    answer(&mut stream, &response.to_bytes(head_only)).await;
}

/// Writes `response` and closes, reading what the client still sends
/// until it closes too: a socket closed with unread bytes is reset, and
/// the reset can reach the client before the response does.
async fn answer(stream: &mut Box<dyn Conn>, response: &[u8]) {
    if stream.write_all(response).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    let drain = async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// The daemon's metrics, hearing its log events and its committer's
/// batches from now on.
pub fn attach(logs: &Logs, committer: &durable::Committer) -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::new());
    let m = metrics.clone();
    logs.observe(Box::new(move |e: &Event, which| m.observe(e, which)));
    let m = metrics.clone();
    committer.observe_batches(Box::new(move |n, took| m.batch(n, took)));
    metrics
}
