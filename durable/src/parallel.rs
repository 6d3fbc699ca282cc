//! The worker pools of the workspace.
//!
//! - [`map`]: scoped threads started for one call, each taking the next
//!   item when done with one, so a slow item (a huge spool directory) never
//!   holds up the others' share. For calls made now and then (a queue scan).
//! - [`Pool`]: standing threads for the group committer's barriers, which
//!   run many times a second: starting threads for every batch cost more
//!   than the syncs they ran. Each thread is handed a whole slice of the
//!   batch, not one item at a time, so a batch wakes at most one parked
//!   thread per slice (waking one per file measured slower than spawning).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam::channel::{self, Sender};

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

type Task = Box<dyn FnOnce() + Send + 'static>;

/// Standing threads, started when first needed and kept until the pool is
/// dropped.
pub struct Pool {
    name: String,
    most: usize,
    workers: Mutex<Vec<(Sender<Task>, JoinHandle<()>)>>,
}

impl Pool {
    /// A pool of at most `most` threads besides the caller's (none are
    /// started yet).
    pub fn new(name: impl Into<String>, most: usize) -> Pool {
        Pool {
            name: name.into(),
            most,
            workers: Mutex::new(Vec::new()),
        }
    }

    /// Threads started so far.
    pub fn started(&self) -> usize {
        self.lock().len()
    }

    /// Runs `f` on every item of `items`, split into contiguous slices: the
    /// calling thread takes the first, standing threads one each (at most
    /// `most` of them, and no more slices than items). Returns the results
    /// in item order, or `None` if `f` panicked or a thread could not be
    /// started.
    pub fn map<T, R>(
        &self,
        items: Arc<Vec<T>>,
        f: Arc<dyn Fn(&T) -> R + Send + Sync>,
    ) -> Option<Vec<R>>
    where
        T: Send + Sync + 'static,
        R: Send + 'static,
    {
        let n = items.len();
        let slices = (self.most + 1).clamp(1, n.max(1));
        if slices == 1 {
            return Some(items.iter().map(|t| f(t)).collect());
        }
        let bounds: Vec<(usize, usize)> = (0..slices)
            .map(|k| (k * n / slices, (k + 1) * n / slices))
            .collect();
        let mut waits = Vec::with_capacity(slices - 1);
        // Every slice handed out is waited for, even after a failure: the
        // caller takes the items back once this returns.
        let mut failed = false;
        {
            let mut workers = self.lock();
            for (k, &(from, to)) in bounds.iter().enumerate().skip(1) {
                if workers.len() < k {
                    match self.start(workers.len()) {
                        Some(w) => workers.push(w),
                        None => {
                            failed = true;
                            break;
                        }
                    }
                }
                let (tx, rx) = channel::bounded::<Option<Vec<R>>>(1);
                let (items, f) = (items.clone(), f.clone());
                let task: Task = Box::new(move || {
                    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        items[from..to].iter().map(|t| f(t)).collect::<Vec<R>>()
                    }))
                    .ok();
                    // The caller may take the items back once every slice
                    // has answered: let go of them (and of `f`, which may
                    // hold them too) first.
                    drop(items);
                    drop(f);
                    let _ = tx.send(out);
                });
                if workers[k - 1].0.send(task).is_err() {
                    failed = true;
                    break;
                }
                waits.push(rx);
            }
        }
        let (from, to) = bounds[0];
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            items[from..to].iter().map(|t| f(t)).collect::<Vec<R>>()
        }));
        let mut all = first.ok().filter(|_| !failed);
        for rx in waits {
            match (all.as_mut(), rx.recv().ok().flatten()) {
                (Some(all), Some(part)) => all.extend(part),
                _ => all = None,
            }
        }
        all
    }

    fn start(&self, k: usize) -> Option<(Sender<Task>, JoinHandle<()>)> {
        let (tx, rx) = channel::unbounded::<Task>();
        let handle = std::thread::Builder::new()
            .name(format!("{}-{k}", self.name))
            .spawn(move || {
                for task in rx {
                    task();
                }
            })
            .ok()?;
        Some((tx, handle))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Sender<Task>, JoinHandle<()>)>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let workers = std::mem::take(&mut *self.lock());
        let handles: Vec<JoinHandle<()>> = workers
            .into_iter()
            .map(|(tx, h)| {
                drop(tx);
                h
            })
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_keeps_its_threads_and_answers_in_order() {
        let pool = Pool::new("test", 3);
        let items: Arc<Vec<u64>> = Arc::new((0..100).collect());
        for _ in 0..50 {
            let got = pool.map(items.clone(), Arc::new(|x: &u64| x * 2)).unwrap();
            assert_eq!(got, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
        // Three slices besides the caller's, started once.
        assert_eq!(pool.started(), 3);
        // The items can be taken back: no slice holds on to them.
        assert!(Arc::try_unwrap(items).is_ok());
    }

    #[test]
    fn a_pool_starts_no_thread_for_one_item_and_reports_a_panic() {
        let pool = Pool::new("test", 4);
        assert_eq!(
            pool.map(Arc::new(vec![7u8]), Arc::new(|x: &u8| *x)),
            Some(vec![7])
        );
        assert_eq!(pool.started(), 0);
        let items: Arc<Vec<u32>> = Arc::new((0..10).collect());
        let got = pool.map(
            items.clone(),
            Arc::new(|x: &u32| {
                assert!(*x != 9, "boom");
                *x
            }),
        );
        assert!(got.is_none());
        // The thread whose slice panicked is still there for the next batch.
        assert_eq!(
            pool.map(items, Arc::new(|x: &u32| *x)).map(|v| v.len()),
            Some(10)
        );
    }

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
