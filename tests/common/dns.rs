//! A DNS server for the routing tests: real DNS messages (hickory-proto's
//! encoding) over UDP on 127.0.0.1, answering from a zone the test writes.
//! A name not in the zone is NXDOMAIN; a name marked `servfail` gets
//! SERVFAIL; one marked `silent` gets no answer at all (a timeout).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// What a name has.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub mx: Vec<(u16, String)>,
    pub addrs: Vec<IpAddr>,
    pub servfail: bool,
    pub silent: bool,
}

/// A zone: names (without the trailing dot, lower case) to entries.
#[derive(Debug, Clone, Default)]
pub struct Zone(pub HashMap<String, Entry>);

impl Zone {
    pub fn mx(mut self, name: &str, pref: u16, exchange: &str) -> Zone {
        self.0
            .entry(name.into())
            .or_default()
            .mx
            .push((pref, exchange.into()));
        self
    }

    pub fn a(mut self, name: &str, ip: &str) -> Zone {
        self.0
            .entry(name.into())
            .or_default()
            .addrs
            .push(ip.parse().unwrap());
        self
    }

    pub fn servfail(mut self, name: &str) -> Zone {
        self.0.entry(name.into()).or_default().servfail = true;
        self
    }

    pub fn silent(mut self, name: &str) -> Zone {
        self.0.entry(name.into()).or_default().silent = true;
        self
    }
}

pub struct DnsServer {
    pub addr: SocketAddr,
    /// Queries seen: (name, type).
    pub queries: Arc<Mutex<Vec<(String, String)>>>,
}

impl DnsServer {
    pub fn start(zone: Zone) -> DnsServer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let queries: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let q = queries.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    return;
                };
                let Ok(req) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if let Some(reply) = answer(&zone, &req, &q) {
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        DnsServer { addr, queries }
    }

    /// The `--set` that points Sluice at this server.
    pub fn set(&self) -> String {
        format!("dns.servers=[\"{}\"]", self.addr)
    }
}

fn answer(zone: &Zone, req: &Message, seen: &Mutex<Vec<(String, String)>>) -> Option<Vec<u8>> {
    let query = req.queries.first()?;
    let name = query
        .name
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    seen.lock()
        .unwrap()
        .push((name.clone(), format!("{}", query.query_type)));
    let mut resp = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    resp.add_query(query.clone());
    match zone.0.get(&name) {
        None => resp.metadata.response_code = ResponseCode::NXDomain,
        Some(e) if e.silent => return None,
        Some(e) if e.servfail => resp.metadata.response_code = ResponseCode::ServFail,
        Some(e) => {
            let owner = Name::from_str(&format!("{name}.")).ok()?;
            match query.query_type {
                RecordType::MX => {
                    for (pref, exchange) in &e.mx {
                        let ex = if exchange == "." {
                            Name::root()
                        } else {
                            Name::from_str(&format!("{exchange}.")).ok()?
                        };
                        resp.add_answer(Record::from_rdata(
                            owner.clone(),
                            300,
                            RData::MX(MX::new(*pref, ex)),
                        ));
                    }
                }
                RecordType::A => {
                    for ip in &e.addrs {
                        if let IpAddr::V4(v4) = ip {
                            resp.add_answer(Record::from_rdata(
                                owner.clone(),
                                300,
                                RData::A(A(*v4)),
                            ));
                        }
                    }
                }
                RecordType::AAAA => {
                    for ip in &e.addrs {
                        if let IpAddr::V6(v6) = ip {
                            resp.add_answer(Record::from_rdata(
                                owner.clone(),
                                300,
                                RData::AAAA(AAAA(*v6)),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    resp.to_vec().ok()
}
