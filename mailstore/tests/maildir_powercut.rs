//! Power loss, simulated: every write, sync and rename of Maildir deliveries
//! goes through a recording seam; at every sync point and every
//! acknowledgement the state a power cut would leave is rebuilt and checked:
//! every delivery reported durable is present and whole, and nothing partial
//! is visible in `new/` or `cur/`. The same check must fail when durability
//! is `none` and when the `new/` directory sync is left out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use durable::sim::{Op, Recorder};
use durable::{Committer, Durability};
use mailstore::maildir::{DeliverOptions, Maildir, Stored};

/// Delivers `n` messages from `threads` threads, marking each success.
fn run(
    durability: Durability,
    threads: usize,
    n: usize,
    skip_new_sync: bool,
) -> (tempfile::TempDir, Arc<Recorder>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let rec = Arc::new(Recorder::new());
    if skip_new_sync {
        rec.skip_sync_dir(md.path().join("new"));
    }
    let committer = Committer::new(rec.clone(), durability);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (md, committer, rec) = (&md, &committer, &rec);
            s.spawn(move || {
                for i in 0..n / threads {
                    let body = format!("Subject: {t}/{i}\n\n{}\n", "x".repeat(100 + i * 37));
                    let opts = DeliverOptions {
                        host: "powercut.test".into(),
                        ..Default::default()
                    };
                    match md.deliver(committer, &mut body.as_bytes(), &opts).unwrap() {
                        Stored::Delivered { path, .. } => rec.mark(path.to_string_lossy()),
                        o => panic!("{o:?}"),
                    }
                }
            });
        }
    });
    let root = md.path().to_path_buf();
    (dir, rec, root)
}

/// The invariants at every cut point; returns the violations found.
fn violations(rec: &Recorder, root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for cut in rec.cut_points() {
        let state = rec.power_cut(cut);
        for acked in &state.marks {
            match state.files.get(Path::new(acked)) {
                Some(img) if img.is_whole() => {}
                Some(img) => out.push(format!(
                    "cut {cut}: {acked} acknowledged but partial: {img:?}"
                )),
                None => out.push(format!("cut {cut}: {acked} acknowledged but lost")),
            }
        }
        for sub in ["new", "cur"] {
            let d = root.join(sub);
            for (p, img) in state.files_in(&d) {
                if !img.is_whole() {
                    out.push(format!("cut {cut}: partial file visible: {}", p.display()));
                }
            }
        }
    }
    out
}

#[test]
fn strict_and_batch_survive_every_cut() {
    for (d, threads) in [
        (Durability::Strict, 1),
        (Durability::Strict, 4),
        (Durability::Batch, 1),
        (Durability::Batch, 4),
    ] {
        let (_dir, rec, root) = run(d, threads, 40, false);
        let v = violations(&rec, &root);
        assert!(v.is_empty(), "{d:?} x{threads}: {v:#?}");
        assert!(
            rec.cut_points().len() > 40,
            "the test must look at many cut points"
        );
    }
}

#[test]
fn the_check_catches_durability_none() {
    let (_dir, rec, root) = run(Durability::None, 1, 10, false);
    let v = violations(&rec, &root);
    assert!(
        !v.is_empty(),
        "durability none must lose acknowledged mail after a power cut"
    );
    assert!(v.iter().any(|m| m.contains("lost")), "{v:#?}");
}

#[test]
fn the_check_catches_a_missing_new_directory_sync() {
    for d in [Durability::Strict, Durability::Batch] {
        let (_dir, rec, root) = run(d, 2, 10, true);
        let v = violations(&rec, &root);
        assert!(
            !v.is_empty(),
            "{d:?} without the new/ sync must fail the check"
        );
    }
}

#[test]
fn the_check_catches_a_missing_data_sync() {
    let dir = tempfile::tempdir().unwrap();
    let md = Maildir::create(dir.path().join("Maildir")).unwrap();
    let rec = Arc::new(Recorder::new());
    rec.skip_sync_data();
    let committer = Committer::new(rec.clone(), Durability::Strict);
    let opts = DeliverOptions::default();
    for _ in 0..3 {
        if let Stored::Delivered { path, .. } = md
            .deliver(&committer, &mut &b"A: b\n\nc\n"[..], &opts)
            .unwrap()
        {
            rec.mark(path.to_string_lossy());
        }
    }
    let v = violations(&rec, md.path());
    assert!(v.iter().any(|m| m.contains("partial")), "{v:#?}");
}

#[test]
fn failed_write_or_sync_leaves_nothing_visible_and_is_temporary() {
    for (op, nth) in [
        (Op::Write, 0),
        (Op::Write, 1),
        (Op::SyncData, 0),
        (Op::SyncDir, 0),
        (Op::Rename, 0),
        (Op::Create, 0),
    ] {
        for d in [Durability::Strict, Durability::Batch] {
            let dir = tempfile::tempdir().unwrap();
            let md = Maildir::create(dir.path().join("Maildir")).unwrap();
            let rec = Arc::new(Recorder::new());
            rec.fail(op, nth);
            let committer = Committer::new(rec.clone(), d);
            let body = format!("Subject: x\n\n{}\n", "y".repeat(200_000));
            let err = md
                .deliver(&committer, &mut body.as_bytes(), &DeliverOptions::default())
                .expect_err("the injected fault must fail the delivery");
            assert!(err.is_temporary(), "{op:?}: {err}");
            assert_eq!(err.exit_code(), 75, "{op:?}: {err}");
            for sub in ["new", "cur", "tmp"] {
                let n = std::fs::read_dir(md.path().join(sub)).unwrap().count();
                assert_eq!(n, 0, "{op:?}/{d:?}: {sub}/ holds {n} files after {err}");
            }
        }
    }
}
