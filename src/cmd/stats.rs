//! `sluice stats [LOG...]`: mail statistics from main logs, eximstats's
//! report (docs/stats.md).
//!
//! | exit | when |
//! |------|------|
//! | 0 | the report was written |
//! | 64 | a bad option value (`--tz`, `--from`, `--to`) |
//! | 65 | `--merge` input that is not a report written by `--json` |
//! | 66 | an input cannot be read |
//! | 73 | the `--html` file cannot be written |

use std::io::Write;
use std::path::PathBuf;

use mailstore::error::sysexits;

use crate::config::Config;
use crate::stats::read::{self, Input};
use crate::stats::report::Report;
use crate::stats::zone::{self, Clock, Zone};
use crate::stats::{Options, html, text};

/// `sluice stats` options.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StatsArgs {
    /// Write the report as JSON (the form --merge reads back).
    #[arg(long)]
    pub json: bool,
    /// Also write one self-contained HTML page with charts to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// The zone of lines without an offset, and of the report: local, UTC, +hhmm, -hhmm.
    #[arg(long, value_name = "ZONE", default_value = "local")]
    pub tz: String,
    /// Count only lines at or after this time (YYYY-MM-DD[ HH:MM[:SS]], in --tz unless it ends in +hhmm).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Count only lines before this time.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// The inputs are JSON reports (of several hosts or periods): add them up.
    #[arg(long)]
    pub merge: bool,
    /// Worker threads (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Main logs, plain or gzipped, in any order; - is standard input (default: the main log).
    #[arg(value_name = "LOG")]
    pub files: Vec<PathBuf>,
}

/// `YYYY-MM-DD[ HH:MM[:SS]]` (or with `T`), optionally followed by
/// ` +hhmm`/`-hhmm` or `Z`, as an instant.
pub fn parse_time(text: &str, zone: Zone) -> Result<i64, String> {
    let bad = || format!("{text:?} is no time (say YYYY-MM-DD[ HH:MM[:SS]][ +hhmm])");
    let t = text.trim();
    let (t, written) = if let Some(rest) = t.strip_suffix('Z') {
        (rest.trim_end(), Some(0))
    } else {
        match t.rsplit_once([' ', '+', '-']) {
            // An offset at the end: `... +0100` or `...+0100`.
            Some((head, _)) if t.len() > 10 => {
                let tail = &t[head.len()..];
                match zone::offset(tail.trim_start()) {
                    Some(o) => (head.trim_end(), Some(o)),
                    None => (t, None),
                }
            }
            _ => (t, None),
        }
    };
    let t = t.replacen('T', " ", 1);
    let full = match t.len() {
        10 => format!("{t} 00:00:00"),
        16 => format!("{t}:00"),
        19 => t.to_string(),
        _ => return Err(bad()),
    };
    let civil = zone::civil_seconds(&full).ok_or_else(bad)?;
    Ok(Clock::new(zone).instant(civil, written))
}

/// Runs the command; returns the exit code.
pub fn run(cfg: &Config, args: &StatsArgs) -> i32 {
    let zone = match Zone::parse(&args.tz) {
        Ok(z) => z,
        Err(e) => return usage(&format!("--tz: {e}")),
    };
    let mut opts = Options {
        zone,
        from: None,
        to: None,
    };
    for (name, value, slot) in [
        ("--from", &args.from, &mut opts.from),
        ("--to", &args.to, &mut opts.to),
    ] {
        if let Some(v) = value {
            match parse_time(v, zone) {
                Ok(t) => *slot = Some(t),
                Err(e) => return usage(&format!("{name}: {e}")),
            }
        }
    }
    let files: Vec<PathBuf> = if args.files.is_empty() {
        vec![cfg.log_dir().join("mainlog")]
    } else {
        args.files.clone()
    };
    let inputs: Vec<Input> = files.iter().map(|f| Input::from_arg(f)).collect();
    let report = if args.merge {
        match merge(&inputs) {
            Ok(r) => r,
            Err((code, msg)) => {
                eprintln!("sluice stats: {msg}");
                return code;
            }
        }
    } else {
        let threads = args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        });
        match read::tally(&read::ordered(&inputs), opts, threads) {
            Ok(mut t) => {
                let report = t.finish();
                // The process ends soon: freeing a table of a million keys
                // one key at a time would cost more than the report.
                std::mem::forget(t);
                report
            }
            Err(e) => {
                eprintln!("sluice stats: {e}");
                return sysexits::NOINPUT;
            }
        }
    };
    if let Some(path) = &args.html
        && let Err(e) = std::fs::write(path, html::render(&report))
    {
        eprintln!("sluice stats: {}: {e}", path.display());
        return sysexits::CANTCREAT;
    }
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    // Written as it is made: a relay-heavy report is as long as the log
    // has messages, and need not be held twice. A closed pipe (`sluice
    // stats | head`) is not an error of ours.
    if args.json {
        if let Err(e) = serde_json::to_writer_pretty(&mut stdout, &report)
            && !e.is_io()
        {
            eprintln!("sluice stats: {e}");
            return sysexits::SOFTWARE;
        }
        let _ = stdout.write_all(b"\n");
    } else if args.html.is_none() {
        let _ = text::write(&report, &mut stdout);
    }
    let _ = stdout.flush();
    sysexits::OK
}

fn usage(msg: &str) -> i32 {
    eprintln!("sluice stats: {msg}");
    sysexits::USAGE
}

/// The sum of the JSON reports in `inputs`.
fn merge(inputs: &[Input]) -> Result<Report, (i32, String)> {
    let mut total: Option<Report> = None;
    for input in inputs {
        let mut text = String::new();
        input
            .open()
            .and_then(|mut r| r.read_to_string(&mut text))
            .map_err(|e| (sysexits::NOINPUT, format!("{}: {e}", input.name())))?;
        let r: Report = serde_json::from_str(&text).map_err(|e| {
            (
                sysexits::DATAERR,
                format!("{}: not a report of sluice stats --json: {e}", input.name()),
            )
        })?;
        total = Some(match total {
            Some(t) => t.merge(&r),
            None => r,
        });
    }
    Ok(total.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_the_zone_or_with_their_offset() {
        let base = zone::civil_seconds("2026-12-03 00:00:00").unwrap();
        let utc = Zone::Fixed(0);
        assert_eq!(parse_time("2026-12-03", utc), Ok(base));
        assert_eq!(
            parse_time("2026-12-03 08:30", utc),
            Ok(base + 8 * 3600 + 1800)
        );
        assert_eq!(parse_time("2026-12-03T08:30:05", utc), Ok(base + 30605));
        assert_eq!(
            parse_time("2026-12-03 08:00:00 +0100", utc),
            Ok(base + 7 * 3600)
        );
        assert_eq!(
            parse_time("2026-12-03 08:00:00Z", Zone::Fixed(3600)),
            Ok(base + 8 * 3600)
        );
        assert_eq!(
            parse_time("2026-12-03 08:00", Zone::Fixed(-3600)),
            Ok(base + 9 * 3600)
        );
        assert!(parse_time("yesterday", utc).is_err());
        assert!(parse_time("2026-12-03 8", utc).is_err());
    }
}
