//! The data barrier of a batch, made four ways over the same kind of batch:
//! N freshly created 4 KiB files, written with write(2) and not synced.
//!
//! - `seq`: `fdatasync` of each file in turn on one thread
//!   ([`DataBarrier::Sequential`]);
//! - `pool`: the committer's barrier ([`DataBarrier::Parallel`] with its
//!   default width): a standing [`Pool`] with the same number of helper
//!   threads, handed the batch's positions, the calling thread taking the
//!   first slice, each file synced through [`Io::sync_data`];
//! - `uring`: one `IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC` per file,
//!   all submitted at once, waiting for every completion, on a ring set up
//!   once and reused (the kernel's io-wq workers run the syncs; by default
//!   at most 4 per CPU of them at once for regular files);
//! - `uring16`: the same with io-wq's bounded workers raised to the pool's
//!   width (`IORING_REGISTER_IOWQ_MAX_WORKERS`), to tell the mechanism from
//!   the concurrency.
//!
//! ```text
//! SLUICE_BENCH_DIR=/mnt/jext4/uring nice -n 19 cargo bench -p durable --bench barrier
//! ```
//!
//! Knobs: `SLUICE_BENCH_DIR` (default `/mnt/jext4/uring`),
//! `SLUICE_BENCH_N` (comma list, default `1,4,16,64,256`),
//! `SLUICE_BENCH_ROUNDS` (default 21), `SLUICE_BENCH_REPS` (batches per
//! variant per round; default by N).
//!
//! Each variant runs on a thread of its own, as the committer's barrier
//! runs on its coordinator thread (and each ring gets its own io-wq, which
//! belongs to the submitting thread). The variants are interleaved round by
//! round, the order rotated each round, so the machine's drift cancels in
//! the ratios to `pool` taken within a round. In a round a variant runs one
//! untimed batch (standing threads and io-wq workers awake, as under load),
//! then its timed batches; its files are removed and the filesystem synced
//! (untimed) before the next variant. CPU is user+sys of the whole process
//! (getrusage `RUSAGE_SELF`: the pool's threads and io-wq's workers are
//! threads of the process) across the barrier only.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use durable::parallel::Pool;
use durable::{BatchOptions, DataBarrier, Io, RealIo};
use io_uring::{IoUring, opcode, types};

const FILE_SIZE: usize = 4096;
const RING_ENTRIES: u32 = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Seq,
    Pool,
    Uring,
    Uring16,
}

const VARIANTS: [Variant; 4] = [
    Variant::Seq,
    Variant::Pool,
    Variant::Uring,
    Variant::Uring16,
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Seq => "seq",
            Variant::Pool => "pool",
            Variant::Uring => "uring",
            Variant::Uring16 => "uring16",
        }
    }
}

/// The width of the committer's default barrier (the daemon's).
fn committer_width() -> usize {
    match BatchOptions::default().data_barrier {
        DataBarrier::Parallel(n) => n,
        other => panic!("the default data barrier is {other:?}, not Parallel"),
    }
}

/// User+sys time of the whole process.
fn cpu_now() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is a valid, writable `rusage`; getrusage only writes
    // into it and RUSAGE_SELF is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    // SAFETY: getrusage succeeded, so it filled in the struct (which was
    // zeroed anyway, a valid `rusage`).
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// What a variant's thread holds for all its batches.
enum Barrier {
    Seq,
    Pool { pool: Pool, syncs: Arc<AtomicU64> },
    Uring(IoUring),
}

impl Barrier {
    fn new(v: Variant) -> Barrier {
        match v {
            Variant::Seq => Barrier::Seq,
            // As Committer::with_options: the caller plus width-1 helpers.
            Variant::Pool => Barrier::Pool {
                pool: Pool::new("sync", committer_width().saturating_sub(1)),
                syncs: Arc::new(AtomicU64::new(0)),
            },
            Variant::Uring | Variant::Uring16 => {
                let ring = IoUring::new(RING_ENTRIES).expect("io_uring_setup");
                if v == Variant::Uring16 {
                    let width = committer_width() as u32;
                    let mut max = [width, 0];
                    ring.submitter()
                        .register_iowq_max_workers(&mut max)
                        .expect("IORING_REGISTER_IOWQ_MAX_WORKERS");
                }
                let mut now = [0u32, 0];
                ring.submitter()
                    .register_iowq_max_workers(&mut now)
                    .expect("IORING_REGISTER_IOWQ_MAX_WORKERS (query)");
                eprintln!(
                    "# {}: io-wq max workers bounded={} unbounded={}",
                    v.name(),
                    now[0],
                    now[1]
                );
                Barrier::Uring(ring)
            }
        }
    }

    /// Makes every file's data durable; hands the files back.
    fn run(&mut self, files: Vec<(File, PathBuf)>) -> Vec<(File, PathBuf)> {
        match self {
            Barrier::Seq => {
                for (f, p) in &files {
                    RealIo.sync_data(f, p).expect("fdatasync");
                }
                files
            }
            Barrier::Pool { pool, syncs } => {
                // As commit.rs's data_barrier: positions into the batch,
                // shared with the barrier threads until they answer.
                let positions: Vec<usize> = (0..files.len()).collect();
                let files = Arc::new(files);
                let res = {
                    let (files, syncs) = (files.clone(), syncs.clone());
                    let io: Arc<dyn Io> = Arc::new(RealIo);
                    pool.map(
                        Arc::new(positions),
                        Arc::new(move |&k: &usize| {
                            syncs.fetch_add(1, Ordering::Relaxed);
                            let (f, p) = &files[k];
                            io.sync_data(f, p)
                        }),
                    )
                };
                let res: std::io::Result<()> =
                    res.expect("a barrier thread failed").into_iter().collect();
                res.expect("fdatasync");
                Arc::try_unwrap(files).expect("a barrier thread kept the batch")
            }
            Barrier::Uring(ring) => {
                for chunk in files.chunks(RING_ENTRIES as usize) {
                    {
                        let mut sq = ring.submission();
                        for (i, (f, _)) in chunk.iter().enumerate() {
                            let sqe = opcode::Fsync::new(types::Fd(f.as_raw_fd()))
                                .flags(types::FsyncFlags::DATASYNC)
                                .build()
                                .user_data(i as u64);
                            // SAFETY: the entry refers to no buffer, only
                            // to the file descriptor, which `files` keeps
                            // open until every completion of this chunk
                            // has been reaped below.
                            unsafe { sq.push(&sqe) }.expect("submission queue full");
                        }
                    }
                    let mut done = 0;
                    while done < chunk.len() {
                        match ring.submit_and_wait(chunk.len() - done) {
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => panic!("io_uring_enter: {e}"),
                        }
                        for cqe in ring.completion() {
                            if cqe.result() < 0 {
                                let (_, p) = &chunk[cqe.user_data() as usize];
                                panic!(
                                    "fdatasync {}: {}",
                                    p.display(),
                                    std::io::Error::from_raw_os_error(-cqe.result())
                                );
                            }
                            done += 1;
                        }
                    }
                }
                files
            }
        }
    }
}

/// One timed batch.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

struct Work {
    dir: PathBuf,
    round: usize,
    n: usize,
    reps: usize,
}

/// A variant's thread: owns its barrier, makes the batches it is asked for.
struct Lane {
    tx: mpsc::Sender<Work>,
    rx: mpsc::Receiver<Vec<Sample>>,
    handle: JoinHandle<()>,
}

impl Lane {
    fn start(v: Variant) -> Lane {
        let (tx, work_rx) = mpsc::channel::<Work>();
        let (out_tx, rx) = mpsc::channel::<Vec<Sample>>();
        let handle = std::thread::Builder::new()
            .name(format!("lane-{}", v.name()))
            .spawn(move || {
                let mut barrier = Barrier::new(v);
                for w in work_rx {
                    let samples = lane_round(v, &mut barrier, &w);
                    if out_tx.send(samples).is_err() {
                        break;
                    }
                }
            })
            .expect("starting a lane");
        Lane { tx, rx, handle }
    }

    fn run(&self, w: Work) -> Vec<Sample> {
        self.tx.send(w).expect("lane gone");
        self.rx.recv().expect("lane panicked")
    }
}

/// N new files, each written once with 4 KiB, not synced.
fn stage(dir: &Path, tag: &str, n: usize, body: &[u8]) -> Vec<(File, PathBuf)> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("{tag}-{i}"));
            let mut f = RealIo.create_new(&p, 0o600).expect("create");
            RealIo.write_all(&mut f, &p, body).expect("write");
            (f, p)
        })
        .collect()
}

fn lane_round(v: Variant, barrier: &mut Barrier, w: &Work) -> Vec<Sample> {
    let body = vec![b'x'; FILE_SIZE];
    let mut kept = Vec::new();
    let mut samples = Vec::with_capacity(w.reps);
    // Rep 0 is the untimed warm-up batch.
    for rep in 0..=w.reps {
        let tag = format!("{}-r{}-n{}-b{rep}", v.name(), w.round, w.n);
        let files = stage(&w.dir, &tag, w.n, &body);
        let (c0, t0) = (cpu_now(), Instant::now());
        let files = barrier.run(files);
        let (wall, cpu) = (t0.elapsed(), cpu_now().saturating_sub(c0));
        if rep > 0 {
            samples.push(Sample { wall, cpu });
        }
        kept.extend(files);
    }
    for (f, p) in kept {
        drop(f);
        std::fs::remove_file(&p).expect("remove");
    }
    // The next variant starts with a committed journal.
    RealIo.syncfs(&w.dir).expect("syncfs");
    samples
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().map(|s| {
        s.parse()
            .unwrap_or_else(|_| panic!("{name}={s:?}: a number"))
    })
}

fn default_reps(n: usize) -> usize {
    match n {
        0..=1 => 24,
        2..=4 => 16,
        5..=16 => 8,
        17..=64 => 4,
        _ => 2,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    if std::env::args().skip(1).any(|a| a == "--list") {
        return;
    }
    let base = std::env::var_os("SLUICE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/mnt/jext4/uring"));
    std::fs::create_dir_all(&base).expect("creating SLUICE_BENCH_DIR");
    let dir = tempfile::tempdir_in(&base).expect("a directory under SLUICE_BENCH_DIR");
    let ns: Vec<usize> = match std::env::var("SLUICE_BENCH_N") {
        Ok(s) => s
            .split(',')
            .map(|x| x.trim().parse().expect("SLUICE_BENCH_N: numbers"))
            .collect(),
        Err(_) => vec![1, 4, 16, 64, 256],
    };
    assert!(ns.iter().all(|&n| n >= 1), "SLUICE_BENCH_N: at least 1");
    let rounds = env_usize("SLUICE_BENCH_ROUNDS").unwrap_or(21).max(1);
    let io_uring_disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    println!(
        "# data barrier: {} (pool width {} = caller + {} threads), {rounds} rounds, files of {FILE_SIZE} B, io_uring_disabled={io_uring_disabled}",
        dir.path().display(),
        committer_width(),
        committer_width() - 1,
    );

    let lanes: Vec<Lane> = VARIANTS.iter().map(|&v| Lane::start(v)).collect();
    let started = Instant::now();
    for &n in &ns {
        let reps = env_usize("SLUICE_BENCH_REPS").unwrap_or_else(|| default_reps(n));
        // Per variant, per round: median wall of its batches, CPU per file.
        let mut wall = vec![Vec::new(); VARIANTS.len()];
        let mut cpu = vec![Vec::new(); VARIANTS.len()];
        for round in 0..rounds {
            for k in 0..VARIANTS.len() {
                let vi = (round + k) % VARIANTS.len();
                let samples = lanes[vi].run(Work {
                    dir: dir.path().to_path_buf(),
                    round,
                    n,
                    reps,
                });
                let walls: Vec<f64> = samples.iter().map(|s| s.wall.as_secs_f64()).collect();
                wall[vi].push(median(&walls));
                let cpu_total: f64 = samples.iter().map(|s| s.cpu.as_secs_f64()).sum();
                cpu[vi].push(cpu_total / (samples.len() * n) as f64);
            }
        }
        let pool = VARIANTS.iter().position(|&v| v == Variant::Pool).unwrap();
        println!();
        println!("## N = {n} ({reps} timed batches per variant per round, {rounds} rounds)");
        println!(
            "{:<8} {:>22} {:>22} {:>22} {:>13}",
            "variant",
            "batch ms med [min-max]",
            "file us med [min-max]",
            "/pool med [min-max]",
            "cpu us/file"
        );
        for (vi, v) in VARIANTS.iter().enumerate() {
            let ms: Vec<f64> = wall[vi].iter().map(|s| s * 1e3).collect();
            let us: Vec<f64> = wall[vi].iter().map(|s| s * 1e6 / n as f64).collect();
            let ratio: Vec<f64> = wall[vi]
                .iter()
                .zip(&wall[pool])
                .map(|(a, b)| a / b)
                .collect();
            let (ms_lo, ms_hi) = min_max(&ms);
            let (us_lo, us_hi) = min_max(&us);
            let (r_lo, r_hi) = min_max(&ratio);
            let cpu_us: Vec<f64> = cpu[vi].iter().map(|s| s * 1e6).collect();
            println!(
                "{:<8} {:>7.3} [{:>6.3}-{:>6.3}] {:>7.1} [{:>6.1}-{:>6.1}] {:>6.3} [{:>5.3}-{:>5.3}] {:>13.1}",
                v.name(),
                median(&ms),
                ms_lo,
                ms_hi,
                median(&us),
                us_lo,
                us_hi,
                median(&ratio),
                r_lo,
                r_hi,
                median(&cpu_us),
            );
        }
        for (vi, v) in VARIANTS.iter().enumerate() {
            let ratios: Vec<String> = wall[vi]
                .iter()
                .zip(&wall[pool])
                .map(|(a, b)| format!("{:.2}", a / b))
                .collect();
            println!("#  {}/pool per round: {}", v.name(), ratios.join(" "));
        }
    }
    println!();
    println!("# {:.1} s in all", started.elapsed().as_secs_f64());
    for lane in lanes {
        drop(lane.tx);
        let _ = lane.handle.join();
    }
}
