//! Configuration: the embedded default, then a TOML file, then command-line
//! overrides, merged key by key, checked once (errors name the key), then
//! frozen into an `Arc<Config>` that the rest of the program reads.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use durable::Durability;
use mailstore::lock::{LockKind, LockOptions};
use mailstore::maildir::OverQuota;
use mailstore::mbox::Variant;
use serde::Deserialize;

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
}

/// The frozen, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration came from ("embedded default" or a path).
    pub origin: String,
    /// The `--set` overrides applied (passed on to processes this one starts).
    pub overrides: Vec<String>,
    pub data_dir: PathBuf,
    /// True when `data_dir` fell back to ./sluice-data (worth a warning).
    pub data_dir_is_fallback: bool,
    pub primary_hostname: String,
    /// The domain added to an unqualified sender or recipient of a local
    /// submission (the submitting user's login@qualify_domain); Exim's
    /// `qualify_domain`, defaulting to `primary_hostname`.
    pub qualify_domain: String,
    pub durability: Durability,
    /// 0: no limit.
    pub message_size_limit: u64,
    pub message_id_format: String,
    pub split_spool_directory: bool,
    pub queue_only: bool,
    pub over_quota: OverQuota,
    pub local_domains: Vec<String>,
    pub relay_from_hosts: Vec<String>,
    pub mailbox: MailboxConfig,
    pub mbox: MboxConfig,
    pub smtp: SmtpConfig,
    pub queue: QueueConfig,
    /// The merged TOML, for `sluice config` and parts that read their own
    /// sections (routers, transports).
    pub table: toml::Table,
}

#[derive(Debug, Clone)]
pub struct MailboxConfig {
    pub maildir: String,
    pub users: UserSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSource {
    Any,
    Passwd,
}

#[derive(Debug, Clone)]
pub struct MboxConfig {
    pub format: Variant,
    /// Lock methods in the order they are taken.
    pub write_locks: Vec<LockKind>,
    pub read_locks: Vec<LockKind>,
    pub lock_timeout: Duration,
    pub dotlock_stale: Duration,
    /// Judge a dotlock by the liveness of the pid in it (liblockfile's rule).
    pub dotlock_pid_check: bool,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub listen: Vec<String>,
    pub tls_listen: Vec<String>,
    pub lmtp_listen: Vec<String>,
    pub tls_certificate: Option<PathBuf>,
    pub tls_privatekey: Option<PathBuf>,
    pub max_recipients: usize,
    pub max_connections: usize,
    pub max_connections_per_host: usize,
    pub max_errors: usize,
    pub vrfy: bool,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub final_dot_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub retry: String,
    pub delivery_workers: usize,
    pub garbage_after: Duration,
}

// The raw shapes serde reads; `deny_unknown_fields` makes a misspelt key an
// error that names it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    data_dir: String,
    primary_hostname: String,
    qualify_domain: String,
    durability: String,
    message_size_limit: toml::Value,
    message_id_format: String,
    split_spool_directory: bool,
    queue_only: bool,
    over_quota: String,
    local_domains: Vec<String>,
    relay_from_hosts: Vec<String>,
    mailbox: RawMailbox,
    mbox: RawMbox,
    smtp: RawSmtp,
    queue: RawQueue,
    #[serde(default)]
    router: Vec<toml::Value>,
    #[serde(default)]
    transport: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMailbox {
    maildir: String,
    users: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMbox {
    format: String,
    write_locks: Vec<String>,
    read_locks: Vec<String>,
    lock_timeout: String,
    dotlock_stale: String,
    dotlock_pid_check: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    listen: Vec<String>,
    tls_listen: Vec<String>,
    lmtp_listen: Vec<String>,
    tls_certificate: String,
    tls_privatekey: String,
    max_recipients: usize,
    max_connections: usize,
    max_connections_per_host: usize,
    max_errors: usize,
    vrfy: bool,
    command_timeout: String,
    data_timeout: String,
    final_dot_timeout: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    retry: String,
    delivery_workers: usize,
    garbage_after: String,
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

/// Builds a configuration from TOML text laid over the default (tests).
#[cfg(test)]
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

fn build(origin: String, table: toml::Table) -> Result<Config, ConfigError> {
    let raw: Raw = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            origin: origin.clone(),
            message: e.to_string().trim_end().to_string(),
        })?;
    let key = |k: &str, message: String| ConfigError::Key {
        origin: origin.clone(),
        key: k.to_string(),
        message,
    };
    let _ = (&raw.router, &raw.transport); // read by the router module

    let primary_hostname = if raw.primary_hostname.is_empty() {
        host_name()
    } else {
        raw.primary_hostname.clone()
    };
    let (data_dir, data_dir_is_fallback) = resolve_data_dir(&raw.data_dir);
    let durability: Durability = raw.durability.parse().map_err(|m| key("durability", m))?;
    let message_size_limit = match &raw.message_size_limit {
        toml::Value::Integer(n) if *n >= 0 => *n as u64,
        toml::Value::String(s) => parse_size(s).map_err(|m| key("message_size_limit", m))?,
        v => {
            return Err(key(
                "message_size_limit",
                format!("expected a size like \"50M\", got {v}"),
            ));
        }
    };
    if !matches!(raw.message_id_format.as_str(), "long" | "classic") {
        return Err(key(
            "message_id_format",
            format!(
                "{:?}: expected \"long\" or \"classic\"",
                raw.message_id_format
            ),
        ));
    }
    let over_quota: OverQuota = raw.over_quota.parse().map_err(|m| key("over_quota", m))?;
    let users = match raw.mailbox.users.as_str() {
        "any" => UserSource::Any,
        "passwd" => UserSource::Passwd,
        o => {
            return Err(key(
                "mailbox.users",
                format!("{o:?}: expected \"any\" or \"passwd\""),
            ));
        }
    };
    if !raw.mailbox.maildir.contains("{local}") && !raw.mailbox.maildir.contains("{home}") {
        return Err(key(
            "mailbox.maildir",
            "must contain {local} or {home}, or every user would share one mailbox".into(),
        ));
    }
    let format: Variant = raw.mbox.format.parse().map_err(|m| key("mbox.format", m))?;
    let locks = |k: &str, v: &[String]| -> Result<Vec<LockKind>, ConfigError> {
        let mut out = Vec::new();
        for s in v {
            let l: LockKind = s.parse().map_err(|m: String| key(k, m))?;
            if out.contains(&l) {
                return Err(key(k, format!("{s:?} is listed twice")));
            }
            out.push(l);
        }
        Ok(out)
    };
    let dur = |k: &str, v: &str| parse_duration(v).map_err(|m| key(k, m));
    let path_or_none = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
    if raw.smtp.tls_certificate.is_empty() != raw.smtp.tls_privatekey.is_empty() {
        return Err(key(
            "smtp.tls_privatekey",
            "tls_certificate and tls_privatekey go together: set both or neither".into(),
        ));
    }
    if raw.smtp.max_recipients < 100 {
        return Err(key(
            "smtp.max_recipients",
            "RFC 5321 §4.5.3.1.8 requires accepting at least 100 recipients".into(),
        ));
    }
    crate::retry::Schedule::parse(&raw.queue.retry).map_err(|m| key("queue.retry", m))?;
    if raw.queue.delivery_workers == 0 {
        return Err(key("queue.delivery_workers", "must be at least 1".into()));
    }
    Ok(Config {
        data_dir,
        data_dir_is_fallback,
        qualify_domain: if raw.qualify_domain.is_empty() {
            primary_hostname.clone()
        } else {
            raw.qualify_domain.clone()
        },
        primary_hostname,
        durability,
        message_size_limit,
        message_id_format: raw.message_id_format,
        split_spool_directory: raw.split_spool_directory,
        queue_only: raw.queue_only,
        over_quota,
        local_domains: raw.local_domains,
        relay_from_hosts: raw.relay_from_hosts,
        mailbox: MailboxConfig {
            maildir: raw.mailbox.maildir,
            users,
        },
        mbox: MboxConfig {
            format,
            write_locks: locks("mbox.write_locks", &raw.mbox.write_locks)?,
            read_locks: locks("mbox.read_locks", &raw.mbox.read_locks)?,
            lock_timeout: dur("mbox.lock_timeout", &raw.mbox.lock_timeout)?,
            dotlock_stale: dur("mbox.dotlock_stale", &raw.mbox.dotlock_stale)?,
            dotlock_pid_check: raw.mbox.dotlock_pid_check,
        },
        smtp: SmtpConfig {
            listen: raw.smtp.listen,
            tls_listen: raw.smtp.tls_listen,
            lmtp_listen: raw.smtp.lmtp_listen,
            tls_certificate: path_or_none(&raw.smtp.tls_certificate),
            tls_privatekey: path_or_none(&raw.smtp.tls_privatekey),
            max_recipients: raw.smtp.max_recipients,
            max_connections: raw.smtp.max_connections,
            max_connections_per_host: raw.smtp.max_connections_per_host,
            max_errors: raw.smtp.max_errors,
            vrfy: raw.smtp.vrfy,
            command_timeout: dur("smtp.command_timeout", &raw.smtp.command_timeout)?,
            data_timeout: dur("smtp.data_timeout", &raw.smtp.data_timeout)?,
            final_dot_timeout: dur("smtp.final_dot_timeout", &raw.smtp.final_dot_timeout)?,
        },
        queue: QueueConfig {
            retry: raw.queue.retry,
            delivery_workers: raw.queue.delivery_workers,
            garbage_after: dur("queue.garbage_after", &raw.queue.garbage_after)?,
        },
        origin,
        overrides: Vec::new(),
        table,
    })
}

impl Config {
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
fn resolve_data_dir(configured: &str) -> (PathBuf, bool) {
    if let Some(h) = std::env::var_os("SLUICE_HOME").filter(|v| !v.is_empty()) {
        return (absolute(PathBuf::from(h)), false);
    }
    if !configured.is_empty() {
        return (absolute(PathBuf::from(configured)), false);
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

#[cfg(test)]
mod tests {
    use super::*;

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
