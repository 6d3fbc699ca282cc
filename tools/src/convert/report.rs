//! What a run tells its user: a progress bar on a terminal, a summary
//! table (or JSON with `--json`), and an exit code.
//!
//! Exit codes (sysexits.h, the worst that happened wins):
//!
//! | code | when                                                          |
//! |------|---------------------------------------------------------------|
//! | 0    | every source converted, every message durable (and verified)  |
//! | 70   | `--verify` found a written message that differs from its source |
//! | 75   | something temporary: a lock not had in time, a write or sync that failed (run again) |
//! | 65   | a file that is not an mbox was passed over                    |
//! | 66   | an input could not be read                                    |
//! | 73   | DEST could not be prepared                                    |

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use durable::CommitStats;
use mailstore::error::sysexits;

use super::discover::Skipped;
use super::run::Options;

/// A message that was not converted, or differs after conversion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// 1-based message number in the source (0: not known).
    pub message: u64,
    /// Byte offset of its `From_` line in the source.
    pub offset: u64,
    pub why: String,
    /// Found by `--verify` (else: not written).
    pub mismatch: bool,
}

/// One source's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceReport {
    pub path: PathBuf,
    pub maildir: PathBuf,
    pub variant: Option<String>,
    pub messages_in_source: u64,
    /// Written this run (in a dry run: would be written).
    pub converted: u64,
    /// Bytes written (messages as stored, bookkeeping headers stripped).
    pub bytes: u64,
    /// Already in the Maildir from an earlier run: not written again.
    pub already_present: u64,
    /// UW-IMAP pseudo messages passed over.
    pub internal: u64,
    /// Detection decisions, warnings and lock notices.
    pub notes: Vec<String>,
    pub failures: Vec<Failure>,
    /// Why the whole source was passed over.
    pub error: Option<String>,
}

/// The outcome of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub dest: PathBuf,
    pub dry_run: bool,
    pub durability: String,
    pub verify: bool,
    pub jobs: usize,
    pub sources: Vec<SourceReport>,
    pub skipped: Vec<Skipped>,
    pub notes: Vec<String>,
    /// Errors writing side files or the manifest.
    pub finish_errors: u64,
    /// A problem that stopped the run before it began.
    pub fatal: Option<String>,
    pub seconds: f64,
    pub total_input_bytes: u64,
    pub messages: u64,
    pub bytes: u64,
    pub already_present: u64,
    pub mismatches: u64,
    pub failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitStatsReport>,
    pub exit_code: i32,
}

/// Flushes made (to show what group commit saved).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CommitStatsReport {
    pub batches: u64,
    pub data_syncs: u64,
    pub dir_syncs: u64,
}

impl From<CommitStats> for CommitStatsReport {
    fn from(s: CommitStats) -> Self {
        CommitStatsReport {
            batches: s.batches,
            data_syncs: s.data_syncs,
            dir_syncs: s.dir_syncs,
        }
    }
}

impl Report {
    pub fn new(opts: &Options) -> Report {
        Report {
            dest: opts.dest.clone(),
            dry_run: opts.dry_run,
            durability: opts.durability.as_str().into(),
            verify: opts.verify,
            jobs: opts.jobs,
            sources: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
            finish_errors: 0,
            fatal: None,
            seconds: 0.0,
            total_input_bytes: 0,
            messages: 0,
            bytes: 0,
            already_present: 0,
            mismatches: 0,
            failed: 0,
            commit: None,
            exit_code: 0,
        }
    }

    pub fn set_commit(&mut self, s: CommitStats) {
        self.commit = Some(s.into());
    }

    /// Adds up the totals and decides the exit code.
    pub fn finalize(&mut self) {
        self.messages = self.sources.iter().map(|s| s.converted).sum();
        self.bytes = self.sources.iter().map(|s| s.bytes).sum();
        self.already_present = self.sources.iter().map(|s| s.already_present).sum();
        let all = self.sources.iter().flat_map(|s| &s.failures);
        self.mismatches = all.clone().filter(|f| f.mismatch).count() as u64;
        self.failed = all.filter(|f| !f.mismatch).count() as u64;
        self.exit_code = self.code();
    }

    fn code(&self) -> i32 {
        if self.fatal.is_some() {
            return sysexits::CANTCREAT;
        }
        if self.mismatches > 0 {
            return sysexits::SOFTWARE;
        }
        let temporary = self.failed > 0
            || self.finish_errors > 0
            || self.sources.iter().any(|s| {
                s.error
                    .as_deref()
                    .is_some_and(|e| e.ends_with("(temporary)"))
            });
        if temporary {
            return sysexits::TEMPFAIL;
        }
        if self.sources.iter().any(|s| s.error.is_some()) {
            return sysexits::DATAERR;
        }
        if self.skipped.iter().any(|s| s.error) {
            return sysexits::NOINPUT;
        }
        sysexits::OK
    }

    /// The summary table and every problem, for a person.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        if let Some(f) = &self.fatal {
            let _ = writeln!(o, "convert2maildir: {f}");
            return o;
        }
        let _ = writeln!(
            o,
            "{:<40} {:<8} {:>9} {:>9} {:>9} {:>12}  maildir",
            "source", "format", "messages", "written", "present", "bytes"
        );
        for s in &self.sources {
            let _ = writeln!(
                o,
                "{:<40} {:<8} {:>9} {:>9} {:>9} {:>12}  {}",
                shorten(&s.path.display().to_string(), 40),
                s.variant.as_deref().unwrap_or("-"),
                s.messages_in_source,
                s.converted,
                s.already_present,
                s.bytes,
                s.maildir.display()
            );
        }
        for s in &self.sources {
            if let Some(e) = &s.error {
                let _ = writeln!(o, "skipped {}: {e}", s.path.display());
            }
            for n in &s.notes {
                let _ = writeln!(o, "note {}: {n}", s.path.display());
            }
            for f in &s.failures {
                let _ = writeln!(
                    o,
                    "{} {}: message {} (byte {}): {}",
                    if f.mismatch { "MISMATCH" } else { "FAILED" },
                    s.path.display(),
                    f.message,
                    f.offset,
                    f.why
                );
            }
        }
        for s in &self.skipped {
            let _ = writeln!(
                o,
                "{} {}: {}",
                if s.error { "skipped" } else { "passed over" },
                s.path.display(),
                s.why
            );
        }
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        let secs = self.seconds.max(1e-9);
        let verb = if self.dry_run { "would write" } else { "wrote" };
        let _ = writeln!(
            o,
            "{verb} {} messages, {} bytes, {} already present; {} {}, {} failed; {:.2} s, {:.0} messages/s, {:.1} MB/s; durability {}{}",
            self.messages,
            self.bytes,
            self.already_present,
            self.mismatches,
            if self.verify {
                "mismatches"
            } else {
                "mismatches (not verified)"
            },
            self.failed,
            self.seconds,
            self.messages as f64 / secs,
            self.total_input_bytes as f64 / secs / 1e6,
            self.durability,
            if self.durability == "none" {
                " (NOT crash-safe: benchmark only)"
            } else {
                ""
            }
        );
        o
    }
}

fn shorten(s: &str, n: usize) -> String {
    let len = s.chars().count();
    if len <= n {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(len - (n - 1)).collect();
        format!("…{tail}")
    }
}

/// The progress bar: bytes of input read, messages, messages/s, ETA.
pub struct Bar {
    bar: Option<indicatif::ProgressBar>,
    stop: Option<(crossbeam::channel::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Bar {
    /// Starts a bar on stderr when `show` (the caller checks for a
    /// terminal), fed from `progress`.
    pub(crate) fn start(
        show: bool,
        total: u64,
        progress: Arc<super::run::ProgressCounters>,
    ) -> Bar {
        if !show {
            return Bar {
                bar: None,
                stop: None,
            };
        }
        let bar = indicatif::ProgressBar::new(total);
        let style = indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {msg} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        let (tx, rx) = crossbeam::channel::bounded::<()>(0);
        let b = bar.clone();
        let started = std::time::Instant::now();
        let t = std::thread::spawn(move || {
            loop {
                let msgs = progress.messages.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                b.set_position(progress.bytes.load(Ordering::Relaxed));
                b.set_message(format!("{msgs} messages, {:.0} msg/s", msgs as f64 / secs));
                if rx.recv_timeout(Duration::from_millis(200)).is_ok()
                    || matches!(
                        rx.try_recv(),
                        Err(crossbeam::channel::TryRecvError::Disconnected)
                    )
                {
                    break;
                }
            }
        });
        Bar {
            bar: Some(bar),
            stop: Some((tx, t)),
        }
    }

    pub fn finish(self) {
        if let Some((tx, t)) = self.stop {
            drop(tx);
            let _ = t.join();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(converted: u64, failures: Vec<Failure>, error: Option<&str>) -> SourceReport {
        SourceReport {
            path: "/var/mail/a".into(),
            maildir: "/m".into(),
            variant: Some("mboxrd".into()),
            messages_in_source: converted,
            converted,
            bytes: 10 * converted,
            already_present: 0,
            internal: 0,
            notes: vec![],
            failures,
            error: error.map(String::from),
        }
    }

    fn failure(mismatch: bool) -> Failure {
        Failure {
            message: 3,
            offset: 120,
            why: "x".into(),
            mismatch,
        }
    }

    #[test]
    fn exit_codes() {
        let opts = Options {
            sources: vec![],
            users: None,
            dest: "/d".into(),
            format: None,
            keep_status_headers: false,
            from_zone: mailstore::mbox::Zone::Local,
            jobs: 1,
            durability: durable::Durability::Batch,
            sync: super::super::run::SyncMethod::Fdatasync,
            locks: mailstore::lock::LockOptions::reader(),
            verify: true,
            dry_run: false,
            host: "h".into(),
            progress: false,
            window: None,
        };
        let cases: Vec<(Vec<SourceReport>, bool, i32)> = vec![
            (vec![src(2, vec![], None)], false, 0),
            (
                vec![
                    src(2, vec![failure(true)], None),
                    src(1, vec![failure(false)], None),
                ],
                false,
                70,
            ),
            (vec![src(2, vec![failure(false)], None)], false, 75),
            (
                vec![src(0, vec![], Some("lock not obtained (temporary)"))],
                false,
                75,
            ),
            (vec![src(0, vec![], Some("not an mbox"))], false, 65),
            (vec![src(1, vec![], None)], true, 66),
        ];
        for (sources, skipped_error, code) in cases {
            let mut r = Report::new(&opts);
            r.sources = sources;
            if skipped_error {
                r.skipped.push(Skipped {
                    path: "/x".into(),
                    why: "cannot read".into(),
                    error: true,
                });
            }
            r.finalize();
            assert_eq!(r.exit_code, code, "{}", r.render_text());
        }
        let mut r = Report::new(&opts);
        r.sources = vec![src(2, vec![failure(true)], None)];
        r.finalize();
        let text = r.render_text();
        assert!(
            text.contains("MISMATCH /var/mail/a: message 3 (byte 120): x"),
            "{text}"
        );
        assert!(text.contains("wrote 2 messages, 20 bytes"), "{text}");
    }
}
