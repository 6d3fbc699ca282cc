//! `sluice submit` (also `sendmail ...`, `sluice -bm ...`): queue one
//! message read from standard input, as `sendmail` does.
//!
//! - The message ends at end of input, or at a line holding a single dot
//!   unless `-i`/`-oi` is given. CRLF line ends become LF (the spool stores
//!   LF, as Exim's does); a leading mbox `From ` line is dropped.
//! - Recipients come from the command line (each argument may be a
//!   comma-separated list), or with `-t` from the `To:`, `Cc:` and `Bcc:`
//!   headers. With `-t`, addresses also given on the command line are
//!   **removed** from the extracted list: Exim's rule (Smail-3 compatible,
//!   `extract_addresses_remove_arguments`). Postfix and sendmail instead
//!   **add** them to the list. `Bcc:` headers are kept in the `-H` file
//!   marked deleted, and never delivered.
//! - The submitting user is the password-database entry of the real uid
//!   (`getpwuid_r`), never `$USER` or `$LOGNAME`: the default sender is
//!   `login@qualify_domain`, the log says `U=login`, the `Received:` header
//!   `from login`. A uid with no entry is refused (67), as Exim refuses it.
//! - Local parts without a domain are qualified with `qualify_domain`
//!   (default: `primary_hostname`).
//! - Added when missing: `Message-ID:` (`<E<ID>@host>`, Exim's form),
//!   `From:` (the sender, with `-F NAME` as its display name) and `Date:`;
//!   a `Received:` header is always added on top.
//! - The message is queued durably (per `durability`) and nothing is
//!   printed; `-v` prints its ID. Then a delivery starts in a process of
//!   its own (`sluice queue run ID`, as Exim's default background
//!   delivery), so the caller never waits for a slow remote host; with
//!   `-odq`, `--queue-only` or `queue_only = true` the message waits for
//!   the next queue run; with `-odi`/`-odf` the command waits for that
//!   delivery attempt before it exits.
//! - The options are sendmail's, parsed by [`crate::cmd::sendmail_args`].
//!
//! | exit | when |
//! |------|------|
//! | 0  | queued |
//! | 64 | no recipients, bad flags |
//! | 65 | empty message (0 bytes), larger than `message_size_limit`, an address that cannot be queued |
//! | 67 | the real uid has no entry in the password database |
//! | 77 | `-oMa`/`-oMr`/`-oMs`/`-oMt` from a user other than root |
//! | 75 | the spool cannot take it now: failed write or fsync, full disk, permissions |

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;

use mailstore::error::sysexits;

use super::local_sender;
use spool::{Caller, Envelope, Header, MessageId, Recipient};

use crate::app::App;
use crate::cmd::Failure;
use crate::config::Config;

pub use crate::cmd::sendmail_args::{DeliveryMode, SubmitArgs};

impl From<spool::Error> for Failure {
    fn from(e: spool::Error) -> Failure {
        let code = if e.is_temporary() {
            sysexits::TEMPFAIL
        } else {
            sysexits::DATAERR
        };
        Failure::new(code, format!("cannot queue the message: {e}"))
    }
}

/// Runs the command on standard input; returns the exit code.
pub fn run(cfg: &Arc<Config>, args: &SubmitArgs) -> i32 {
    if cfg.data_dir_is_fallback {
        eprintln!(
            "sluice: warning: no data_dir configured and {} does not exist: using {}",
            crate::config::SYSTEM_DATA_DIR,
            cfg.data_dir.display()
        );
    }
    let caller = match submitter(args) {
        Ok(c) => c,
        Err(f) => {
            eprintln!("sluice: {}", f.message);
            return f.code;
        }
    };
    let mut input = Vec::new();
    if let Err(e) = read_input(&mut std::io::stdin().lock(), cfg, &mut input) {
        eprintln!("sluice: {}", e.message);
        return e.code;
    }
    // A user who may not write the spool hands the message to the daemon,
    // which knows them by their uid and applies the same rules.
    if crate::submission::client::wanted(cfg) {
        return crate::submission::client::submit(cfg, args, &input);
    }
    // The spool is opened only for a message worth queueing: a usage or
    // data error is reported as such even when the spool is unusable.
    let trusted = local_sender::is_trusted(cfg, &caller, &crate::sys::process_groups());
    let queued = compose(cfg, args, &input, &caller, trusted).and_then(|m| {
        // As the daemon refuses MAIL, a submission refuses a message the
        // spool or log filesystem has no room for: try again later.
        if let Some(short) = crate::space::SpaceCheck::new(cfg).short(input.len() as u64) {
            return Err(Failure::new(
                sysexits::TEMPFAIL,
                format!("{short}: nothing queued, try again later"),
            ));
        }
        let app = App::open(cfg.clone()).map_err(|e| e.failure())?;
        submit(&app, args, m, &caller)
    });
    match queued {
        Ok(id) => {
            if args.verbose {
                println!("{id}");
            }
            let mode = if cfg.queue_only {
                DeliveryMode::Queue
            } else {
                args.delivery
            };
            if let Err(e) = start_delivery(cfg, &id, mode) {
                // Queued all the same: the next queue run delivers it.
                eprintln!("sluice: {id} queued, but no delivery process started: {e}");
            }
            sysexits::OK
        }
        Err(f) => {
            eprintln!("sluice: {}", f.message);
            f.code
        }
    }
}

/// Who submits: the real uid's password-database entry. Only root may say
/// where the message came from (`-oM*`), as only Exim's trusted callers may.
fn submitter(args: &SubmitArgs) -> Result<Caller, Failure> {
    let uid = rustix::process::getuid().as_raw();
    let caller = match crate::sys::real_user() {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Failure::new(
                sysexits::NOUSER,
                format!(
                    "uid {uid} has no entry in the password database: \
                     cannot name the sender, nothing queued"
                ),
            ));
        }
        Err(e) => {
            return Err(Failure::new(
                sysexits::TEMPFAIL,
                format!("looking up uid {uid} in the password database: {e}"),
            ));
        }
    };
    origin_allowed(args, &caller)?;
    Ok(caller)
}

/// Only root may say where a message came from (`-oMa`, `-oMr`, `-oMs`,
/// `-oMt`), as only Exim's trusted callers may.
pub fn origin_allowed(args: &SubmitArgs, caller: &Caller) -> Result<(), Failure> {
    if args.origin.is_empty() || caller.uid == 0 {
        return Ok(());
    }
    Err(Failure::new(
        sysexits::NOPERM,
        format!(
            "-oMa, -oMr, -oMs and -oMt are for root only ({} is not root): nothing queued",
            caller.login
        ),
    ))
}

/// Reads standard input, stopping a little past `message_size_limit` (the
/// rest would be refused anyway and must not fill memory).
fn read_input(src: &mut dyn Read, cfg: &Config, out: &mut Vec<u8>) -> Result<(), Failure> {
    let cap = match cfg.message_size_limit {
        0 => u64::MAX,
        n => n.saturating_add(64 * 1024),
    };
    src.take(cap)
        .read_to_end(out)
        .map(|_| ())
        .map_err(|e| Failure::new(sysexits::IOERR, format!("reading the message: {e}")))
}

/// A message checked and addressed, not yet queued.
pub struct Composed {
    /// The message as normalized (LF line ends, no mbox `From ` line).
    message: Vec<u8>,
    /// The message's own headers (`Bcc:` marked deleted with `-t`).
    headers: Vec<Header>,
    /// Where the body starts in `message`.
    body_at: usize,
    /// The envelope sender, qualified; empty for `<>`.
    sender: String,
    /// The submitter is not trusted (root, `trusted_users`,
    /// `trusted_groups`): its `Sender:` rules apply.
    untrusted: bool,
    /// An untrusted submitter set the sender (`untrusted_set_sender`).
    set_untrusted: bool,
    /// The envelope recipients, qualified, without repeats.
    recipients: Vec<String>,
}

/// Checks `input` (the raw message as read) and finds its sender and
/// recipients for `caller`: everything that can refuse the message before
/// the spool is touched.
pub fn compose(
    cfg: &Config,
    args: &SubmitArgs,
    input: &[u8],
    caller: &Caller,
    trusted: bool,
) -> Result<Composed, Failure> {
    let message = normalize(input, args.ignore_dots);
    if message.is_empty() {
        return Err(Failure::new(
            sysexits::DATAERR,
            "no message on standard input (0 bytes): nothing queued",
        ));
    }
    if cfg.message_size_limit > 0 && message.len() as u64 > cfg.message_size_limit {
        return Err(Failure::new(
            sysexits::DATAERR,
            format!(
                "message of {} bytes is larger than message_size_limit ({} bytes)",
                message.len(),
                cfg.message_size_limit
            ),
        ));
    }
    let (mut headers, body_at) = spool::split_message(&message);
    let qualify_domain = cfg.qualify_domain.as_str();

    let asked = match args.sender.as_deref().map(str::trim) {
        Some("<>") | Some("") => Some(String::new()),
        Some(s) => Some(qualify(strip_angles(s), qualify_domain)),
        None => None,
    };
    let (sender, set_untrusted) = local_sender::sender(
        asked,
        trusted,
        &cfg.untrusted_set_sender,
        &format!("{}@{qualify_domain}", caller.login),
    );
    let given: Vec<String> = args
        .recipients
        .iter()
        .flat_map(|a| address_list(a))
        .map(|a| qualify(&a, qualify_domain))
        .collect();
    let recipients = if args.extract_recipients {
        let mut found = Vec::new();
        for h in headers.iter_mut() {
            if h.is("to") || h.is("cc") || h.is("bcc") {
                let value = header_value(&h.text);
                found.extend(
                    address_list(&value)
                        .into_iter()
                        .map(|a| qualify(&a, qualify_domain)),
                );
                if h.is("bcc") {
                    h.flag = b'*';
                }
            }
        }
        found.retain(|a| !given.iter().any(|g| g.eq_ignore_ascii_case(a)));
        found
    } else {
        given
    };
    let recipients = dedup(recipients);
    if recipients.is_empty() {
        return Err(Failure::new(
            sysexits::USAGE,
            if args.extract_recipients {
                "no recipients: none in To:, Cc: or Bcc: (after removing those on the command line)"
            } else {
                "no recipients given (name them as arguments, or use -t)"
            },
        ));
    }
    Ok(Composed {
        message,
        headers,
        body_at,
        sender,
        untrusted: !trusted,
        set_untrusted,
        recipients,
    })
}

/// Queues a composed message for `caller`. Returns the ID once the
/// message is durable.
pub fn submit(
    app: &App,
    args: &SubmitArgs,
    composed: Composed,
    caller: &Caller,
) -> Result<MessageId, Failure> {
    let id = enter(&app.cfg, &app.queue, &app.logs, args, composed, caller)?;
    app.queue.wait_before_exit();
    Ok(id)
}

/// Queues a composed message in `queue` and logs its arrival: the work of
/// a submission, in this process or in the daemon (for a caller on the
/// submission socket).
pub fn enter(
    cfg: &Config,
    queue: &spool::Queue,
    logs: &crate::log::Logs,
    args: &SubmitArgs,
    composed: Composed,
    caller: &Caller,
) -> Result<MessageId, Failure> {
    let Composed {
        message,
        mut headers,
        body_at,
        sender,
        untrusted,
        set_untrusted,
        mut recipients,
    } = composed;
    let body = &message[body_at..];
    let host = cfg.primary_hostname.as_str();
    let qualify_domain = cfg.qualify_domain.as_str();
    let mut draft = queue.draft()?;
    let id = draft.id();
    draft.write(body)?;

    let now = crate::clock::now();
    let message_id = format!("<E{id}@{host}>");
    let mut out: Vec<Header> = Vec::with_capacity(headers.len() + 4);
    out.push(Header::new(received(
        &caller.login,
        host,
        &sender,
        &id,
        (recipients.len() == 1).then(|| recipients[0].as_str()),
        &crate::clock::rfc5322(now),
    )));
    let has = |name: &str| headers.iter().any(|h| !h.is_deleted() && h.is(name));
    let (has_id, has_from, has_date) = (has("message-id"), has("from"), has("date"));
    out.append(&mut headers);
    if !has_id {
        out.push(Header::new(format!("Message-ID: {message_id}\n")));
    }
    if !has_from {
        let addr = if sender.is_empty() {
            format!("{}@{qualify_domain}", caller.login)
        } else {
            sender.clone()
        };
        let from = match args.full_name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => format!("From: {} <{addr}>\n", display_name(n)),
            _ => format!("From: {addr}\n"),
        };
        out.push(Header::new(from));
    }
    if !has_date {
        out.push(Header::new(format!(
            "Date: {}\n",
            crate::clock::rfc5322(now)
        )));
    }
    if untrusted {
        // The From: the message now carries (its own, or the one added).
        let from: Vec<String> = out
            .iter()
            .filter(|h| !h.is_deleted() && h.is("from"))
            .flat_map(|h| address_list(&header_value(&h.text)))
            .collect();
        let login_address = format!("{}@{qualify_domain}", caller.login);
        if let Some(h) = local_sender::fix_headers(
            &mut out,
            &from,
            &login_address,
            cfg.local_sender_retain,
            cfg.local_from_check,
        ) {
            out.push(h);
        }
    }

    let mut env = Envelope::new(sender.clone(), &[]);
    env.caller = caller.clone();
    env.sender_set_untrusted = set_untrusted;
    let origin = &args.origin;
    env.protocol = Some(origin.protocol.clone().unwrap_or_else(|| "local".into()));
    env.local = true;
    env.ident = Some(origin.ident.clone().unwrap_or_else(|| caller.login.clone()));
    env.host_address = origin.host_address.map(|ip| spool::HostAddress {
        ip: ip.to_string(),
        port: 0,
    });
    env.host_name = origin.host_name.clone();
    env.dsn_ret = args.dsn.ret;
    env.dsn_envid = args.dsn.envid.clone();
    env.recipients = recipients
        .drain(..)
        .map(|r| Recipient {
            notify: args.dsn.notify,
            ..Recipient::new(r)
        })
        .collect();
    let staged = draft.finish(&env, &out)?;
    let id = queue.commit(staged)?;

    let size = crate::log::spooled_size(&out, body.len());
    let shown_sender = if sender.is_empty() { "<>" } else { &sender };
    let ident = env.ident.as_deref().unwrap_or(&caller.login);
    let protocol = env.protocol.as_deref().unwrap_or("local");
    // -oMs/-oMa: where root says the message came from, as Exim's H=.
    let host = match (&origin.host_name, &origin.host_address) {
        (Some(n), Some(a)) => format!("H={n} [{a}] "),
        (Some(n), None) => format!("H={n} "),
        (None, Some(a)) => format!("H=[{a}] "),
        (None, None) => String::new(),
    };
    let _ = queue.append_msglog(
        &id,
        &format!(
            "{} Received from {shown_sender} {host}U={ident} P={protocol} S={size}",
            crate::clock::log_stamp(now),
        ),
    );
    // id= only for a Message-ID the message came with: the one added
    // above is not logged (Exim's default).
    let mut arrival = crate::log::Arrival::new(
        &sender,
        crate::log::Origin::Local(ident.to_string()),
        protocol,
        size,
    );
    arrival.host =
        (origin.host_name.is_some() || origin.host_address.is_some()).then(|| crate::log::Host {
            name: origin.host_name.clone(),
            ip: origin
                .host_address
                .map(|a| a.to_string())
                .unwrap_or_default(),
            ..crate::log::Host::default()
        });
    arrival.message_id = crate::log::MessageIdField::of(&out).filter(|_| has_id);
    logs.main(&crate::log::Event::new(
        Some(id),
        crate::log::Kind::Arrival(arrival),
    ));
    Ok(id)
}

/// Starts the delivery of a queued message as `mode` says: `sluice queue
/// run ID` detached (stdio closed, not waited for), or waited for with
/// stderr kept (`-odi`), or not at all (`-odq`); with the configuration
/// file and `--set` overrides this process read.
fn start_delivery(cfg: &Config, id: &MessageId, mode: DeliveryMode) -> std::io::Result<()> {
    if mode == DeliveryMode::Queue {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    if std::path::Path::new(&cfg.origin).is_file() {
        cmd.arg("--config").arg(&cfg.origin);
    }
    for o in &cfg.overrides {
        cmd.arg("--set").arg(o);
    }
    cmd.args(["queue", "run", id.as_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match mode {
        DeliveryMode::Queue => Ok(()), // returned above
        DeliveryMode::Background => cmd.stderr(Stdio::null()).spawn().map(drop),
        // The outcome of the attempt is in the logs and the queue, as
        // after Exim's -odi; only a failure to run it concerns the caller.
        DeliveryMode::Foreground => cmd.status().map(drop),
    }
}

/// Cuts the input at a lone "." line (unless `ignore_dots`) and turns CRLF
/// into LF; drops a leading mbox "From " line.
fn normalize(input: &[u8], ignore_dots: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut first = true;
    for line in input.split_inclusive(|&c| c == b'\n') {
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if !ignore_dots && content == b"." {
            break;
        }
        if first && content.starts_with(b"From ") {
            first = false;
            continue;
        }
        first = false;
        out.extend_from_slice(content);
        if line.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out
}

/// The value of a header: after the colon, unfolded.
pub fn header_value(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(text);
    let v = s.split_once(':').map_or("", |(_, v)| v);
    v.replace("\r\n", "\n")
        .replace('\n', " ")
        .trim()
        .to_string()
}

/// Splits an RFC 5322 address list (also a command-line argument) into
/// addr-specs: display names, comments and group names are dropped, the
/// address inside `<...>` is taken, quoted local parts are kept as written.
pub fn address_list(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut item = String::new();
    let mut angle: Option<String> = None;
    let (mut in_quote, mut in_angle, mut comment) = (false, false, 0usize);
    let mut chars = s.chars();
    let mut finish = |item: &mut String, angle: &mut Option<String>| {
        let a = match angle.take() {
            // "<@route,@route:user@host>": the route goes.
            Some(a) if a.starts_with('@') => {
                a.split_once(':').map_or(a.clone(), |(_, r)| r.to_string())
            }
            Some(a) => a,
            // Outside quotes, white space in an addr-spec is folding.
            None => item.clone(),
        };
        let a = a.trim().to_string();
        if !a.is_empty() {
            out.push(a);
        }
        item.clear();
    };
    while let Some(c) = chars.next() {
        if comment > 0 {
            match c {
                '\\' => {
                    chars.next();
                }
                '(' => comment += 1,
                ')' => comment -= 1,
                _ => {}
            }
            continue;
        }
        if in_quote {
            item.push(c);
            if in_angle && let Some(a) = angle.as_mut() {
                a.push(c);
            }
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        item.push(n);
                        if in_angle && let Some(a) = angle.as_mut() {
                            a.push(n);
                        }
                    }
                }
                '"' => in_quote = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_quote = true;
                item.push(c);
                if in_angle && let Some(a) = angle.as_mut() {
                    a.push(c);
                }
            }
            '(' => comment = 1,
            '<' if !in_angle => {
                in_angle = true;
                angle = Some(String::new());
            }
            '>' if in_angle => in_angle = false,
            c if in_angle => {
                if !c.is_whitespace()
                    && let Some(a) = angle.as_mut()
                {
                    a.push(c);
                }
            }
            ',' | ';' => finish(&mut item, &mut angle),
            // "group: a, b;" — what came before the colon names the group.
            ':' => item.clear(),
            c if c.is_whitespace() => {}
            c => item.push(c),
        }
    }
    finish(&mut item, &mut angle);
    out
}

fn strip_angles(s: &str) -> &str {
    s.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s)
}

/// Adds `@host` to a bare local part.
fn qualify(addr: &str, host: &str) -> String {
    if addr.contains('@') || addr.is_empty() {
        addr.to_string()
    } else {
        format!("{addr}@{host}")
    }
}

/// Drops repeated addresses (ASCII case-insensitive), keeping the first.
fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for a in list {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&a)) {
            out.push(a);
        }
    }
    out
}

/// A display name, quoted when it holds characters RFC 5322 does not allow
/// in an atom phrase.
fn display_name(n: &str) -> String {
    let plain = n
        .chars()
        .all(|c| c.is_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c));
    if plain {
        n.to_string()
    } else {
        format!("\"{}\"", n.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The Received: header of a local submission, in Exim's default form.
fn received(
    login: &str,
    host: &str,
    sender: &str,
    id: &MessageId,
    single_rcpt: Option<&str>,
    date: &str,
) -> String {
    let mut h = format!(
        "Received: from {login} by {host} with local (Sluice {})\n\t(envelope-from <{sender}>)\n\tid {id}",
        env!("CARGO_PKG_VERSION")
    );
    match single_rcpt {
        Some(r) => h.push_str(&format!("\n\tfor {r};\n\t{date}\n")),
        None => h.push_str(&format!(";\n\t{date}\n")),
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists_table() {
        let cases: &[(&str, &[&str])] = &[
            ("bob", &["bob"]),
            ("bob, carol@x.example", &["bob", "carol@x.example"]),
            ("Name <a@b>, \"q u\"@c", &["a@b", "\"q u\"@c"]),
            ("\"Last, First\" <lf@x>", &["lf@x"]),
            ("undisclosed-recipients:;", &[]),
            ("team: a@b, c@d;, e@f", &["a@b", "c@d", "e@f"]),
            ("a@b (the (nested) comment)", &["a@b"]),
            ("<@relay.example:u@h>", &["u@h"]),
            ("", &[]),
            ("<>", &[]),
            (" spaced @ example.org ", &["spaced@example.org"]),
        ];
        for &(input, want) in cases {
            assert_eq!(address_list(input), want, "{input:?}");
        }
    }

    #[test]
    fn normalize_table() {
        let cases: &[(&str, bool, &str)] = &[
            ("a\r\nb\r\n", false, "a\nb\n"),
            ("a\n.\nafter\n", false, "a\n"),
            ("a\n.\nafter\n", true, "a\n.\nafter\n"),
            ("a\n.\r\nafter\n", false, "a\n"),
            ("a\n..\nb", false, "a\n..\nb"),
            (".\n", false, ""),
            (
                "From me Mon Jan  1 00:00:00 2024\nSubject: x\n",
                false,
                "Subject: x\n",
            ),
            ("Subject: x\nFrom me\n", false, "Subject: x\nFrom me\n"),
            ("", false, ""),
        ];
        for &(input, dots, want) in cases {
            assert_eq!(
                String::from_utf8(normalize(input.as_bytes(), dots)).unwrap(),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn spool_errors_map_to_sysexits() {
        let id = MessageId::parse("1tixMn-00000000C5j-1wRa").unwrap();
        // A failed fsync: the message is not queued, the caller retries.
        let fsync = spool::Error::Commit {
            id,
            source: durable::CommitError::Io {
                op: "fdatasync",
                path: "/spool/input/n/x-D.tmp".into(),
                source: std::io::Error::from_raw_os_error(5).into(),
            },
        };
        let f = Failure::from(fsync);
        assert_eq!(f.code, sysexits::TEMPFAIL);
        assert!(f.message.contains("fdatasync"), "{}", f.message);
        let bad = spool::Error::BadEnvelope {
            why: "recipient \"a\\nb\" contains a control character".into(),
        };
        assert_eq!(Failure::from(bad).code, sysexits::DATAERR);
    }

    #[test]
    fn received_and_names() {
        let id = MessageId::parse("1tixMn-00000000C5j-1wRa").unwrap();
        let one = received(
            "alice",
            "mx.example",
            "alice@mx.example",
            &id,
            Some("b@x"),
            "DATE",
        );
        let ver = env!("CARGO_PKG_VERSION");
        assert_eq!(
            one,
            format!(
                "Received: from alice by mx.example with local (Sluice {ver})\n\t(envelope-from <alice@mx.example>)\n\tid 1tixMn-00000000C5j-1wRa\n\tfor b@x;\n\tDATE\n"
            )
        );
        let many = received("alice", "h", "", &id, None, "DATE");
        assert!(
            many.ends_with("id 1tixMn-00000000C5j-1wRa;\n\tDATE\n"),
            "{many}"
        );
        assert_eq!(display_name("Alice Liddell"), "Alice Liddell");
        assert_eq!(display_name("Liddell, Alice"), "\"Liddell, Alice\"");
        assert_eq!(qualify("bob", "h.example"), "bob@h.example");
        assert_eq!(qualify("bob@x", "h.example"), "bob@x");
        assert_eq!(header_value(b"To: a@b,\r\n\tc@d\r\n"), "a@b, \tc@d");
    }
}
