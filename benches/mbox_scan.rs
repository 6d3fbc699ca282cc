//! Scanning a large mbox: splitting it into messages (separator search,
//! `From_` line parsing, message boundaries), variant detection, and the
//! split-into-chunks path a parallel converter takes.
//!
//! The mbox (~256 MiB) is generated once per run by a small deterministic
//! generator below: realistic header blocks, text bodies with quoted
//! `>From ` / `>>From ` lines and unquoted `From ` lines that are not
//! separators, a share of large base64-like attachments. It is memory-
//! mapped under a read lock, as `convert2maildir` reads, and read once
//! before measuring, so the figures are for a warm page cache.
//!
//! Run: `cargo bench --bench mbox_scan` (criterion reports bytes per
//! second). Environment:
//! - `SLUICE_BENCH_MBOX=/path/file.mbox`: scan that file instead (e.g. one
//!   made by `python3 gen_mbox.py -n 100000 --format mboxrd -o ...`);
//! - `SLUICE_BENCH_MBOX_MIB=N`: size of the generated mbox (default 256);
//! - `SLUICE_BENCH_DIR`: where to generate it (default `target/bench-tmp`).

use std::fs;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailstore::lock::LockOptions;
use mailstore::mbox::{self, Mbox, Reader, Variant, Zone};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "was",
    "for",
    "on",
    "are",
    "with",
    "as",
    "mailbox",
    "delivery",
    "storage",
    "spool",
    "queue",
    "rename",
    "fsync",
    "directory",
    "server",
    "release",
    "deadline",
    "schedule",
    "attached",
    "please",
    "review",
    "thanks",
    "regards",
    "kernel",
];

const SPECIAL: &[&str] = &[
    ">From the archives: this line was quoted in the original.",
    ">>From a doubly quoted original line.",
    "From", // a bare word: not a From line at all
];

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Writes about `target` bytes of mboxrd.
fn generate(out: &mut impl Write, target: u64) -> std::io::Result<u64> {
    let mut rng = Rng(0x5EED_0F5A_1CE0_0001);
    let mut total = 0u64;
    let mut n = 0u64;
    let mut msg = Vec::with_capacity(2 << 20);
    while total < target {
        n += 1;
        msg.clear();
        let day = (n / 97) % 28 + 1;
        let (h, m, s) = (rng.below(24), rng.below(60), rng.below(60));
        let from = format!(
            "From user{}@example.org {} {} {:2} {:02}:{:02}:{:02} 2021\n",
            rng.below(500),
            DAYS[(day % 7) as usize],
            MONTHS[((n / 2700) % 12) as usize],
            day,
            h,
            m,
            s
        );
        msg.extend_from_slice(from.as_bytes());
        for i in 0..(8 + rng.below(12)) {
            let hdr = match i {
                0 => format!(
                    "Received: from mx{}.example.net by mail.example.com with ESMTPS id {:016x}",
                    rng.below(9),
                    rng.next()
                ),
                1 => format!("Message-ID: <{n}.{:08x}@gen.example>", rng.next() as u32),
                2 => format!(
                    "Subject: message {n} about {}",
                    WORDS[rng.below(WORDS.len() as u64) as usize]
                ),
                3 if rng.below(10) < 6 => "Status: RO".to_string(),
                4 if rng.below(10) < 2 => "X-Status: A".to_string(),
                _ => format!("X-Header-{i}: {:x}", rng.next()),
            };
            msg.extend_from_slice(hdr.as_bytes());
            msg.push(b'\n');
        }
        msg.push(b'\n');
        // Log-normal-ish sizes: mostly a few KiB, 1% large attachments.
        let size = if rng.below(100) == 0 {
            256 * 1024 + rng.below(1024 * 1024)
        } else {
            600 + rng.below(4096) * rng.below(4) + rng.below(2048)
        };
        let body_start = msg.len();
        while ((msg.len() - body_start) as u64) < size {
            if size > 200_000 {
                // base64-looking attachment lines
                for _ in 0..76 {
                    msg.push(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                            [rng.below(64) as usize],
                    );
                }
            } else if rng.below(60) == 0 {
                let special = SPECIAL[rng.below(SPECIAL.len() as u64) as usize];
                // mboxrd quoting of the original line
                if special.starts_with('>') {
                    msg.push(b'>');
                }
                msg.extend_from_slice(special.as_bytes());
            } else if rng.below(80) == 0 {
                // an original "From " line, quoted by the writer
                msg.extend_from_slice(b">From here on, all deliveries go through the new spool.");
            } else {
                let words = 6 + rng.below(8);
                for w in 0..words {
                    if w > 0 {
                        msg.push(b' ');
                    }
                    msg.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
                }
            }
            msg.push(b'\n');
            if rng.below(12) == 0 {
                msg.push(b'\n');
                if rng.below(20) == 0 {
                    // after a blank line, but no date: not a separator
                    msg.extend_from_slice(b"From the desk of the director:\n");
                }
            }
        }
        msg.push(b'\n'); // the blank line before the next From_ line
        out.write_all(&msg)?;
        total += msg.len() as u64;
    }
    Ok(total)
}

fn bench_file() -> (PathBuf, Option<tempfile::TempDir>) {
    if let Some(p) = std::env::var_os("SLUICE_BENCH_MBOX") {
        return (PathBuf::from(p), None);
    }
    let mib: u64 = std::env::var("SLUICE_BENCH_MBOX_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let base = std::env::var_os("SLUICE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-tmp"));
    fs::create_dir_all(&base).expect("bench directory");
    let dir = tempfile::tempdir_in(base).expect("temporary directory");
    let path = dir.path().join("bench.mbox");
    let mut out =
        BufWriter::with_capacity(1 << 20, fs::File::create(&path).expect("create bench mbox"));
    generate(&mut out, mib << 20).expect("write bench mbox");
    out.flush().expect("write bench mbox");
    (path, Some(dir))
}

/// What a converter does per message without writing anything: the
/// boundaries, the From_ line and its date.
fn scan(data: &[u8], variant: Variant, range: std::ops::Range<usize>) -> (usize, i64) {
    let reader = Reader::chunk(data, range, variant).expect("mbox");
    let mut n = 0;
    let mut dates = 0i64;
    for m in reader {
        n += 1;
        dates = dates.wrapping_add(m.from_line().date().timestamp(Zone::Fixed(0)).unwrap_or(0));
        black_box(m.content_range());
    }
    (n, dates)
}

fn mbox_scan(c: &mut Criterion) {
    let (path, _dir) = bench_file();
    let mbox = Mbox::open_locked(&path, &LockOptions::reader()).expect("open bench mbox");
    let data = mbox.data();
    // Warm the page cache and the mapping.
    let checksum = data.iter().step_by(4096).fold(0u8, |a, &b| a ^ b);
    black_box(checksum);
    let detection = mbox.detect().expect("bench mbox is an mbox");
    let (messages, _) = scan(data, detection.variant, 0..data.len());
    eprintln!(
        "mbox_scan: {} ({:.1} MiB, {messages} messages, detected {detection})",
        path.display(),
        data.len() as f64 / 1048576.0
    );

    let mut g = c.benchmark_group("mbox_scan");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("messages", |b| {
        b.iter(|| scan(data, Variant::Mboxrd, 0..data.len()))
    });
    g.bench_function("messages_unquoted", |b| {
        b.iter(|| {
            let reader = Reader::new(data, Variant::Mboxrd).expect("mbox");
            reader.map(|m| m.bytes().len()).sum::<usize>()
        })
    });
    // Including the cost of mapping: page faults on a fresh mapping of
    // cached pages, as a converter pays once per mbox.
    g.bench_function("open_map_messages", |b| {
        b.iter(|| {
            let fresh = Mbox::open_locked(&path, &LockOptions::reader()).expect("open bench mbox");
            scan(fresh.data(), Variant::Mboxrd, 0..fresh.data().len())
        })
    });
    g.bench_function("detect", |b| b.iter(|| mbox::detect(data).expect("mbox")));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    g.bench_function(format!("messages_{threads}_threads"), |b| {
        b.iter(|| {
            let points = mbox::split_points(data, Variant::Mboxrd, threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = points
                    .iter()
                    .enumerate()
                    .map(|(i, &start)| {
                        let end = points.get(i + 1).copied().unwrap_or(data.len());
                        s.spawn(move || scan(data, Variant::Mboxrd, start..end).0)
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("scan thread"))
                    .sum::<usize>()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, mbox_scan);
criterion_main!(benches);
