//! Mail statistics from Exim-format main logs: what `sluice stats` counts.
//!
//! The figures are eximstats's, with its definitions (docs/stats.md says
//! where they differ and why). A [`Tally`] reads lines one at a time with
//! the log parser and keeps two kinds of state:
//!
//! - counters and tables by key (hosts, domains, addresses, transports,
//!   hours, days, rejection reasons, error texts): they only grow with
//!   the number of distinct keys;
//! - per message, only while the message is open (from its first line to
//!   `Completed`): its arrival's size and time and a few flags. A message
//!   is closed ("settled") at `Completed`, or at the end of the input.
//!
//! Memory is therefore bounded by distinct keys plus open messages, never
//! by the length of the log.
//!
//! The input is counted in pieces on several threads. Counters add up in
//! any order; messages do not, as a message can span pieces: a delivery
//! whose message arrived in an earlier piece is kept with the message
//! ("pending") until the arrival's size is known, and a `Completed` is
//! settled once everything before it is. So each piece hands back the
//! messages it left open ([`Tally::end_piece`]), and those are joined in
//! input order ([`Tally::merge_open`]); the counters of the workers'
//! tallies are added at the end ([`Tally::merge`]).
//!
//! The tables that grow with the log's keys (hosts, addresses, local
//! users, relays: [`Keyed`]) are not kept by every worker: each owns the
//! keys whose hash falls to it and sends the others' on (`shard.rs`), so
//! a key is held once however many threads count.

mod hash;
pub mod html;
mod names;
pub mod read;
pub mod reject;
mod relays;
pub mod report;
mod shard;
pub mod svg;
mod table;
pub mod text;
pub mod zone;

use std::borrow::Cow;
use std::collections::BTreeMap;

use spool::MessageId;

use crate::log::parse;
use crate::log::{Address, Host, Kind};
use hash::Map;
use relays::Relayed;
use report::{
    Day, League, QUEUE_LIMITS, Relays, Report, Tallied, Top, Transport, all_counts, top_counts,
};
use shard::{Router, Update, Which};
use table::Table;
use zone::{Clock, Zone};

/// What to count.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Lines without an offset are in this zone; the report is shown in it.
    pub zone: Zone,
    /// Only lines at or after this instant (Unix seconds).
    pub from: Option<i64>,
    /// Only lines before this instant.
    pub to: Option<i64>,
}

/// The four league tables of one direction (the domains' is made from
/// the addresses' at the end).
#[derive(Debug, Default, Clone)]
struct Leagues {
    hosts: Table,
    addresses: Table,
    local: Table,
}

impl Leagues {
    fn add(&mut self, other: &Leagues) {
        self.hosts.add_table(&other.hosts);
        self.addresses.add_table(&other.addresses);
        self.local.add_table(&other.local);
    }

    /// The league tables of the shards `parts`, and how many hosts sent
    /// or took a message.
    fn report(parts: &[&Leagues], with_addresses: bool) -> ([League; 4], u64) {
        let league = |pick: fn(&Leagues) -> &Table| {
            League::of(parts.iter().flat_map(|l| pick(l).iter()), with_addresses)
        };
        // Each address has one domain: counting domains apart would cost
        // a lookup per line.
        let mut domains = Table::default();
        for (address, v) in parts.iter().flat_map(|l| l.addresses.iter()) {
            let domain = if address == "<>" {
                "<>".to_string()
            } else {
                domain_of(address)
            };
            domains.add(&domain, v);
        }
        let hosts = parts
            .iter()
            .flat_map(|l| l.hosts.iter())
            .filter(|(_, v)| v.messages > 0)
            .count() as u64;
        (
            [
                league(|l| &l.hosts),
                League::of(domains.iter(), with_addresses),
                league(|l| &l.addresses),
                league(|l| &l.local),
            ],
            hosts,
        )
    }
}

/// The tables that grow with the log's keys: one shard of them (see
/// `shard.rs`), or all of them in an unshared tally.
#[derive(Debug, Default, Clone)]
struct Keyed {
    sending: Leagues,
    destinations: Leagues,
    relayed: Relayed,
}

impl Keyed {
    fn table(&mut self, which: Which) -> &mut Table {
        match which {
            Which::SendingHosts => &mut self.sending.hosts,
            Which::SendingAddresses => &mut self.sending.addresses,
            Which::SendingLocal => &mut self.sending.local,
            Which::DestinationHosts => &mut self.destinations.hosts,
            Which::DestinationAddresses => &mut self.destinations.addresses,
            Which::DestinationLocal => &mut self.destinations.local,
        }
    }

    /// Every keyed table but the relays, with its name.
    fn tables(&self) -> [(Which, &Table); 6] {
        let (s, d) = (&self.sending, &self.destinations);
        [
            (Which::SendingHosts, &s.hosts),
            (Which::SendingAddresses, &s.addresses),
            (Which::SendingLocal, &s.local),
            (Which::DestinationHosts, &d.hosts),
            (Which::DestinationAddresses, &d.addresses),
            (Which::DestinationLocal, &d.local),
        ]
    }

    fn is_empty(&self) -> bool {
        self.tables().iter().all(|(_, t)| t.is_empty()) && self.relayed.is_empty()
    }

    /// Adds the same shard of another tally (moved when this one is
    /// empty, as a worker's shard is in the final tally).
    fn add(&mut self, other: Keyed) {
        if self.is_empty() {
            *self = other;
            return;
        }
        self.sending.add(&other.sending);
        self.destinations.add(&other.destinations);
        self.relayed.absorb(other.relayed);
    }
}

/// Figures for `messages`, `addresses` and `bytes`.
fn figures(messages: u64, addresses: u64, bytes: u64) -> Tallied {
    Tallied {
        messages,
        addresses,
        bytes,
    }
}

/// A message between its first line and its settlement.
#[derive(Debug, Default, Clone)]
struct Open {
    arrival: Option<Arrived>,
    /// At least one delivery to a remote host.
    remote: bool,
    deferred: bool,
    failed: bool,
    /// The instant of its `Completed`.
    completed: Option<i64>,
    /// Deliveries seen before the arrival: their volume waits for its size.
    pending: Vec<Pending>,
}

#[derive(Debug, Clone)]
struct Arrived {
    size: u64,
    at: i64,
    /// `host[ip] sender`, lowercased, for an arrival from a remote host:
    /// the first half of a relay.
    relay_from: Option<Box<str>>,
}

/// A delivery's keys, to add the message's size to when it is known.
#[derive(Debug, Clone)]
struct Pending {
    transport: Box<str>,
    host: Box<str>,
    address: Box<str>,
    local: Option<Box<str>>,
    /// `host[ip] recipient` when the delivery can be a relay.
    relay_to: Option<Box<str>>,
}

/// Counts for one piece of a log (or all of it).
#[derive(Debug, Clone)]
pub struct Tally {
    opts: Options,
    clock: Clock,
    /// Nothing comes before this piece: a `Completed` whose arrival it has
    /// not seen can be settled at once.
    first: bool,
    lines: u64,
    /// First and last instant counted.
    span: Option<(i64, i64)>,
    received_messages: u64,
    received_bytes: u64,
    delivered_messages: u64,
    delivered_addresses: u64,
    delivered_bytes: u64,
    delayed_messages: u64,
    deferred_addresses: u64,
    failed_messages: u64,
    failed_addresses: u64,
    transports: Table,
    /// Received, delivered, deferred, failed per hour of the day.
    per_hour: [[u64; 24]; 4],
    per_day: BTreeMap<i64, [u64; 4]>,
    queue_all: [u64; QUEUE_LIMITS.len() + 1],
    queue_remote: [u64; QUEUE_LIMITS.len() + 1],
    /// Shard `i` at index `i` (one, in a worker's tally and an unshared
    /// one).
    keyed: Vec<Keyed>,
    /// A worker's links to the others while it counts.
    router: Option<Router>,
    rejection_reasons: Map<Box<str>, u64>,
    rejected_hosts: Map<Box<str>, u64>,
    temporary_reasons: Map<Box<str>, u64>,
    temporarily_rejected_hosts: Map<Box<str>, u64>,
    errors: Map<Box<str>, u64>,
    open: Map<MessageId, Open>,
}

const RECEIVED: usize = 0;
const DELIVERED: usize = 1;
const DEFERRED: usize = 2;
const FAILED: usize = 3;

fn count(map: &mut Map<Box<str>, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.into(), 1);
        }
    }
}

fn add_counts<K: std::hash::Hash + Eq>(into: &mut Map<K, u64>, from: Map<K, u64>) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

/// eximstats's key for a host: the text after `H=` up to the first space:
/// the name, else `(helo)`, else `[ip]` with its port.
fn host_key(h: &Host) -> Cow<'_, str> {
    if let Some(n) = &h.name {
        Cow::Borrowed(n)
    } else if let Some(helo) = &h.helo {
        Cow::Owned(format!("({helo})"))
    } else {
        Cow::Owned(match h.port {
            Some(p) => format!("[{}]:{p}", h.ip),
            None => format!("[{}]", h.ip),
        })
    }
}

/// `host[ip] address`, lowercased: one end of a relay.
fn relay_end(key: &str, h: &Host, address: &str) -> Box<str> {
    let mut s = String::with_capacity(key.len() + h.ip.len() + address.len() + 4);
    s.push_str(key);
    if h.ip.is_empty() {
        s.push_str("local");
    } else {
        s.push('[');
        s.push_str(&h.ip);
        s.push(']');
    }
    s.push(' ');
    s.push_str(address);
    s.make_ascii_lowercase();
    s.into_boxed_str()
}

/// The domain of an address, lowercased; `<>` for the null sender, empty
/// for an address without one.
fn domain_of(address: &str) -> String {
    if address.is_empty() {
        return "<>".to_string();
    }
    match address.rsplit_once('@') {
        Some((_, d)) => d.to_ascii_lowercase(),
        None => String::new(),
    }
}

/// The key of a local delivery: the logged local part, with the
/// recipient for a file or pipe (`/var/mail/x <x@example>`).
fn local_key(a: &Address) -> String {
    match &a.original {
        Some(o) if a.address.starts_with(['/', '|']) => format!("{} <{o}>", a.address),
        _ => a.address.clone(),
    }
}

impl Tally {
    /// A tally for the first piece of the input (or all of it).
    pub fn new(opts: Options) -> Tally {
        Tally {
            opts,
            clock: Clock::new(opts.zone),
            first: true,
            lines: 0,
            span: None,
            received_messages: 0,
            received_bytes: 0,
            delivered_messages: 0,
            delivered_addresses: 0,
            delivered_bytes: 0,
            delayed_messages: 0,
            deferred_addresses: 0,
            failed_messages: 0,
            failed_addresses: 0,
            transports: Table::default(),
            per_hour: [[0; 24]; 4],
            per_day: BTreeMap::new(),
            queue_all: [0; QUEUE_LIMITS.len() + 1],
            queue_remote: [0; QUEUE_LIMITS.len() + 1],
            keyed: vec![Keyed::default()],
            router: None,
            rejection_reasons: Map::default(),
            rejected_hosts: Map::default(),
            temporary_reasons: Map::default(),
            temporarily_rejected_hosts: Map::default(),
            errors: Map::default(),
            open: Map::default(),
        }
    }

    /// A worker's tally, for later pieces, keeping the keys `router`
    /// gives it and sending the others on.
    fn routed(opts: Options, router: Router) -> Tally {
        Tally {
            first: false,
            router: Some(router),
            ..Tally::new(opts)
        }
    }

    /// Adds `f` to `key` of a keyed table, here or at its owner.
    fn tally(&mut self, which: Which, key: &str, f: Tallied) {
        let h = names::hash(key);
        if let Some(r) = &mut self.router
            && let Some(owner) = r.elsewhere(h)
        {
            r.tally(owner, which, h, key, f);
            return;
        }
        self.keyed_for(h).table(which).add_hashed(h, key, f);
    }

    /// Counts `n` messages relayed from `from` to `to`, here or at the
    /// owner of `to`.
    fn relay(&mut self, from: &str, to: &str, n: u64) {
        let h = names::hash(to);
        if let Some(r) = &mut self.router
            && let Some(owner) = r.elsewhere(h)
        {
            r.relay(owner, from, to, n);
            return;
        }
        self.keyed_for(h).relayed.add(from, to, n);
    }

    /// Where a key of hash `h` is counted here: this worker's shard while
    /// it counts, else the shard that owns it (once the workers' shards
    /// are put together, what is settled after must go to them).
    fn keyed_for(&mut self, h: u64) -> &mut Keyed {
        let i = match &self.router {
            Some(_) => 0,
            None => shard::owner(h, self.keyed.len()),
        };
        &mut self.keyed[i]
    }

    /// Adds records other workers sent.
    fn apply(&mut self, records: &[u8]) {
        let mine = &mut self.keyed[0];
        for u in shard::updates(records) {
            match u {
                Update::Tally {
                    which,
                    hash,
                    key,
                    figures,
                } => mine.table(which).add_hashed(hash, key, figures),
                Update::Relay { from, to, messages } => mine.relayed.add(from, to, messages),
            }
        }
    }

    /// Adds what other workers have sent so far (between pieces).
    fn read_mail(&mut self) {
        while let Some(records) = self.router.as_ref().and_then(Router::mail) {
            self.apply(&records);
        }
    }

    /// After the last piece: sends what is left for the others, adds
    /// what they send until all have done the same, and puts this
    /// worker's shard at its place among all of them.
    fn close_routes(&mut self) {
        let Some(mut router) = self.router.take() else {
            return;
        };
        router.close();
        while let Some(records) = router.wait() {
            self.apply(&records);
        }
        let mine = std::mem::take(&mut self.keyed[0]);
        self.keyed = vec![Keyed::default(); router.shards()];
        self.keyed[router.me()] = mine;
    }

    /// Adds another tally's keyed tables: shard to shard when both are
    /// cut the same way, else key by key to the shard that owns it.
    fn add_keyed(&mut self, mut other: Vec<Keyed>) {
        if self.keyed.len() < other.len() {
            std::mem::swap(&mut self.keyed, &mut other);
        }
        if self.keyed.len() == other.len() {
            for (mine, theirs) in self.keyed.iter_mut().zip(other) {
                mine.add(theirs);
            }
            return;
        }
        // Once the workers have closed there is no router: `tally` and
        // `relay` add each key to the shard that owns it.
        debug_assert!(self.router.is_none(), "merged while counting");
        for theirs in other {
            for (which, table) in theirs.tables() {
                for (key, f) in table.iter() {
                    self.tally(which, key, f);
                }
            }
            for (from, to, n) in theirs.relayed.iter() {
                self.relay(&from.to_string(), &to.to_string(), n);
            }
        }
    }

    /// Counts one line (with or without its newline). Lines that are not
    /// log lines (rejectlog's header blocks, garbage) count only as read.
    pub fn line(&mut self, text: &str) {
        self.lines += 1;
        let Some((stamp, _pid, rest)) = parse::split(text) else {
            return;
        };
        let Some(civil) = zone::civil_seconds(&stamp.time) else {
            return;
        };
        let written = stamp.zone.as_deref().and_then(zone::offset);
        let at = self.clock.instant(civil, written);
        if self.opts.from.is_some_and(|f| at < f) || self.opts.to.is_some_and(|t| at >= t) {
            return;
        }
        // A line in the report's own zone is shown as written.
        let shown = match written {
            None => civil,
            Some(_) => self.clock.civil(at),
        };
        let hour = (shown.rem_euclid(86400) / 3600) as usize;
        let day = shown.div_euclid(86400);
        let event = parse::event(rest);
        // The text after the message ID: what errors and rejections are
        // named by.
        let after_id = match &event.id {
            Some(id) => rest.get(id.as_str().len() + 1..).unwrap_or(""),
            None => rest,
        };
        let counted = match (event.kind, event.id) {
            (Kind::Arrival(a), Some(id)) if !a.fake_reject => {
                self.arrival(id, &a, at, hour, day);
                true
            }
            (Kind::Delivered(d), Some(id)) => {
                use crate::log::event::DeliveryFlag;
                match d.flag {
                    DeliveryFlag::First => {
                        self.delivery(id, &d, hour, day);
                        if d.transport.is_none() {
                            // eximstats counts a delivery without a
                            // transport (:blackhole:) as a rejection too.
                            self.rejection(after_id);
                        }
                        true
                    }
                    DeliveryFlag::More => {
                        self.more(&d);
                        true
                    }
                    // eximstats does not count cutthrough (`>>`) or
                    // suppressed (`*>`) deliveries.
                    DeliveryFlag::Cutthrough | DeliveryFlag::Suppressed => false,
                }
            }
            (Kind::Deferred(_), id) => {
                self.deferred_addresses += 1;
                self.per_hour[DEFERRED][hour] += 1;
                self.per_day.entry(day).or_default()[DEFERRED] += 1;
                if let Some(id) = id {
                    self.open.entry(id).or_default().deferred = true;
                }
                true
            }
            (Kind::Failed(_), id) => {
                self.failed_addresses += 1;
                self.per_hour[FAILED][hour] += 1;
                self.per_day.entry(day).or_default()[FAILED] += 1;
                let text = after_id.strip_prefix("** ").unwrap_or(after_id);
                count(&mut self.errors, text);
                if let Some(id) = id {
                    self.open.entry(id).or_default().failed = true;
                }
                true
            }
            (Kind::Completed(_), Some(id)) => {
                self.completed(id, at);
                true
            }
            (Kind::Rejected(_), _) => {
                self.rejection(after_id);
                true
            }
            (Kind::Arrival(_) | Kind::Delivered(_) | Kind::Completed(_), None) => false,
            (Kind::Arrival(_), Some(_)) => {
                // A fake reject (`(=`) is no arrival; eximstats counts it
                // as a rejection when it says why.
                self.reject_if_refusal(after_id)
            }
            (Kind::Frozen { .. } | Kind::Operator { .. } | Kind::Other(_), _) => {
                self.reject_if_refusal(after_id)
            }
        };
        if counted {
            self.span = Some(match self.span {
                None => (at, at),
                Some((a, b)) => (a.min(at), b.max(at)),
            });
        }
    }

    /// A line eximstats reads as no message event counts as a rejection
    /// when it mentions one (`SMTP call ... dropped`, `connection refused`).
    fn reject_if_refusal(&mut self, text: &str) -> bool {
        if reject::is_rejection(text) {
            self.rejection(text);
            true
        } else {
            false
        }
    }

    fn rejection(&mut self, text: &str) {
        let r = reject::classify(text);
        if r.temporary {
            count(&mut self.temporary_reasons, &r.reason);
            count(&mut self.temporarily_rejected_hosts, &r.ip);
        } else {
            count(&mut self.rejection_reasons, &r.reason);
            count(&mut self.rejected_hosts, &r.ip);
        }
    }

    fn arrival(&mut self, id: MessageId, a: &crate::log::Arrival, at: i64, hour: usize, day: i64) {
        let size = a.size;
        self.received_messages += 1;
        self.received_bytes += size;
        self.per_hour[RECEIVED][hour] += 1;
        self.per_day.entry(day).or_default()[RECEIVED] += 1;
        let host = a.host.as_ref().map(host_key);
        let f = figures(1, 1, size);
        self.tally(Which::SendingHosts, host.as_deref().unwrap_or("local"), f);
        let sender = if a.sender.is_empty() { "<>" } else { &a.sender };
        self.tally(Which::SendingAddresses, sender, f);
        if a.host.is_none()
            && let Some(user) = &a.ident
        {
            self.tally(Which::SendingLocal, user, f);
        }
        let relay_from = match (&host, &a.host) {
            (Some(k), Some(h)) => Some(relay_end(k, h, sender)),
            _ => None,
        };
        let open = self.open.entry(id).or_default();
        open.arrival = Some(Arrived {
            size,
            at,
            relay_from,
        });
        if !open.pending.is_empty() {
            let mut o = std::mem::take(open);
            self.resolve(&mut o);
            if let Some(slot) = self.open.get_mut(&id) {
                *slot = o;
            }
        }
    }

    fn delivery(&mut self, id: MessageId, d: &crate::log::Delivered, hour: usize, day: i64) {
        self.delivered_messages += 1;
        self.delivered_addresses += 1;
        self.per_hour[DELIVERED][hour] += 1;
        self.per_day.entry(day).or_default()[DELIVERED] += 1;
        let transport = d.transport.as_deref().unwrap_or(":blackhole:");
        let host = d.host.as_ref().map(host_key);
        let recipient = d.address.original.as_ref().unwrap_or(&d.address.address);
        let local = d.host.is_none().then(|| local_key(&d.address));
        // A relay: delivered to a remote host under the address it came
        // for (no redirection in between). Its key is made only when the
        // message came from a remote host, or is not known yet.
        let relay_to = || match (&host, &d.host) {
            (Some(k), Some(h))
                if d.address
                    .original
                    .as_ref()
                    .is_none_or(|o| o.eq_ignore_ascii_case(&d.address.address)) =>
            {
                Some(relay_end(k, h, &d.address.address))
            }
            _ => None,
        };
        let host_name = host.as_deref().unwrap_or("local");
        let open = self.open.entry(id).or_default();
        open.remote |= d.host.is_some();
        // The size when the arrival is known, and then the relay's ends.
        let known = open.arrival.as_ref().map(|a| {
            let relay = match &a.relay_from {
                Some(from) => relay_to().map(|to| (from.clone(), to)),
                None => None,
            };
            (a.size, relay)
        });
        let size = match &known {
            Some((size, _)) => *size,
            None => {
                // The counts now, the volume when the size is known.
                open.pending.push(Pending {
                    transport: transport.into(),
                    host: host_name.into(),
                    address: recipient.as_str().into(),
                    local: local.clone().map(String::into_boxed_str),
                    relay_to: relay_to(),
                });
                0
            }
        };
        self.delivered_bytes += size;
        let f = figures(1, 1, size);
        self.transports.add(transport, f);
        self.tally(Which::DestinationHosts, host_name, f);
        self.tally(Which::DestinationAddresses, recipient, f);
        if let Some(l) = &local {
            self.tally(Which::DestinationLocal, l, f);
        }
        if let Some((_, Some((from, to)))) = known {
            self.relay(&from, &to, 1);
        }
    }

    /// `->`: another address of the same delivery; no volume.
    fn more(&mut self, d: &crate::log::Delivered) {
        self.delivered_addresses += 1;
        let host = d.host.as_ref().map(host_key);
        let recipient = d.address.original.as_ref().unwrap_or(&d.address.address);
        let f = figures(0, 1, 0);
        self.tally(
            Which::DestinationHosts,
            host.as_deref().unwrap_or("local"),
            f,
        );
        self.tally(Which::DestinationAddresses, recipient, f);
        if d.host.is_none() {
            self.tally(Which::DestinationLocal, &local_key(&d.address), f);
        }
    }

    fn completed(&mut self, id: MessageId, at: i64) {
        let mut o = self.open.remove(&id).unwrap_or_default();
        o.completed = Some(at);
        // Settled now when its arrival is known, or known to be missing
        // (nothing comes before this piece); else the merge settles it.
        if o.arrival.is_some() || self.first {
            self.settle(id, o);
        } else {
            self.open.insert(id, o);
        }
    }

    /// Adds the volume of deliveries that waited for the arrival.
    fn resolve(&mut self, o: &mut Open) {
        let (size, from) = match &o.arrival {
            Some(a) => (a.size, a.relay_from.clone()),
            None => (0, None),
        };
        let f = figures(0, 0, size);
        for p in o.pending.drain(..) {
            self.delivered_bytes += size;
            self.transports.add(&p.transport, f);
            self.tally(Which::DestinationHosts, &p.host, f);
            self.tally(Which::DestinationAddresses, &p.address, f);
            if let Some(l) = &p.local {
                self.tally(Which::DestinationLocal, l, f);
            }
            if let (Some(from), Some(to)) = (&from, p.relay_to) {
                self.relay(from, &to, 1);
            }
        }
    }

    /// Closes a message: its volume, whether it was delayed or failed,
    /// its time on the queue.
    fn settle(&mut self, id: MessageId, mut o: Open) {
        self.resolve(&mut o);
        if o.arrival.is_some() {
            self.delayed_messages += u64::from(o.deferred);
            self.failed_messages += u64::from(o.failed);
        }
        if let Some(done) = o.completed {
            // Without its arrival line, a message's ID says when it
            // arrived (eximstats does the same).
            let start = o.arrival.as_ref().map_or(id.time() as i64, |a| a.at);
            let queued = done - start;
            let i = QUEUE_LIMITS
                .iter()
                .position(|&l| queued < l as i64)
                .unwrap_or(QUEUE_LIMITS.len());
            self.queue_all[i] += 1;
            if o.remote {
                self.queue_remote[i] += 1;
            }
        }
    }

    /// Adds `later`, the tally of the piece of input that follows this
    /// one's.
    pub fn merge(&mut self, later: Tally) {
        let Tally {
            lines,
            span,
            received_messages,
            received_bytes,
            delivered_messages,
            delivered_addresses,
            delivered_bytes,
            delayed_messages,
            deferred_addresses,
            failed_messages,
            failed_addresses,
            transports,
            per_hour,
            per_day,
            queue_all,
            queue_remote,
            keyed,
            rejection_reasons,
            rejected_hosts,
            temporary_reasons,
            temporarily_rejected_hosts,
            errors,
            open,
            ..
        } = later;
        self.lines += lines;
        self.span = match (self.span, span) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (x, y) => x.or(y),
        };
        self.received_messages += received_messages;
        self.received_bytes += received_bytes;
        self.delivered_messages += delivered_messages;
        self.delivered_addresses += delivered_addresses;
        self.delivered_bytes += delivered_bytes;
        self.delayed_messages += delayed_messages;
        self.deferred_addresses += deferred_addresses;
        self.failed_messages += failed_messages;
        self.failed_addresses += failed_addresses;
        self.transports.add_table(&transports);
        for (mine, theirs) in self.per_hour.iter_mut().zip(per_hour) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        for (d, v) in per_day {
            let e = self.per_day.entry(d).or_default();
            for (a, b) in e.iter_mut().zip(v) {
                *a += b;
            }
        }
        for (a, b) in self.queue_all.iter_mut().zip(queue_all) {
            *a += b;
        }
        for (a, b) in self.queue_remote.iter_mut().zip(queue_remote) {
            *a += b;
        }
        self.add_keyed(keyed);
        add_counts(&mut self.rejection_reasons, rejection_reasons);
        add_counts(&mut self.rejected_hosts, rejected_hosts);
        add_counts(&mut self.temporary_reasons, temporary_reasons);
        add_counts(
            &mut self.temporarily_rejected_hosts,
            temporarily_rejected_hosts,
        );
        add_counts(&mut self.errors, errors);
        self.merge_open(Piece(open));
    }

    /// Starts the next piece of the input; `first` when nothing comes
    /// before it. A worker counts many pieces into one tally: the counts
    /// add up in any order, only the messages left open need the order.
    pub fn begin_piece(&mut self, first: bool) {
        self.first = first;
    }

    /// Ends a piece: the messages it left open, for [`Tally::merge_open`]
    /// in input order.
    pub fn end_piece(&mut self) -> Piece {
        Piece(std::mem::take(&mut self.open))
    }

    /// Adds the messages a later piece left open: joins them to what this
    /// tally knows of them, and settles those now complete.
    pub fn merge_open(&mut self, piece: Piece) {
        for (id, theirs) in piece.0 {
            let mut o = match self.open.remove(&id) {
                Some(mine) => join(mine, theirs),
                None => theirs,
            };
            if o.completed.is_some() && (o.arrival.is_some() || self.first) {
                self.settle(id, o);
            } else {
                if o.arrival.is_some() {
                    self.resolve(&mut o);
                }
                self.open.insert(id, o);
            }
        }
    }

    /// The report, after settling the messages still open.
    pub fn finish(&mut self) -> Report {
        let open: Vec<(MessageId, Open)> = self.open.drain().collect();
        for (id, o) in open {
            self.settle(id, o);
        }
        let zone = self.opts.zone;
        let (from, to) = match self.span {
            Some((a, b)) => (
                Some(zone::civil_text(self.clock.civil(a))),
                Some(zone::civil_text(self.clock.civil(b))),
            ),
            None => (None, None),
        };
        let mut transports: Vec<Transport> = self
            .transports
            .iter()
            .map(|(k, t)| Transport {
                name: k.to_string(),
                messages: t.messages,
                bytes: t.bytes,
            })
            .collect();
        transports.sort_by(|a, b| a.name.cmp(&b.name));
        // The two directions' tables on two threads, the relays (a key
        // per relayed address) with the first.
        let relayed = self
            .keyed
            .iter_mut()
            .map(|k| std::mem::take(&mut k.relayed))
            .collect();
        let sending: Vec<&Leagues> = self.keyed.iter().map(|k| &k.sending).collect();
        let destinations: Vec<&Leagues> = self.keyed.iter().map(|k| &k.destinations).collect();
        let (sent, taken) = std::thread::scope(|scope| {
            let sent =
                scope.spawn(move || (Leagues::report(&sending, false), Relays::new(relayed)));
            let taken = Leagues::report(&destinations, true);
            (sent.join(), taken)
        });
        let (sent, relayed) = match sent {
            Ok((s, r)) => (s, r),
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let (
            [
                sending_hosts,
                sending_domains,
                sending_addresses,
                local_senders,
            ],
            sending_host_count,
        ) = sent;
        let (
            [
                host_destinations,
                domain_destinations,
                address_destinations,
                local_destinations,
            ],
            destination_host_count,
        ) = taken;
        let counts = |m: &Map<Box<str>, u64>| top_counts(m.iter().map(|(k, v)| (&**k, *v)));
        let sum = |m: &Map<Box<str>, u64>| m.values().sum::<u64>();
        Report {
            generator: "sluice stats".to_string(),
            zone: zone.name(self.span.map_or(0, |s| s.1)),
            from,
            to,
            lines: self.lines,
            received: report::Received {
                messages: self.received_messages,
                bytes: self.received_bytes,
                hosts: sending_host_count,
            },
            delivered: report::Delivered {
                messages: self.delivered_messages,
                bytes: self.delivered_bytes,
                addresses: self.delivered_addresses,
                hosts: destination_host_count,
            },
            delayed: report::Delayed {
                messages: self.delayed_messages,
                addresses: self.deferred_addresses,
            },
            failed: report::Failed {
                messages: self.failed_messages,
                addresses: self.failed_addresses,
            },
            rejected: report::Rejects {
                messages: sum(&self.rejected_hosts),
                hosts: self.rejected_hosts.len() as u64,
            },
            temporarily_rejected: report::Rejects {
                messages: sum(&self.temporarily_rejected_hosts),
                hosts: self.temporarily_rejected_hosts.len() as u64,
            },
            transports,
            per_hour: report::PerHour {
                received: self.per_hour[RECEIVED].to_vec(),
                delivered: self.per_hour[DELIVERED].to_vec(),
                deferred: self.per_hour[DEFERRED].to_vec(),
                failed: self.per_hour[FAILED].to_vec(),
            },
            per_day: self
                .per_day
                .iter()
                .map(|(d, v)| Day {
                    date: zone::day_text(*d),
                    received: v[RECEIVED],
                    delivered: v[DELIVERED],
                    deferred: v[DEFERRED],
                    failed: v[FAILED],
                })
                .collect(),
            queue_time: report::QueueTimes {
                limits: QUEUE_LIMITS.to_vec(),
                all: self.queue_all.to_vec(),
                remote: self.queue_remote.to_vec(),
            },
            relayed,
            top: Top {
                sending_hosts,
                sending_domains,
                sending_addresses,
                local_senders,
                host_destinations,
                domain_destinations,
                address_destinations,
                local_destinations,
            },
            rejection_reasons: counts(&self.rejection_reasons),
            temporary_rejection_reasons: counts(&self.temporary_reasons),
            rejected_hosts: counts(&self.rejected_hosts),
            temporarily_rejected_hosts: counts(&self.temporarily_rejected_hosts),
            errors: all_counts(std::mem::take(&mut self.errors).into_iter()),
        }
    }
}

/// The messages one piece of the input left open.
#[derive(Debug)]
pub struct Piece(Map<MessageId, Open>);

/// One message's state from two consecutive pieces.
fn join(earlier: Open, later: Open) -> Open {
    let mut pending = earlier.pending;
    pending.extend(later.pending);
    Open {
        arrival: earlier.arrival.or(later.arrival),
        remote: earlier.remote || later.remote,
        deferred: earlier.deferred || later.deferred,
        failed: earlier.failed || later.failed,
        completed: later.completed.or(earlier.completed),
        pending,
    }
}

/// Counts a whole log text.
#[cfg(test)]
pub fn tally_text(opts: Options, text: &str) -> Report {
    let mut t = Tally::new(opts);
    for l in text.lines() {
        t.line(l);
    }
    t.finish()
}

#[cfg(test)]
mod tests;
