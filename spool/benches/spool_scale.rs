//! A large queue: builds a spool of SPOOL_SCALE_MESSAGES tiny messages
//! (default 1,000,000; durability "none", it is only a fixture), then times
//! `count` and the listings (time to first line, total, peak RSS), each in
//! a fresh `spool-harness` process so that its memory is its own. The spool
//! is deleted at the end.
//!
//! cargo bench -p spool --bench spool_scale
//! SPOOL_SCALE_MESSAGES=100000 cargo bench -p spool --bench spool_scale

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HARNESS: &str = env!("CARGO_BIN_EXE_spool-harness");

/// The `name N` lines the harness prints on stderr.
fn stat(stderr: &str, name: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

fn count(root: &Path) -> (u64, u64) {
    let out = Command::new(HARNESS)
        .args(["count", root.to_str().unwrap()])
        .output()
        .expect("spool-harness count");
    let n = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (n, stat(&String::from_utf8_lossy(&out.stderr), "elapsed_ms"))
}

struct Listing {
    lines: u64,
    first: Duration,
    total: Duration,
    rss_kb: u64,
}

fn list(root: &Path, sorted: bool) -> Listing {
    let start = Instant::now();
    let mut cmd = Command::new(HARNESS);
    cmd.args(["list", root.to_str().unwrap()]);
    if sorted {
        cmd.arg("--sorted");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spool-harness list");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut first = None;
    let mut lines = 0;
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        first.get_or_insert_with(|| start.elapsed());
        lines += 1;
        line.clear();
    }
    let output = child.wait_with_output().expect("waiting for spool-harness");
    let total = start.elapsed();
    let err = String::from_utf8_lossy(&output.stderr);
    Listing {
        lines,
        first: first.unwrap_or(total),
        total,
        rss_kb: stat(&err, "peak_rss_kb"),
    }
}

fn main() {
    // `cargo bench` passes "--bench"; `cargo test --benches` (or
    // --all-targets) runs this binary without it, and must not build a
    // million files.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("spool_scale: run it with `cargo bench -p spool --bench spool_scale`");
        return;
    }
    let n: u64 = std::env::var("SPOOL_SCALE_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let base = std::env::var_os("SPOOL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    let dir = tempfile::tempdir_in(base).expect("temporary directory");
    let root = dir.path().join("spool");

    println!("spool_scale: {n} messages (fixture built with durability none)");
    let t = Instant::now();
    let ok = Command::new(HARNESS)
        .args([
            "fill",
            root.to_str().unwrap(),
            &n.to_string(),
            "--threads",
            "4",
        ])
        .status()
        .expect("spool-harness fill")
        .success();
    assert!(ok, "building the spool failed");
    let build = t.elapsed();
    println!(
        "build: {:.1} s ({:.0} messages/s)",
        build.as_secs_f64(),
        n as f64 / build.as_secs_f64()
    );

    let mut times = Vec::new();
    for i in 0..5 {
        let (c, ms) = count(&root);
        assert_eq!(c, n, "count");
        println!("count #{i}: {c} in {ms} ms");
        times.push(ms);
    }
    times.sort();
    println!("count (warm, median of 5): {} ms", times[2]);

    for sorted in [false, true] {
        let l = list(&root, sorted);
        assert_eq!(l.lines, n, "listing");
        println!(
            "list {}: first line {:.1} ms, total {:.2} s, peak RSS {} MB",
            if sorted {
                "sorted (-bp)"
            } else {
                "unsorted (-bpr)"
            },
            l.first.as_secs_f64() * 1000.0,
            l.total.as_secs_f64(),
            l.rss_kb / 1024
        );
    }
    let t = Instant::now();
    drop(dir);
    println!("removed the spool in {:.1} s", t.elapsed().as_secs_f64());
}
