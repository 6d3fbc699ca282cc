//! The `manualroute` and `ipliteral` routers: hosts from the configuration
//! (a smarthost) or from the address itself (`user@[192.0.2.1]`), resolved
//! through the system's resolver, so `/etc/hosts` works for a smarthost as
//! it does with Exim's `byname`.
//!
//! A `route_list` entry is Exim's: `"DOMAIN HOSTS [OPTIONS]"`, e.g.
//!
//! ```toml
//! route_list = ["* smarthost.example.net::587"]
//! route_list = ["*.example.com 192.0.2.7:192.0.2.8 randomize", "example.org relay.example.org"]
//! ```
//!
//! The first entry whose domain pattern matches decides (`*`, `*.suffix`,
//! a name, `+local_domains`). Hosts are separated by `:`; a host may carry
//! a port after a doubled colon (`relay::2525`, Exim's way of writing a
//! colon inside a colon-separated list); an IPv6 address is written in
//! brackets (`[2001:db8::1]::2525`). Options: `randomize` (shuffle the
//! hosts for each message) or `no_randomize` (the default: in order).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

pub use rand_shuffle::shuffle;

use crate::network::Network;
use crate::remote::{Address, Settings};
use crate::router::{DEFAULT_IGNORE_TARGET_HOSTS, Router, RouterDriver};

/// One `route_list` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub domain: String,
    /// Host names or addresses, each with its port if it names one.
    pub hosts: Vec<(String, Option<u16>)>,
    pub randomize: bool,
}

impl Route {
    pub fn parse(entry: &str) -> Result<Route, String> {
        let mut words = entry.split_whitespace();
        let (Some(domain), Some(hosts)) = (words.next(), words.next()) else {
            return Err(format!("{entry:?}: expected \"DOMAIN HOSTS [OPTIONS]\""));
        };
        let mut randomize = false;
        for w in words {
            match w {
                "randomize" => randomize = true,
                "no_randomize" | "byname" => {}
                o => return Err(format!("{entry:?}: unknown option {o:?}")),
            }
        }
        let hosts = host_list(hosts).map_err(|e| format!("{entry:?}: {e}"))?;
        Ok(Route {
            domain: domain.to_string(),
            hosts,
            randomize,
        })
    }
}

/// Splits `a:b::25:[2001:db8::1]::2525` into hosts with their ports.
pub fn host_list(list: &str) -> Result<Vec<(String, Option<u16>)>, String> {
    let mut items: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = list.chars().peekable();
    let mut in_brackets = false;
    while let Some(c) = chars.next() {
        match c {
            '[' => {
                in_brackets = true;
                cur.push(c);
            }
            ']' => {
                in_brackets = false;
                cur.push(c);
            }
            ':' if !in_brackets => {
                if chars.peek() == Some(&':') {
                    chars.next();
                    cur.push('\u{0}');
                } else {
                    items.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    items.push(cur);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .map(|item| {
            let (host, port) =
                match item.split_once('\u{0}') {
                    Some((h, p)) => (
                        h.to_string(),
                        Some(p.parse::<u16>().map_err(|_| {
                            format!("bad port in {:?}", item.replace('\u{0}', "::"))
                        })?),
                    ),
                    None => (item.clone(), None),
                };
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            if host.is_empty() {
                return Err("an empty host name".to_string());
            }
            Ok((host, port))
        })
        .collect()
}

/// What a remote router found.
#[derive(Debug)]
pub enum Found {
    Hosts(Vec<Address>),
    /// Not for this router (no entry matches, or every host ignored).
    Decline,
    /// Try later; `status` when not the default 4.3.0.
    Defer {
        why: String,
        status: Option<smtp::Status>,
    },
    /// Undeliverable; `status` when not the default X.1.2.
    Fail {
        why: String,
        status: Option<smtp::Status>,
    },
    /// Only this host would take it: defer and freeze.
    Freeze(String),
}

impl Found {
    fn defer(why: String) -> Found {
        Found::Defer { why, status: None }
    }
}

/// The addresses a remote router drops. Unset, dnslookup and ipliteral
/// routers drop loopback and 0.0.0.0 (what the DNS or a sender can name),
/// while a route list or a transport's hosts, written by the operator, may
/// name a local service (a content filter on 127.0.0.1:10024).
pub fn ignored(r: &Router) -> Vec<Network> {
    match &r.ignore_target_hosts {
        Some(list) => list.clone(),
        None if matches!(r.driver, RouterDriver::Dnslookup | RouterDriver::Ipliteral) => {
            DEFAULT_IGNORE_TARGET_HOSTS
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect()
        }
        None => Vec::new(),
    }
}

/// Routes `domain` through `r`'s route list.
pub fn route(r: &Router, settings: &Settings, domain: &str) -> Found {
    let Some(route) = r
        .route_list
        .iter()
        .filter_map(|e| Route::parse(e).ok())
        .find(|route| pattern_matches(&route.domain, domain))
    else {
        return Found::Decline;
    };
    resolve(r, settings, route.hosts, route.randomize)
}

/// The hosts of an smtp transport reached through an `accept` router (an
/// LMTP server, a fixed relay): its `hosts`, or its Unix `socket`.
pub fn transport_hosts(r: &Router, settings: &Settings) -> Found {
    if let Some(path) = &settings.socket {
        // One pseudo host: the engine connects to the socket.
        return Found::Hosts(vec![Address {
            host: path.display().to_string(),
            ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            port: 0,
            mx: None,
        }]);
    }
    if settings.hosts.is_empty() {
        return Found::defer(format!(
            "transport {:?} has no hosts (an accept router needs the transport's `hosts` or `socket`)",
            settings.transport
        ));
    }
    resolve(r, settings, Vec::new(), false)
}

/// Resolves `hosts` (or the transport's own, which replace them: Exim's
/// hosts_override) to addresses, dropping those `r` ignores.
fn resolve(
    r: &Router,
    settings: &Settings,
    hosts: Vec<(String, Option<u16>)>,
    randomize: bool,
) -> Found {
    let hosts = if settings.hosts.is_empty() {
        hosts
    } else {
        match settings
            .hosts
            .iter()
            .map(|h| host_list(h))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(v) => v.into_iter().flatten().collect(),
            Err(e) => return Found::defer(format!("transport hosts: {e}")),
        }
    };
    let ignore = ignored(r);
    let mut out = Vec::new();
    let mut order: Vec<usize> = (0..hosts.len()).collect();
    if randomize {
        shuffle(&mut order);
    }
    for k in order {
        let (name, port) = &hosts[k];
        let port = port.unwrap_or(settings.port);
        let addrs: Vec<IpAddr> = match name.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match (name.as_str(), port).to_socket_addrs() {
                Ok(a) => {
                    let mut v: Vec<IpAddr> = a.map(|s: SocketAddr| s.ip()).collect();
                    v.dedup();
                    v
                }
                Err(e) => {
                    return Found::defer(format!("host lookup for {name} did not complete: {e}"));
                }
            },
        };
        for ip in addrs {
            if ignore.iter().any(|n| n.contains(ip)) {
                continue;
            }
            out.push(Address {
                host: name.clone(),
                ip,
                port,
                mx: None,
            });
        }
    }
    if out.is_empty() {
        return Found::Decline;
    }
    Found::Hosts(out)
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub fn ip_literal(r: &Router, settings: &Settings, domain: &str) -> Found {
    let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else {
        return Found::Decline;
    };
    let text = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
        .unwrap_or(inner);
    let Ok(ip) = text.parse::<IpAddr>() else {
        return Found::Fail {
            why: format!("{domain} is not an IP address literal"),
            status: None,
        };
    };
    if ignored(r).iter().any(|n| n.contains(ip)) {
        return Found::Decline;
    }
    Found::Hosts(vec![Address {
        host: ip.to_string(),
        ip,
        port: settings.port,
        mx: None,
    }])
}

fn pattern_matches(pattern: &str, domain: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => domain
            .to_ascii_lowercase()
            .ends_with(&suffix.to_ascii_lowercase()),
        None => pattern.eq_ignore_ascii_case(domain),
    }
}

mod rand_shuffle {
    /// Fisher-Yates with a seed from the clock and pid: the order only
    /// needs to differ between messages, not to be unpredictable.
    pub fn shuffle<T>(v: &mut [T]) {
        let mut x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (u64::from(std::process::id()) << 32)
            | 1;
        for i in (1..v.len()).rev() {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.swap(i, (x % (i as u64 + 1)) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_list_entries() {
        let r = Route::parse("* smarthost.example.net::587").unwrap();
        assert_eq!(r.domain, "*");
        assert_eq!(r.hosts, vec![("smarthost.example.net".into(), Some(587))]);
        let r = Route::parse("*.example.com 192.0.2.7:192.0.2.8 randomize").unwrap();
        assert_eq!(
            r.hosts,
            vec![("192.0.2.7".into(), None), ("192.0.2.8".into(), None)]
        );
        assert!(r.randomize);
        let r = Route::parse("x.test [2001:db8::1]::2525:[::1]").unwrap();
        assert_eq!(
            r.hosts,
            vec![("2001:db8::1".into(), Some(2525)), ("::1".into(), None)]
        );
        assert!(Route::parse("*").unwrap_err().contains("DOMAIN HOSTS"));
        assert!(
            Route::parse("* a::notaport")
                .unwrap_err()
                .contains("bad port")
        );
        assert!(
            Route::parse("* a b")
                .unwrap_err()
                .contains("unknown option")
        );
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "a.b"));
        assert!(pattern_matches("*.example.com", "mx.EXAMPLE.com"));
        assert!(!pattern_matches("*.example.com", "example.org"));
        assert!(pattern_matches("Example.org", "example.ORG"));
    }
}
