//! `sluice log check [LOG...]`: reads Exim-format logs (Sluice's and
//! Exim's, both message ID forms) with the log parser, line for line, and
//! says what they hold: how many arrivals, deliveries, deferrals, failures,
//! completions and rejections, and which lines it could not read (with
//! their numbers). The same parser is what `sluice stats` reads logs with.
//!
//! | exit | when |
//! |------|------|
//! | 0 | every line read as an event (rejectlog header blocks belong to their entry) |
//! | 1 | some line did not (each named on stderr, up to 20 per file) |
//! | 66 | a file cannot be read |

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use mailstore::error::sysexits;

use crate::config::Config;
use crate::log::Kind;
use crate::log::parse;

/// How many unreadable lines are named per file.
const SHOWN: usize = 20;

/// What one file holds.
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    file: PathBuf,
    lines: u64,
    events: u64,
    /// Events by kind: `<=`, `=>`, `==`, `**`, `Completed`, `rejected`, ...
    kinds: BTreeMap<&'static str, u64>,
    /// Lines that re-format to other bytes than were read (a line Sluice
    /// wrote must come back byte for byte; Exim's may carry fields Sluice
    /// does not model).
    not_round_trip: u64,
    /// Line numbers of lines that are no log entry and follow none.
    unreadable: Vec<u64>,
}

fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::Arrival(_) => "<=",
        Kind::Delivered(_) => "=>",
        Kind::Deferred(_) => "==",
        Kind::Failed(_) => "**",
        Kind::Completed(_) => "Completed",
        Kind::Frozen { .. } => "frozen",
        Kind::Operator { .. } => "operator",
        Kind::Rejected(_) => "rejected",
        Kind::Other(_) => "other",
    }
}

/// Reads one log's text.
fn summarize(file: &Path, text: &str) -> Summary {
    let mut s = Summary {
        file: file.to_path_buf(),
        ..Summary::default()
    };
    let lines: Vec<&str> = text.lines().collect();
    let entries = parse::entries(text);
    // Lines before the first entry belong to none.
    let first = entries.first().map_or(lines.len() + 1, |e| e.number);
    s.unreadable.extend((1..first).map(|n| n as u64));
    for e in &entries {
        s.events += 1;
        *s.kinds.entry(kind_name(&e.line.event.kind)).or_default() += 1;
        let written = lines.get(e.number - 1).copied().unwrap_or("");
        if e.line.to_string() != written {
            s.not_round_trip += 1;
        }
        // Only a rejection carries lines without a stamp (rejectlog's
        // envelope and headers); anywhere else they are not log lines.
        if !matches!(e.line.event.kind, Kind::Rejected(_)) {
            s.unreadable
                .extend((1..=e.continuation.len()).map(|k| (e.number + k) as u64));
        }
    }
    s.lines = lines.len() as u64;
    s
}

/// Runs the command; returns the exit code.
pub fn run(cfg: &Config, files: &[PathBuf], json: bool) -> i32 {
    let files: Vec<PathBuf> = if files.is_empty() {
        vec![cfg.log_dir().join("mainlog")]
    } else {
        files.to_vec()
    };
    let mut code = sysexits::OK;
    let mut out = std::io::stdout().lock();
    for f in &files {
        let text = match std::fs::read(f) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                eprintln!("sluice log check: {}: {e}", f.display());
                code = sysexits::NOINPUT;
                continue;
            }
        };
        let s = summarize(f, &text);
        for n in s.unreadable.iter().take(SHOWN) {
            eprintln!("{}: line {n}: not a log line", f.display());
        }
        if !s.unreadable.is_empty() && code == sysexits::OK {
            code = 1;
        }
        let _ = if json {
            writeln!(
                out,
                "{}",
                serde_json::to_string(&s).unwrap_or_else(|_| "{}".into())
            )
        } else {
            let kinds: Vec<String> = s.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            writeln!(
                out,
                "{}: {} lines, {} events ({}), {} not re-formatted byte for byte, {} unreadable",
                f.display(),
                s.lines,
                s.events,
                kinds.join(", "),
                s.not_round_trip,
                s.unreadable.len()
            )
        };
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_kinds_and_names_unreadable_lines() {
        let text = "\
2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa <= a@x.example U=root P=local S=300
2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa => b <b@x.example> R=r T=t
2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa Completed
not a log line
";
        let s = summarize(Path::new("mainlog"), text);
        assert_eq!((s.lines, s.events), (4, 3));
        assert_eq!(s.kinds["<="], 1);
        assert_eq!(s.kinds["=>"], 1);
        assert_eq!(s.kinds["Completed"], 1);
        assert_eq!(s.not_round_trip, 0);
        assert_eq!(s.unreadable, vec![4]);
        // A rejectlog entry: the rejection, then its envelope and headers.
        let text = "\
2026-11-25 13:42:27 H=[192.0.2.1] F=<a@x.example> rejected RCPT <b@y.example>: relay not permitted
Envelope-from: <a@x.example>
Envelope-to: <b@y.example>
";
        let s = summarize(Path::new("rejectlog"), text);
        assert_eq!((s.events, s.kinds["rejected"]), (1, 1));
        assert!(s.unreadable.is_empty(), "{:?}", s.unreadable);
    }
}
