//! The one worker pool of the workspace: scoped threads that each take the
//! next item when done with one, so a slow item (an `fdatasync` stuck behind
//! a busy disk, a huge spool directory) never holds up the others' share.
//!
//! Threads are started per call: the calls are batches (a commit's syncs, a
//! queue scan), and a standing pool measured slower here (each file woke a
//! parked thread; see docs/PERFORMANCE.md).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `f` on every item with up to `threads` threads (on the caller's
/// thread alone when that is 1) and returns the results in item order, or
/// `None` if a worker panicked.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Option<Vec<R>> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return Some(items.iter().map(&f).collect());
    }
    let next = AtomicUsize::new(0);
    let parts: Vec<Option<Vec<(usize, R)>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().ok()).collect()
    });
    let mut all: Vec<(usize, R)> = Vec::with_capacity(items.len());
    for part in parts {
        all.extend(part?);
    }
    all.sort_by_key(|(i, _)| *i);
    Some(all.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_in_item_order_whatever_the_threads() {
        let items: Vec<u64> = (0..1000).collect();
        for threads in [0, 1, 2, 7, 64, 5000] {
            let got = map(&items, threads, |x| x * 2).unwrap();
            assert_eq!(got, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
        assert_eq!(map(&[] as &[u8], 4, |x| *x), Some(vec![]));
    }

    #[test]
    fn a_panicking_worker_is_reported() {
        let items: Vec<u32> = (0..100).collect();
        let got = map(&items, 4, |x| {
            assert!(*x != 50, "boom");
            *x
        });
        assert!(got.is_none());
    }
}
