//! Messages entered per second with 1, 4, 16 and 64 concurrent writers, for
//! each durability. `strict` with one writer is the baseline; `none` does
//! not survive power loss and is here only as the ceiling (labelled so).
//!
//! cargo bench -p spool --bench spool_enter
//!
//! Each measured round enters 1024 tiny messages (split over the writers)
//! into a fresh spool, so directory growth does not skew later rounds.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use spool::{Durability, Envelope, Header, Queue, QueueOptions};

const PER_ROUND: usize = 1024;

fn round(durability: Durability, writers: usize) -> Duration {
    let base = std::env::var_os("SPOOL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).expect("temporary spool");
    let q = Queue::open(
        dir.path(),
        QueueOptions {
            durability,
            ..Default::default()
        },
    )
    .expect("opening the spool");
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
    let took = start.elapsed();
    assert_eq!(q.count().expect("count"), (per_writer * writers) as u64);
    took
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
            g.bench_with_input(BenchmarkId::new(&label, writers), &writers, |b, &w| {
                b.iter_custom(|iters| (0..iters).map(|_| round(durability, w)).sum())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, enter);
criterion_main!(benches);
