//! The `dnslookup` router: a domain's MX hosts from the DNS, in preference
//! order (shuffled within one preference), each with its A and AAAA
//! addresses; the domain's own addresses when it has no MX (the implicit
//! MX of RFC 5321 §5.1).
//!
//! | DNS says | Outcome |
//! |---|---|
//! | NXDOMAIN | fails, 5.1.2 |
//! | null MX (`MX 0 .`, RFC 7505) | fails, 5.1.10 |
//! | SERVFAIL, timeout, refused | deferred, 4.4.3 |
//! | every address ignored or missing | fails (the domain has no usable host) |
//! | the lowest MX is this host | deferred, message frozen (Exim's `self = freeze`) |
//!
//! This host: an MX whose name is in `hosts_treat_as_local`, or one of
//! whose addresses Sluice listens on or an interface has (ports ignored).
//! That MX and every MX with an equal or greater preference value are
//! dropped (RFC 5321 §5.1): they would only send the mail back here.

use std::net::IpAddr;

use smtp::Status;

use crate::config::Config;
use crate::dns::{DnsError, Resolver};
use crate::manualroute::{Found, shuffle};
use crate::network::Network;
use crate::remote::{Address, Settings};

/// Exim's text for an MX list that leads back here.
pub const POINTS_HERE: &str = "lowest numbered MX record points to local host";

/// Routes `domain` by its MX records.
pub fn route(
    cfg: &Config,
    resolver: &dyn Resolver,
    ignore: &[Network],
    settings: &Settings,
    local: &[IpAddr],
    domain: &str,
) -> Found {
    let defer = |why: String| Found::Defer {
        why,
        status: Some(Status::new(4, 4, 3)),
    };
    let mxs = match resolver.mx(domain) {
        Ok(m) => m,
        Err(DnsError::NoSuchDomain) => {
            return Found::Fail {
                why: format!("domain {domain} does not exist (NXDOMAIN)"),
                status: Some(Status::new(5, 1, 2)),
            };
        }
        Err(DnsError::Temporary(e)) => return defer(format!("DNS lookup of {domain} MX: {e}")),
    };
    if mxs.iter().any(|m| m.exchange.is_empty()) {
        return Found::Fail {
            why: format!("domain {domain} does not accept mail (null MX)"),
            status: Some(Status::new(5, 1, 10)),
        };
    }
    // (preference, name); an implicit MX has no preference.
    let mut hosts: Vec<(Option<u16>, String)> = if mxs.is_empty() {
        vec![(None, domain.to_string())]
    } else {
        let mut m: Vec<(Option<u16>, String)> = mxs
            .into_iter()
            .map(|m| (Some(m.preference), m.exchange.to_ascii_lowercase()))
            .collect();
        m.sort_by_key(|(p, _)| *p);
        m.dedup_by(|a, b| a.1 == b.1);
        shuffle_within_preference(&mut m);
        m
    };
    let mut found: Vec<Address> = Vec::new();
    let mut temporary = None;
    let mut lowest_local: Option<Option<u16>> = None;
    for (pref, name) in &hosts {
        let addrs = match resolver.addresses(name) {
            Ok(a) => a,
            Err(DnsError::NoSuchDomain) => continue,
            Err(DnsError::Temporary(e)) => {
                temporary = Some(format!("DNS lookup of {name}: {e}"));
                continue;
            }
        };
        let is_local = cfg
            .hosts_treat_as_local
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
            || addrs.iter().any(|a| local.contains(a));
        if is_local {
            lowest_local = Some(match lowest_local {
                Some(p) => p.min(*pref),
                None => *pref,
            });
            continue;
        }
        for ip in addrs {
            if ignore.iter().any(|n| n.contains(ip)) {
                continue;
            }
            found.push(Address {
                host: name.clone(),
                ip,
                port: settings.port,
                mx: *pref,
            });
        }
    }
    if let Some(limit) = lowest_local {
        // An implicit MX that is this host has no lower one to go to.
        found.retain(|a| match (a.mx, limit) {
            (Some(p), Some(l)) => p < l,
            _ => false,
        });
        if found.is_empty() {
            return Found::Freeze(POINTS_HERE.to_string());
        }
    }
    hosts.clear();
    if found.is_empty() {
        return match temporary {
            Some(why) => defer(why),
            None => Found::Fail {
                why: format!("all relevant MX records for {domain} point to non-existent hosts"),
                status: Some(Status::new(5, 4, 4)),
            },
        };
    }
    Found::Hosts(found)
}

fn shuffle_within_preference(m: &mut [(Option<u16>, String)]) {
    let mut start = 0;
    while start < m.len() {
        let mut end = start + 1;
        while end < m.len() && m[end].0 == m[start].0 {
            end += 1;
        }
        shuffle(&mut m[start..end]);
        start = end;
    }
}

/// This host's addresses: those it listens on (the wildcard ones stand
/// for every interface) and every interface's.
pub fn local_addresses(cfg: &Config) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = cfg
        .smtp
        .listen
        .iter()
        .chain(&cfg.smtp.tls_listen)
        .chain(&cfg.smtp.lmtp_listen)
        .filter_map(|l| l.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .filter(|ip| !ip.is_unspecified())
        .collect();
    out.extend(crate::sys::interface_addresses());
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Mx;
    use std::collections::HashMap;

    /// Answers from tables, for the decision logic alone (the real DNS
    /// path is tested in tests/dns_routing.rs).
    #[derive(Debug, Default)]
    struct Table {
        mx: HashMap<String, Result<Vec<Mx>, DnsError>>,
        addrs: HashMap<String, Result<Vec<IpAddr>, DnsError>>,
    }

    impl Resolver for Table {
        fn mx(&self, d: &str) -> Result<Vec<Mx>, DnsError> {
            self.mx
                .get(d)
                .cloned()
                .unwrap_or(Err(DnsError::NoSuchDomain))
        }
        fn addresses(&self, n: &str) -> Result<Vec<IpAddr>, DnsError> {
            self.addrs
                .get(n)
                .cloned()
                .unwrap_or(Err(DnsError::NoSuchDomain))
        }
    }

    fn mx(p: u16, e: &str) -> Mx {
        Mx {
            preference: p,
            exchange: e.into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn run(t: &Table, local: &[IpAddr], domain: &str) -> Found {
        let cfg = crate::config::from_str("t", "primary_hostname = \"h.example\"").unwrap();
        let settings = crate::transport::smtp::SmtpOptions::default()
            .settings("t", &cfg)
            .unwrap();
        route(&cfg, t, &[], &settings, local, domain)
    }

    #[test]
    fn outcomes() {
        let mut t = Table::default();
        t.mx.insert("d".into(), Ok(vec![mx(10, "a"), mx(20, "b")]));
        t.addrs.insert("a".into(), Ok(vec![ip("192.0.2.1")]));
        t.addrs
            .insert("b".into(), Err(DnsError::Temporary("x".into())));
        // A host whose lookup is temporary is skipped while another works.
        match run(&t, &[], "d") {
            Found::Hosts(h) => assert_eq!(h.len(), 1),
            o => panic!("{o:?}"),
        }
        // Only temporary failures: deferred, 4.4.3.
        t.addrs
            .insert("a".into(), Err(DnsError::Temporary("x".into())));
        match run(&t, &[], "d") {
            Found::Defer { status, .. } => assert_eq!(status, Some(Status::new(4, 4, 3))),
            o => panic!("{o:?}"),
        }
        // Every host nonexistent: fails.
        t.addrs.clear();
        assert!(matches!(run(&t, &[], "d"), Found::Fail { .. }));
        // Null MX, NXDOMAIN, SERVFAIL.
        t.mx.insert("n".into(), Ok(vec![mx(0, "")]));
        match run(&t, &[], "n") {
            Found::Fail { status, .. } => assert_eq!(status, Some(Status::new(5, 1, 10))),
            o => panic!("{o:?}"),
        }
        match run(&t, &[], "nx") {
            Found::Fail { status, .. } => assert_eq!(status, Some(Status::new(5, 1, 2))),
            o => panic!("{o:?}"),
        }
        t.mx.insert("s".into(), Err(DnsError::Temporary("SERVFAIL".into())));
        assert!(matches!(run(&t, &[], "s"), Found::Defer { .. }));
        // An implicit MX that is this host: frozen.
        t.mx.insert("i".into(), Ok(vec![]));
        t.addrs.insert("i".into(), Ok(vec![ip("192.0.2.9")]));
        assert!(matches!(run(&t, &[ip("192.0.2.9")], "i"), Found::Freeze(_)));
        match run(&t, &[], "i") {
            Found::Hosts(h) => assert_eq!(h[0].mx, None),
            o => panic!("{o:?}"),
        }
    }
}
