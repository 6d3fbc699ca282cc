//! `kill -9` the daemon while eight clients send it 2,000 messages, three
//! times at random moments, restarting it on the same data directory each
//! time; then let it drain. Every message that got `250` must be in its
//! recipients' Maildirs (none lost), none twice (the journal's intent
//! records, `<ID>.<n>` file names and no-replace publishing make a
//! delivery that landed final), nothing partial in `new/`, the queue empty.
//!
//! (`kill -9` leaves the page cache alone, so this checks the protocol of
//! acknowledgements, journal and names; power loss is simulated by the
//! storage crates' own tests through the I/O seam.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use common::{Daemon, Dir, SmtpClient, files_in, size_field, wait_until};

const MESSAGES: usize = 2000;
const CLIENTS: usize = 8;
const KILLS: usize = 3;
/// Local parts the messages go to (at localhost).
const MAILBOXES: usize = 4;

/// The recipients of message `seq`: one mailbox, or two for every fifth
/// message (so that recovery handles recipient indexes above 0).
fn recipients(seq: usize) -> Vec<String> {
    let first = seq % MAILBOXES;
    let mut r = vec![format!("box{first}")];
    if seq.is_multiple_of(5) {
        r.push(format!("box{}", (first + 1) % MAILBOXES));
    }
    r
}

fn message(seq: usize) -> String {
    // Bodies of a few sizes, some over one page.
    let filler = "z".repeat(60 + (seq * 37) % 200);
    let lines = 1 + seq % 70;
    let mut m =
        format!("From: load@example.org\r\nSubject: crash test {seq}\r\nX-Seq: {seq}\r\n\r\n");
    for i in 0..lines {
        m.push_str(&format!("{seq}.{i} {filler}\r\n"));
    }
    m
}

/// What the clients saw.
#[derive(Default)]
struct Ledger {
    /// seq → message ID, for messages answered 250.
    acked: BTreeMap<usize, String>,
    /// Messages whose transaction broke before the 250.
    unacked: BTreeSet<usize>,
}

struct Shared {
    addr: Mutex<SocketAddr>,
    next: AtomicUsize,
    acked: AtomicUsize,
    ledger: Mutex<Ledger>,
}

/// Connects to whatever daemon is current, waiting out restarts.
fn connect(shared: &Shared) -> SmtpClient {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let addr = *shared.addr.lock().unwrap();
        if let Ok(mut c) = SmtpClient::connect(addr)
            && c.reply().is_ok_and(|g| g.code() == 220)
            && c.cmd("EHLO load.example").is_ok_and(|r| r.code() == 250)
        {
            return c;
        }
        assert!(Instant::now() < end, "no daemon to connect to");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One transaction; `Ok(Some(id))` on 250, `Err` when the connection broke.
fn send(c: &mut SmtpClient, seq: usize) -> std::io::Result<Option<String>> {
    let rcpts = recipients(seq);
    // Pipelined: MAIL, RCPTs and DATA in one write.
    let mut cmds = String::from("MAIL FROM:<load@example.org>\r\n");
    for r in &rcpts {
        cmds.push_str(&format!("RCPT TO:<{r}@localhost>\r\n"));
    }
    cmds.push_str("DATA\r\n");
    c.write_raw(cmds.as_bytes())?;
    let mut ok = c.reply()?.code() == 250;
    for _ in &rcpts {
        ok &= c.reply()?.code() == 250;
    }
    let data = c.reply()?;
    if data.code() != 354 {
        return Ok(None);
    }
    let mut body = message(seq);
    body.push_str(".\r\n");
    c.write_raw(body.as_bytes())?;
    let end = c.reply()?;
    if !ok || end.code() != 250 {
        return Ok(None);
    }
    Ok(end.queued_id().map(str::to_owned))
}

fn client(shared: &Shared) {
    let mut c = connect(shared);
    loop {
        let seq = shared.next.fetch_add(1, Ordering::SeqCst);
        if seq >= MESSAGES {
            let _ = c.cmd("QUIT");
            return;
        }
        match send(&mut c, seq) {
            Ok(Some(id)) => {
                shared.ledger.lock().unwrap().acked.insert(seq, id);
                shared.acked.fetch_add(1, Ordering::SeqCst);
            }
            Ok(None) => panic!("message {seq} refused"),
            Err(_) => {
                // The daemon died under us: the message may or may not
                // have been taken; a client would send it again, this one
                // does not, so that any copy counted twice is the
                // daemon's doing.
                shared.ledger.lock().unwrap().unacked.insert(seq);
                c = connect(shared);
            }
        }
    }
}

/// One delivered copy found in a Maildir.
struct Copy {
    mailbox: String,
    seq: usize,
}

/// Reads every Maildir: the copies, plus anything wrong with `new/`/`cur/`.
fn scan(home: &Path) -> (Vec<Copy>, Vec<String>, usize) {
    let mut copies = Vec::new();
    let mut problems = Vec::new();
    let mut tmp_left = 0;
    for b in 0..MAILBOXES {
        let mailbox = format!("box{b}");
        let md = home.join("mail/localhost").join(&mailbox);
        tmp_left += files_in(&md.join("tmp")).len();
        for sub in ["new", "cur"] {
            for name in files_in(&md.join(sub)) {
                let path = md.join(sub).join(&name);
                let bytes = std::fs::read(&path).unwrap();
                if size_field(&name) != Some(bytes.len() as u64) {
                    problems.push(format!("{sub}/{name}: {} bytes", bytes.len()));
                    continue;
                }
                let text = String::from_utf8_lossy(&bytes);
                let seq = text
                    .lines()
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| l.strip_prefix("X-Seq: "))
                    .and_then(|s| s.trim().parse::<usize>().ok());
                let Some(seq) = seq else {
                    problems.push(format!("{sub}/{name}: no X-Seq"));
                    continue;
                };
                // The body is whole.
                let want = message(seq).replace("\r\n", "\n");
                if !text.ends_with(&want[want.find("\n\n").unwrap()..]) {
                    problems.push(format!("{sub}/{name}: body of {seq} differs"));
                }
                copies.push(Copy {
                    mailbox: mailbox.clone(),
                    seq,
                });
            }
        }
    }
    (copies, problems, tmp_left)
}

/// How many of the messages `ids` already have a file in some Maildir.
fn landed_in_flight(home: &Path, ids: &[&str]) -> usize {
    let mut names = Vec::new();
    for b in 0..MAILBOXES {
        let md = home.join("mail/localhost").join(format!("box{b}"));
        names.extend(files_in(&md.join("new")));
    }
    ids.iter()
        .filter(|id| names.iter().any(|n| n.starts_with(&format!("{id}."))))
        .count()
}

/// `-H` files (queued messages) and other files left in the spool.
fn spool_files(home: &Path) -> (Vec<String>, Vec<String>) {
    let input = home.join("spool/input");
    let mut headers = Vec::new();
    let mut other = Vec::new();
    let mut dirs = vec![input.clone()];
    dirs.extend(files_in(&input).into_iter().map(|s| input.join(s)));
    for dir in dirs {
        if !dir.is_dir() {
            continue;
        }
        for name in files_in(&dir) {
            if dir.join(&name).is_dir() {
                continue;
            }
            if name.ends_with("-H") {
                headers.push(name);
            } else {
                other.push(name);
            }
        }
    }
    (headers, other)
}

#[test]
fn kill_dash_nine_loses_nothing_and_duplicates_nothing() {
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test seed {seed} (SLUICE_CRASH_SEED={seed} repeats it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let d = Dir::new();
    let home = d.home();
    let mut daemon: Daemon = d.serve(&[]);
    let shared = Arc::new(Shared {
        addr: Mutex::new(daemon.smtp),
        next: AtomicUsize::new(0),
        acked: AtomicUsize::new(0),
        ledger: Mutex::new(Ledger::default()),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let s = shared.clone();
            std::thread::spawn(move || client(&s))
        })
        .collect();

    // Kill at random points spread over the run: after a random number of
    // acknowledged messages within each third, plus a random delay.
    let mut kills = Vec::new();
    for k in 0..KILLS {
        let third = MESSAGES / (KILLS + 1);
        let at = third * (k + 1) - third / 2 + rng.random_range(0..third);
        let reached = wait_until(Duration::from_secs(90), || {
            shared.acked.load(Ordering::SeqCst) >= at
        });
        assert!(
            reached,
            "only {} acknowledged",
            shared.acked.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        let acked = shared.acked.load(Ordering::SeqCst);
        daemon.kill9();
        // What the dead daemon left: queued messages, and journals (a
        // delivery had started).
        let (queued, other) = spool_files(&home);
        let journals: Vec<&str> = other.iter().filter_map(|n| n.strip_suffix("-J")).collect();
        // Deliveries in flight whose file had landed: recovery must see
        // them and not deliver again.
        let landed = landed_in_flight(&home, &journals);
        kills.push((acked, queued.len(), journals.len(), landed));
        daemon = d.serve(&[]);
        *shared.addr.lock().unwrap() = daemon.smtp;
    }
    for c in clients {
        c.join().expect("client thread");
    }
    let ledger = std::mem::take(&mut *shared.ledger.lock().unwrap());
    eprintln!(
        "kills at (acknowledged, queued, in flight, in flight and landed) {kills:?}; {} acknowledged, {} cut off, sent in {:?}",
        ledger.acked.len(),
        ledger.unacked.len(),
        started.elapsed()
    );
    assert_eq!(ledger.acked.len() + ledger.unacked.len(), MESSAGES);

    // Let the last daemon drain the queue (it delivered what the killed
    // ones left when it started).
    let drained = wait_until(Duration::from_secs(60), || spool_files(&home).0.is_empty());
    let (queued, _) = spool_files(&home);
    assert!(
        drained,
        "still queued: {queued:?}\npaniclog:\n{}",
        d.log("paniclog")
    );
    assert!(daemon.alive(), "{}", daemon.stderr_text());
    daemon.kill9();
    // A queue run finds nothing to do; with no grace period it also clears
    // what the kills left half-written (never acknowledged).
    let run = d.run(&["--set", "queue.garbage_after=\"0s\"", "queue-run"], b"");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (queued, leftovers) = spool_files(&home);
    assert!(queued.is_empty(), "{queued:?}");
    assert!(leftovers.is_empty(), "left in the spool: {leftovers:?}");

    // Every copy, counted.
    let (copies, problems, tmp_left) = scan(&home);
    assert!(problems.is_empty(), "in new/ or cur/: {problems:?}");
    let mut count: BTreeMap<(String, usize), usize> = BTreeMap::new();
    for c in &copies {
        *count.entry((c.mailbox.clone(), c.seq)).or_default() += 1;
    }
    let mut lost = Vec::new();
    for (&seq, id) in &ledger.acked {
        for r in recipients(seq) {
            if !count.contains_key(&(r.clone(), seq)) {
                lost.push(format!("{seq} ({id}) for {r}"));
            }
        }
    }
    let duplicates: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    let unacked_delivered = ledger
        .unacked
        .iter()
        .filter(|seq| count.keys().any(|(_, s)| s == *seq))
        .count();
    let stray: Vec<_> = count
        .keys()
        .filter(|(r, seq)| !recipients(*seq).contains(r))
        .collect();
    eprintln!(
        "{} copies; lost {}; duplicates {}; cut off but delivered {unacked_delivered}; \
         files left in tmp/ {tmp_left}; {:?} in all",
        copies.len(),
        lost.len(),
        duplicates.len(),
        started.elapsed()
    );
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    assert!(
        stray.is_empty(),
        "delivered to the wrong mailbox: {stray:?}"
    );
    assert!(duplicates.is_empty(), "delivered twice: {duplicates:?}");
    // Each copy once, so the copies are exactly the acknowledged messages'
    // recipients plus some of the cut-off ones.
    let acked_copies: usize = ledger.acked.keys().map(|&s| recipients(s).len()).sum();
    assert!(copies.len() >= acked_copies);

    // Every acknowledged message has its whole story in mainlog, whichever
    // path it took (delivered before its 250, or queued and delivered by
    // this daemon or a later one): the lines are written before the reply.
    let mainlog = d.log("mainlog");
    let mut told: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for line in mainlog.lines() {
        let mut words = line.split_whitespace().skip(2);
        let (Some(id), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let e = told.entry(id).or_default();
        match what {
            "<=" => e.0 += 1,
            "=>" => e.1 += 1,
            "Completed" => e.2 += 1,
            _ => {}
        }
    }
    let untold: Vec<String> = ledger
        .acked
        .iter()
        .filter(|&(&seq, id)| {
            let (arrived, delivered, completed) =
                told.get(id.as_str()).copied().unwrap_or_default();
            // A delivery cut off by a kill between its file and its
            // outcome record is found by name and logged again.
            arrived != 1 || delivered < recipients(seq).len() || completed == 0
        })
        .map(|(seq, id)| format!("{seq} ({id}): {:?}", told.get(id.as_str())))
        .collect();
    assert!(
        untold.is_empty(),
        "acknowledged without their <=, => and Completed lines: {untold:?}"
    );
}
