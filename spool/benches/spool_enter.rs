//! Messages entered per second with 1, 4, 16 and 64 concurrent writers, for
//! each durability. `strict` with one writer is the baseline; `none` does
//! not survive power loss and is here only as the ceiling (labelled so).
//!
//! cargo bench -p spool --bench spool_enter
//!
//! Each measured round enters 1024 small messages (split over the
//! writers). Each configuration has a spool of its own, kept for all its
//! rounds and removed after them.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use durable::DataBarrier;
use spool::{Durability, Envelope, Header, Queue, QueueOptions};

const PER_ROUND: usize = 1024;

/// A spool for one configuration, kept for all its rounds: a production
/// spool is not fresh, and deleting thousands of files between rounds
/// would load the disk while the next round is measured.
fn open(durability: Durability) -> (tempfile::TempDir, Queue) {
    let base = std::env::var_os("SPOOL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).expect("temporary spool");
    let mut opts = QueueOptions {
        durability,
        ..Default::default()
    };
    // SPOOL_DATA_BARRIER=sequential | parallel:N | syncfs, to compare.
    if let Ok(b) = std::env::var("SPOOL_DATA_BARRIER") {
        opts.batch.data_barrier = match b.split_once(':') {
            Some(("parallel", n)) => DataBarrier::Parallel(n.parse().expect("parallel:N")),
            _ if b == "sequential" => DataBarrier::Sequential,
            _ if b == "syncfs" => DataBarrier::Syncfs,
            _ => panic!("SPOOL_DATA_BARRIER={b:?}: sequential, parallel:N or syncfs"),
        };
    }
    let q = Queue::open(dir.path(), opts).expect("opening the spool");
    (dir, q)
}

/// Enters PER_ROUND messages from `writers` threads; returns the time taken.
fn round(q: &Queue, writers: usize) -> Duration {
    let env = Envelope::new("bench@example.org", &["rcpt@example.net"]);
    let headers = [
        Header::new("From: bench@example.org\n"),
        Header::new("Subject: benchmark\n"),
    ];
    let body = b"A small message body.\n".repeat(20);
    let per_writer = PER_ROUND / writers;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..writers {
            s.spawn(|| {
                for _ in 0..per_writer {
                    q.enter(&env, &headers, &body).expect("enter");
                }
            });
        }
    });
    start.elapsed()
}

fn enter(c: &mut Criterion) {
    let mut g = c.benchmark_group("spool_enter");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(PER_ROUND as u64));
    for durability in [Durability::Strict, Durability::Batch, Durability::None] {
        let label = match durability {
            Durability::None => "none (not power-safe, benchmark only)".to_string(),
            d => d.to_string(),
        };
        for writers in [1, 4, 16, 64] {
            let (_dir, q) = open(durability);
            g.bench_with_input(BenchmarkId::new(&label, writers), &writers, |b, &w| {
                b.iter_custom(|iters| (0..iters).map(|_| round(&q, w)).sum())
            });
            let st = q.committer().stats();
            eprintln!(
                "{label}/{writers}: {} messages, {} batches, {} data syncs, {} directory syncs",
                st.jobs, st.batches, st.data_syncs, st.dir_syncs
            );
        }
    }
    g.finish();
}

criterion_group!(benches, enter);
criterion_main!(benches);
