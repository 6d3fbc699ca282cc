//! Maildir delivery of 4 KiB messages: Strict, Batch (batches of 1, 16 and
//! 256) and None, against a baseline measured in the same run: a plain loop
//! doing create + write + fsync + rename + fsync(new/) per message, which is
//! what Dovecot's LDA does. Also the three ways to make a batch's data
//! barrier (sequential fdatasync, concurrent fdatasync, syncfs).
//!
//! Run: `cargo bench --bench maildir_deliver` (reports messages per second;
//! the ratios are in docs/PERFORMANCE.md). Set SLUICE_BENCH_DIR to measure a
//! particular filesystem (default: a temporary directory under ./target).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use durable::{BatchOptions, Committer, DataBarrier, Durability, RealIo};
use mailstore::maildir::{DeliverOptions, Maildir};

const MSG_SIZE: usize = 4096;

fn message() -> Vec<u8> {
    let mut m = b"From: bench@example.org\nTo: user@example.org\nSubject: bench\n\n".to_vec();
    while m.len() < MSG_SIZE {
        m.extend_from_slice(b"the quick brown fox jumps over the lazy dog 0123456789\n");
    }
    m.truncate(MSG_SIZE - 1);
    m.push(b'\n');
    m
}

fn bench_root() -> tempfile::TempDir {
    let base = std::env::var_os("SLUICE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-tmp"));
    fs::create_dir_all(&base).expect("bench directory");
    tempfile::tempdir_in(base).expect("temporary directory")
}

/// The per-message baseline: what a careful LDA does without group commit.
fn baseline_deliver(root: &Path, n: &mut u64, msg: &[u8]) {
    *n += 1;
    let tmp = root.join("tmp").join(format!("b{n}"));
    let dest = root.join("new").join(format!("b{n}"));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .unwrap();
    f.write_all(msg).unwrap();
    f.sync_data().unwrap();
    fs::rename(&tmp, &dest).unwrap();
    File::open(root.join("new")).unwrap().sync_all().unwrap();
}

fn deliveries(c: &mut Criterion) {
    let msg = message();
    let dir = bench_root();
    let mut g = c.benchmark_group("maildir_4k");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));

    let md = Maildir::create(dir.path().join("baseline")).unwrap();
    let mut n = 0;
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_per_message", |b| {
        b.iter(|| baseline_deliver(md.path(), &mut n, &msg))
    });

    for (label, d) in [
        ("strict", Durability::Strict),
        ("none (not power-safe)", Durability::None),
    ] {
        let md = Maildir::create(dir.path().join(label.split(' ').next().unwrap())).unwrap();
        let c = Committer::new(Arc::new(RealIo), d);
        let opts = DeliverOptions::default();
        g.bench_function(label, |b| {
            b.iter(|| md.deliver(&c, &mut &msg[..], &opts).unwrap())
        });
    }

    for batch in [1usize, 16, 256] {
        let md = Maildir::create(dir.path().join(format!("batch{batch}"))).unwrap();
        let c = Committer::new(Arc::new(RealIo), Durability::Batch);
        let opts = DeliverOptions::default();
        g.throughput(Throughput::Elements(batch as u64));
        // Each batch waited for before the next is written: the latency view.
        g.bench_function(format!("batch_{batch}_one_at_a_time"), |b| {
            b.iter(|| deliver_batch(&md, &c, &opts, &msg, batch));
        });
        // The next batch is written while the previous one is flushed, as a
        // server's sessions keep writing while the committer syncs: the
        // throughput view. Every batch is still waited for before the
        // measurement ends.
        g.bench_function(format!("batch_{batch}_pipelined"), |b| {
            b.iter_custom(|iters| {
                let start = std::time::Instant::now();
                let mut in_flight: Vec<durable::Ticket> = Vec::new();
                for _ in 0..iters {
                    let jobs = (0..batch)
                        .map(|_| md.stage(c.io(), &mut &msg[..], &opts).unwrap().into_job())
                        .collect();
                    let next = c.submit_all(jobs);
                    for t in std::mem::replace(&mut in_flight, next) {
                        t.wait().unwrap();
                    }
                }
                for t in in_flight {
                    t.wait().unwrap();
                }
                start.elapsed()
            });
        });
    }
    g.finish();

    // The writeback hint (sync_file_range as soon as a file is staged)
    // against none, same batches, same run.
    let mut g = c.benchmark_group("writeback_hint_256");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(256));
    for (label, io) in [
        ("with_hint", Arc::new(RealIo) as Arc<dyn durable::Io>),
        ("without_hint", Arc::new(NoHint) as Arc<dyn durable::Io>),
    ] {
        let md = Maildir::create(dir.path().join(label)).unwrap();
        let c = Committer::new(io, Durability::Batch);
        let opts = DeliverOptions::default();
        g.bench_function(label, |b| {
            b.iter(|| deliver_batch(&md, &c, &opts, &msg, 256))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("data_barrier_256");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(256));
    for (label, barrier) in [
        ("sequential_fdatasync", DataBarrier::Sequential),
        ("parallel_fdatasync_16", DataBarrier::Parallel(16)),
        ("parallel_fdatasync_64", DataBarrier::Parallel(64)),
        ("syncfs", DataBarrier::Syncfs),
    ] {
        let md = Maildir::create(dir.path().join(label)).unwrap();
        let opts = BatchOptions {
            data_barrier: barrier,
            ..BatchOptions::default()
        };
        let c = Committer::with_options(Arc::new(RealIo), Durability::Batch, opts);
        let dopts = DeliverOptions::default();
        g.bench_function(label, |b| {
            b.iter(|| deliver_batch(&md, &c, &dopts, &msg, 256))
        });
    }
    g.finish();
}

/// The real filesystem without the writeback hint.
struct NoHint;

impl durable::Io for NoHint {
    fn create_new(&self, path: &Path, mode: u32) -> std::io::Result<File> {
        RealIo.create_new(path, mode)
    }
    fn write_all(&self, file: &mut File, path: &Path, buf: &[u8]) -> std::io::Result<()> {
        RealIo.write_all(file, path, buf)
    }
    fn sync_data(&self, file: &File, path: &Path) -> std::io::Result<()> {
        RealIo.sync_data(file, path)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        RealIo.rename_noreplace(from, to)
    }
    fn rename_replace(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        RealIo.rename_replace(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        RealIo.sync_dir(dir)
    }
    fn syncfs(&self, path: &Path) -> std::io::Result<()> {
        RealIo.syncfs(path)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        RealIo.remove_file(path)
    }
    fn truncate(&self, file: &File, path: &Path, len: u64) -> std::io::Result<()> {
        RealIo.truncate(file, path, len)
    }
}

/// Stages `batch` messages, hands them over together and waits for all.
fn deliver_batch(md: &Maildir, c: &Committer, opts: &DeliverOptions, msg: &[u8], batch: usize) {
    let jobs = (0..batch)
        .map(|_| md.stage(c.io(), &mut &msg[..], opts).unwrap().into_job())
        .collect();
    for t in c.submit_all(jobs) {
        t.wait().unwrap();
    }
}

criterion_group!(benches, deliveries);
criterion_main!(benches);
