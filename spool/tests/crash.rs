//! `kill -9` of processes entering messages, at random moments, then
//! restarts: every entry that reported success is in the queue and whole,
//! nothing partial is visible, and the garbage is cleaned.
//!
//! (`kill -9` keeps the page cache, so it tests atomicity of visibility;
//! lost syncs are the business of the power-cut tests in durability.rs.)

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use spool::{Durability, MessageId, Queue, QueueOptions};

const HARNESS: &str = env!("CARGO_BIN_EXE_spool-harness");
const WANT_ACKED: usize = 2000;
const SLOTS: usize = 4;

/// Same formula as spool-harness's `test_body`.
fn test_body(tag: &str, seq: u64) -> Vec<u8> {
    format!("{tag}-{seq}\n")
        .repeat((seq % 50 + 1) as usize)
        .into_bytes()
}

fn spawn(root: &Path, slot: usize, generation: usize, tx: mpsc::Sender<String>) -> Child {
    let durability = ["batch", "batch", "strict", "none"][slot % 4];
    let tag = format!("s{slot}g{generation}");
    let mut child = Command::new(HARNESS)
        .args(["submit", root.to_str().unwrap(), &tag, "1000000"])
        .args(["--durability", durability, "--threads", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning spool-harness");
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                // Only whole lines are acknowledgements.
                Ok(_) if line.ends_with(b"\n") => {
                    let _ = tx.send(String::from_utf8_lossy(&line).trim_end().to_string());
                }
                Ok(_) => break,
            }
        }
    });
    child
}

fn record(acked: &mut HashMap<MessageId, (String, u64)>, line: &str) {
    let mut f = line.split(' ');
    let (Some("ok"), Some(id), Some(tagseq), None) = (f.next(), f.next(), f.next(), f.next())
    else {
        panic!("unexpected harness output {line:?}");
    };
    let id = MessageId::parse(id).unwrap();
    let (tag, seq) = tagseq.rsplit_once('-').unwrap();
    let prev = acked.insert(id, (tag.to_string(), seq.parse().unwrap()));
    assert!(prev.is_none(), "{id} acknowledged twice");
}

#[test]
fn killed_writers_lose_nothing_acknowledged_and_show_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    let seed: u64 = std::env::var("SPOOL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("SPOOL_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let (tx, rx) = mpsc::channel::<String>();
    let mut generation = 0;
    let mut children: Vec<Child> = (0..SLOTS)
        .map(|slot| {
            generation += 1;
            spawn(&root, slot, generation, tx.clone())
        })
        .collect();
    let mut acked: HashMap<MessageId, (String, u64)> = HashMap::new();
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.len() < WANT_ACKED {
        assert!(
            Instant::now() < deadline,
            "too slow: {} acknowledged",
            acked.len()
        );
        // Kill after a random time, or sooner when the writers are fast
        // (a random number of acknowledgements), so that every run kills
        // often whatever the speed of the disk.
        let wait = Duration::from_millis(rng.random_range(1..12));
        let acks = rng.random_range(5..40);
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < wait && n < acks {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(1)) {
                record(&mut acked, &line);
                n += 1;
            }
        }
        let slot = rng.random_range(0..SLOTS);
        let _ = children[slot].kill(); // SIGKILL
        let _ = children[slot].wait();
        kills += 1;
        generation += 1;
        children[slot] = spawn(&root, slot, generation, tx.clone());
    }
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    drop(tx);
    // Lines written before the last kills.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        record(&mut acked, &line);
    }
    eprintln!("{} acknowledged, {kills} kills", acked.len());
    assert!(kills >= 50, "only {kills} kills");

    let q = Queue::open(
        &root,
        QueueOptions {
            durability: Durability::Strict,
            ..Default::default()
        },
    )
    .unwrap();

    // Every acknowledged message is there, whole and right.
    for (id, (tag, seq)) in &acked {
        let hf = q
            .read(id)
            .unwrap_or_else(|e| panic!("acknowledged {id} ({tag}-{seq}): {e}"));
        let want = format!("X-Test: {tag}-{seq}\n");
        assert_eq!(hf.headers[0].text, want.as_bytes(), "{id}");
        assert_eq!(
            q.body(id).unwrap().read_all().unwrap(),
            test_body(tag, *seq),
            "{id}"
        );
    }

    // Nothing partial is visible: every listed message reads whole.
    let visible = q.ids().unwrap();
    assert!(visible.len() >= acked.len());
    for id in &visible {
        let hf = q.read(id).unwrap_or_else(|e| panic!("visible {id}: {e}"));
        let body = q
            .body(id)
            .unwrap_or_else(|e| panic!("visible {id}: {e}"))
            .read_all()
            .unwrap();
        assert_eq!(Some(body.len() as u64), hf.envelope.body_size);
    }

    // Garbage goes; messages stay.
    let removed = q.clean_garbage(Duration::ZERO).unwrap();
    eprintln!("{} garbage files removed", removed.len());
    assert_eq!(q.count().unwrap(), visible.len() as u64);
    let mut files = 0;
    for d in q.layout().input_dirs() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                continue;
            }
            let name = e.file_name().into_string().unwrap();
            assert!(
                matches!(
                    spool::layout::classify(&name),
                    spool::layout::SpoolFile::Header(_) | spool::layout::SpoolFile::Data(_)
                ),
                "left after cleaning: {name}"
            );
            files += 1;
        }
    }
    assert_eq!(files, 2 * visible.len());
}
