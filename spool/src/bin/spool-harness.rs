//! Test and benchmark helper for the spool (spawned by spool/tests and
//! spool/benches; not installed with Sluice).
//!
//! ```text
//! spool-harness idgen COUNT THREADS [--classic] [--pid N] [--no-wait]
//!     print COUNT message IDs made by THREADS threads, one per line
//! spool-harness submit ROOT TAG COUNT [--durability D] [--threads T]
//!     enter COUNT messages; after each success print "ok ID TAG-SEQ"
//! spool-harness fill ROOT COUNT [--threads T]
//!     enter COUNT tiny messages with durability "none" (benchmark setup)
//! spool-harness enter ROOT COUNT --durability D --writers W [--barrier B]
//!     enter COUNT small messages from W threads and print the rate; B is
//!     sequential, parallel:N or syncfs (for quick A/B runs beside the
//!     criterion benchmark)
//! spool-harness list ROOT [--sorted]
//!     print "ID SIZE <SENDER>" per message; errors go to stderr
//! spool-harness count ROOT
//! ```
//!
//! `list` and `count` end with "peak_rss_kb N" and "elapsed_ms N" on stderr.

#![forbid(unsafe_code)]

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use spool::{Durability, Envelope, Header, IdFormat, IdGenerator, Queue, QueueOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spool-harness: {e}");
            ExitCode::from(1)
        }
    }
}

/// The value after `--name`, if given.
fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], i: usize, what: &str) -> Result<u64, String> {
    args.get(i)
        .ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("{what}: not a number"))
}

fn run(args: &[String]) -> Result<(), String> {
    let mode = args.first().map(String::as_str).unwrap_or("");
    match mode {
        "idgen" => idgen(args),
        "submit" => submit(args),
        "fill" => fill(args),
        "enter" => enter(args),
        "list" => list(args),
        "count" => count(args),
        _ => Err("usage: spool-harness idgen|submit|fill|list|count ...".into()),
    }
}

fn idgen(args: &[String]) -> Result<(), String> {
    let count = num(args, 1, "COUNT")?;
    let threads = num(args, 2, "THREADS")?.max(1);
    let format = if args.iter().any(|a| a == "--classic") {
        IdFormat::Classic
    } else {
        IdFormat::Long
    };
    let g = match flag(args, "--pid") {
        Some(p) => IdGenerator::with_pid(format, p.parse().map_err(|_| "--pid: not a number")?),
        None => IdGenerator::new(format),
    };
    let per = count / threads;
    let extra = count % threads;
    let lists: Vec<Vec<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let n = per + u64::from(t < extra);
                s.spawn(move || {
                    let mut out = Vec::with_capacity(n as usize * 24);
                    for _ in 0..n {
                        out.extend_from_slice(g.next().as_str().as_bytes());
                        out.push(b'\n');
                    }
                    out
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut stdout = io::stdout().lock();
    for l in lists {
        stdout.write_all(&l).map_err(|e| e.to_string())?;
    }
    stdout.flush().map_err(|e| e.to_string())?;
    if !args.iter().any(|a| a == "--no-wait") {
        g.wait_before_exit();
    }
    Ok(())
}

/// The body of test message `tag`-`seq`: its name repeated, 1 to 50 lines.
pub fn test_body(tag: &str, seq: u64) -> Vec<u8> {
    format!("{tag}-{seq}\n")
        .repeat((seq % 50 + 1) as usize)
        .into_bytes()
}

fn open(root: &str, durability: Durability) -> Result<Queue, String> {
    Queue::open(
        &PathBuf::from(root),
        QueueOptions {
            durability,
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())
}

fn submit(args: &[String]) -> Result<(), String> {
    let root = args.get(1).ok_or("missing ROOT")?;
    let tag = args.get(2).ok_or("missing TAG")?.clone();
    let count = num(args, 3, "COUNT")?;
    let durability: Durability = flag(args, "--durability")
        .unwrap_or_else(|| "batch".into())
        .parse()?;
    let threads: u64 = flag(args, "--threads")
        .map(|t| t.parse().unwrap_or(1))
        .unwrap_or(1)
        .max(1);
    let q = open(root, durability)?;
    let out = std::sync::Mutex::new(io::stdout());
    let next = std::sync::atomic::AtomicU64::new(0);
    let result: Result<(), String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    loop {
                        let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if seq >= count {
                            return Ok(());
                        }
                        let env = Envelope::new("harness@example.org", &["rcpt@example.net"]);
                        let headers = [Header::new(format!("X-Test: {tag}-{seq}\n"))];
                        let id = q
                            .enter(&env, &headers, &test_body(&tag, seq))
                            .map_err(|e| e.to_string())?;
                        // One write per line: a kill never splits a line
                        // that was not acknowledged.
                        let line = format!("ok {id} {tag}-{seq}\n");
                        let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                        o.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
                        o.flush().map_err(|e| e.to_string())?;
                    }
                })
            })
            .collect();
        hs.into_iter()
            .try_for_each(|h| h.join().unwrap_or(Err("thread panicked".into())))
    });
    q.wait_before_exit();
    result
}

fn fill(args: &[String]) -> Result<(), String> {
    let root = args.get(1).ok_or("missing ROOT")?;
    let count = num(args, 2, "COUNT")?;
    let threads: u64 = flag(args, "--threads")
        .map(|t| t.parse().unwrap_or(1))
        .unwrap_or(4)
        .max(1);
    let q = open(root, Durability::None)?;
    let next = std::sync::atomic::AtomicU64::new(0);
    let env = Envelope::new("fill@example.org", &["rcpt@example.net"]);
    let headers = [Header::new("Subject: fill\n")];
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                        q.enter(&env, &headers, b"x\n").map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .try_for_each(|h| h.join().unwrap_or(Err("thread panicked".into())))
    })?;
    q.wait_before_exit();
    Ok(())
}

fn enter(args: &[String]) -> Result<(), String> {
    let root = args.get(1).ok_or("missing ROOT")?;
    let count = num(args, 2, "COUNT")?;
    let durability: Durability = flag(args, "--durability")
        .unwrap_or_else(|| "batch".into())
        .parse()?;
    let writers: u64 = flag(args, "--writers")
        .map(|t| t.parse().unwrap_or(1))
        .unwrap_or(1)
        .max(1);
    let mut opts = QueueOptions {
        durability,
        ..Default::default()
    };
    if let Some(b) = flag(args, "--barrier") {
        opts.batch.data_barrier = match b.split_once(':') {
            Some(("parallel", n)) => {
                durable::DataBarrier::Parallel(n.parse().map_err(|_| "--barrier parallel:N")?)
            }
            _ if b == "sequential" => durable::DataBarrier::Sequential,
            _ if b == "syncfs" => durable::DataBarrier::Syncfs,
            _ => return Err(format!("--barrier {b}: sequential, parallel:N or syncfs")),
        };
    }
    let q = Queue::open(&PathBuf::from(root), opts).map_err(|e| e.to_string())?;
    let env = Envelope::new("bench@example.org", &["rcpt@example.net"]);
    let headers = [
        Header::new("From: bench@example.org\n"),
        Header::new("Subject: benchmark\n"),
    ];
    let body = b"A small message body.\n".repeat(20);
    let per = count / writers;
    let start = Instant::now();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..writers)
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    for _ in 0..per {
                        q.enter(&env, &headers, &body).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .try_for_each(|h| h.join().unwrap_or(Err("thread panicked".into())))
    })?;
    let secs = start.elapsed().as_secs_f64();
    let st = q.committer().stats();
    println!(
        "{durability} writers={writers} messages={} seconds={secs:.3} rate={:.0}/s batches={}",
        per * writers,
        (per * writers) as f64 / secs,
        st.batches
    );
    q.wait_before_exit();
    Ok(())
}

fn report(start: Instant) {
    eprintln!(
        "peak_rss_kb {}",
        spool::sys::peak_rss_kb().unwrap_or_default()
    );
    eprintln!("elapsed_ms {}", start.elapsed().as_millis());
}

fn list(args: &[String]) -> Result<(), String> {
    let start = Instant::now();
    let root = args.get(1).ok_or("missing ROOT")?;
    let sorted = args.iter().any(|a| a == "--sorted");
    let q = open(root, Durability::Batch)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut first = true;
    for m in q.messages(sorted).map_err(|e| e.to_string())? {
        match m {
            Ok(hf) => {
                writeln!(out, "{} {} <{}>", hf.id, hf.size(), hf.envelope.sender)
                    .map_err(|e| e.to_string())?;
            }
            Err(e) => eprintln!("{e}"),
        }
        if first {
            // The first line goes out at once (time to first line).
            out.flush().map_err(|e| e.to_string())?;
            first = false;
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    report(start);
    Ok(())
}

fn count(args: &[String]) -> Result<(), String> {
    let root = args.get(1).ok_or("missing ROOT")?;
    let q = open(root, Durability::Batch)?;
    let start = Instant::now();
    let n = q.count().map_err(|e| e.to_string())?;
    println!("{n}");
    report(start);
    Ok(())
}
