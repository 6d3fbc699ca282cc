//! The smtp transport's options, in Exim's vocabulary, checked once at load
//! and turned into the remote engine's [`Settings`]:
//!
//! ```toml
//! [[transport]]
//! name = "remote_smtp"
//! driver = "smtp"
//! protocol = "smtp"            # "smtp" | "lmtp" | "smtps"
//! port = 25                    # default: 25, LMTP 24, SMTPS 465
//! # socket = "/run/dovecot/lmtp"   # LMTP over a Unix socket
//! # hosts = ["smtp.example.net"]   # instead of the router's hosts
//! # interface = ["192.0.2.10", "2001:db8::10"]   # source address per family
//! # helo_data = "mail.example.org" # default: primary_hostname if qualified, else [source address]
//! tls = "may"                  # "may" | "encrypt" | "verify"
//! # tls_verify_certificates = "/etc/ssl/certs/ca-certificates.crt"
//! # auth_credentials_file = "/etc/sluice/smarthost.auth"   # "user:password", root only
//! hosts_max_try = 5
//! connection_max_messages = 500
//! max_connections_per_destination = 10
//! connect_timeout = "5m"
//! command_timeout = "5m"
//! data_timeout = "5m"
//! final_timeout = "10m"
//! ```
//!
//! Credentials are sent only over a session whose certificate chain and
//! host name verified: a transport with `auth_credentials_file` and a
//! `tls` other than `verify` is refused at load (`-bV` names it).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use smtp::client::{ClientConfig, Credentials, Timeouts, TlsPolicy};

use crate::config::{Config, parse_duration};
use crate::remote::Settings;
use crate::remote::tls::{ClientTls, Policy};

/// The protocol spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Smtp,
    Lmtp,
    /// SMTP under TLS from the first byte (RFC 8314, port 465).
    Smtps,
}

/// The `tls` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    May,
    Encrypt,
    Verify,
}

/// The smtp driver's options as written; unset ones take Exim's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpOptions {
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    pub hosts: Option<Vec<String>>,
    pub interface: Option<Vec<IpAddr>>,
    pub helo_data: Option<String>,
    pub tls: Option<TlsMode>,
    pub tls_verify_certificates: Option<PathBuf>,
    pub auth_credentials_file: Option<PathBuf>,
    pub hosts_max_try: Option<usize>,
    pub connection_max_messages: Option<usize>,
    pub max_connections_per_destination: Option<usize>,
    pub connect_timeout: Option<String>,
    pub command_timeout: Option<String>,
    pub data_timeout: Option<String>,
    pub final_timeout: Option<String>,
}

impl SmtpOptions {
    /// The first option set (for refusing smtp options on other drivers).
    pub fn first_set(&self) -> Option<String> {
        let set = [
            ("protocol", self.protocol.is_some()),
            ("port", self.port.is_some()),
            ("socket", self.socket.is_some()),
            ("hosts", self.hosts.is_some()),
            ("interface", self.interface.is_some()),
            ("helo_data", self.helo_data.is_some()),
            ("tls", self.tls.is_some()),
            (
                "tls_verify_certificates",
                self.tls_verify_certificates.is_some(),
            ),
            (
                "auth_credentials_file",
                self.auth_credentials_file.is_some(),
            ),
            ("hosts_max_try", self.hosts_max_try.is_some()),
            (
                "connection_max_messages",
                self.connection_max_messages.is_some(),
            ),
            (
                "max_connections_per_destination",
                self.max_connections_per_destination.is_some(),
            ),
            ("connect_timeout", self.connect_timeout.is_some()),
            ("command_timeout", self.command_timeout.is_some()),
            ("data_timeout", self.data_timeout.is_some()),
            ("final_timeout", self.final_timeout.is_some()),
        ];
        set.iter().find(|(_, s)| *s).map(|(k, _)| k.to_string())
    }

    /// Checks the options and builds the engine's settings for transport
    /// `name`. Errors name the key.
    pub fn settings(&self, name: &str, cfg: &Config) -> Result<Settings, String> {
        let protocol = self.protocol.unwrap_or(Protocol::Smtp);
        let port = self.port.unwrap_or(match protocol {
            Protocol::Smtp => 25,
            Protocol::Lmtp => 24,
            Protocol::Smtps => 465,
        });
        if port == 0 {
            return Err("key `port`: 0 is not a port".into());
        }
        if self.socket.is_some() && protocol != Protocol::Lmtp {
            return Err("key `socket`: a Unix socket is for protocol = \"lmtp\"".into());
        }
        let mode = self.tls.unwrap_or(TlsMode::May);
        let credentials = match &self.auth_credentials_file {
            None => None,
            Some(_) if mode != TlsMode::Verify => {
                return Err(
                    "key `auth_credentials_file`: credentials are sent only over TLS whose \
                     certificate and host name verified: set tls = \"verify\""
                        .into(),
                );
            }
            Some(path) => Some(read_credentials(path)?),
        };
        // A helo_data that is set must be a fully qualified name. The
        // default is primary_hostname when that is one; a host whose name
        // is not qualified (a container called "vm") greets over TCP with
        // the address literal of its end of the connection, as RFC 5321
        // §4.1.4 asks of a client with no name, rather than send a bare
        // word that receivers may refuse (Exim sends the bare word).
        let (helo, helo_literal) = match &self.helo_data {
            Some(h) if !is_fqdn(h) => {
                return Err(format!(
                    "key `helo_data`: {h:?} is not a fully qualified domain name"
                ));
            }
            Some(h) => (h.clone(), false),
            None => (
                cfg.primary_hostname.clone(),
                !is_fqdn(&cfg.primary_hostname),
            ),
        };
        let policy = match mode {
            TlsMode::May => Policy::May,
            TlsMode::Encrypt => Policy::Encrypt,
            TlsMode::Verify => Policy::Verify,
        };
        let tls = ClientTls::new(policy, self.tls_verify_certificates.as_deref())
            .map_err(|e| format!("key `tls_verify_certificates`: {e}"))?;
        let duration = |key: &str, v: &Option<String>, default: u64| -> Result<Duration, String> {
            match v {
                None => Ok(Duration::from_secs(default)),
                Some(s) => parse_duration(s).map_err(|e| format!("key `{key}`: {e}")),
            }
        };
        let connect_timeout = duration("connect_timeout", &self.connect_timeout, 300)?;
        let command_timeout = duration("command_timeout", &self.command_timeout, 300)?;
        let data_timeout = duration("data_timeout", &self.data_timeout, 300)?;
        let final_timeout = duration("final_timeout", &self.final_timeout, 600)?;
        let timeouts = Timeouts {
            greeting: command_timeout,
            mail: command_timeout,
            rcpt: command_timeout,
            data_init: command_timeout,
            data_block: data_timeout,
            final_dot: final_timeout,
            command: command_timeout,
        };
        let client = ClientConfig {
            helo_name: helo,
            lmtp: protocol == Protocol::Lmtp,
            tls: match (protocol, mode) {
                (Protocol::Smtps, _) => TlsPolicy::Never,
                (_, TlsMode::May) => TlsPolicy::IfOffered,
                (_, TlsMode::Encrypt | TlsMode::Verify) => TlsPolicy::Required,
            },
            implicit_tls: protocol == Protocol::Smtps,
            credentials,
            timeouts,
        };
        let positive = |key: &str, v: Option<usize>, default: usize| -> Result<usize, String> {
            match v.unwrap_or(default) {
                0 => Err(format!("key `{key}`: must be at least 1")),
                n => Ok(n),
            }
        };
        Ok(Settings {
            transport: name.to_string(),
            client: Arc::new(client),
            tls,
            implicit_tls: protocol == Protocol::Smtps,
            helo_literal,
            socket: self.socket.clone(),
            interface: self.interface.clone().unwrap_or_default(),
            connect_timeout,
            command_timeout,
            hosts_max_try: positive("hosts_max_try", self.hosts_max_try, 5)?,
            connection_max_messages: positive(
                "connection_max_messages",
                self.connection_max_messages,
                500,
            )?,
            max_per_destination: positive(
                "max_connections_per_destination",
                self.max_connections_per_destination,
                10,
            )?,
            port,
            hosts: self.hosts.clone().unwrap_or_default(),
        })
    }
}

/// A name with at least one dot and no empty label.
fn is_fqdn(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.contains('.')
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// `user:password` on the first line of a file nobody but its owner can
/// read.
fn read_credentials(path: &std::path::Path) -> Result<Credentials, String> {
    let key = "key `auth_credentials_file`";
    let line = crate::config::read_private_first_line(key, path)?;
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok(Credentials {
            username: user.to_string(),
            password: password.to_string(),
        }),
        _ => Err(format!(
            "{key}: {}: line 1 must be user:password",
            path.display()
        )),
    }
}
