//! Locking against real, independent lockers: Python's `fcntl.lockf`
//! (classic POSIX locks, as Exim, Postfix and procmail take them),
//! liblockfile's `dotlockfile` (the dotlock Debian's mail tools take), and
//! threads of this very process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use mailstore::Error;
use mailstore::lock::{LockKind, LockMode, LockOptions, MboxLock, lock_path};
use mailstore::mbox::{AppendOptions, Appender, Reader, Variant};

fn have(cmd: &str, probe: &[&str]) -> bool {
    Command::new(cmd)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn options(methods: Vec<LockKind>, timeout: Duration) -> AppendOptions {
    AppendOptions {
        locks: LockOptions {
            methods,
            timeout,
            stale_after: LockOptions::DEFAULT_STALE_AFTER,
            pid_check: true,
        },
        ..AppendOptions::default()
    }
}

fn seed(path: &Path) -> Vec<u8> {
    Appender::new(AppendOptions::default())
        .append(
            path,
            "first@example.org",
            SystemTime::now(),
            &b"Subject: 1\n\nfirst\n"[..],
        )
        .unwrap();
    std::fs::read(path).unwrap()
}

fn count(path: &Path) -> usize {
    let data = std::fs::read(path).unwrap();
    Reader::new(&data, Variant::Mboxrd).unwrap().count()
}

/// A child process that says "locked" once it holds its lock.
struct Holder {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Holder {
    fn spawn(cmd: &mut Command) -> Holder {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn lock holder");
        let mut out = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        out.read_line(&mut line).expect("holder output");
        assert_eq!(line.trim(), "locked", "holder did not take its lock");
        Holder { child, out }
    }

    fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("holder output");
        line.trim().to_string()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python holding a classic `lockf` lock on the mbox for `secs`, then
/// reporting the mbox size it saw just before letting go.
fn python_lockf(path: &Path, secs: f64) -> Holder {
    let script = r#"
import fcntl, os, sys, time
f = open(sys.argv[1], "r+b")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
size = os.fstat(f.fileno()).st_size
fcntl.lockf(f, fcntl.LOCK_UN)
print("unlocked", size, flush=True)
time.sleep(30)
"#;
    Holder::spawn(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(path)
            .arg(secs.to_string()),
    )
}

fn python() -> bool {
    let ok = have("python3", &["-c", "import fcntl"]);
    if !ok {
        eprintln!("SKIPPED: python3 is not available");
    }
    ok
}

#[test]
fn appender_waits_for_python_lockf() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let before = seed(&path);
    let mut holder = python_lockf(&path, 0.8);
    let app = Appender::new(options(
        LockOptions::writer().methods,
        Duration::from_secs(20),
    ));
    let started = Instant::now();
    app.append(
        &path,
        "second@example.org",
        SystemTime::now(),
        &b"Subject: 2\n\nsecond\n"[..],
    )
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "did not wait"
    );
    // While Python held the lock, the mbox did not change.
    assert_eq!(holder.next_line(), format!("unlocked {}", before.len()));
    assert_eq!(count(&path), 2);
}

#[test]
fn appender_times_out_on_python_lockf_naming_the_holder() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let before = seed(&path);
    let holder = python_lockf(&path, 30.0);
    let app = Appender::new(options(vec![LockKind::Fcntl], Duration::from_millis(300)));
    let err = app
        .append(
            &path,
            "second@example.org",
            SystemTime::now(),
            &b"Subject: 2\n\nsecond\n"[..],
        )
        .unwrap_err();
    match &err {
        Error::LockTimeout {
            kind,
            path: p,
            holder: h,
            ..
        } => {
            assert_eq!(*kind, "fcntl");
            assert_eq!(p, &path);
            assert_eq!(
                h.as_deref(),
                Some(format!("pid {}", holder.child.id()).as_str())
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_temporary());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(!lock_path(&path).exists(), "no dotlock left behind");
}

#[test]
fn python_lockf_sees_our_fcntl_lock() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    seed(&path);
    let opts = LockOptions {
        methods: vec![LockKind::Fcntl],
        ..LockOptions::writer()
    };
    let try_lock = r#"
import fcntl, sys
f = open(sys.argv[1], "r+b")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("got it")
except OSError:
    print("busy")
"#;
    let run = || {
        let out = Command::new("python3")
            .arg("-c")
            .arg(try_lock)
            .arg(&path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let lock = MboxLock::acquire(&path, LockMode::Exclusive, &opts, |p| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .map_err(|e| Error::io("open", p, e))
    })
    .unwrap();
    assert_eq!(run(), "busy");
    drop(lock);
    assert_eq!(run(), "got it");
}

fn dotlockfile() -> bool {
    let ok = have("dotlockfile", &["-t"]);
    if !ok {
        eprintln!("SKIPPED: dotlockfile (Debian package liblockfile-bin) is not installed");
    }
    ok
}

/// `dotlockfile` holding `<mbox>.lock` while `sh` sleeps `secs`; it removes
/// the lock when the command ends.
fn dotlockfile_holder(path: &Path, secs: f64) -> Holder {
    Holder::spawn(
        Command::new("dotlockfile")
            .arg("-l")
            .arg("-p")
            .arg("-r")
            .arg("0")
            .arg(lock_path(path))
            .arg("sh")
            .arg("-c")
            .arg(format!("echo locked; sleep {secs}")),
    )
}

#[test]
fn appender_waits_for_dotlockfile() {
    if !dotlockfile() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let before = seed(&path);
    let _holder = dotlockfile_holder(&path, 0.8);
    assert!(lock_path(&path).exists());
    let app = Appender::new(options(vec![LockKind::Dotlock], Duration::from_secs(20)));
    let started = Instant::now();
    app.append(
        &path,
        "second@example.org",
        SystemTime::now(),
        &b"Subject: 2\n\nsecond\n"[..],
    )
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "did not wait"
    );
    assert_eq!(count(&path), 2);
    assert!(std::fs::read(&path).unwrap().starts_with(&before));
    assert!(!lock_path(&path).exists());
}

#[test]
fn appender_times_out_on_dotlockfile_naming_the_holder() {
    if !dotlockfile() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let before = seed(&path);
    let holder = dotlockfile_holder(&path, 3.0);
    let app = Appender::new(options(
        LockOptions::writer().methods,
        Duration::from_millis(300),
    ));
    let err = app
        .append(
            &path,
            "second@example.org",
            SystemTime::now(),
            &b"Subject: 2\n\nsecond\n"[..],
        )
        .unwrap_err();
    match &err {
        Error::LockTimeout {
            kind,
            path: p,
            holder: h,
            ..
        } => {
            assert_eq!(*kind, "dotlock");
            assert_eq!(p, &lock_path(&path));
            // dotlockfile -p writes its own pid when it runs a command.
            assert_eq!(
                h.as_deref(),
                Some(format!("pid {}", holder.child.id()).as_str())
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_temporary());
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn dotlockfile_sees_our_dotlock() {
    if !dotlockfile() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    seed(&path);
    let try_lock = || {
        Command::new("dotlockfile")
            .args(["-l", "-r", "0", "-q"])
            .arg(lock_path(&path))
            .status()
            .unwrap()
            .success()
    };
    let opts = LockOptions {
        methods: vec![LockKind::Dotlock],
        ..LockOptions::writer()
    };
    let lock = MboxLock::acquire(&path, LockMode::Exclusive, &opts, |p| {
        std::fs::File::open(p).map_err(|e| Error::io("open", p, e))
    })
    .unwrap();
    assert!(!try_lock(), "dotlockfile took a lock we hold");
    drop(lock);
    assert!(try_lock());
    // It left its lock; ours must now wait for it and time out.
    let short = LockOptions {
        timeout: Duration::from_millis(100),
        ..opts
    };
    let err = MboxLock::acquire(&path, LockMode::Exclusive, &short, |p| {
        std::fs::File::open(p).map_err(|e| Error::io("open", p, e))
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LockTimeout {
                kind: "dotlock",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn threads_of_one_process_exclude_each_other_with_fcntl() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("inbox"));
    std::fs::write(&*path, b"").unwrap();
    let opts = LockOptions {
        methods: vec![LockKind::Fcntl],
        timeout: Duration::from_millis(100),
        stale_after: LockOptions::DEFAULT_STALE_AFTER,
        pid_check: true,
    };
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .map_err(|e| Error::io("open", p, e))
    };
    let held = MboxLock::acquire(&path, LockMode::Exclusive, &opts, open).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let t = {
        let (path, opts, barrier) = (path.clone(), opts.clone(), barrier.clone());
        std::thread::spawn(move || {
            let r = MboxLock::acquire(&path, LockMode::Shared, &opts, open).map(drop);
            barrier.wait();
            let long = LockOptions {
                timeout: Duration::from_secs(10),
                ..opts
            };
            let started = Instant::now();
            MboxLock::acquire(&path, LockMode::Shared, &long, open).unwrap();
            (r, started.elapsed())
        })
    };
    barrier.wait();
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    let (first, waited) = t.join().unwrap();
    assert!(
        matches!(first, Err(Error::LockTimeout { kind: "fcntl", .. })),
        "{first:?}"
    );
    assert!(
        waited >= Duration::from_millis(200),
        "second attempt did not wait: {waited:?}"
    );
}

#[test]
fn concurrent_appenders_never_interleave() {
    // Messages bigger than one write, so unlocked appenders would mix.
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("inbox"));
    let threads = 4;
    let per_thread = 5;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let app = Appender::new(options(vec![LockKind::Fcntl], Duration::from_secs(30)));
                for i in 0..per_thread {
                    let body = format!("t{t} m{i} line\n").repeat(20_000);
                    let msg = format!("Subject: t{t} m{i}\n\n{body}");
                    app.append(&path, "a@b", SystemTime::now(), msg.as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let data = std::fs::read(&*path).unwrap();
    let msgs: Vec<_> = Reader::new(&data, Variant::Mboxrd).unwrap().collect();
    assert_eq!(msgs.len(), threads * per_thread);
    for m in msgs {
        let bytes = m.bytes();
        let text = String::from_utf8_lossy(&bytes);
        let subject = text
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("Subject: ")
            .to_string();
        let body = format!("{subject} line\n").repeat(20_000);
        assert_eq!(
            text,
            format!("Subject: {subject}\n\n{body}"),
            "a message was interleaved"
        );
    }
}
