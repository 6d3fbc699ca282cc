//! Listing and counting: damaged files are reported with their path and
//! skipped; the unsorted listing streams.

use std::time::{Duration, Instant};

use spool::{Durability, Envelope, Error, MessageId, Queue, QueueOptions};

fn open(root: &std::path::Path) -> Queue {
    Queue::open(
        root,
        QueueOptions {
            durability: Durability::None,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn malformed_header_files_are_reported_with_their_path_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let env = Envelope::new("a@example.org", &["b@example.net"]);
    let good: Vec<MessageId> = (0..3)
        .map(|_| q.enter(&env, &[], b"x\n").unwrap())
        .collect();

    // Damage of several kinds, under valid message names.
    let g = q.id_generator();
    let garbage = g.next();
    std::fs::write(q.layout().header(&garbage), b"\x00\x01 not a spool file\n").unwrap();
    let torn = g.next();
    let whole = std::fs::read(q.layout().header(&good[0])).unwrap();
    let text = String::from_utf8(whole)
        .unwrap()
        .replace(good[0].as_str(), torn.as_str());
    std::fs::write(q.layout().header(&torn), &text.as_bytes()[..text.len() / 2]).unwrap();
    let empty = g.next();
    std::fs::write(q.layout().header(&empty), b"").unwrap();
    // Not message names at all: ignored by count and listing alike.
    std::fs::write(q.layout().input_root().join("notes-H"), b"?").unwrap();
    std::fs::write(
        q.layout().input_root().join("0000000000000000000000x-H"),
        b"?",
    )
    .unwrap();
    let bad = [garbage, torn, empty];

    assert_eq!(q.count().unwrap(), 6);
    for sorted in [true, false] {
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for m in q.messages(sorted).unwrap() {
            match m {
                Ok(hf) => ok.push(hf.id),
                Err(e) => errors.push(e),
            }
        }
        ok.sort();
        assert_eq!(ok, good, "sorted={sorted}");
        assert_eq!(errors.len(), 3, "sorted={sorted}: {errors:?}");
        for id in bad {
            let path = q.layout().header(&id);
            let e = errors
                .iter()
                .find(|e| e.to_string().contains(path.to_str().unwrap()))
                .unwrap_or_else(|| panic!("no error names {}", path.display()));
            assert!(
                matches!(e, Error::Format { .. } | Error::Torn { .. }),
                "{e}"
            );
            assert!(!e.is_temporary());
        }
    }
    // Reading one directly says the same.
    let e = q.read(&garbage).unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn the_unsorted_listing_streams() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let env = Envelope::new("a@example.org", &["b@example.net"]);
    for _ in 0..3000 {
        q.enter(&env, &[], b"x\n").unwrap();
    }
    let t = Instant::now();
    let mut it = q.messages(false).unwrap();
    let first = it.next().unwrap().unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(1 + it.count(), 3000);
    let sorted = q.ids().unwrap();
    assert!(sorted.windows(2).all(|w| w[0] < w[1]));
    assert!(sorted.contains(&first.id));
    assert_eq!(q.count().unwrap(), 3000);
}
