//! DNS for routing: MX and address lookups behind a [`Resolver`] trait, and
//! the hickory-resolver implementation the daemon uses. Answers are cached
//! per TTL by hickory's own cache. `/etc/hosts` is never consulted: MX
//! routing follows the DNS only (a smarthost named in `route_list` is
//! resolved by the system, see [`crate::manualroute`]).
//!
//! Routing is synchronous (delivery threads, and RCPT checks off the
//! daemon's runtime), so the resolver runs its lookups on a small runtime
//! of its own and the caller waits for the answer on a channel: safe to
//! call from any thread, a tokio worker included.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// Why a lookup has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN): permanent.
    NoSuchDomain,
    /// SERVFAIL, REFUSED, a timeout, no server reachable: try again later.
    Temporary(String),
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsError::NoSuchDomain => write!(f, "no such domain"),
            DnsError::Temporary(why) => write!(f, "{why}"),
        }
    }
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// The exchange, without the trailing dot; `""` for the null MX
    /// (RFC 7505).
    pub exchange: String,
}

/// What routing asks of the DNS.
pub trait Resolver: Send + Sync + std::fmt::Debug {
    /// The domain's MX records; empty when it has none (but exists).
    fn mx(&self, domain: &str) -> Result<Vec<Mx>, DnsError>;
    /// The name's A and AAAA addresses; empty when it has none.
    fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, DnsError>;
}

/// Lookups through hickory-resolver.
pub struct HickoryResolver {
    resolver: hickory_resolver::Resolver<TokioRuntimeProvider>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HickoryResolver")
    }
}

impl HickoryResolver {
    /// A resolver asking `servers` (empty: those of /etc/resolv.conf).
    pub fn new(
        servers: &[SocketAddr],
        timeout: Duration,
        attempts: usize,
    ) -> Result<HickoryResolver, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dns")
            .enable_all()
            .build()
            .map_err(|e| format!("DNS resolver runtime: {e}"))?;
        let mut builder = if servers.is_empty() {
            hickory_resolver::Resolver::builder_tokio()
                .map_err(|e| format!("reading /etc/resolv.conf: {e}"))?
        } else {
            let name_servers = servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            hickory_resolver::Resolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = attempts;
        opts.use_hosts_file = ResolveHosts::Never;
        // Names are looked up as given, never with a search domain.
        opts.ndots = 0;
        let resolver = {
            let _guard = runtime.enter();
            builder.build().map_err(|e| format!("DNS resolver: {e}"))?
        };
        Ok(HickoryResolver { resolver, runtime })
    }

    /// Runs `fut` on the resolver's runtime and waits for it.
    fn wait<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().ok()
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

fn classify(e: &NetError) -> Option<DnsError> {
    if e.is_nx_domain() {
        Some(DnsError::NoSuchDomain)
    } else if e.is_no_records_found() {
        None
    } else {
        Some(DnsError::Temporary(e.to_string()))
    }
}

impl Resolver for HickoryResolver {
    fn mx(&self, domain: &str) -> Result<Vec<Mx>, DnsError> {
        let r = self.resolver.clone();
        let name = fqdn(domain);
        let answer = self
            .wait(async move { r.mx_lookup(name.as_str()).await })
            .ok_or_else(|| DnsError::Temporary("DNS resolver stopped".into()))?;
        match answer {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|rec| match &rec.data {
                    RData::MX(mx) => Some(Mx {
                        preference: mx.preference,
                        exchange: mx.exchange.to_ascii().trim_end_matches('.').to_string(),
                    }),
                    _ => None,
                })
                .collect()),
            Err(e) => match classify(&e) {
                None => Ok(Vec::new()),
                Some(err) => Err(err),
            },
        }
    }

    fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let mut out = Vec::new();
        let mut last = None;
        let mut missing = 0;
        for v6 in [false, true] {
            let r = self.resolver.clone();
            let n = fqdn(name);
            let answer = self
                .wait(async move {
                    if v6 {
                        r.ipv6_lookup(n.as_str()).await
                    } else {
                        r.ipv4_lookup(n.as_str()).await
                    }
                })
                .ok_or_else(|| DnsError::Temporary("DNS resolver stopped".into()))?;
            match answer {
                Ok(lookup) => {
                    out.extend(lookup.answers().iter().filter_map(|rec| match &rec.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    }))
                }
                Err(e) => match classify(&e) {
                    None => {}
                    Some(DnsError::NoSuchDomain) => missing += 1,
                    Some(t) => last = Some(t),
                },
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        if let Some(t) = last {
            return Err(t);
        }
        if missing > 0 {
            return Err(DnsError::NoSuchDomain);
        }
        Ok(out)
    }
}

/// The resolver routing uses for `cfg`'s `[dns]`, made on first use of
/// those settings. A reload that changes `[dns]` gets a resolver of its
/// own (and an empty cache); each distinct setting is made once and kept
/// for the life of the process (a handful over a daemon's reloads).
pub fn shared(cfg: &crate::config::Config) -> Result<&'static dyn Resolver, String> {
    type Settings = (Vec<std::net::SocketAddr>, std::time::Duration, usize);
    static RESOLVERS: std::sync::Mutex<Vec<(Settings, &'static HickoryResolver)>> =
        std::sync::Mutex::new(Vec::new());
    let key: Settings = (cfg.dns.servers.clone(), cfg.dns.timeout, cfg.dns.attempts);
    let mut made = RESOLVERS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, r)) = made.iter().find(|(k, _)| *k == key) {
        return Ok(*r as &dyn Resolver);
    }
    let r = HickoryResolver::new(&cfg.dns.servers, cfg.dns.timeout, cfg.dns.attempts)?;
    // Kept for the process's life: routing holds `&'static` resolvers.
    let r: &'static HickoryResolver = Box::leak(Box::new(r));
    made.push((key, r));
    Ok(r as &dyn Resolver)
}
