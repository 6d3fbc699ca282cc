//! `sluice queue ...` and its Exim forms: `-bp`/`mailq` (list), `-bpr`
//! (list unsorted), `-bpc` (count), `-Mvl`/`-Mvh`/`-Mvb` (show a message's
//! log, header file, body file), `-Mrm`/`-Mf`/`-Mt` (remove, freeze, thaw).
//!
//! The listing is Exim's `-bp` layout:
//!
//! ```text
//! 25m  2.9K 1tixMn-00000000C5j-1wRa <alice@example.org> *** frozen ***
//!           bob@example.net
//!         D carol@example.com
//!
//! ```
//!
//! time on queue (minutes, hours over 90 minutes, days over 72 hours), size
//! (headers and body), ID, envelope sender (`<>` for a bounce), then the
//! recipients, `D` before those delivered or failed, and a blank line.
//! `--json` prints one object per message as Postfix's `postqueue -j`.
//! A message whose files cannot be read is reported on stderr with its path
//! and skipped; the command then exits 1.
//!
//! An ID that is not queued exits 1 with `ID: message not found`.

use std::io::{self, Write};

use spool::{Error, HeaderFile, MessageId, Queue, RcptState};

use crate::config::Config;
use crate::log::{Action, Event, Kind};

/// What to do with the queue.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum QueueCommand {
    /// List the queued messages (Exim's -bp, mailq).
    List(ListArgs),
    /// Print the number of queued messages (Exim's -bpc).
    Count,
    /// Show one message: its log (-Mvl), header file (-Mvh) or body file (-Mvb).
    Show(ShowArgs),
    /// Remove messages whatever their state (Exim's -Mrm).
    Remove {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Freeze messages: no delivery until thawed (Exim's -Mf).
    Freeze {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Thaw frozen messages (Exim's -Mt).
    Thaw {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Give up: fail every pending recipient and report them to the
    /// sender (Exim's -Mg).
    Giveup {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Show the remote hosts' retry hints: last error, next try (Exim's exinext).
    Hints {
        /// Only hosts whose name or address contains this.
        #[arg(value_name = "HOST_OR_DOMAIN")]
        filter: Option<String>,
        /// One JSON object per host.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ListArgs {
    /// Do not sort by arrival: the first lines come at once on a huge queue (-bpr).
    #[arg(long)]
    pub unsorted: bool,
    /// One JSON object per message, as Postfix's `postqueue -j`.
    #[arg(long)]
    pub json: bool,
}

/// Which file of a message to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Part {
    #[default]
    Log,
    Headers,
    Body,
}

#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ShowArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The message's delivery log (default; -Mvl).
    #[arg(long, group = "part")]
    pub log: bool,
    /// The -H file: envelope and headers (-Mvh).
    #[arg(long, group = "part")]
    pub headers: bool,
    /// The -D file: the body (-Mvb).
    #[arg(long, group = "part")]
    pub body: bool,
}

impl ShowArgs {
    pub fn part(&self) -> Part {
        if self.headers {
            Part::Headers
        } else if self.body {
            Part::Body
        } else {
            Part::Log
        }
    }
}

impl QueueCommand {
    /// The command an Exim `-bp...` flag asks for (`letters` after `-b`):
    /// `p` list, `pr` unsorted, `pc` count. `None`: not a queue listing.
    pub fn from_exim_b(letters: &str) -> Option<QueueCommand> {
        match letters {
            "p" | "pa" | "pu" => Some(QueueCommand::List(ListArgs::default())),
            "pr" | "pra" | "pru" => Some(QueueCommand::List(ListArgs {
                unsorted: true,
                json: false,
            })),
            "pc" => Some(QueueCommand::Count),
            _ => None,
        }
    }

    /// The command an Exim `-M...` flag asks for (`letters` after `-M`),
    /// applied to `ids`: `vl`, `vh`, `vb`, `rm`, `f`, `t`.
    pub fn from_exim_m(letters: &str, ids: Vec<String>) -> Result<QueueCommand, String> {
        if ids.is_empty() {
            return Err(format!("-M{letters} needs a message ID"));
        }
        let show = |log, headers, body| -> Result<QueueCommand, String> {
            match &ids[..] {
                [id] => Ok(QueueCommand::Show(ShowArgs {
                    id: id.clone(),
                    log,
                    headers,
                    body,
                })),
                _ => Err(format!("-M{letters} takes one message ID")),
            }
        };
        match letters {
            "vl" => show(true, false, false),
            "vh" => show(false, true, false),
            "vb" => show(false, false, true),
            "rm" => Ok(QueueCommand::Remove { ids }),
            "f" => Ok(QueueCommand::Freeze { ids }),
            "t" => Ok(QueueCommand::Thaw { ids }),
            "g" => Ok(QueueCommand::Giveup { ids }),
            o => Err(format!("-M{o} is not supported")),
        }
    }
}

/// Where the remote engine keeps its host retry hints, under the spool.
pub const HINTS_FILE: &str = "db/retry-hints";

/// `sluice queue hints`: each host in its retry wait, as Exim's `exinext`
/// shows it: the host, its last error, when it first and last failed, and
/// when it will be tried again.
fn hints(queue: &Queue, filter: Option<&str>, json: bool, out: &mut dyn Write) -> io::Result<i32> {
    let hints = crate::remote::hints::Hints::load(&queue.root().join(HINTS_FILE));
    let shown: Vec<_> = hints
        .all()
        .into_iter()
        .filter(|h| filter.is_none_or(|f| h.host.contains(f) || h.address.contains(f)))
        .collect();
    for h in &shown {
        if json {
            let v = serde_json::json!({
                "host": h.host,
                "address": h.address,
                "first_failure": h.first_failure,
                "last_failure": h.last_failure,
                "next_try": h.next_try,
                "error": h.error,
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "Transport: {} [{}] error: {}",
                h.host, h.address, h.error
            )?;
            writeln!(
                out,
                "  first failed: {}\n  last tried:   {}\n  next try at:  {}",
                crate::clock::log_stamp(h.first_failure as i64),
                crate::clock::log_stamp(h.last_failure as i64),
                crate::clock::log_stamp(h.next_try as i64)
            )?;
        }
    }
    if shown.is_empty() && !json {
        writeln!(
            out,
            "no retry hints{}",
            filter.map(|f| format!(" for {f}")).unwrap_or_default()
        )?;
    }
    Ok(0)
}

/// Runs a queue command, printing to stdout/stderr; returns the exit code.
pub fn run(cfg: &Config, cmd: &QueueCommand) -> i32 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let code = execute(cfg, cmd, &mut stdout.lock(), &mut stderr.lock());
    let _ = io::stdout().flush();
    code
}

/// [`run`] with the output streams given (for tests).
pub fn execute(cfg: &Config, cmd: &QueueCommand, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let queue = match crate::app::open_queue(cfg).map_err(|e| crate::app::OpenError(e).failure()) {
        Ok(q) => q,
        Err(f) => {
            let _ = writeln!(err, "sluice: {}", f.message);
            return f.code;
        }
    };
    let who = &crate::sys::process_caller().login;
    let logs = crate::log::Logs::new(cfg.log_dir());
    let r = match cmd {
        QueueCommand::List(a) => list(&queue, a, out, err),
        QueueCommand::Count => queue
            .count()
            .map_err(|e| e.to_string())
            .and_then(|n| writeln!(out, "{n}").map_err(|e| e.to_string()))
            .map(|()| 0),
        QueueCommand::Show(a) => show(&queue, &a.id, a.part(), out, err),
        QueueCommand::Remove { ids } => each(ids, err, |id| {
            queue.remove(&id)?;
            logs.main(&operator(id, Action::Removed, who));
            logs.main(&Event::completed(id));
            let _ = writeln!(out, "Message {id} has been removed");
            Ok(())
        }),
        QueueCommand::Freeze { ids } => each(ids, err, |id| {
            if queue.freeze(&id)? {
                logs.main(&operator(id, Action::Froze, who));
                let _ = writeln!(out, "Message {id} is now frozen");
            } else {
                let _ = writeln!(out, "Message {id} is already frozen");
            }
            Ok(())
        }),
        QueueCommand::Hints { filter, json } => {
            hints(&queue, filter.as_deref(), *json, out).map_err(|e| e.to_string())
        }
        // Needs the delivery agent: run by `cmd::giveup` (main.rs).
        QueueCommand::Giveup { ids } => {
            let _ = writeln!(err, "sluice: give up {ids:?}: not run here");
            Ok(1)
        }
        QueueCommand::Thaw { ids } => each(ids, err, |id| {
            if queue.thaw(&id)? {
                logs.main(&operator(id, Action::Thawed, who));
                let _ = writeln!(out, "Message {id} is no longer frozen");
            } else {
                let _ = writeln!(out, "Message {id} is not frozen");
            }
            Ok(())
        }),
    };
    match r {
        Ok(code) => code,
        Err(msg) => {
            let _ = writeln!(err, "sluice: {msg}");
            1
        }
    }
}

/// Applies `f` to every ID; reports each failure (`ID: message not found`)
/// and goes on. Exit 1 if any failed.
fn each(
    ids: &[String],
    err: &mut dyn Write,
    mut f: impl FnMut(MessageId) -> Result<(), Error>,
) -> Result<i32, String> {
    let mut code = 0;
    for text in ids {
        let r = MessageId::parse(text).and_then(&mut f);
        if let Err(e) = r {
            let msg = match e {
                Error::BadId { .. } => format!("{text}: message not found (not a message ID)"),
                Error::Locked { id, .. } => {
                    format!("{id}: spool file is locked (another process is handling this message)")
                }
                e => e.to_string(),
            };
            let _ = writeln!(err, "{msg}");
            code = 1;
        }
    }
    Ok(code)
}

fn show(
    queue: &Queue,
    text: &str,
    part: Part,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, String> {
    let not_found = |err: &mut dyn Write| {
        let _ = writeln!(err, "{text}: message not found");
        Ok(1)
    };
    let Ok(id) = MessageId::parse(text) else {
        return not_found(err);
    };
    let bytes = match part {
        Part::Log => match queue.msglog(&id) {
            Ok(Some(b)) => b,
            Ok(None) => {
                let _ = writeln!(err, "{id}: no message log");
                return Ok(1);
            }
            Err(Error::NotFound { .. }) => return not_found(err),
            Err(e) => return Err(e.to_string()),
        },
        Part::Headers => match queue.header_file_bytes(&id) {
            Ok(b) => b,
            Err(Error::NotFound { .. }) => return not_found(err),
            Err(e) => return Err(e.to_string()),
        },
        Part::Body => {
            let path = match queue.locate(&id) {
                Ok(l) => l.data(&id),
                Err(Error::NotFound { .. }) => return not_found(err),
                Err(e) => return Err(e.to_string()),
            };
            std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?
        }
    };
    out.write_all(&bytes).map_err(|e| e.to_string())?;
    Ok(0)
}

fn list(
    queue: &Queue,
    args: &ListArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, String> {
    let now = crate::clock::now().max(0) as u64;
    let mut code = 0;
    let mut first = true;
    for m in queue.messages(!args.unsorted).map_err(|e| e.to_string())? {
        match m {
            Ok(hf) => {
                let text = if args.json {
                    json_line(&hf)
                } else {
                    exim_entry(&hf, now)
                };
                out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
            }
            Err(e) => {
                let _ = writeln!(err, "sluice: skipped: {e}");
                code = 1;
            }
        }
        if first {
            // The first message is shown at once, however long the queue.
            let _ = out.flush();
            first = false;
        }
    }
    Ok(code)
}

/// Exim's time-on-queue column: minutes, then hours past 90 minutes, then
/// days past 72 hours, each rounded, right-aligned in three columns.
pub fn age(seconds: u64) -> String {
    let minutes = (seconds + 30) / 60;
    if minutes <= 90 {
        return format!("{minutes:>2}m");
    }
    let hours = (minutes + 30) / 60;
    if hours <= 72 {
        return format!("{hours:>2}h");
    }
    format!("{:>2}d", (hours + 12) / 24)
}

/// Exim's size column: five characters (`  123`, ` 2.9K`, `  12K`,
/// ` 1.5M`, `  25M`).
pub fn size(bytes: u64) -> String {
    const K: u64 = 1024;
    const M: u64 = 1024 * 1024;
    match bytes {
        0 => "     ".to_string(),
        b if b < K => format!("{b:>5}"),
        b if b < 10 * K => format!("{:>4.1}K", b as f64 / K as f64),
        b if b < M => format!("{:>4}K", (b + K / 2) / K),
        b if b < 10 * M => format!("{:>4.1}M", b as f64 / M as f64),
        b => format!("{:>4}M", (b + M / 2) / M),
    }
}

/// One message in Exim's `-bp` layout, with its trailing blank line.
pub fn exim_entry(hf: &HeaderFile, now: u64) -> String {
    let env = &hf.envelope;
    let mut s = format!(
        "{} {} {} ",
        age(now.saturating_sub(env.arrival.secs)),
        size(hf.size()),
        hf.id,
    );
    if env.sender_set_untrusted {
        s.push_str(&format!("({}) ", env.caller.login));
    }
    s.push_str(&format!("<{}>", env.sender));
    if env.frozen.is_some() {
        s.push_str(" *** frozen ***");
    }
    s.push('\n');
    for r in &env.recipients {
        if r.state.is_done() {
            s.push_str("        D ");
        } else {
            s.push_str("          ");
        }
        s.push_str(&r.address);
        s.push('\n');
    }
    s.push('\n');
    s
}

/// One message as a line of JSON, with the fields of Postfix's
/// `postqueue -j`: the recipients still to deliver, with the reason of the
/// last deferral. `queue_name`: "hold" when frozen, "deferred" after a
/// temporary failure, else "active".
pub fn json_line(hf: &HeaderFile) -> String {
    let env = &hf.envelope;
    let deferred = env
        .recipients
        .iter()
        .any(|r| matches!(r.state, RcptState::Deferred { .. }));
    let queue_name = if env.frozen.is_some() {
        "hold"
    } else if deferred {
        "deferred"
    } else {
        "active"
    };
    let recipients: Vec<serde_json::Value> = env
        .recipients
        .iter()
        .filter(|r| !r.state.is_done())
        .map(|r| {
            let mut o = serde_json::Map::new();
            o.insert("address".into(), r.address.clone().into());
            if let RcptState::Deferred { why, until, .. } = &r.state {
                o.insert("delay_reason".into(), why.text.clone().into());
                o.insert("next_try".into(), (*until).into());
                if let Some(host) = &why.remote {
                    o.insert("last_host".into(), host.clone().into());
                }
            }
            serde_json::Value::Object(o)
        })
        .collect();
    let v = serde_json::json!({
        "queue_name": queue_name,
        "queue_id": hf.id.to_string(),
        "arrival_time": env.arrival.secs,
        "message_size": hf.size(),
        "forced_expire": false,
        "sender": env.sender,
        "recipients": recipients,
    });
    format!("{v}\n")
}

/// `ID frozen by U`, `ID unfrozen by U`, `ID removed by U`, `ID cancelled
/// by U`, as Exim logs `-Mf`, `-Mt`, `-Mrm` and `-Mg`.
pub fn operator(id: MessageId, action: Action, who: &str) -> Event {
    Event::new(
        Some(id),
        Kind::Operator {
            action,
            by: who.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use spool::{Envelope, Timestamp};

    #[test]
    fn age_table() {
        let cases: &[(u64, &str)] = &[
            (0, " 0m"),
            (29, " 0m"),
            (30, " 1m"),
            (25 * 60, "25m"),
            (90 * 60, "90m"),
            (91 * 60, " 2h"),
            (72 * 3600, "72h"),
            (73 * 3600, " 3d"),
            (10 * 86400, "10d"),
            (400 * 86400, "400d"),
        ];
        for &(secs, want) in cases {
            assert_eq!(age(secs), want, "{secs}");
        }
    }

    #[test]
    fn size_table() {
        let cases: &[(u64, &str)] = &[
            (0, "     "),
            (1, "    1"),
            (1023, " 1023"),
            (1024, " 1.0K"),
            (2970, " 2.9K"),
            (10 * 1024, "  10K"),
            (1024 * 1023, "1023K"),
            (1024 * 1024 + 1, " 1.0M"),
            (25 * 1024 * 1024, "  25M"),
        ];
        for &(b, want) in cases {
            assert_eq!(size(b), want, "{b}");
        }
    }

    fn sample() -> HeaderFile {
        let mut env = Envelope::new(
            "alice@example.org",
            &["bob@example.net", "carol@example.com"],
        );
        env.arrival = Timestamp {
            secs: 1000,
            micros: 0,
        };
        env.body_size = Some(2000);
        env.recipients[1].state = RcptState::Delivered { at: 1200 };
        HeaderFile {
            id: MessageId::parse("0t5C6f-0000c8-00").unwrap(),
            envelope: env,
            header_size: 970,
            headers: Vec::new(),
        }
    }

    #[test]
    fn exim_layout() {
        let mut hf = sample();
        assert_eq!(
            exim_entry(&hf, 1000 + 25 * 60),
            "25m  2.9K 0t5C6f-0000c8-00 <alice@example.org>\n          bob@example.net\n        D carol@example.com\n\n"
        );
        hf.envelope.sender.clear();
        hf.envelope.frozen = Some(1100);
        assert!(
            exim_entry(&hf, 1000).starts_with(" 0m  2.9K 0t5C6f-0000c8-00 <> *** frozen ***\n")
        );
    }

    #[test]
    fn json_as_postqueue() {
        let mut hf = sample();
        hf.envelope.recipients[0].state = RcptState::Deferred {
            first: 1100,
            at: 1100,
            until: 2000,
            attempts: 1,
            why: spool::Diagnosis::text("451 4.3.0 try later"),
        };
        let v: serde_json::Value = serde_json::from_str(&json_line(&hf)).unwrap();
        assert_eq!(v["queue_name"], "deferred");
        assert_eq!(v["queue_id"], "0t5C6f-0000c8-00");
        assert_eq!(v["arrival_time"], 1000);
        assert_eq!(v["message_size"], 2970);
        assert_eq!(v["sender"], "alice@example.org");
        assert_eq!(
            v["recipients"],
            serde_json::json!([{"address": "bob@example.net", "delay_reason": "451 4.3.0 try later", "next_try": 2000}])
        );
        hf.envelope.frozen = Some(1);
        assert!(json_line(&hf).contains("\"queue_name\":\"hold\""));
    }

    #[test]
    fn exim_flags() {
        assert_eq!(
            QueueCommand::from_exim_b("p"),
            Some(QueueCommand::List(ListArgs::default()))
        );
        assert_eq!(QueueCommand::from_exim_b("pc"), Some(QueueCommand::Count));
        assert!(matches!(
            QueueCommand::from_exim_b("pr"),
            Some(QueueCommand::List(ListArgs { unsorted: true, .. }))
        ));
        assert_eq!(QueueCommand::from_exim_b("d"), None);
        let id = "1tixMn-00000000C5j-1wRa".to_string();
        match QueueCommand::from_exim_m("vh", vec![id.clone()]).unwrap() {
            QueueCommand::Show(a) => {
                assert_eq!((a.id.as_str(), a.part()), (id.as_str(), Part::Headers))
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            QueueCommand::from_exim_m("rm", vec![id.clone(), id.clone()]).unwrap(),
            QueueCommand::Remove {
                ids: vec![id.clone(), id.clone()]
            }
        );
        assert!(QueueCommand::from_exim_m("vl", vec![]).is_err());
        assert!(QueueCommand::from_exim_m("vl", vec![id.clone(), id]).is_err());
        assert!(QueueCommand::from_exim_m("x", vec!["a".into()]).is_err());
    }
}
