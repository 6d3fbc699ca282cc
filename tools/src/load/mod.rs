//! `sluice-load`: an SMTP load generator in the manner of Postfix's
//! smtp-source. N messages of exactly S bytes over C concurrent
//! connections, each connection carrying many messages (or one each), and
//! a report of what the server did with them: messages and bytes per
//! second, the time from the final dot to the `250` (p50/p90/p99/max), and
//! every message that got no `250`, grouped by reply code.
//!
//! - [`message`]: building messages of an exact size, and their DATA form;
//! - [`client`]: the minimal SMTP client (plain, STARTTLS, implicit TLS);
//! - [`stats`]: percentiles, tallies, the report.
//!
//! The time to `250` is the latency a sending MTA sees; on a server that
//! answers only once the message is durable it is dominated by the flush.

pub mod client;
pub mod message;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use client::{Failure, Target, TlsMode};
pub use message::Template;
pub use stats::{Report, RunInfo, Tally};

/// A run's parameters.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    /// Messages to send in all.
    pub messages: u64,
    /// Concurrent connections.
    pub connections: usize,
    /// Many messages per connection (true) or a new connection for each.
    pub reuse: bool,
    pub template: Template,
}

/// Hands out message numbers to the connections, so that the run sends
/// exactly `messages` however fast each connection goes.
struct Tickets {
    next: AtomicU64,
    end: u64,
}

impl Tickets {
    fn take(&self) -> Option<u64> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < self.end).then_some(n)
    }
}

/// Sends the messages and reports. Runs on the caller's tokio runtime; the
/// connections are tasks on it.
pub async fn run(opts: Options) -> Report {
    let opts = Arc::new(opts);
    let tickets = Arc::new(Tickets {
        next: AtomicU64::new(0),
        end: opts.messages,
    });
    let start = Instant::now();
    let workers: Vec<_> = (0..opts.connections.max(1))
        .map(|_| tokio::spawn(connection(opts.clone(), tickets.clone())))
        .collect();
    let mut tally = Tally::default();
    for w in workers {
        match w.await {
            Ok(t) => tally.merge(t),
            // A panicked connection task: its messages are neither
            // accepted nor failed, and the report's all_accepted() says so.
            Err(e) => tally.failed("internal".into(), || e.to_string()),
        }
    }
    let elapsed = start.elapsed();
    let info = RunInfo {
        server: opts.target.addr.to_string(),
        tls: opts.target.tls.name(),
        connections: opts.connections,
        reuse: opts.reuse,
        size: opts.template.size,
        messages: opts.messages,
    };
    Report::new(info, tally, elapsed)
}

/// One connection's loop: take a message number, (re)connect if needed,
/// send, record, until the numbers run out.
async fn connection(opts: Arc<Options>, tickets: Arc<Tickets>) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<client::Connection> = None;
    let from = opts.template.from.as_str();
    let to = opts.template.to.as_str();
    while let Some(seq) = tickets.take() {
        let wire = match opts.template.build(seq) {
            Ok(msg) => message::data_wire(&msg),
            Err(e) => {
                tally.failed("size".into(), || e.to_string());
                continue;
            }
        };
        let c = match &mut conn {
            Some(c) => c,
            None => match client::Connection::open(&opts.target).await {
                Ok(c) => conn.insert(c),
                Err(f) => {
                    tally.failed(f.kind(), || f.to_string());
                    continue;
                }
            },
        };
        match c.send(from, to, &wire).await {
            Ok(latency) => tally.accepted(latency),
            Err(f) => {
                tally.failed(f.kind(), || f.to_string());
                let usable = f.connection_usable() && c.reset().await.is_ok();
                if !usable {
                    conn = None;
                }
            }
        }
        if !opts.reuse
            && let Some(c) = conn.take()
        {
            c.quit().await;
        }
    }
    if let Some(c) = conn {
        c.quit().await;
    }
    tally
}

/// Resolves `host:port` to the first address (the load goes to one server).
pub fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host}: no address"))
    })
}

/// `<unix time>.<pid>`: makes this run's Message-IDs unique.
pub fn run_tag(now: Duration) -> String {
    format!("{}.{}", now.as_secs(), std::process::id())
}
