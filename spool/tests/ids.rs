//! Message IDs stay unique across threads and processes, also when many
//! short-lived processes reuse one process id within a second.

use std::collections::HashSet;
use std::process::{Command, Stdio};

const HARNESS: &str = env!("CARGO_BIN_EXE_spool-harness");

fn idgen(args: &[&str]) -> Vec<String> {
    let out = Command::new(HARNESS)
        .arg("idgen")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("running spool-harness");
    assert!(out.status.success(), "spool-harness idgen {args:?} failed");
    String::from_utf8(out.stdout)
        .expect("IDs are ASCII")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `procs` processes one after another, all claiming process id
/// `pid` (each exits before the next starts, as with a reused pid), each
/// making `per` IDs. Returns every ID.
fn same_pid_lane(pid: u64, procs: usize, per: usize, extra: &[&str]) -> Vec<String> {
    let mut all = Vec::with_capacity(procs * per);
    let (pid, per) = (pid.to_string(), per.to_string());
    for _ in 0..procs {
        let mut args = vec![per.as_str(), "1", "--pid", pid.as_str()];
        args.extend_from_slice(extra);
        all.extend(idgen(&args));
    }
    all
}

fn check_unique(ids: &[String]) -> usize {
    let mut seen = HashSet::with_capacity(ids.len());
    let mut dups = 0;
    for id in ids {
        assert!(spool::MessageId::parse(id).is_ok(), "{id:?} is not an ID");
        if !seen.insert(id.as_str()) {
            dups += 1;
        }
    }
    dups
}

#[test]
fn a_million_ids_from_processes_and_threads_plus_short_lived_processes() {
    let mut all: Vec<String> = Vec::with_capacity(1_100_000);
    std::thread::scope(|s| {
        // 4 processes x 16 threads, 1,000,000 IDs.
        let big: Vec<_> = (0..4)
            .map(|_| s.spawn(|| idgen(&["250000", "16"])))
            .collect();
        // 5,000 short-lived processes in two lanes, each lane one reused
        // process id. The classic lane runs each process's clock ~2.6 ms
        // ahead of real time (10 IDs of 1/3844 s), longer than starting
        // the next process takes: only the wait before exit keeps the
        // next one from repeating its IDs.
        let classic = s.spawn(|| same_pid_lane(4_000_000_001, 2500, 10, &["--classic"]));
        let long = s.spawn(|| same_pid_lane(4_000_000_002, 2500, 10, &[]));
        for h in big {
            let ids = h.join().unwrap();
            assert_eq!(ids.len(), 250_000);
            all.extend(ids);
        }
        let c = classic.join().unwrap();
        assert!(c.iter().all(|i| i.len() == 16));
        all.extend(c);
        all.extend(long.join().unwrap());
    });
    assert_eq!(all.len(), 1_050_000);
    assert_eq!(check_unique(&all), 0, "duplicate message IDs");
}

#[test]
fn without_the_wait_before_exit_reused_pids_collide() {
    // The control for the test above: the same lane, skipping the wait,
    // must produce duplicates, or that test proves nothing.
    let ids = same_pid_lane(4_000_000_003, 60, 40, &["--classic", "--no-wait"]);
    assert!(
        check_unique(&ids) > 0,
        "no duplicates without the wait: the uniqueness test cannot fail"
    );
}
