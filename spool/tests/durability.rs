//! Power loss (simulated through durable::sim::Recorder), injected faults,
//! group commit and async entry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use durable::CommitError;
use durable::sim::{Op, Recorder};
use spool::{Durability, Envelope, Error, Header, MessageId, Queue, QueueOptions};

fn env() -> Envelope {
    Envelope::new("sender@example.org", &["rcpt@example.net"])
}

fn open(root: &Path, durability: Durability, rec: &Arc<Recorder>) -> Queue {
    Queue::open_with_io(
        root,
        QueueOptions {
            durability,
            ..Default::default()
        },
        rec.clone(),
    )
    .unwrap()
}

/// Enters messages from `threads` threads, marking each acknowledgement in
/// the recorder's log, then checks the state a power cut would leave at
/// every cut point: each acknowledged message's -H and -D present and
/// whole, and no visible -H partial or without its whole -D. Returns the
/// first violation.
fn power_cut_workload(durability: Durability, skip_dir_sync: bool) -> Result<usize, String> {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::new());
    let q = open(dir.path(), durability, &rec);
    if skip_dir_sync {
        for d in q.layout().input_dirs() {
            rec.skip_sync_dir(d);
        }
    }
    std::thread::scope(|s| {
        for t in 0..4 {
            let (q, rec) = (&q, &rec);
            s.spawn(move || {
                for i in 0..8 {
                    let body = format!("thread {t} message {i}\n").repeat(i + 1);
                    let h = [Header::new(format!("Subject: {t}/{i}\n"))];
                    let id = q.enter(&env(), &h, body.as_bytes()).unwrap();
                    rec.mark(format!("ack {id}"));
                }
            });
        }
    });
    let layout = q.layout().clone();
    let cuts = rec.cut_points();
    for &cut in &cuts {
        let pc = rec.power_cut(cut);
        for m in &pc.marks {
            let id = MessageId::parse(m.trim_start_matches("ack ")).unwrap();
            for p in [layout.header(&id), layout.data(&id)] {
                match pc.files.get(&p) {
                    None => {
                        return Err(format!(
                            "cut {cut}: acknowledged {} is missing",
                            p.display()
                        ));
                    }
                    Some(img) if !img.is_whole() => {
                        return Err(format!(
                            "cut {cut}: acknowledged {} is partial: {img:?}",
                            p.display()
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        for (p, img) in &pc.files {
            let name = p.file_name().unwrap().to_str().unwrap();
            if let spool::layout::SpoolFile::Header(id) = spool::layout::classify(name) {
                if !img.is_whole() {
                    return Err(format!("cut {cut}: visible {} is partial", p.display()));
                }
                let d: PathBuf = layout.data(&id);
                if !pc.files.get(&d).is_some_and(|i| i.is_whole()) {
                    return Err(format!("cut {cut}: visible {id} has no whole -D"));
                }
            }
        }
    }
    Ok(cuts.len())
}

#[test]
fn acknowledged_messages_survive_every_power_cut() {
    for d in [Durability::Strict, Durability::Batch] {
        let cuts = power_cut_workload(d, false).unwrap_or_else(|e| panic!("{d}: {e}"));
        assert!(cuts > 32, "{d}: only {cuts} cut points");
    }
}

#[test]
fn the_power_cut_check_fails_without_syncs() {
    // The same check must catch a spool that skips its flushes, or it
    // proves nothing.
    let e = power_cut_workload(Durability::None, false).unwrap_err();
    assert!(e.contains("acknowledged") && e.contains("missing"), "{e}");
    for d in [Durability::Strict, Durability::Batch] {
        let e = power_cut_workload(d, true).unwrap_err();
        assert!(
            e.contains("acknowledged") && e.contains("missing"),
            "{d}: {e}"
        );
    }
}

/// Every file under the input directories.
fn input_files(q: &Queue) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in q.layout().input_dirs() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().unwrap().is_file() {
                    v.push(e.path());
                }
            }
        }
    }
    v
}

#[test]
fn failed_syncs_and_renames_are_temporary_and_leave_nothing() {
    // (operation, which call fails)
    let cases = [
        (Op::SyncData, 0),
        (Op::SyncData, 1),
        (Op::SyncDir, 0),
        (Op::Rename, 0),
        (Op::Rename, 1),
        (Op::Write, 1),
        (Op::Create, 1),
    ];
    for d in [Durability::Strict, Durability::Batch] {
        for (op, nth) in cases {
            let dir = tempfile::tempdir().unwrap();
            // The spool's directories exist (made by an earlier start), so
            // the counted calls are those of entering the message.
            drop(Queue::open(dir.path(), QueueOptions::default()).unwrap());
            let rec = Arc::new(Recorder::new());
            rec.fail(op, nth);
            let q = open(dir.path(), d, &rec);
            let err = q.enter(&env(), &[], b"body\n").unwrap_err();
            assert!(err.is_temporary(), "{d} {op:?}#{nth}: {err}");
            assert_eq!(err.exit_code(), 75);
            assert_eq!(q.count().unwrap(), 0, "{d} {op:?}#{nth}");
            assert_eq!(input_files(&q), Vec::<PathBuf>::new(), "{d} {op:?}#{nth}");
            // The next message goes through (new names, new descriptors).
            let id = q.enter(&env(), &[], b"body\n").unwrap();
            assert_eq!(q.body(&id).unwrap().read_all().unwrap(), b"body\n");
        }
    }
}

#[test]
fn a_taken_name_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(
        dir.path(),
        QueueOptions {
            durability: Durability::Strict,
            ..Default::default()
        },
    )
    .unwrap();
    let mut draft = q.draft().unwrap();
    draft.write(b"mine\n").unwrap();
    let staged = draft.finish(&env(), &[]).unwrap();
    let id = staged.id();
    // Someone else's -H appears under the same name before the commit.
    let h = q.layout().header(&id);
    std::fs::write(&h, b"theirs").unwrap();
    let err = q.commit(staged).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Commit {
                source: CommitError::Exists { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_temporary());
    assert_eq!(std::fs::read(&h).unwrap(), b"theirs");
    assert!(!q.layout().data(&id).exists());
}

#[test]
fn concurrent_writers_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    assert_eq!(q.durability(), Durability::Batch);
    let ids: Vec<MessageId> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                let q = &q;
                s.spawn(move || {
                    (0..20)
                        .map(|_| q.enter(&env(), &[], b"x\n").unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ids.len(), 320);
    assert_eq!(q.count().unwrap(), 320);
    let st = q.committer().stats();
    assert_eq!(st.jobs, 320);
    assert!(st.batches < st.jobs, "no batch held two messages: {st:?}");
}

#[test]
fn async_tasks_stage_in_spawn_blocking_and_await_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let ids = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..32 {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                let q2 = q.clone();
                // Writing and handing over block: never on a worker thread.
                let entry = tokio::task::spawn_blocking(move || {
                    let body = format!("async {i}\n");
                    let staged = q2.stage(&env(), &[], &mut body.as_bytes())?;
                    Ok::<_, Error>(q2.submit(staged))
                })
                .await
                .unwrap()?;
                entry.wait_async().await
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap().unwrap());
        }
        ids
    });
    for (i, id) in ids.iter().enumerate() {
        let body = q.body(id).unwrap().read_all().unwrap();
        assert_eq!(body, format!("async {i}\n").as_bytes());
    }
}

/// What the power-cut check of rewrites and removals leaves out on purpose,
/// to prove it notices.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Skip {
    Nothing,
    /// The directory syncs after a rename or an unlink in the input dirs.
    DirSyncs,
    /// The data syncs of the rewritten `-H` files.
    DataSyncs,
}

/// A change made to a queued message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Change {
    /// `-Mf` then `-Mt`: two `-H` rewrites.
    FreezeThaw,
    /// An attempt that ends with a deferral: the journal folded into a
    /// rewritten `-H`.
    Deferral,
    /// `-Mrm`.
    Remove,
    /// An attempt that delivers every recipient: removal at `finish`.
    DeliverAll,
}

const EVERY_CHANGE: [Change; 4] = [
    Change::FreezeThaw,
    Change::Deferral,
    Change::Remove,
    Change::DeliverAll,
];

/// Enters messages, then changes them as the queue commands and the
/// delivery agent do: freeze and thaw (`-Mf`, `-Mt`), an attempt that ends
/// with a deferral (the `-H` rewritten from the journal), removal (`-Mrm`)
/// and an attempt that delivers everything (removal at `finish`). After
/// each acknowledged step the test marks what the `-H` must then be (its
/// size, or gone); at every cut point, every message's `-H` must be what
/// its last acknowledged step made it, whole, or (before its first
/// acknowledgement) anything but partial.
fn rewrite_and_removal_workload(skip: Skip, changes: &[Change]) -> Result<usize, String> {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::new());
    let q = open(dir.path(), Durability::Batch, &rec);
    let two = Envelope::new("sender@example.org", &["a@example.net", "b@example.net"]);
    let mut ids = Vec::new();
    let size = |id: &MessageId| std::fs::metadata(q.layout().header(id)).unwrap().len();
    for i in 0..8 {
        let h = [Header::new(format!("Subject: {i}\n"))];
        let id = q.enter(&two, &h, format!("body {i}\n").as_bytes()).unwrap();
        rec.mark(format!("set {id} {}", size(&id)));
        ids.push(id);
    }
    match skip {
        Skip::Nothing => {}
        Skip::DirSyncs => {
            for d in q.layout().input_dirs() {
                rec.skip_sync_dir(d);
            }
        }
        Skip::DataSyncs => rec.skip_sync_data(),
    }
    for (i, id) in ids.iter().enumerate() {
        match changes[i % changes.len()] {
            Change::FreezeThaw => {
                assert!(q.freeze(id).unwrap());
                rec.mark(format!("set {id} {}", size(id)));
                assert!(q.thaw(id).unwrap());
                rec.mark(format!("set {id} {}", size(id)));
            }
            Change::Deferral => {
                let mut d = q.begin_delivery(id).unwrap();
                d.record(
                    0,
                    spool::RcptOutcome::Deferred {
                        until: 4_000_000_000,
                        why: spool::Diagnosis::text("451 4.4.1 later"),
                    },
                )
                .unwrap();
                assert_eq!(d.finish().unwrap(), spool::Finished::Kept);
                rec.mark(format!("set {id} {}", size(id)));
            }
            Change::Remove => {
                q.remove(id).unwrap();
                rec.mark(format!("gone {id}"));
            }
            Change::DeliverAll => {
                let mut d = q.begin_delivery(id).unwrap();
                d.record(0, spool::RcptOutcome::Delivered).unwrap();
                d.record(1, spool::RcptOutcome::Delivered).unwrap();
                assert_eq!(d.finish().unwrap(), spool::Finished::Removed);
                rec.mark(format!("gone {id}"));
            }
        }
    }
    // Every state each message's -H went through, in order: its size, or
    // None once removed.
    let parse = |m: &str| -> (String, Option<u64>) {
        let w: Vec<&str> = m.split(' ').collect();
        match w[..] {
            ["set", id, n] => (id.to_string(), Some(n.parse().unwrap())),
            ["gone", id] => (id.to_string(), None),
            _ => unreachable!("{m}"),
        }
    };
    let mut history: std::collections::HashMap<String, Vec<Option<u64>>> = Default::default();
    for e in rec.events() {
        if let durable::sim::Event::Mark(m) = e {
            let (id, st) = parse(&m);
            history.entry(id).or_default().push(st);
        }
    }
    let layout = q.layout().clone();
    let cuts = rec.cut_points();
    for &cut in &cuts {
        let pc = rec.power_cut(cut);
        // How many states of each message were acknowledged before the cut.
        let mut acked: std::collections::HashMap<String, usize> = Default::default();
        for m in &pc.marks {
            *acked.entry(parse(m).0).or_default() += 1;
        }
        for id in &ids {
            let h = layout.header(id);
            let seen = pc.files.get(&h);
            if let Some(img) = seen
                && !img.is_whole()
            {
                return Err(format!(
                    "cut {cut}: visible {} is partial: {img:?}",
                    h.display()
                ));
            }
            let Some(&k) = acked.get(&id.to_string()) else {
                continue; // not acknowledged yet: anything whole will do
            };
            // The last acknowledged state, or one that came after it (the
            // next step may be durable before it is acknowledged).
            let states = &history[&id.to_string()][k - 1..];
            let found = seen.map(|img| img.written);
            if !states.contains(&found) {
                return Err(match (states[0], found) {
                    (Some(n), Some(f)) => {
                        format!("cut {cut}: {id}: acknowledged -H of {n} bytes, found {f} bytes")
                    }
                    (Some(_), None) => format!("cut {cut}: {id}: acknowledged -H is missing"),
                    (None, _) => format!("cut {cut}: {id}: removed, yet its -H is back"),
                });
            }
        }
    }
    Ok(cuts.len())
}

#[test]
fn header_rewrites_and_removals_survive_every_power_cut() {
    let cuts = rewrite_and_removal_workload(Skip::Nothing, &EVERY_CHANGE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cuts > 20, "only {cuts} cut points");
}

/// Each change alone, with its syncs removed, is caught by the same check:
/// without the directory syncs a rewritten `-H` falls back to the old one
/// and a removed message comes back; without the data syncs a rewritten
/// `-H` is torn (a removal has no data to sync).
#[test]
fn the_rewrite_and_removal_check_fails_without_each_sync() {
    for change in EVERY_CHANGE {
        rewrite_and_removal_workload(Skip::Nothing, &[change])
            .unwrap_or_else(|e| panic!("{change:?}: {e}"));
        let e = rewrite_and_removal_workload(Skip::DirSyncs, &[change]).unwrap_err();
        let want = match change {
            Change::FreezeThaw | Change::Deferral => "acknowledged -H of",
            Change::Remove | Change::DeliverAll => "is back",
        };
        assert!(e.contains(want), "{change:?}: {e}");
        let data = rewrite_and_removal_workload(Skip::DataSyncs, &[change]);
        match change {
            Change::FreezeThaw | Change::Deferral => {
                let e = data.unwrap_err();
                assert!(e.contains("partial"), "{change:?}: {e}");
            }
            Change::Remove | Change::DeliverAll => {
                data.unwrap_or_else(|e| panic!("{change:?}: {e}"));
            }
        }
    }
}
