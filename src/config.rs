//! Configuration: the embedded default, then a TOML file, then command-line
//! overrides, merged key by key, then read once into the typed structs
//! below, checked, and frozen into an `Arc<Config>` that the rest of the
//! program reads. Nothing is parsed later: durations, sizes, lock lists, the
//! retry rules, the relay networks, the routers and the transports all come
//! out of [`load`] in their final types, and every error names the file and
//! the key.
//!
//! Adding a key is one field in the struct of its section (its type, or a
//! `deserialize_with` helper at the bottom of this file, does the parsing)
//! plus its documented default in `default.toml`. That file lies under every
//! configuration, so each key is always present and the structs need no
//! `Default`; `embedded_default_is_valid` fails if the line is forgotten.
//! A rule that spans keys goes in [`Config::check`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use durable::Durability;
use mailstore::lock::{LockKind, LockOptions};
use mailstore::maildir::OverQuota;
use mailstore::mbox::Variant;
use serde::{Deserialize, Deserializer};
use spool::IdFormat;

use crate::network::Network;
use crate::retry::Schedule;
use crate::router::Routing;

/// The embedded default (also the documentation of every key).
pub const DEFAULT_TOML: &str = include_str!("default.toml");
/// Read when neither --config nor $SLUICE_CONFIG names a file.
pub const SYSTEM_CONFIG: &str = "/etc/sluice/sluice.toml";
/// The spool of an installed system, used when it exists.
pub const SYSTEM_DATA_DIR: &str = "/var/spool/sluice";

/// A configuration error, naming the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: key `{key}`: {message}")]
    Key {
        origin: String,
        key: String,
        message: String,
    },
    /// A `[[router]]` or `[[transport]]` entry: `router[2] "local_user"`.
    #[error("{origin}: {entry}: {message}")]
    Entry {
        origin: String,
        entry: String,
        message: String,
    },
}

/// The frozen, checked configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the configuration came from ("embedded default" or a path).
    #[serde(skip)]
    pub origin: String,
    /// The `--set` overrides applied (passed on to processes this one starts).
    #[serde(skip)]
    pub overrides: Vec<String>,
    /// Resolved at load: `$SLUICE_HOME`, the key, /var/spool/sluice, or
    /// ./sluice-data (see `resolve_data_dir`).
    pub data_dir: PathBuf,
    /// True when `data_dir` fell back to ./sluice-data (worth a warning).
    #[serde(skip)]
    pub data_dir_is_fallback: bool,
    /// Empty in the file: the machine's host name, filled in at load.
    pub primary_hostname: String,
    /// The domain added to an unqualified sender or recipient of a local
    /// submission (the submitting user's login@qualify_domain); Exim's
    /// `qualify_domain`. Empty in the file: `primary_hostname`.
    pub qualify_domain: String,
    #[serde(deserialize_with = "parsed")]
    pub durability: Durability,
    /// 0: no limit.
    #[serde(deserialize_with = "size")]
    pub message_size_limit: u64,
    #[serde(deserialize_with = "id_format")]
    pub message_id_format: IdFormat,
    pub split_spool_directory: bool,
    pub queue_only: bool,
    /// Local submitters who may set any envelope sender with `-f` (root
    /// always may), by login and by group name (Exim's options).
    pub trusted_users: Vec<String>,
    pub trusted_groups: Vec<String>,
    /// Senders anyone else may set with `-f` (`*` any, `*@domain`, an
    /// address); `<>` is always allowed. Others' `-f` is ignored.
    pub untrusted_set_sender: Vec<String>,
    /// Keep a `Sender:` header an untrusted submitter wrote.
    pub local_sender_retain: bool,
    /// Add `Sender: login@qualify_domain` when an untrusted submitter's
    /// `From:` is another address.
    pub local_from_check: bool,
    /// Free space and inodes below which `MAIL` is refused (452 4.3.1) and
    /// `submit` exits 75, as Exim's options of the same names; 0: no check.
    #[serde(deserialize_with = "size")]
    pub check_spool_space: u64,
    pub check_spool_inodes: u64,
    #[serde(deserialize_with = "size")]
    pub check_log_space: u64,
    pub check_log_inodes: u64,
    /// A message with at most this many recipients, all of them local
    /// Maildirs, is written into them before its `250` instead of into the
    /// spool (docs/flow.md, "Direct delivery"). 0: never.
    pub direct_max_recipients: usize,
    /// How long the daemon waits on SIGTERM for transactions under way.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// How `sendmail` queues: itself, or through the daemon's socket.
    #[serde(deserialize_with = "parsed")]
    pub submission: Submission,
    /// The daemon's submission socket; none when empty.
    #[serde(deserialize_with = "optional_path")]
    pub submission_socket: Option<PathBuf>,
    /// The group the socket is given (mode 0660); empty: mode 0666.
    pub submission_group: String,
    /// Messages a local user other than root may submit through the socket
    /// in any hour; 0: no limit.
    pub local_rate_limit: u64,
    #[serde(deserialize_with = "parsed")]
    pub over_quota: OverQuota,
    pub local_domains: Vec<String>,
    pub relay_from_hosts: Vec<Network>,
    /// Host names that are this host, for the dnslookup router's MX
    /// check (Exim's option), besides its own addresses.
    pub hosts_treat_as_local: Vec<String>,
    /// Outbound connections open at once, every destination together.
    pub remote_max_connections: usize,
    /// A failure report returns the message up to this size, else only
    /// its header.
    #[serde(deserialize_with = "size")]
    pub bounce_return_size_limit: u64,
    /// Reports per destination address and hour; more are held (0: no
    /// limit).
    pub bounce_rate_limit: u64,
    /// A frozen message older than this is given up (0: never).
    #[serde(deserialize_with = "duration")]
    pub timeout_frozen_after: Duration,
    /// A frozen report older than this is tried once more, then discarded.
    #[serde(deserialize_with = "duration")]
    pub ignore_bounce_errors_after: Duration,
    pub dns: DnsConfig,
    pub mailbox: MailboxConfig,
    pub mbox: MboxConfig,
    pub smtp: SmtpConfig,
    pub queue: QueueConfig,
    pub admin: AdminConfig,
    /// `[[router]]` and `[[transport]]`, built and cross-checked at load
    /// (the defaults when the configuration names no router).
    #[serde(skip)]
    pub routing: Routing,
    /// The `[[router]]` and `[[transport]]` tables as written, read entry
    /// by entry into `routing` at load (and emptied then), so that an error
    /// names the entry (`router[2] "local_user"`), which serde's key path
    /// cannot.
    #[serde(default, rename = "router")]
    router_entries: Vec<toml::Value>,
    #[serde(default, rename = "transport")]
    transport_entries: Vec<toml::Value>,
    /// The merged TOML, for `sluice config`.
    #[serde(skip)]
    pub table: toml::Table,
}

/// `[dns]`: where the dnslookup router asks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Empty: the servers of /etc/resolv.conf.
    pub servers: Vec<std::net::SocketAddr>,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    pub attempts: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    pub maildir: String,
    pub users: UserSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserSource {
    Any,
    Passwd,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MboxConfig {
    #[serde(deserialize_with = "parsed")]
    pub format: Variant,
    /// Lock methods in the order they are taken.
    #[serde(deserialize_with = "locks")]
    pub write_locks: Vec<LockKind>,
    #[serde(deserialize_with = "locks")]
    pub read_locks: Vec<LockKind>,
    #[serde(deserialize_with = "duration")]
    pub lock_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub dotlock_stale: Duration,
    /// Judge a dotlock by the liveness of the pid in it (liblockfile's rule).
    pub dotlock_pid_check: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub listen: Vec<String>,
    pub tls_listen: Vec<String>,
    pub lmtp_listen: Vec<String>,
    #[serde(deserialize_with = "optional_path")]
    pub tls_certificate: Option<PathBuf>,
    #[serde(deserialize_with = "optional_path")]
    pub tls_privatekey: Option<PathBuf>,
    pub max_recipients: usize,
    pub max_connections: usize,
    pub max_connections_per_host: usize,
    pub max_errors: usize,
    pub vrfy: bool,
    /// Clients DSN is offered to: networks, and `+relay_from_hosts`.
    pub dsn_advertise_hosts: Vec<String>,
    /// Route MAIL FROM's address at RCPT time (Exim's `verify = sender`).
    pub verify_sender: bool,
    /// With verify_sender, ask a remote sender's host too (a callout).
    pub sender_callout: bool,
    #[serde(deserialize_with = "duration")]
    pub command_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub data_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub final_dot_timeout: Duration,
    /// The least average rate of message data, in bytes per second over
    /// any minute of a transfer: a client dripping a byte every few
    /// seconds is cut off. 0: no minimum.
    #[serde(deserialize_with = "size")]
    pub data_min_rate: u64,
    /// The span `data_min_rate` is averaged over.
    #[serde(deserialize_with = "duration")]
    pub data_rate_window: Duration,
    /// A message received over SMTP is written out while it arrives once
    /// this much of it is held (docs/flow.md); 0: held whole, always.
    #[serde(deserialize_with = "size")]
    pub stream_from: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(deserialize_with = "retry")]
    pub retry: Schedule,
    pub delivery_workers: usize,
    #[serde(deserialize_with = "duration")]
    pub garbage_after: Duration,
    /// Times since arrival for delay warnings (Exim's `delay_warning`).
    #[serde(deserialize_with = "durations")]
    pub delay_warning: Vec<Duration>,
}

impl QueueConfig {
    /// When delay warning number `sent + 1` is due, in seconds since
    /// arrival: the listed times in turn, then the last interval again and
    /// again (one value repeats itself). None: no warnings.
    pub fn next_warning(&self, sent: u32) -> Option<u64> {
        let t: Vec<u64> = self.delay_warning.iter().map(Duration::as_secs).collect();
        let last = *t.last()?;
        let k = sent as usize;
        if k < t.len() {
            return Some(t[k]);
        }
        let step = match t.len() {
            1 => last,
            n => last - t[n - 2],
        };
        Some(last.saturating_add(step.max(1).saturating_mul((k + 1 - t.len()) as u64)))
    }
}

/// How a local submission (`sendmail`, `sluice submit`) is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    /// Through the daemon when this user cannot write the spool.
    Auto,
    /// Always through the daemon's socket.
    Daemon,
    /// Always by writing the spool (fails without the permission).
    Spool,
}

impl FromStr for Submission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Submission::Auto),
            "daemon" => Ok(Submission::Daemon),
            "spool" => Ok(Submission::Spool),
            _ => Err(format!("{s:?}: expected \"auto\", \"daemon\" or \"spool\"")),
        }
    }
}

/// `[admin]`: the listener for metrics, the status page and the queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Empty: no listener; `unix:PATH` or `host:port`.
    pub listen: String,
    #[serde(deserialize_with = "optional_path")]
    pub token_file: Option<PathBuf>,
    pub socket_group: String,
}

/// Where to look for the configuration and what to override.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `--config FILE`.
    pub file: Option<PathBuf>,
    /// `--set KEY=VALUE` (dotted keys, TOML values; a bare word is a string).
    pub overrides: Vec<String>,
}

impl Sources {
    /// The file to read: --config, else $SLUICE_CONFIG, else the system file
    /// if it exists, else none (the embedded default alone).
    fn file(&self) -> Option<PathBuf> {
        if let Some(f) = &self.file {
            return Some(f.clone());
        }
        if let Some(f) = std::env::var_os("SLUICE_CONFIG").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(f));
        }
        let sys = Path::new(SYSTEM_CONFIG);
        sys.exists().then(|| sys.to_path_buf())
    }
}

/// Loads, merges, checks and freezes the configuration.
pub fn load(sources: &Sources) -> Result<Arc<Config>, ConfigError> {
    let mut table = parse_toml("embedded default", DEFAULT_TOML)?;
    let mut origin = "embedded default".to_string();
    if let Some(path) = sources.file() {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        origin = path.display().to_string();
        let file = parse_toml(&origin, &text)?;
        merge(&mut table, file);
    }
    for ov in &sources.overrides {
        let t = parse_override(ov)?;
        merge(&mut table, t);
    }
    let mut cfg = build(origin, table)?;
    cfg.overrides = sources.overrides.clone();
    Ok(Arc::new(cfg))
}

/// Builds a configuration from TOML text laid over the default (tests
/// and the fuzz target).
#[cfg(any(test, fuzzing))]
pub fn from_str(origin: &str, text: &str) -> Result<Config, ConfigError> {
    let mut table = parse_toml("embedded default", DEFAULT_TOML)?;
    merge(&mut table, parse_toml(origin, text)?);
    build(origin.to_string(), table)
}

fn parse_toml(origin: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })
}

/// `a.b=value` → `{a = {b = value}}`; the value is TOML, or a string when it
/// does not parse as TOML (so `--set durability=strict` works unquoted).
fn parse_override(ov: &str) -> Result<toml::Table, ConfigError> {
    let (key, value) = ov.split_once('=').ok_or_else(|| ConfigError::Syntax {
        origin: format!("--set {ov}"),
        message: "expected KEY=VALUE".into(),
    })?;
    let key = key.trim();
    let value = value.trim();
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ConfigError::Syntax {
            origin: format!("--set {ov}"),
            message: "empty key".into(),
        })?;
    let mut table = toml::Table::new();
    table.insert(last.to_string(), parsed);
    for p in parts.into_iter().rev() {
        let mut outer = toml::Table::new();
        outer.insert(p.to_string(), toml::Value::Table(table));
        table = outer;
    }
    Ok(table)
}

/// Lays `over` onto `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The one place a merged table becomes a [`Config`]: typed reading (every
/// value parsed, unknown keys refused), the values that depend on the
/// machine, the rules across keys, then the routers and transports.
fn build(origin: String, table: toml::Table) -> Result<Config, ConfigError> {
    let mut cfg: Config = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e| read_error(&origin, &e))?;
    cfg.origin = origin;
    cfg.table = table;
    if cfg.primary_hostname.is_empty() {
        cfg.primary_hostname = host_name();
    }
    if cfg.qualify_domain.is_empty() {
        cfg.qualify_domain = cfg.primary_hostname.clone();
    }
    (cfg.data_dir, cfg.data_dir_is_fallback) = resolve_data_dir(&cfg.data_dir);
    cfg.check()?;
    let routers = std::mem::take(&mut cfg.router_entries);
    let transports = std::mem::take(&mut cfg.transport_entries);
    cfg.routing = Routing::build(&cfg, routers, transports).map_err(|e| ConfigError::Entry {
        origin: cfg.origin.clone(),
        entry: e.entry,
        message: e.message,
    })?;
    Ok(cfg)
}

/// The key a serde error from reading a TOML value is about. toml tracks
/// the path of keys to the value that failed but only prints it, on a last
/// line "in `mbox.write_locks`"; `error_key_is_read_from_toml` notices if
/// that wording changes (the error then names no key, but still says what
/// is wrong).
pub fn error_key(e: &toml::de::Error) -> Option<String> {
    let text = e.to_string();
    let key = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))?;
    Some(key.to_string())
}

/// A serde error from reading the merged table, naming the key.
fn read_error(origin: &str, e: &toml::de::Error) -> ConfigError {
    match error_key(e) {
        Some(key) => ConfigError::Key {
            origin: origin.to_string(),
            key,
            message: e.message().trim_end().to_string(),
        },
        None => ConfigError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        },
    }
}

impl Config {
    /// The rules that span keys or that a field's type does not carry.
    fn check(&self) -> Result<(), ConfigError> {
        let key = |k: &str, message: &str| {
            Err(ConfigError::Key {
                origin: self.origin.clone(),
                key: k.to_string(),
                message: message.to_string(),
            })
        };
        if !self.mailbox.maildir.contains("{local}") && !self.mailbox.maildir.contains("{home}") {
            return key(
                "mailbox.maildir",
                "must contain {local} or {home}, or every user would share one mailbox",
            );
        }
        if self.smtp.tls_certificate.is_some() != self.smtp.tls_privatekey.is_some() {
            return key(
                "smtp.tls_privatekey",
                "tls_certificate and tls_privatekey go together: set both or neither",
            );
        }
        if self.smtp.max_recipients < 100 {
            return key(
                "smtp.max_recipients",
                "RFC 5321 §4.5.3.1.8 requires accepting at least 100 recipients",
            );
        }
        if !self.admin.listen.is_empty()
            && !self.admin.listen.starts_with("unix:")
            && self.admin.token_file.is_none()
        {
            return key(
                "admin.token_file",
                "a TCP admin listener needs a token: any local user can connect to loopback",
            );
        }
        if self.queue.delivery_workers == 0 {
            return key("queue.delivery_workers", "must be at least 1");
        }
        for h in &self.smtp.dsn_advertise_hosts {
            if h != "+relay_from_hosts" && h.parse::<Network>().is_err() {
                return key(
                    "smtp.dsn_advertise_hosts",
                    &format!("{h:?} is neither a network (192.0.2.0/24) nor \"+relay_from_hosts\""),
                );
            }
        }
        Ok(())
    }

    /// Whether DSN is offered to a client at `ip` (`None`: a local
    /// submission, which always has it).
    pub fn dsn_offered(&self, ip: Option<std::net::IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        self.smtp.dsn_advertise_hosts.iter().any(|h| {
            if h == "+relay_from_hosts" {
                self.relay_allowed(ip)
            } else {
                h.parse::<Network>().is_ok_and(|n| n.contains(ip))
            }
        })
    }

    /// Whether `ip` may relay to any domain (`relay_from_hosts`).
    pub fn relay_allowed(&self, ip: std::net::IpAddr) -> bool {
        self.relay_from_hosts.iter().any(|n| n.contains(ip))
    }

    /// Whether `domain` is delivered here ("@" in local_domains is the
    /// primary host name). Case-insensitive.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.local_domains.iter().any(|d| {
            let d = if d == "@" {
                self.primary_hostname.as_str()
            } else {
                d.as_str()
            };
            d.eq_ignore_ascii_case(domain)
        })
    }

    /// The spool directory.
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    /// The log directory.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }

    /// A path from the configuration: absolute as is, else under data_dir.
    pub fn data_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.data_dir.join(p)
        }
    }
}

impl MboxConfig {
    /// The lock options of a writer (delivery) or a reader (conversion).
    pub fn lock_options(&self, writer: bool) -> LockOptions {
        LockOptions {
            methods: if writer {
                self.write_locks.clone()
            } else {
                self.read_locks.clone()
            },
            timeout: self.lock_timeout,
            stale_after: self.dotlock_stale,
            pid_check: self.dotlock_pid_check,
        }
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# origin: {}", self.origin)?;
        writeln!(f, "# data_dir resolves to {}", self.data_dir.display())?;
        write!(
            f,
            "{}",
            toml::to_string(&self.table).map_err(|_| fmt::Error)?
        )
    }
}

/// `$SLUICE_HOME`, else `data_dir`, else /var/spool/sluice where it
/// exists, else ./sluice-data (the bool says the last one was taken).
fn resolve_data_dir(configured: &Path) -> (PathBuf, bool) {
    if let Some(h) = std::env::var_os("SLUICE_HOME").filter(|v| !v.is_empty()) {
        return (absolute(PathBuf::from(h)), false);
    }
    if !configured.as_os_str().is_empty() {
        return (absolute(configured.to_path_buf()), false);
    }
    if Path::new(SYSTEM_DATA_DIR).is_dir() {
        return (PathBuf::from(SYSTEM_DATA_DIR), false);
    }
    (absolute(PathBuf::from("sluice-data")), true)
}

fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

/// The machine's host name (uname).
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// `"30s"`, `"5m"`, `"2h"`, `"1d"`, `"1h30m"`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => return Err(format!("{s:?}: unknown unit {c:?} (use s, m, h, d, w)")),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?}: expected a number before {c:?}"))?;
        total += n * unit;
        num.clear();
    }
    if !num.is_empty() || s.is_empty() {
        return Err(format!(
            "{s:?}: expected a duration like \"30s\", \"5m\" or \"2h\""
        ));
    }
    Ok(Duration::from_secs(total))
}

/// `"50M"`, `"512K"`, `"1G"`, or a bare number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1024),
        Some('M' | 'm') => (&s[..s.len() - 1], 1024 * 1024),
        Some('G' | 'g') => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("{s:?}: expected a size like \"50M\", \"512K\" or a number of bytes"))
}

// How the fields above read their values: `#[serde(deserialize_with)]`
// helpers, each turning the TOML value into the field's type with the
// message the parser gives (serde adds the key).

/// A string through the type's `FromStr` (durability, over_quota, mbox
/// format...).
fn parsed<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// A list of durations, increasing.
fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    let mut out: Vec<Duration> = Vec::with_capacity(list.len());
    for s in &list {
        let t = parse_duration(s).map_err(serde::de::Error::custom)?;
        if t.is_zero() || out.last().is_some_and(|p| *p >= t) {
            return Err(serde::de::Error::custom(format!(
                "{s:?}: the times must be more than 0 and increase"
            )));
        }
        out.push(t);
    }
    Ok(out)
}

/// A number of octets, or a string such as "50M".
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::Integer(n) => u64::try_from(n)
            .map_err(|_| serde::de::Error::custom(format!("{n}: a size cannot be negative"))),
        toml::Value::String(s) => parse_size(&s).map_err(serde::de::Error::custom),
        v => Err(serde::de::Error::custom(format!(
            "expected a size like \"50M\", got {v}"
        ))),
    }
}

fn id_format<'de, D: Deserializer<'de>>(d: D) -> Result<IdFormat, D::Error> {
    let text = String::deserialize(d)?;
    match text.as_str() {
        "long" => Ok(IdFormat::Long),
        "classic" => Ok(IdFormat::Classic),
        _ => Err(serde::de::Error::custom(format!(
            "{text:?}: expected \"long\" or \"classic\""
        ))),
    }
}

/// Lock methods in order, each at most once.
fn locks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LockKind>, D::Error> {
    let mut out = Vec::new();
    for name in Vec::<String>::deserialize(d)? {
        let lock: LockKind = name.parse().map_err(serde::de::Error::custom)?;
        if out.contains(&lock) {
            return Err(serde::de::Error::custom(format!(
                "{name:?} is listed twice"
            )));
        }
        out.push(lock);
    }
    Ok(out)
}

/// A path, or the empty string for none.
fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let text = String::deserialize(d)?;
    Ok((!text.is_empty()).then(|| PathBuf::from(text)))
}

fn retry<'de, D: Deserializer<'de>>(d: D) -> Result<Schedule, D::Error> {
    Schedule::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// The first line of a secret file named by setting `key` (the admin
/// token, SMTP credentials): refused unless only its owner can read it.
pub fn read_private_first_line(key: &str, path: &Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let err = |e: std::io::Error| format!("{key} {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(err)?;
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{key} {}: mode {:o} lets others read it; chmod 600",
            path.display(),
            meta.mode() & 0o777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(err)?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_warnings_repeat_the_last_interval() {
        let q = |list: &[u64]| QueueConfig {
            retry: crate::retry::Schedule::parse("F,1h,1m").unwrap(),
            delivery_workers: 1,
            garbage_after: Duration::from_secs(1),
            delay_warning: list.iter().map(|s| Duration::from_secs(*s)).collect(),
        };
        let one = q(&[86400]);
        assert_eq!(
            (0..3).map(|k| one.next_warning(k)).collect::<Vec<_>>(),
            [Some(86400), Some(2 * 86400), Some(3 * 86400)]
        );
        let three = q(&[4, 8, 24]);
        assert_eq!(
            (0..5).map(|k| three.next_warning(k)).collect::<Vec<_>>(),
            [Some(4), Some(8), Some(24), Some(40), Some(56)]
        );
        assert_eq!(q(&[]).next_warning(0), None);
        assert_eq!(q(&[2, 99 * 86400]).next_warning(1), Some(99 * 86400));
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = from_str("test", "").unwrap();
        assert_eq!(c.durability, Durability::Batch);
        assert_eq!(c.message_size_limit, 50 * 1024 * 1024);
        assert_eq!(c.mbox.write_locks, [LockKind::Dotlock, LockKind::Fcntl]);
        assert_eq!(c.smtp.listen, vec!["127.0.0.1:2525".to_string()]);
        assert!(c.is_local_domain("LOCALHOST"));
        assert!(c.is_local_domain(&c.primary_hostname.clone()));
        assert!(!c.is_local_domain("example.org"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("durability = \"sometimes\"", "durability"),
            ("over_quota = \"bounce\"", "over_quota"),
            (
                "[mbox]\nwrite_locks = [\"fcntl\", \"fcntl\"]",
                "mbox.write_locks",
            ),
            ("[mbox]\nlock_timeout = \"ten\"", "mbox.lock_timeout"),
            ("message_size_limit = \"lots\"", "message_size_limit"),
            ("[smtp]\nmax_recipients = 10", "smtp.max_recipients"),
            ("[mailbox]\nmaildir = \"mail/shared\"", "mailbox.maildir"),
            ("relay_from_hosts = [\"10.0.0/8\"]", "relay_from_hosts"),
            ("relay_from_hosts = [\"10.0.0.0/33\"]", "relay_from_hosts"),
            ("message_id_format = \"short\"", "message_id_format"),
            ("[queue]\nretry = \"F,2h\"", "queue.retry"),
            ("[queue]\ndelivery_workers = 0", "queue.delivery_workers"),
            ("[admin]\nlisten = \"127.0.0.1:9025\"", "admin.token_file"),
            ("[mailbox]\nusers = \"ldap\"", "mailbox.users"),
            ("[smtp]\ntls_certificate = \"c.pem\"", "smtp.tls_privatekey"),
            ("[smtp]\ncommand_timeout = \"soon\"", "smtp.command_timeout"),
            ("message_size_limit = -1", "message_size_limit"),
        ];
        for (text, k) in cases {
            let e = from_str("f.toml", text).unwrap_err().to_string();
            assert!(e.contains(&format!("`{k}`")), "{text}: {e}");
            assert!(e.starts_with("f.toml"), "{e}");
        }
        let e = from_str("f.toml", "durabilty = \"strict\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("durabilty"), "{e}");
        let e = from_str("f.toml", "[mbox\n").unwrap_err().to_string();
        assert!(e.contains("f.toml"), "{e}");
    }

    #[test]
    fn overrides_win_and_merge_per_key() {
        let mut t = parse_toml("d", DEFAULT_TOML).unwrap();
        merge(
            &mut t,
            parse_toml("f", "[mbox]\nformat = \"mboxo\"").unwrap(),
        );
        merge(&mut t, parse_override("mbox.lock_timeout=2s").unwrap());
        merge(&mut t, parse_override("durability=strict").unwrap());
        let c = build("x".into(), t).unwrap();
        assert_eq!(c.mbox.format, Variant::Mboxo);
        assert_eq!(c.mbox.lock_timeout, Duration::from_secs(2));
        assert_eq!(c.mbox.read_locks, [LockKind::Fcntl]);
        assert_eq!(c.durability, Durability::Strict);
    }

    /// Moved from the SMTP policy with the parsing of the networks.
    #[test]
    fn relay_hosts() {
        let c = from_str(
            "f.toml",
            "relay_from_hosts = [\"127.0.0.1\", \"10.0.0.0/8\", \"2001:db8::/32\"]",
        )
        .unwrap();
        let cases = [
            ("127.0.0.1", true),
            ("127.0.0.2", false),
            ("10.200.3.4", true),
            ("11.0.0.1", false),
            ("2001:db8:1::5", true),
            ("2001:db9::1", false),
            ("::ffff:10.1.1.1", true),
        ];
        for (ip, want) in cases {
            assert_eq!(c.relay_allowed(ip.parse().unwrap()), want, "{ip}");
        }
        let none = from_str("f.toml", "relay_from_hosts = []").unwrap();
        assert!(!none.relay_allowed("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn values_are_parsed_at_load() {
        let c = from_str(
            "f.toml",
            "message_id_format = \"classic\"\n[queue]\nretry = \"F,1h,10m\"",
        )
        .unwrap();
        assert_eq!(c.message_id_format, IdFormat::Classic);
        assert_eq!(c.queue.retry, Schedule::parse("F,1h,10m").unwrap());
        let d = from_str("f.toml", "").unwrap();
        assert_eq!(d.message_id_format, IdFormat::Long);
        assert_eq!(d.smtp.tls_certificate, None);
    }

    #[test]
    fn error_key_is_read_from_toml() {
        let e = from_str("f.toml", "[mbox]\nread_locks = [\"fcntl\", \"fcntl\"]").unwrap_err();
        match e {
            ConfigError::Key { key, message, .. } => {
                assert_eq!(key, "mbox.read_locks");
                assert_eq!(message, "\"fcntl\" is listed twice");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(parse_size("50M"), Ok(52428800));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("M").is_err());
    }
}
