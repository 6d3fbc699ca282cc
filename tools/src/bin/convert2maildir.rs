//! `convert2maildir [OPTIONS] SRC... DEST`: mbox → Maildir, in parallel,
//! verified, resumable, while mail keeps arriving. See docs/CONVERT.md.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use durable::Durability;
use mailstore::error::sysexits;
use mailstore::lock::LockOptions;
use mailstore::mbox::Variant;
use sluice_tools::convert::{self, Options, SyncMethod, date};

#[derive(Debug, Parser)]
#[command(
    name = "convert2maildir",
    version,
    about = "Convert mbox files to Maildir: parallel, verified, resumable, online",
    after_help = "One mbox file: DEST is its Maildir. A directory (a user's mail/): DEST is a \
                  Maildir++ root (inbox → DEST, Sent → DEST/.Sent, Lists/rust → DEST/.Lists.rust). \
                  --users DIR: each file DIR/<user> → DEST/<user>/Maildir.\n\
                  Re-running converts only what is missing. Exit codes: 0 ok, 65 a file is not an \
                  mbox, 66 an input is unreadable, 70 verification found a difference, 75 temporary \
                  failure (run again), 73 DEST unusable."
)]
struct Args {
    /// mbox files or directories of them, then DEST.
    #[arg(value_name = "SRC... DEST", required = true)]
    paths: Vec<PathBuf>,

    /// Treat each file of DIR as one user's spool (/var/mail/alice →
    /// DEST/alice/Maildir); then give only DEST.
    #[arg(long, value_name = "DIR")]
    users: Option<PathBuf>,

    /// mbox variant: auto detects per file and reports what it decided.
    #[arg(long, default_value = "auto", value_parser = ["auto", "mboxo", "mboxrd", "mboxcl", "mboxcl2"])]
    format: String,

    /// Keep Status, X-Status, X-UID, X-IMAP, X-IMAPbase, X-Keywords and
    /// Content-Length in the written messages (stripped by default).
    #[arg(long)]
    keep_status_headers: bool,

    /// Zone of From_ line dates that name none: local, UTC or ±HHMM.
    #[arg(long, default_value = "local", value_parser = date::parse_zone)]
    from_tz: mailstore::mbox::Zone,

    /// Worker threads (default: all cores).
    #[arg(short, long)]
    jobs: Option<usize>,

    /// strict: flush each message; batch: share flushes (crash-safe too);
    /// none: no flush (benchmarks only, not crash-safe).
    #[arg(long, default_value = "batch")]
    durability: Durability,

    /// How a batch is flushed: fdatasync per file, or one syncfs of the
    /// destination filesystem (only when it holds nothing else busy).
    #[arg(long, default_value = "fdatasync")]
    sync: SyncMethod,

    /// Locks taken on each mbox while it is read, in order (dotlock, fcntl,
    /// flock). Use the order your delivery agent uses.
    #[arg(long, default_value = "dotlock,fcntl", value_name = "LIST")]
    locks: String,

    /// Seconds to wait for the locks before passing the mbox over (temporary).
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    lock_timeout: u64,

    /// Judge a dotlock only by its age (5 minutes), never by the pid in it:
    /// for lock holders in another PID namespace (a container sharing the
    /// mail volume), whose pids look dead from here.
    #[arg(long)]
    no_dotlock_pid_check: bool,

    /// Take no lock and read the file with read() instead of mapping it
    /// (only for mboxes nothing writes to any more).
    #[arg(long)]
    no_lock: bool,

    /// Re-read every written message and compare it with its source (default).
    #[arg(long, overrides_with = "no_verify")]
    verify: bool,

    /// Do not re-read written messages.
    #[arg(long, overrides_with = "verify")]
    no_verify: bool,

    /// Parse, detect and report; write nothing.
    #[arg(long)]
    dry_run: bool,

    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// No progress bar and no summary unless something went wrong.
    #[arg(short, long)]
    quiet: bool,

    /// Host name used in Maildir file names (default: this host's).
    #[arg(long)]
    host: Option<String>,

    /// Bytes of mbox mapped per chunk (K and M suffixes; default: 8M, less
    /// with many jobs). Memory use is about 3 × jobs + 1 windows; smaller
    /// windows only for tests and tight memory (docs/CONVERT.md).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, hide = true)]
    window: Option<usize>,
}

/// `8388608`, `512K`, `8M`: a window size, at least 1 byte.
fn parse_size(s: &str) -> Result<usize, String> {
    let (digits, unit) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?}: expected a size in bytes, with K or M if wished"))
}

fn main() {
    let args = Args::parse();
    std::process::exit(match options(args) {
        Ok((opts, json, quiet)) => {
            let report = convert::run(opts);
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("convert2maildir: {e}"),
                }
            } else if !quiet || report.exit_code != 0 {
                print!("{}", report.render_text());
            }
            report.exit_code
        }
        Err(msg) => {
            eprintln!("convert2maildir: {msg}");
            sysexits::USAGE
        }
    })
}

fn options(a: Args) -> Result<(Options, bool, bool), String> {
    let mut paths = a.paths;
    let Some(dest) = paths.pop() else {
        return Err("no DEST given".into());
    };
    match (&a.users, paths.is_empty()) {
        (Some(_), false) => return Err("with --users, give only DEST".into()),
        (None, true) => return Err("give at least one SRC and a DEST".into()),
        _ => {}
    }
    let format = match a.format.as_str() {
        "auto" => None,
        v => Some(v.parse::<Variant>()?),
    };
    let locks = if a.no_lock {
        LockOptions {
            methods: Vec::new(),
            ..LockOptions::reader()
        }
    } else {
        LockOptions {
            methods: LockOptions::parse_methods(&a.locks)?,
            timeout: Duration::from_secs(a.lock_timeout),
            pid_check: !a.no_dotlock_pid_check,
            ..LockOptions::reader()
        }
    };
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let host = match a.host {
        Some(h) => h,
        None => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
    };
    let progress = !a.quiet && !a.json && std::io::stderr().is_terminal();
    Ok((
        Options {
            sources: paths,
            users: a.users,
            dest,
            format,
            keep_status_headers: a.keep_status_headers,
            from_zone: a.from_tz,
            jobs,
            durability: a.durability,
            sync: a.sync,
            locks,
            verify: !a.no_verify || a.verify,
            dry_run: a.dry_run,
            host,
            progress,
            window: a.window,
        },
        a.json,
        a.quiet,
    ))
}
