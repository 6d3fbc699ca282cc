//! Routers and transports, as in Exim: an ordered list of routers, each
//! with preconditions (domains, local parts, a local user); the first that
//! accepts an address decides, naming a transport (or, for a redirect
//! router, replacing the address with others that are routed in turn).
//!
//! ```toml
//! [[router]]
//! name = "system_aliases"
//! driver = "redirect"
//! domains = ["+local_domains"]
//! file = "aliases"                 # Exim's lsearch layout: "local: a, b"
//!
//! [[router]]
//! name = "virtual_mailbox"
//! driver = "accept"
//! domains = ["+local_domains"]
//! transport = "maildir_delivery"
//!
//! [[transport]]
//! name = "maildir_delivery"
//! driver = "maildir"
//! path = "mail/{domain}/{local}"   # relative to data_dir unless absolute
//! ```
//!
//! Routing is pure apart from reading the aliases file and the password
//! database, so `sluice route ADDR` (`-bt`) shows exactly what delivery does.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use smtp::Status;

use crate::config::Config;

/// Redirections deeper than this are a loop.
const MAX_REDIRECT_DEPTH: usize = 10;

/// A router from the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Router {
    pub name: String,
    pub driver: RouterDriver,
    /// Domains this router handles; `+local_domains` stands for the
    /// configured local domains, `*` for any. Empty: any domain.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Local parts this router handles. Empty: any.
    #[serde(default)]
    pub local_parts: Vec<String>,
    /// Only for users in the system's password database (Exim's
    /// `check_local_user`); `{home}` in paths is theirs.
    #[serde(default)]
    pub check_local_user: bool,
    /// The transport (accept routers).
    #[serde(default)]
    pub transport: Option<String>,
    /// The aliases file (redirect routers), lsearch layout; with
    /// `{home}`, a user's forward file (the whole file is the redirect
    /// data; `check_local_user` finds the user).
    #[serde(default)]
    pub file: Option<String>,
    /// Redirect routers: `:fail:` items may fail an address (Exim's).
    #[serde(default)]
    pub allow_fail: bool,
    /// Redirect routers: `:defer:` items may defer an address (Exim's).
    #[serde(default)]
    pub allow_defer: bool,
    /// Redirect routers: the transport for `|command` items (a `pipe`
    /// transport); without it such an item is a configuration error.
    #[serde(default)]
    pub pipe_transport: Option<String>,
    /// Redirect routers: `|command` items are refused.
    #[serde(default)]
    pub forbid_pipe: bool,
    /// Redirect routers: the transport (an `mbox` one) for `/path/file`
    /// items, and the one (a `maildir` one) for `/path/dir/` items.
    #[serde(default)]
    pub file_transport: Option<String>,
    #[serde(default)]
    pub directory_transport: Option<String>,
    /// Redirect routers: file and directory items are refused.
    #[serde(default)]
    pub forbid_file: bool,
    /// Where failure reports for the addresses this router handles (and
    /// their children) go, instead of the sender (Exim's `errors_to`).
    #[serde(default)]
    pub errors_to: Option<String>,
    /// Manualroute routers: `"DOMAINS HOSTS [OPTIONS]"` entries, Exim's
    /// `route_list` (see [`crate::manualroute`]).
    #[serde(default)]
    pub route_list: Vec<String>,
    /// Remote routers: addresses that, found for a host, are dropped as if
    /// absent (Exim's option). Unset: `0.0.0.0`, `127.0.0.0/8` and `::1`
    /// for dnslookup and ipliteral, so that no DNS answer or address
    /// literal points at a loopback service; nothing for a route list.
    #[serde(default)]
    pub ignore_target_hosts: Option<Vec<crate::network::Network>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouterDriver {
    Accept,
    Redirect,
    /// Hosts from a route list (a smarthost).
    Manualroute,
    /// `user@[192.0.2.1]`.
    Ipliteral,
    /// MX hosts from the DNS.
    Dnslookup,
}

impl RouterDriver {
    /// The name the configuration gives it.
    pub fn name(self) -> &'static str {
        match self {
            RouterDriver::Accept => "accept",
            RouterDriver::Redirect => "redirect",
            RouterDriver::Manualroute => "manualroute",
            RouterDriver::Ipliteral => "ipliteral",
            RouterDriver::Dnslookup => "dnslookup",
        }
    }

    /// Routers whose destinations are remote hosts.
    pub fn is_remote(self) -> bool {
        matches!(
            self,
            RouterDriver::Manualroute | RouterDriver::Ipliteral | RouterDriver::Dnslookup
        )
    }
}

/// Exim's default `ignore_target_hosts`.
pub const DEFAULT_IGNORE_TARGET_HOSTS: &[&str] = &["0.0.0.0", "127.0.0.0/8", "::1"];

/// A transport from the configuration.
#[derive(Debug, Clone)]
pub struct Transport {
    pub name: String,
    pub driver: TransportDriver,
    /// Mailbox path template (maildir, mbox): `{local}`, `{domain}`,
    /// `{home}`.
    pub path: String,
    /// The smtp driver's options ([`crate::transport::smtp`]).
    pub smtp: crate::transport::smtp::SmtpOptions,
    /// Local transports: a `Return-path: <sender>` line on top of each
    /// copy (Exim's option; true in the embedded default, where a
    /// delivered failure report then shows `Return-path: <>`).
    pub return_path_add: bool,
    /// Local transports: an `Envelope-to: <recipient>` line (Exim's).
    pub envelope_to_add: bool,
    /// The pipe driver's options ([`crate::transport::pipe`]).
    pub pipe: crate::transport::pipe::PipeOptions,
}

/// The keys every transport has; the others are its driver's options.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransportBase {
    name: String,
    driver: TransportDriver,
    #[serde(default)]
    path: String,
    #[serde(default)]
    return_path_add: bool,
    #[serde(default)]
    envelope_to_add: bool,
}

impl<'de> Deserialize<'de> for Transport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Transport, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let mut base = toml::Table::new();
        for key in [
            "name",
            "driver",
            "path",
            "return_path_add",
            "envelope_to_add",
        ] {
            if let Some(v) = table.remove(key) {
                base.insert(key.to_string(), v);
            }
        }
        let base: TransportBase = toml::Value::Table(base)
            .try_into()
            .map_err(D::Error::custom)?;
        // The rest: the driver's options, unknown keys refused by name.
        let (smtp, pipe) = if base.driver == TransportDriver::Pipe {
            let pipe = toml::Value::Table(table)
                .try_into()
                .map_err(D::Error::custom)?;
            (Default::default(), pipe)
        } else {
            let smtp = toml::Value::Table(table)
                .try_into()
                .map_err(D::Error::custom)?;
            (smtp, Default::default())
        };
        if base.driver == TransportDriver::Smtp && (base.return_path_add || base.envelope_to_add) {
            return Err(D::Error::custom(
                "return_path_add and envelope_to_add are for the maildir and mbox transports \
                 (a Return-path is added at final delivery, not by the smtp transport)",
            ));
        }
        Ok(Transport {
            name: base.name,
            driver: base.driver,
            path: base.path,
            smtp,
            return_path_add: base.return_path_add,
            envelope_to_add: base.envelope_to_add,
            pipe,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportDriver {
    Maildir,
    Mbox,
    /// SMTP, LMTP or SMTPS to remote hosts.
    Smtp,
    /// A command's standard input ([`crate::transport::pipe`]).
    Pipe,
    /// A redirect's `:blackhole:`: delivered nowhere (not configurable).
    #[serde(skip)]
    Blackhole,
}

/// Where an address goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The address delivered to (after redirection).
    pub address: String,
    /// The address the message was sent to, when redirection changed it.
    pub parent: Option<String>,
    pub router: String,
    pub transport: String,
    pub driver: TransportDriver,
    /// The mailbox path (Maildir directory or mbox file).
    pub path: PathBuf,
    /// The owner of the mailbox (a local user, when running as root).
    pub owner: Option<(u32, u32)>,
    /// For the smtp transport: the hosts' addresses in the order to try.
    pub hosts: Vec<crate::remote::Address>,
    /// The transport's `return_path_add` and `envelope_to_add`.
    pub return_path_add: bool,
    pub envelope_to_add: bool,
    /// For a pipe: the command and who runs it.
    pub pipe: Option<PipeTarget>,
    /// Failure reports go here instead of to the sender (a router's
    /// `errors_to`, inherited by the addresses a redirect makes).
    pub errors_to: Option<String>,
    /// A redirect's child that routing refused (unrouteable, deferred):
    /// its outcome, decided without a transport. Its siblings go on.
    pub refused: Option<Refusal>,
}

/// Why routing refused an address a redirect made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub permanent: bool,
    pub status: Option<Status>,
    pub reason: String,
}

/// A pipe delivery's command and user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeTarget {
    pub command: String,
    pub settings: Arc<crate::transport::pipe::PipeSettings>,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// The outcome of routing one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// One or more destinations (several after a redirect to a list).
    Deliver(Vec<Destination>),
    /// No router accepts the address (`550 5.1.1`), or one found that
    /// it cannot be delivered (a domain that does not exist, a null MX):
    /// `status` says which when it is not the default X.1.1/X.1.2.
    Unrouteable {
        address: String,
        reason: String,
        status: Option<Status>,
    },
    /// A temporary problem (an unreadable aliases file, a DNS failure):
    /// `451`, with `status` when it is not 4.3.0.
    Defer {
        address: String,
        reason: String,
        status: Option<Status>,
    },
    /// Deliverable only by sending to this host itself (the lowest MX is
    /// this host): the address is deferred and the message frozen, as
    /// Exim's `self = freeze` does.
    Freeze { address: String, reason: String },
}

/// A problem in one `[[router]]` or `[[transport]]` entry. The
/// configuration adds the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry}: {message}")]
pub struct RouterConfigError {
    /// `router[2] "local_user"`: the second `[[router]]` table (counted
    /// from 1, as a reader counts them in the file) and its name.
    pub entry: String,
    pub message: String,
}

/// The routers and transports of one configuration.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    routers: Vec<Router>,
    transports: Vec<Transport>,
    /// The smtp transports' engine settings, by transport name.
    remote: std::collections::HashMap<String, Arc<crate::remote::Settings>>,
    /// The pipe transports' checked settings, by transport name.
    pipes: std::collections::HashMap<String, Arc<crate::transport::pipe::PipeSettings>>,
}

/// Routers used when the configuration names none: aliases, then every
/// local part of a local domain into the default Maildir layout.
fn default_routing(cfg: &Config) -> Routing {
    Routing {
        routers: vec![
            Router {
                name: "system_aliases".into(),
                driver: RouterDriver::Redirect,
                domains: vec!["+local_domains".into()],
                local_parts: vec![],
                check_local_user: false,
                transport: None,
                file: Some("aliases".into()),
                // As Exim's default configuration's system_aliases.
                allow_fail: true,
                allow_defer: true,
                pipe_transport: None,
                forbid_pipe: false,
                file_transport: None,
                directory_transport: None,
                forbid_file: false,
                errors_to: None,
                route_list: vec![],
                ignore_target_hosts: None,
            },
            Router {
                name: "virtual_mailbox".into(),
                driver: RouterDriver::Accept,
                domains: vec!["+local_domains".into()],
                local_parts: vec![],
                check_local_user: cfg.mailbox.users == crate::config::UserSource::Passwd,
                transport: Some("maildir_delivery".into()),
                file: None,
                allow_fail: false,
                allow_defer: false,
                pipe_transport: None,
                forbid_pipe: false,
                file_transport: None,
                directory_transport: None,
                forbid_file: false,
                errors_to: None,
                route_list: vec![],
                ignore_target_hosts: None,
            },
            // Every other domain by its MX records. Only what the relay
            // policy lets through gets here: local submissions and
            // clients in relay_from_hosts.
            Router {
                name: "dnslookup".into(),
                driver: RouterDriver::Dnslookup,
                domains: vec!["!+local_domains".into()],
                local_parts: vec![],
                check_local_user: false,
                transport: Some("remote_smtp".into()),
                file: None,
                allow_fail: false,
                allow_defer: false,
                pipe_transport: None,
                forbid_pipe: false,
                file_transport: None,
                directory_transport: None,
                forbid_file: false,
                errors_to: None,
                route_list: vec![],
                ignore_target_hosts: None,
            },
        ],
        transports: vec![
            Transport {
                name: "maildir_delivery".into(),
                driver: TransportDriver::Maildir,
                path: cfg.mailbox.maildir.clone(),
                smtp: Default::default(),
                return_path_add: true,
                envelope_to_add: false,
                pipe: Default::default(),
            },
            Transport {
                name: "remote_smtp".into(),
                driver: TransportDriver::Smtp,
                path: String::new(),
                smtp: Default::default(),
                return_path_add: false,
                envelope_to_add: false,
                pipe: Default::default(),
            },
        ],
        remote: Default::default(),
        pipes: Default::default(),
    }
}

impl Routing {
    /// Reads the `[[router]]` and `[[transport]]` entries (or, when there
    /// are none, the defaults) and checks them against each other: every
    /// option known to the entry's driver, every transport a router names
    /// defined. Called once, when the configuration is loaded.
    pub fn build(
        cfg: &Config,
        routers: Vec<toml::Value>,
        transports: Vec<toml::Value>,
    ) -> Result<Routing, RouterConfigError> {
        let defaults = default_routing(cfg);
        let routers: Vec<Router> = if routers.is_empty() {
            defaults.routers
        } else {
            read_entries("router", routers)?
        };
        let transports: Vec<Transport> = if transports.is_empty() {
            defaults.transports
        } else {
            read_entries("transport", transports)?
        };
        for (i, r) in routers.iter().enumerate() {
            let err = |message: String| RouterConfigError {
                entry: entry_name("router", i, Some(&r.name)),
                message,
            };
            // Options of the other driver are refused rather than ignored:
            // a `file` on an accept router is a mistake, not a no-op.
            if r.driver != RouterDriver::Manualroute && !r.route_list.is_empty() {
                return Err(err(format!(
                    "`route_list` is not an option of the {} driver",
                    r.driver.name()
                )));
            }
            if r.driver == RouterDriver::Manualroute {
                if r.route_list.is_empty() {
                    return Err(err("a manualroute router needs `route_list`".into()));
                }
                for (k, entry) in r.route_list.iter().enumerate() {
                    crate::manualroute::Route::parse(entry)
                        .map_err(|e| err(format!("key `route_list[{k}]`: {e}")))?;
                }
            }
            if r.driver.is_remote() {
                match &r.transport {
                    None => return Err(err("a remote router needs `transport`".into())),
                    Some(t) => match transports.iter().find(|x| &x.name == t) {
                        None => return Err(err(format!("transport {t:?} is not defined"))),
                        Some(x) if x.driver != TransportDriver::Smtp => {
                            return Err(err(format!("transport {t:?} is not an smtp transport")));
                        }
                        Some(_) => {}
                    },
                }
                if r.file.is_some() {
                    return Err(err("`file` is not an option of a remote router".into()));
                }
                continue;
            }
            match (r.driver, &r.transport, &r.file) {
                (RouterDriver::Accept, None, _) => {
                    return Err(err("an accept router needs `transport`".into()));
                }
                (RouterDriver::Accept, Some(_), Some(_)) => {
                    return Err(err("`file` is not an option of the accept driver".into()));
                }
                (RouterDriver::Accept, Some(t), None)
                    if !transports.iter().any(|x| &x.name == t) =>
                {
                    return Err(err(format!("transport {t:?} is not defined")));
                }
                (RouterDriver::Accept, Some(t), None)
                    if transports.iter().any(|x| {
                        &x.name == t
                            && matches!(x.driver, TransportDriver::Maildir | TransportDriver::Mbox)
                            && x.path.is_empty()
                    }) =>
                {
                    return Err(err(format!("transport {t:?} has no `path`")));
                }
                (RouterDriver::Redirect, _, None) => {
                    return Err(err("a redirect router needs `file`".into()));
                }
                (RouterDriver::Redirect, Some(_), Some(_)) => {
                    return Err(err(
                        "`transport` is not an option of the redirect driver".into()
                    ));
                }
                _ => {}
            }
            for (key, name, driver) in [
                ("file_transport", &r.file_transport, TransportDriver::Mbox),
                (
                    "directory_transport",
                    &r.directory_transport,
                    TransportDriver::Maildir,
                ),
            ] {
                let Some(name) = name else { continue };
                match transports.iter().find(|t| &t.name == name) {
                    None => return Err(err(format!("{key} {name:?} is not defined"))),
                    Some(t) if t.driver != driver => {
                        return Err(err(format!(
                            "{key} {name:?} must be a {} transport",
                            if driver == TransportDriver::Mbox {
                                "mbox"
                            } else {
                                "maildir"
                            }
                        )));
                    }
                    Some(_) => {}
                }
            }
            if let Some(p) = &r.pipe_transport {
                let Some(t) = transports.iter().find(|t| &t.name == p) else {
                    return Err(err(format!("pipe_transport {p:?} is not defined")));
                };
                if t.driver != TransportDriver::Pipe {
                    return Err(err(format!("pipe_transport {p:?} is not a pipe transport")));
                }
                // Exim's rule: a pipe from a file nobody owns (the system
                // aliases) runs as the transport's user; never as root.
                if !r.check_local_user && t.pipe.user.is_none() {
                    return Err(err(format!(
                        "pipes from this router would run as nobody in particular: set `user` on transport {p:?}, or `check_local_user`"
                    )));
                }
            }
        }
        let mut remote = std::collections::HashMap::new();
        let mut pipes = std::collections::HashMap::new();
        for (i, t) in transports.iter().enumerate() {
            let err = |message: String| RouterConfigError {
                entry: entry_name("transport", i, Some(&t.name)),
                message,
            };
            match t.driver {
                TransportDriver::Smtp => {
                    if !t.path.is_empty() {
                        return Err(err("`path` is not an option of the smtp driver".into()));
                    }
                    let settings = t.smtp.settings(&t.name, cfg).map_err(err)?;
                    remote.insert(t.name.clone(), Arc::new(settings));
                }
                // Not a driver a configuration can name (`serde(skip)`).
                TransportDriver::Blackhole => {}
                TransportDriver::Pipe => {
                    if !t.path.is_empty() {
                        return Err(err("`path` is not an option of the pipe driver".into()));
                    }
                    let settings = t.pipe.settings().map_err(err)?;
                    pipes.insert(t.name.clone(), Arc::new(settings));
                }
                TransportDriver::Maildir | TransportDriver::Mbox => {
                    if let Some(key) = t.smtp.first_set() {
                        return Err(err(format!("`{key}` is an option of the smtp driver only")));
                    }
                    // No path: only a redirect's file_transport or
                    // directory_transport, where the item gives it (an
                    // accept router naming it is refused above).
                    if t.driver == TransportDriver::Maildir
                        && !t.path.is_empty()
                        && !t.path.contains("{local}")
                        && !t.path.contains("{home}")
                    {
                        return Err(err("`path` must contain {local} or {home}".into()));
                    }
                }
            }
        }
        Ok(Routing {
            routers,
            transports,
            remote,
            pipes,
        })
    }

    /// Gives the destinations router `r` just made (from `start` on) its
    /// `errors_to`, unless a router further down set one.
    fn errors_to(r: &Router, out: &mut [Destination], start: usize) {
        if let Some(e) = &r.errors_to {
            for d in &mut out[start..] {
                d.errors_to.get_or_insert_with(|| e.clone());
            }
        }
    }

    /// The redirect data router `r` has for `local`: its entry in an
    /// aliases file, or the user's whole forward file (`{home}` in `file`),
    /// checked as Exim checks one. `Ok(None)`: none (the router declines).
    fn redirect_data(
        &self,
        cfg: &Config,
        r: &Router,
        local: &str,
        user: Option<&crate::sys::User>,
    ) -> Result<Option<String>, String> {
        let file = r.file.as_deref().unwrap_or_default();
        if !file.contains("{home}") {
            let path = cfg.data_path(file);
            return crate::aliases::lookup(&path, local)
                .map_err(|e| format!("{}: {e}", path.display()));
        }
        let Some(u) = user else {
            return Err(format!(
                "router {:?}: a forward file ({file}) needs check_local_user",
                r.name
            ));
        };
        let path = PathBuf::from(file.replace("{home}", &u.home.to_string_lossy()));
        match crate::redirect::forward_file_problem(&path, u.uid) {
            Ok(None) => {}
            Ok(Some(problem)) => return Err(format!("forward file not used: {problem}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        std::fs::read_to_string(&path)
            .map(|t| {
                // `#` comment lines, as Exim's forward files have.
                Some(
                    t.lines()
                        .filter(|l| !l.trim_start().starts_with('#'))
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The items of redirect `data` for `address`, `:include:` files read
    /// in: addresses and `:blackhole:`, or the verdict a `:fail:`,
    /// `:defer:`, or an item this router cannot deliver comes to.
    fn redirect_items(
        &self,
        cfg: &Config,
        r: &Router,
        data: &str,
        address: &str,
        user: Option<&crate::sys::User>,
    ) -> Result<Vec<crate::redirect::Item>, Routed> {
        use crate::redirect::{Item, parse};
        let defer = |reason: String| Routed::Defer {
            address: address.to_string(),
            reason,
            status: None,
        };
        let mut pending = parse(data).map_err(defer)?;
        pending.reverse();
        let mut out = Vec::new();
        let mut includes = 0;
        while let Some(item) = pending.pop() {
            match item {
                Item::Include(path) => {
                    includes += 1;
                    if includes > MAX_REDIRECT_DEPTH {
                        return Err(defer(format!(
                            "router {:?}: too many :include: files",
                            r.name
                        )));
                    }
                    let path = cfg.data_path(&path.to_string_lossy());
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| defer(format!(":include:{}: {e}", path.display())))?;
                    let mut more = parse(&text).map_err(defer)?;
                    more.reverse();
                    pending.extend(more);
                }
                Item::Fail(text) if r.allow_fail => {
                    return Err(Routed::Unrouteable {
                        address: address.to_string(),
                        reason: if text.is_empty() {
                            "Unrouteable address".into()
                        } else {
                            text
                        },
                        status: Some(Status::new(5, 0, 0)),
                    });
                }
                Item::Defer(text) if r.allow_defer => {
                    return Err(Routed::Defer {
                        address: address.to_string(),
                        reason: text,
                        status: Some(Status::new(4, 0, 0)),
                    });
                }
                item @ (Item::Fail(_) | Item::Defer(_)) => {
                    let option = if matches!(item, Item::Fail(_)) {
                        "allow_fail"
                    } else {
                        "allow_defer"
                    };
                    return Err(defer(format!(
                        "router {:?}: {} is not permitted without {option}",
                        r.name,
                        item.describe()
                    )));
                }
                Item::Pipe(_) if r.forbid_pipe => {
                    return Err(defer(format!(
                        "router {:?}: pipes are forbidden (forbid_pipe)",
                        r.name
                    )));
                }
                Item::Pipe(command) if r.pipe_transport.is_some() => {
                    if self.pipe_target(r, &command, user).is_none() {
                        return Err(defer(format!(
                            "router {:?}: |{command} would run as root or as nobody: refused",
                            r.name
                        )));
                    }
                    out.push(Item::Pipe(command));
                }
                item @ (Item::File(_) | Item::Directory(_)) if r.forbid_file => {
                    return Err(defer(format!(
                        "router {:?}: {} refused (forbid_file)",
                        r.name,
                        item.describe()
                    )));
                }
                item @ (Item::File(_) | Item::Directory(_))
                    if match item {
                        Item::Directory(_) => r.directory_transport.is_some(),
                        _ => r.file_transport.is_some(),
                    } =>
                {
                    let dir = matches!(item, Item::Directory(_));
                    let (Item::File(path) | Item::Directory(path)) = item else {
                        continue;
                    };
                    // Written as the user a forward file belongs to, never
                    // as whoever runs Sluice: the system aliases name no
                    // user, so they cannot write files.
                    if user.is_none() {
                        return Err(defer(format!(
                            "router {:?}: {} needs the user of a forward file (check_local_user)",
                            r.name,
                            path.display()
                        )));
                    }
                    if !path.is_absolute() {
                        return Err(defer(format!("{}: not an absolute path", path.display())));
                    }
                    let plain = PathBuf::from(path.to_string_lossy().trim_end_matches('/'));
                    if std::fs::symlink_metadata(&plain).is_ok_and(|m| m.file_type().is_symlink()) {
                        return Err(defer(format!(
                            "{}: a symbolic link, which is not followed",
                            path.display()
                        )));
                    }
                    out.push(if dir {
                        Item::Directory(plain)
                    } else {
                        Item::File(plain)
                    });
                }
                item @ (Item::Pipe(_) | Item::File(_) | Item::Directory(_)) => {
                    return Err(defer(format!(
                        "router {:?}: configuration error: {} needs a pipe, file or directory transport, which this router does not name",
                        r.name,
                        item.describe()
                    )));
                }
                item => out.push(item),
            }
        }
        Ok(out)
    }

    /// The transport and user for `|command` from router `r`: the
    /// transport's `user`, else the local user the router found; never
    /// root.
    fn pipe_target(
        &self,
        r: &Router,
        command: &str,
        user: Option<&crate::sys::User>,
    ) -> Option<(String, PipeTarget)> {
        let tname = r.pipe_transport.clone()?;
        let settings = self.pipes.get(&tname)?.clone();
        let (uid, gid, home) = match (&settings.user, user) {
            (Some(u), _) => u.clone(),
            (None, Some(u)) => (u.uid, u.gid, u.home.clone()),
            (None, None) => return None,
        };
        if uid == 0 {
            return None;
        }
        Some((
            tname,
            PipeTarget {
                command: command.to_string(),
                settings,
                uid,
                gid,
                home,
            },
        ))
    }

    /// The engine settings of smtp transport `name`.
    pub fn remote_settings(&self, name: &str) -> Option<&Arc<crate::remote::Settings>> {
        self.remote.get(name)
    }

    /// Routes `address` (a full `local@domain`).
    pub fn route(&self, cfg: &Config, address: &str) -> Routed {
        self.walk(cfg, address, &Walk::default())
    }

    /// Routes `address` if that needs no more than local files (aliases,
    /// Maildirs): `None` as soon as it would need the password database or
    /// the DNS, which may wait on the network (the caller then routes it
    /// on a thread that may block). A server answers most RCPTs this way
    /// without a hop to a blocking thread and back.
    pub fn route_quick(&self, cfg: &Config, address: &str) -> Option<Routed> {
        let walk = Walk {
            quick: true,
            ..Walk::default()
        };
        let routed = self.walk(cfg, address, &walk);
        (!walk.needed_slow.get()).then_some(routed)
    }

    fn walk(&self, cfg: &Config, address: &str, walk: &Walk) -> Routed {
        let mut out = Vec::new();
        match self.route_into(cfg, address, None, &mut Vec::new(), &mut out, walk) {
            Ok(()) => Routed::Deliver(out),
            Err(r) => r,
        }
    }

    /// Routes `address` into `out`. `ancestors`: the addresses redirected
    /// to reach it, which a redirect router skips (Exim's loop rule: an
    /// alias `a: a, b` delivers to a's mailbox and to b).
    fn route_into(
        &self,
        cfg: &Config,
        address: &str,
        parent: Option<&str>,
        ancestors: &mut Vec<String>,
        out: &mut Vec<Destination>,
        walk: &Walk,
    ) -> Result<(), Routed> {
        let depth = ancestors.len();
        // A lookup that may wait on the network, in a quick walk: it stops
        // here and the result is thrown away.
        let slow = || {
            walk.needed_slow.set(true);
            Routed::Defer {
                address: address.to_string(),
                reason: "needs a lookup".into(),
                status: None,
            }
        };
        let unrouteable = |reason: &str| Routed::Unrouteable {
            address: address.to_string(),
            reason: reason.to_string(),
            status: None,
        };
        if depth > MAX_REDIRECT_DEPTH {
            return Err(unrouteable("redirection loop"));
        }
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(unrouteable("unqualified address"));
        };
        let domain = domain.to_ascii_lowercase();
        // Exim routes local parts caselessly unless told otherwise.
        let local_lc = local.to_ascii_lowercase();
        if local_lc.is_empty()
            || local_lc.starts_with('.')
            || local_lc.contains('/')
            || local_lc.contains('\0')
        {
            return Err(unrouteable("local part unusable as a mailbox name"));
        }
        for r in &self.routers {
            let start = out.len();
            if !r.domains.is_empty() && !domain_list_matches(cfg, &r.domains, &domain) {
                continue;
            }
            if !r.local_parts.is_empty()
                && !r
                    .local_parts
                    .iter()
                    .any(|l| l.eq_ignore_ascii_case(&local_lc))
            {
                continue;
            }
            if walk.quick && (r.check_local_user || r.driver.is_remote()) {
                return Err(slow());
            }
            let user = if r.check_local_user {
                match crate::sys::user_by_name(&local_lc) {
                    Ok(Some(u)) => Some(u),
                    Ok(None) => continue,
                    Err(e) => {
                        return Err(Routed::Defer {
                            address: address.to_string(),
                            reason: format!("user lookup failed: {e}"),
                            status: None,
                        });
                    }
                }
            } else {
                None
            };
            match r.driver {
                RouterDriver::Manualroute | RouterDriver::Ipliteral | RouterDriver::Dnslookup => {
                    let tname = r.transport.as_deref().unwrap_or_default();
                    let Some(settings) = self.remote.get(tname) else {
                        return Err(Routed::Defer {
                            address: address.to_string(),
                            reason: format!("transport {tname:?} is not defined"),
                            status: None,
                        });
                    };
                    let found = match r.driver {
                        RouterDriver::Manualroute => {
                            crate::manualroute::route(r, settings, &domain)
                        }
                        RouterDriver::Dnslookup => match crate::dns::shared(cfg) {
                            Ok(resolver) => crate::dnslookup::route(
                                cfg,
                                resolver,
                                &crate::manualroute::ignored(r),
                                settings,
                                &crate::dnslookup::local_addresses(cfg),
                                &domain,
                            ),
                            Err(why) => crate::manualroute::Found::Defer {
                                why,
                                status: Some(Status::new(4, 4, 3)),
                            },
                        },
                        _ => crate::manualroute::ip_literal(r, settings, &domain),
                    };
                    let Some(hosts) = hosts_of(found, address)? else {
                        // Not this router's domain: the next one decides.
                        continue;
                    };
                    out.push(remote_destination(local, &domain, parent, r, tname, hosts));
                    Self::errors_to(r, out, start);
                    return Ok(());
                }
                RouterDriver::Redirect => {
                    if ancestors.iter().any(|a| a.eq_ignore_ascii_case(address)) {
                        continue;
                    }
                    let data = match self.redirect_data(cfg, r, &local_lc, user.as_ref()) {
                        Ok(Some(d)) => d,
                        Ok(None) => continue,
                        Err(reason) => {
                            return Err(Routed::Defer {
                                address: address.to_string(),
                                reason,
                                status: None,
                            });
                        }
                    };
                    let items = self.redirect_items(cfg, r, &data, address, user.as_ref())?;
                    ancestors.push(address.to_string());
                    for item in items {
                        match item {
                            crate::redirect::Item::Blackhole => out.push(Destination {
                                address: address.to_string(),
                                parent: parent.map(str::to_string),
                                router: r.name.clone(),
                                transport: String::new(),
                                driver: TransportDriver::Blackhole,
                                path: PathBuf::new(),
                                owner: None,
                                hosts: Vec::new(),
                                return_path_add: false,
                                envelope_to_add: false,
                                pipe: None,
                                errors_to: None,
                                refused: None,
                            }),
                            crate::redirect::Item::Pipe(command) => {
                                // redirect_items checked the transport and
                                // the user.
                                let Some((tname, target)) =
                                    self.pipe_target(r, &command, user.as_ref())
                                else {
                                    continue;
                                };
                                out.push(Destination {
                                    address: address.to_string(),
                                    parent: parent.map(str::to_string),
                                    router: r.name.clone(),
                                    transport: tname,
                                    driver: TransportDriver::Pipe,
                                    path: PathBuf::new(),
                                    owner: None,
                                    hosts: Vec::new(),
                                    return_path_add: false,
                                    envelope_to_add: false,
                                    pipe: Some(target),
                                    errors_to: None,
                                    refused: None,
                                });
                            }
                            item @ (crate::redirect::Item::File(_)
                            | crate::redirect::Item::Directory(_)) => {
                                // redirect_items checked the transport,
                                // the user and the path.
                                let dir = matches!(item, crate::redirect::Item::Directory(_));
                                let (crate::redirect::Item::File(path)
                                | crate::redirect::Item::Directory(path)) = item
                                else {
                                    continue;
                                };
                                let tname = if dir {
                                    r.directory_transport.clone()
                                } else {
                                    r.file_transport.clone()
                                };
                                let Some(t) = tname
                                    .as_ref()
                                    .and_then(|n| self.transports.iter().find(|t| &t.name == n))
                                else {
                                    continue;
                                };
                                out.push(Destination {
                                    address: address.to_string(),
                                    parent: parent.map(str::to_string),
                                    router: r.name.clone(),
                                    transport: t.name.clone(),
                                    driver: t.driver,
                                    path: path.clone(),
                                    owner: user
                                        .as_ref()
                                        .filter(|_| crate::sys::is_root())
                                        .map(|u| (u.uid, u.gid)),
                                    hosts: Vec::new(),
                                    return_path_add: t.return_path_add,
                                    envelope_to_add: t.envelope_to_add,
                                    pipe: None,
                                    errors_to: None,
                                    refused: None,
                                });
                            }
                            crate::redirect::Item::Address(t) => {
                                let t = if t.contains('@') {
                                    t
                                } else {
                                    format!("{t}@{}", cfg.qualify_domain)
                                };
                                let routed = self.route_into(
                                    cfg,
                                    &t,
                                    Some(parent.unwrap_or(address)),
                                    ancestors,
                                    out,
                                    walk,
                                );
                                // One child that cannot be routed does not
                                // stop its siblings (Exim's rule): it is a
                                // destination whose outcome is known.
                                if let Err(e) = routed {
                                    let (permanent, status, reason) = match e {
                                        Routed::Unrouteable { reason, status, .. } => {
                                            (true, status, reason)
                                        }
                                        Routed::Defer { reason, status, .. } => {
                                            (false, status, reason)
                                        }
                                        Routed::Freeze { reason, .. } => (false, None, reason),
                                        Routed::Deliver(_) => (false, None, String::new()),
                                    };
                                    out.push(Destination {
                                        address: t.clone(),
                                        parent: Some(parent.unwrap_or(address).to_string()),
                                        router: r.name.clone(),
                                        transport: String::new(),
                                        driver: TransportDriver::Blackhole,
                                        path: PathBuf::new(),
                                        owner: None,
                                        hosts: Vec::new(),
                                        return_path_add: false,
                                        envelope_to_add: false,
                                        pipe: None,
                                        errors_to: None,
                                        refused: Some(Refusal {
                                            permanent,
                                            status,
                                            reason,
                                        }),
                                    });
                                }
                            }
                            // redirect_items keeps only the two above.
                            _ => {}
                        }
                    }
                    ancestors.pop();
                    // Nothing of it can be delivered: the address itself
                    // is refused (at RCPT time too).
                    if out.len() > start && out[start..].iter().all(|d| d.refused.is_some()) {
                        let first = out[start].refused.clone();
                        out.truncate(start);
                        if let Some(f) = first {
                            return Err(if f.permanent {
                                Routed::Unrouteable {
                                    address: address.to_string(),
                                    reason: f.reason,
                                    status: f.status,
                                }
                            } else {
                                Routed::Defer {
                                    address: address.to_string(),
                                    reason: f.reason,
                                    status: f.status,
                                }
                            });
                        }
                    }
                    Self::errors_to(r, out, start);
                    return Ok(());
                }
                RouterDriver::Accept => {
                    let tname = r.transport.as_deref().unwrap_or_default();
                    let Some(t) = self.transports.iter().find(|t| t.name == tname) else {
                        return Err(Routed::Defer {
                            address: address.to_string(),
                            reason: format!("transport {tname:?} is not defined"),
                            status: None,
                        });
                    };
                    if walk.quick
                        && (t.driver == TransportDriver::Smtp || t.path.contains("{home}"))
                    {
                        return Err(slow());
                    }
                    if t.driver == TransportDriver::Smtp {
                        let Some(settings) = self.remote.get(tname) else {
                            return Err(Routed::Defer {
                                address: address.to_string(),
                                reason: format!("transport {tname:?} is not defined"),
                                status: None,
                            });
                        };
                        let found = crate::manualroute::transport_hosts(r, settings);
                        let Some(hosts) = hosts_of(found, address)? else {
                            continue;
                        };
                        out.push(remote_destination(local, &domain, parent, r, tname, hosts));
                        Self::errors_to(r, out, start);
                        return Ok(());
                    }
                    let user = match user {
                        Some(u) => Some(u),
                        None if t.path.contains("{home}") => {
                            match crate::sys::user_by_name(&local_lc) {
                                Ok(Some(u)) => Some(u),
                                _ => {
                                    return Err(unrouteable(
                                        "no such user (the mailbox path needs a home directory)",
                                    ));
                                }
                            }
                        }
                        None => None,
                    };
                    let home = user
                        .as_ref()
                        .map(|u| u.home.display().to_string())
                        .unwrap_or_default();
                    let path = t
                        .path
                        .replace("{home}", &home)
                        .replace("{local}", &local_lc)
                        .replace("{domain}", &domain);
                    let owner = match &user {
                        Some(u) if crate::sys::is_root() => Some((u.uid, u.gid)),
                        _ => None,
                    };
                    out.push(Destination {
                        address: format!("{local_lc}@{domain}"),
                        parent: parent.map(str::to_string),
                        router: r.name.clone(),
                        transport: t.name.clone(),
                        driver: t.driver,
                        path: cfg.data_path(&path),
                        owner,
                        hosts: Vec::new(),
                        return_path_add: t.return_path_add,
                        envelope_to_add: t.envelope_to_add,
                        pipe: None,
                        errors_to: None,
                        refused: None,
                    });
                    Self::errors_to(r, out, start);
                    return Ok(());
                }
            }
        }
        Err(unrouteable("Unrouteable address"))
    }
}

/// A destination on remote hosts (the smtp transport).
fn remote_destination(
    local: &str,
    domain: &str,
    parent: Option<&str>,
    r: &Router,
    transport: &str,
    hosts: Vec<crate::remote::Address>,
) -> Destination {
    Destination {
        address: format!("{local}@{domain}"),
        parent: parent.map(str::to_string),
        router: r.name.clone(),
        transport: transport.to_string(),
        driver: TransportDriver::Smtp,
        path: PathBuf::new(),
        owner: None,
        hosts,
        return_path_add: false,
        envelope_to_add: false,
        pipe: None,
        errors_to: None,
        refused: None,
    }
}

/// The hosts a remote router found for `address`; `None` when it declines.
fn hosts_of(
    found: crate::manualroute::Found,
    address: &str,
) -> Result<Option<Vec<crate::remote::Address>>, Routed> {
    use crate::manualroute::Found;
    let address = address.to_string();
    match found {
        Found::Hosts(h) => Ok(Some(h)),
        Found::Decline => Ok(None),
        Found::Defer { why, status } => Err(Routed::Defer {
            address,
            reason: why,
            status,
        }),
        Found::Fail { why, status } => Err(Routed::Unrouteable {
            address,
            reason: why,
            status,
        }),
        Found::Freeze(why) => Err(Routed::Freeze {
            address,
            reason: why,
        }),
    }
}

/// `router[2] "local_user"`: the `i`th entry (from 0) counted from 1.
fn entry_name(kind: &str, i: usize, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{kind}[{}] {name:?}", i + 1),
        None => format!("{kind}[{}]", i + 1),
    }
}

/// Reads each entry into its type; an unknown driver or option (serde's
/// `deny_unknown_fields`) is an error that names the entry and the key.
fn read_entries<T: serde::de::DeserializeOwned>(
    kind: &str,
    entries: Vec<toml::Value>,
) -> Result<Vec<T>, RouterConfigError> {
    entries
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let name = v
                .get("name")
                .and_then(toml::Value::as_str)
                .map(str::to_owned);
            v.try_into().map_err(|e: toml::de::Error| {
                let message = e.message().trim_end();
                RouterConfigError {
                    entry: entry_name(kind, i, name.as_deref()),
                    message: match crate::config::error_key(&e) {
                        Some(key) => format!("key `{key}`: {message}"),
                        None => message.to_string(),
                    },
                }
            })
        })
        .collect()
}

/// An Exim domain list: items in order, the first that matches decides;
/// `!item` matches and refuses; a list of only negative items ends in an
/// implicit `*` (Exim's rule: `!+local_domains` means "any other domain").
pub fn domain_list_matches(cfg: &Config, list: &[String], domain: &str) -> bool {
    for item in list {
        let (negated, pattern) = match item.strip_prefix('!') {
            Some(p) => (true, p.trim_start()),
            None => (false, item.as_str()),
        };
        if domain_matches(cfg, pattern, domain) {
            return !negated;
        }
    }
    list.last().is_some_and(|l| l.starts_with('!'))
}

fn domain_matches(cfg: &Config, pattern: &str, domain: &str) -> bool {
    match pattern {
        "+local_domains" => cfg.is_local_domain(domain),
        "*" => true,
        "@" => cfg.primary_hostname.eq_ignore_ascii_case(domain),
        p => match p.strip_prefix('*') {
            // `*.example.com` and `*example.com`: a suffix.
            Some(suffix) => domain
                .to_ascii_lowercase()
                .ends_with(&suffix.to_ascii_lowercase()),
            None => p.eq_ignore_ascii_case(domain),
        },
    }
}

/// How one routing walks the routers.
#[derive(Default)]
struct Walk {
    /// Stop at the first lookup that may wait on the network.
    quick: bool,
    /// A quick walk stopped at such a lookup.
    needed_slow: std::cell::Cell<bool>,
}

/// `-bt` (and `-bv`, with `verify`): prints how each address routes (or
/// only whether it can be delivered); exit 0 all deliverable, 1 some
/// deferred, 2 some undeliverable, as Exim's.
pub fn run_address_test(cfg: &Config, addresses: &[String], verify: bool) -> i32 {
    let routing = &cfg.routing;
    let mut code = 0;
    for a in addresses {
        let a = if a.contains('@') {
            a.clone()
        } else {
            format!("{a}@{}", cfg.primary_hostname)
        };
        match routing.route(cfg, &a) {
            Routed::Deliver(_) if verify => println!("{a} verified"),
            Routed::Deliver(dests) => {
                for d in dests {
                    match &d.parent {
                        Some(p) => println!("{} -> {}", p, d.address),
                        None => println!("{}", d.address),
                    }
                    println!("  router = {}, transport = {}", d.router, d.transport);
                    if d.driver == TransportDriver::Smtp {
                        // Exim's -bt layout: one line per host address.
                        for h in &d.hosts {
                            let mx = h.mx.map(|p| format!(" MX={p}")).unwrap_or_default();
                            println!("  host {} [{}]{mx}", h.host, h.ip);
                        }
                    } else {
                        println!("  mailbox = {}", d.path.display());
                    }
                }
            }
            Routed::Defer {
                address, reason, ..
            }
            | Routed::Freeze { address, reason } => {
                println!("{address} cannot be resolved at this time: {reason}");
                code = code.max(1);
            }
            Routed::Unrouteable {
                address, reason, ..
            } => {
                if verify {
                    println!("{address} failed to verify: {reason}");
                } else {
                    println!("{address} is undeliverable: {reason}");
                }
                code = 2;
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error a configuration with `extra` fails with.
    fn try_cfg(extra: &str) -> String {
        crate::config::from_str("t.toml", extra)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn router_and_transport_errors_name_the_file_and_the_entry() {
        let accept =
            "[[router]]\nname = \"local_user\"\ndriver = \"accept\"\ntransport = \"maildir\"\n";
        let maildir =
            "[[transport]]\nname = \"maildir\"\ndriver = \"maildir\"\npath = \"mail/{local}\"\n";
        let cases = [
            (
                format!(
                    "{accept}{accept}[[router]]\nname = \"second\"\ndriver = \"accept\"\ntransport = \"nope\"\n{maildir}"
                ),
                r#"t.toml: router[3] "second": transport "nope" is not defined"#,
            ),
            (
                format!("[[router]]\nname = \"dns\"\ndriver = \"dnslookup\"\n{maildir}"),
                r#"t.toml: router[1] "dns": a remote router needs `transport`"#,
            ),
            (
                format!(
                    "[[router]]\nname = \"x\"\ndriver = \"accept\"\ntransport = \"maildir\"\nroute_list = [\"* h\"]\n{maildir}"
                ),
                r#"t.toml: router[1] "x": `route_list` is not an option of the accept driver"#,
            ),
            (
                format!(
                    "[[router]]\nname = \"x\"\ndriver = \"accept\"\ntransport = \"maildir\"\nfile = \"aliases\"\n{maildir}"
                ),
                r#"t.toml: router[1] "x": `file` is not an option of the accept driver"#,
            ),
            (
                format!("[[router]]\nname = \"a\"\ndriver = \"redirect\"\n{maildir}"),
                r#"t.toml: router[1] "a": a redirect router needs `file`"#,
            ),
            (
                format!(
                    "{accept}[[transport]]\nname = \"maildir\"\ndriver = \"appendfile\"\npath = \"x\"\n"
                ),
                r#"t.toml: transport[1] "maildir": key `driver`: unknown variant `appendfile`"#,
            ),
            (
                format!(
                    "{accept}[[transport]]\nname = \"maildir\"\ndriver = \"pipe\"\npath = \"x\"\n"
                ),
                r#"t.toml: transport[1] "maildir": `path` is not an option of the pipe driver"#,
            ),
            (
                format!(
                    "{accept}[[transport]]\nname = \"maildir\"\ndriver = \"maildir\"\npath = \"mail/{{local}}\"\nmode = 600\n"
                ),
                r#"t.toml: transport[1] "maildir": unknown field `mode`"#,
            ),
            (
                format!(
                    "{accept}[[transport]]\nname = \"maildir\"\ndriver = \"maildir\"\npath = \"mail/shared\"\n"
                ),
                r#"t.toml: transport[1] "maildir": `path` must contain {local} or {home}"#,
            ),
            (
                "router = 1\n".to_string(),
                "t.toml: key `router`: invalid type: integer",
            ),
        ];
        for (text, want) in cases {
            let e = try_cfg(&text);
            assert!(e.starts_with(want), "{text}\n=> {e}\nwanted {want}");
        }
        assert_eq!(try_cfg(&format!("{accept}{maildir}")), "");
    }

    fn cfg(extra: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "data_dir = {:?}\nprimary_hostname = \"mx.example\"\nlocal_domains = [\"@\", \"example.org\"]\n{extra}",
            dir.path().display().to_string()
        );
        let c = crate::config::from_str("t", &text).unwrap();
        (dir, c)
    }

    /// A quick routing gives the full routing's answer where only local
    /// files are read, and stops where the DNS or the password database
    /// would be asked.
    #[test]
    fn quick_routing_stops_at_lookups_that_may_wait() {
        let (dir, c) = cfg("");
        std::fs::write(
            dir.path().join("aliases"),
            "team: bob, carol@example.org\nout: someone@elsewhere.net\ngone: :fail: left\n",
        )
        .unwrap();
        let r = &c.routing;
        for a in ["bob@example.org", "team@example.org", "gone@example.org"] {
            assert_eq!(
                format!("{:?}", r.route_quick(&c, a)),
                format!("{:?}", Some(r.route(&c, a))),
                "{a}"
            );
        }
        // The DNS, for the address or for an alias's child.
        assert!(r.route_quick(&c, "x@elsewhere.net").is_none());
        assert!(r.route_quick(&c, "out@example.org").is_none());
        // The password database.
        let (_dir, c) = cfg("[mailbox]\nusers = \"passwd\"\n");
        assert!(c.routing.route_quick(&c, "bob@example.org").is_none());
    }

    #[test]
    fn default_routes_local_domains_to_maildirs() {
        let (dir, c) = cfg("");
        let r = &c.routing;
        match r.route(&c, "Bob@Example.ORG") {
            Routed::Deliver(d) => {
                assert_eq!(d.len(), 1);
                assert_eq!(d[0].router, "virtual_mailbox");
                assert_eq!(d[0].path, dir.path().join("mail/example.org/bob"));
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            r.route(&c, "x@elsewhere.net"),
            Routed::Unrouteable { .. }
        ));
        assert!(matches!(
            r.route(&c, "../x@example.org"),
            Routed::Unrouteable { .. }
        ));
    }

    #[test]
    fn aliases_redirect_and_loops_fail() {
        let (dir, c) = cfg("");
        std::fs::write(
            dir.path().join("aliases"),
            "# comment\npostmaster: root\nroot: alice@example.org,\n  bob\nloop: loop\na: b\nb: a, :blackhole:\nf: :fail: gone away\nd: :defer: try tomorrow\np: |/bin/cat\n",
        )
        .unwrap();
        let r = &c.routing;
        match r.route(&c, "postmaster@mx.example") {
            Routed::Deliver(d) => {
                let got: Vec<_> = d
                    .iter()
                    .map(|d| (d.address.as_str(), d.parent.as_deref()))
                    .collect();
                assert_eq!(
                    got,
                    vec![
                        ("alice@example.org", Some("postmaster@mx.example")),
                        ("bob@mx.example", Some("postmaster@mx.example"))
                    ]
                );
            }
            o => panic!("{o:?}"),
        }
        // Loops end as in Exim: an address is not redirected again by the
        // router that redirected one of its ancestors; it goes on to the
        // next router (here, into a mailbox).
        let ends = |a: &str| match r.route(&c, a) {
            Routed::Deliver(d) => d
                .iter()
                .map(|d| format!("{} {:?}", d.address, d.driver))
                .collect::<Vec<_>>(),
            o => panic!("{a}: {o:?}"),
        };
        assert_eq!(ends("loop@example.org"), ["loop@mx.example Maildir"]);
        // a@example.org -> b -> a@mx.example -> b again, an ancestor:
        // b's mailbox; and b's own :blackhole:.
        assert_eq!(
            ends("a@example.org"),
            ["b@mx.example Maildir", "b@mx.example Blackhole"]
        );
        match r.route(&c, "f@example.org") {
            Routed::Unrouteable { reason, status, .. } => {
                assert_eq!(reason, "gone away");
                assert_eq!(status, Some(Status::new(5, 0, 0)));
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            r.route(&c, "d@example.org"),
            Routed::Defer { reason, .. } if reason == "try tomorrow"
        ));
        // A pipe without a pipe transport is a configuration error: the
        // address waits, and the reason says why.
        assert!(matches!(
            r.route(&c, "p@example.org"),
            Routed::Defer { reason, .. } if reason.contains("|/bin/cat") && reason.contains("configuration error")
        ));
    }

    #[test]
    fn configured_routers_and_errors_naming_keys() {
        let (_d, c) = cfg(
            "[[router]]\nname = \"only_bob\"\ndriver = \"accept\"\nlocal_parts = [\"bob\"]\ndomains = [\"+local_domains\"]\ntransport = \"spool_mbox\"\n\
             [[transport]]\nname = \"spool_mbox\"\ndriver = \"mbox\"\npath = \"/var/mail/{local}\"\n",
        );
        let r = &c.routing;
        match r.route(&c, "bob@example.org") {
            Routed::Deliver(d) => {
                assert_eq!(d[0].driver, TransportDriver::Mbox);
                assert_eq!(d[0].path, PathBuf::from("/var/mail/bob"));
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            r.route(&c, "carol@example.org"),
            Routed::Unrouteable { .. }
        ));
        let e = try_cfg("[[router]]\nname = \"x\"\ndriver = \"accept\"\ntransport = \"nope\"\n");
        assert!(
            e.contains(r#"router[1] "x": transport "nope" is not defined"#),
            "{e}"
        );
    }
}
