//! `sluice stats`: golden reports for logs a real Exim 4.96 and Sluice
//! wrote, totals against eximstats's on the same logs, inputs (gzip,
//! rotated files in any order, standard input), `--merge`, the HTML
//! charts against the JSON numbers, and memory on a long log.
//!
//! Golden files are in tests/stats_golden/; `UPDATE_GOLDEN=1` rewrites
//! them (then read the diff).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Dir, assert_exit};

const EXIMSTATS: &str = "/usr/sbin/eximstats";

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn generator() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/gen_mainlog.py")
}

/// `sluice stats ARGS` with `stdin`; exits 0; its standard output.
fn stats(d: &Dir, args: &[&str], stdin: &[u8]) -> String {
    let mut all = vec!["stats"];
    all.extend_from_slice(args);
    let out = d.run(&all, stdin);
    assert_exit(&out, 0);
    String::from_utf8(out.stdout).expect("UTF-8 report")
}

fn json(d: &Dir, args: &[&str], stdin: &[u8]) -> serde_json::Value {
    let mut all = vec!["--json"];
    if !args.contains(&"--tz") {
        all.extend(["--tz", "UTC"]);
    }
    all.extend_from_slice(args);
    let text = stats(d, &all, stdin);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A generated log of `n` messages (benches/gen_mainlog.py).
fn generated(dir: &Path, n: u32, classic: bool, seed: u32) -> PathBuf {
    let path = dir.join(format!("gen-{n}-{classic}-{seed}.log"));
    let mut cmd = Command::new("python3");
    cmd.arg(generator())
        .args(["-n", &n.to_string(), "--seed", &seed.to_string(), "-o"])
        .arg(&path);
    if classic {
        cmd.arg("--classic");
    }
    let st = cmd.status().expect("python3");
    assert!(st.success(), "generator failed");
    path
}

fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/stats_golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        want == got,
        "{name} differs from {}; got:\n{got}",
        path.display()
    );
}

#[test]
fn golden_reports_for_exim_and_sluice_logs() {
    let d = Dir::new();
    for (file, name) in [
        ("exim-4.96/mainlog", "exim-4.96"),
        ("sluice/mainlog", "sluice"),
        ("sluice/mainlog-classic", "sluice-classic"),
    ] {
        let path = fixture(file);
        let p = path.to_str().unwrap();
        golden(&format!("{name}.txt"), &stats(&d, &["--tz", "UTC", p], b""));
        golden(
            &format!("{name}.json"),
            &stats(&d, &["--tz", "UTC", "--json", p], b""),
        );
    }
}

/// Sluice writes long IDs by default and classic ones on request: the
/// same events count the same.
#[test]
fn long_and_classic_ids_count_the_same() {
    let d = Dir::new();
    let long = json(&d, &[fixture("sluice/mainlog").to_str().unwrap()], b"");
    let classic = json(
        &d,
        &[fixture("sluice/mainlog-classic").to_str().unwrap()],
        b"",
    );
    assert_eq!(long, classic);
    // What the fixture holds (tests/fixtures/sluice/README.md).
    assert_eq!(long["received"]["messages"], 13);
    assert_eq!(long["delivered"]["messages"], 10);
    assert_eq!(long["delivered"]["addresses"], 11);
    assert_eq!(long["delayed"]["messages"], 3);
    assert_eq!(long["failed"]["messages"], 3);
    assert_eq!(long["failed"]["addresses"], 3);
    assert_eq!(long["rejected"]["messages"], 7);
    assert_eq!(long["temporarily_rejected"]["messages"], 1);
    // The message whose arrival is before the log: its ID says when it
    // came, 70 minutes before its Completed.
    assert_eq!(long["queue_time"]["all"][5], 2, "{}", long["queue_time"]);
}

/// The `Grand total summary` rows of a text report, split on white
/// space as scripts read them: label → fields.
fn grand_total(report: &str) -> Vec<(String, Vec<String>)> {
    let mut rows = Vec::new();
    let mut lines = report.lines().skip_while(|l| *l != "Grand total summary");
    for l in lines.by_ref() {
        if l.trim_start().starts_with("TOTAL") {
            break;
        }
    }
    for l in lines {
        if l.trim().is_empty() {
            break;
        }
        let t = l.trim();
        let (label, rest) = if let Some(r) = t.strip_prefix("Temp Rejects") {
            ("Temp Rejects", r)
        } else {
            t.split_once(' ').unwrap_or((t, ""))
        };
        rows.push((
            label.to_string(),
            rest.split_whitespace().map(str::to_string).collect(),
        ));
    }
    rows
}

/// eximstats on `log` (in UTC), or `None` with a notice when it is not
/// installed; under `CI=true` its absence fails.
fn eximstats(log: &Path) -> Option<String> {
    if !Path::new(EXIMSTATS).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "eximstats (Debian's exim4-base) must be installed in CI"
        );
        eprintln!("NOTICE: {EXIMSTATS} is not installed; skipping the comparison");
        return None;
    }
    let out = Command::new(EXIMSTATS)
        .arg(log)
        .env("TZ", "UTC")
        .output()
        .expect("run eximstats");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn grand_totals_are_eximstats_totals() {
    let d = Dir::new();
    let gen_log = generated(d.path(), 3000, true, 7);
    for log in [
        fixture("exim-4.96/mainlog"),
        fixture("sluice/mainlog-classic"),
        gen_log,
    ] {
        let Some(theirs) = eximstats(&log) else {
            return;
        };
        let ours = stats(&d, &["--tz", "UTC", log.to_str().unwrap()], b"");
        let (t, o) = (grand_total(&theirs), grand_total(&ours));
        assert!(t.len() >= 2, "{theirs}");
        assert_eq!(o, t, "{}", log.display());
        // The sections eximstats prints are in ours, line for line.
        for section in [
            "Deliveries by transport",
            "Time spent on the queue: all messages",
            "Top 50 sending hosts by message count",
            "Top 50 local destinations by volume",
        ] {
            let block = |r: &str| -> String {
                r.split("\n\n")
                    .skip_while(|b| !b.starts_with(section))
                    .take(if section.starts_with("Time") { 2 } else { 1 })
                    .collect::<Vec<_>>()
                    .join("\n\n")
            };
            assert_eq!(
                block(&ours),
                block(&theirs),
                "{section} of {}",
                log.display()
            );
        }
        // eximstats's own -merge reads our report as it reads its own.
        let (ours_file, theirs_file) = (d.path().join("ours.txt"), d.path().join("theirs.txt"));
        std::fs::write(&ours_file, &ours).unwrap();
        std::fs::write(&theirs_file, &theirs).unwrap();
        let merged = |f: &Path| {
            let out = Command::new(EXIMSTATS)
                .arg("-merge")
                .arg(f)
                .output()
                .expect("eximstats -merge");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(
            merged(&ours_file),
            merged(&theirs_file),
            "eximstats -merge of {}",
            log.display()
        );
    }
}

/// Rotated logs, one gzipped, given in any order, and standard input, read
/// as the one log they were cut from.
#[test]
fn rotated_gzipped_files_in_any_order_and_stdin() {
    let d = Dir::new();
    let log = generated(d.path(), 2000, false, 3);
    let text = std::fs::read_to_string(&log).unwrap();
    let whole = json(&d, &[log.to_str().unwrap()], b"");
    // Cut at a line boundary in the middle.
    let mid = text[..text.len() / 2].rfind('\n').unwrap() + 1;
    let older = d.path().join("mainlog.1.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&older).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&text.as_bytes()[..mid]).unwrap();
    gz.finish().unwrap();
    let newer = d.path().join("mainlog");
    std::fs::write(&newer, &text[mid..]).unwrap();
    let split = json(&d, &[newer.to_str().unwrap(), older.to_str().unwrap()], b"");
    assert_eq!(split, whole);
    let piped = json(&d, &["-"], text.as_bytes());
    assert_eq!(piped, whole);
    // One worker or many: the same.
    let one = json(&d, &["--threads", "1", log.to_str().unwrap()], b"");
    assert_eq!(one, whole);
}

#[test]
fn merged_reports_add_up() {
    let d = Dir::new();
    let a = generated(d.path(), 1500, false, 1);
    let b = generated(d.path(), 1000, true, 2);
    let ra = json(&d, &[a.to_str().unwrap()], b"");
    let rb = json(&d, &[b.to_str().unwrap()], b"");
    let ja = d.path().join("a.json");
    let jb = d.path().join("b.json");
    std::fs::write(&ja, ra.to_string()).unwrap();
    std::fs::write(&jb, rb.to_string()).unwrap();
    let m = json(
        &d,
        &["--merge", ja.to_str().unwrap(), jb.to_str().unwrap()],
        b"",
    );
    for (section, field) in [
        ("received", "messages"),
        ("received", "bytes"),
        ("delivered", "messages"),
        ("delivered", "bytes"),
        ("delivered", "addresses"),
        ("failed", "addresses"),
        ("failed", "messages"),
        ("delayed", "messages"),
        ("rejected", "messages"),
    ] {
        assert_eq!(
            m[section][field].as_u64().unwrap(),
            ra[section][field].as_u64().unwrap() + rb[section][field].as_u64().unwrap(),
            "{section}.{field}"
        );
    }
    let hour_sum = |r: &serde_json::Value| -> u64 {
        r["per_hour"]["received"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(hour_sum(&m), hour_sum(&ra) + hour_sum(&rb));
    // Not a report: refused.
    let out = d.run(&["stats", "--merge", a.to_str().unwrap()], b"");
    assert_exit(&out, 65);
}

#[test]
fn options_are_checked() {
    let d = Dir::new();
    let log = fixture("exim-4.96/mainlog");
    let log = log.to_str().unwrap();
    assert_exit(&d.run(&["stats", "--tz", "Mars/Olympus", log], b""), 64);
    assert_exit(&d.run(&["stats", "--from", "yesterday", log], b""), 64);
    assert_exit(&d.run(&["stats", "/nonexistent/mainlog"], b""), 66);
    let r = json(
        &d,
        &[
            "--from",
            "2026-12-03 08:27:56",
            "--to",
            "2026-12-03 08:27:57",
            log,
        ],
        b"",
    );
    assert_eq!(r["received"]["messages"], 2);
    // Read and shown at +0100: the same hours as written.
    let r = json(&d, &["--tz", "+0100", log], b"");
    assert_eq!(r["zone"], "+0100");
    assert_eq!(r["per_hour"]["received"][8], 8);
    // The default input is the configured main log.
    std::fs::create_dir_all(d.home().join("log")).unwrap();
    std::fs::copy(fixture("exim-4.96/mainlog"), d.home().join("log/mainlog")).unwrap();
    let r = json(&d, &[], b"");
    assert_eq!(r["received"]["messages"], 8);
}

/// Each SVG of the HTML page, parsed by Python's XML parser: every bar's
/// `data-value` is the JSON report's number, and there are as many bars
/// as numbers.
#[test]
fn html_charts_carry_the_json_numbers() {
    let d = Dir::new();
    let log = generated(d.path(), 3000, false, 5);
    let page = d.path().join("report.html");
    let r = json(
        &d,
        &["--html", page.to_str().unwrap(), log.to_str().unwrap()],
        b"",
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for banned in ["<script", "<link", "<img", "src=", "@import", "url("] {
        assert!(!html.contains(banned), "{banned} in the page");
    }
    assert!(
        !html
            .replace("http://www.w3.org/2000/svg", "")
            .contains("http")
    );
    let charts = common::svg_charts(&html);
    assert_eq!(charts.as_array().map(Vec::len), Some(4));
    let values = |chart: &str, series: &str| -> Vec<u64> {
        charts
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["chart"] == chart)
            .unwrap_or_else(|| panic!("no chart {chart}"))["bars"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b[0] == series)
            .map(|b| b[2].as_u64().unwrap())
            .collect()
    };
    let nums = |v: &serde_json::Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    for series in ["received", "delivered", "deferred", "failed"] {
        let want = nums(&r["per_hour"][series]);
        assert_eq!(want.len(), 24);
        assert_eq!(values("per-hour", series), want, "{series}");
    }
    assert_eq!(values("queue-time", "all"), nums(&r["queue_time"]["all"]));
    assert_eq!(
        values("queue-time", "remote"),
        nums(&r["queue_time"]["remote"])
    );
    for (chart, series, table) in [
        ("top-senders", "sending_addresses", "sending_addresses"),
        (
            "top-recipients",
            "address_destinations",
            "address_destinations",
        ),
    ] {
        let rows = r["top"][table]["by_count"].as_array().unwrap();
        let want: Vec<u64> = rows
            .iter()
            .take(10)
            .map(|row| row["messages"].as_u64().unwrap())
            .collect();
        assert!(!want.is_empty());
        assert_eq!(values(chart, series), want, "{chart}");
    }
}

/// A gigabyte of a hosting box's log: 2.6 million messages from 200,000
/// senders to 1,000,000 remote recipients through 5,000 hosts, 1 % of them
/// never completed, made as it is read and piped to `sluice stats -`
/// (nothing large is written to disk). The peak resident set stays under
/// 256 MB: it is bounded by the distinct keys and the open messages, not
/// by the log's length. (A relay's log of the same size, with a million
/// distinct relays besides, peaks near 245 MB; docs/stats.md has both.)
#[test]
fn a_gigabyte_log_is_counted_in_bounded_memory() {
    let shape = "hosting";
    let d = Dir::new();
    let args = [
        "-n",
        "2600000",
        "--senders",
        "200000",
        "--recipients",
        "1000000",
        "--hosts",
        "5000",
        "--open",
        "0.01",
        "--seed",
        "11",
        "--hosting",
    ];
    let mut gen_child = Command::new("python3")
        .arg(generator())
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut gen_out = gen_child.stdout.take().unwrap();
    let start = Instant::now();
    let mut child = d
        .sluice()
        .args(["stats", "--json", "--tz", "UTC", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice stats");
    // Through this process, to count what was read.
    let mut stdin = child.stdin.take().unwrap();
    let copier = std::thread::spawn(move || std::io::copy(&mut gen_out, &mut stdin).unwrap());
    let status = format!("/proc/{}/status", child.id());
    let poller = std::thread::spawn(move || {
        let mut peak_kb = 0u64;
        while let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
            // A zombie has no memory left to show.
            if s.contains("State:\tZ") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        peak_kb
    });
    let bytes = copier.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(gen_child.wait().unwrap().success());
    let peak_kb = poller.join().unwrap();
    assert_exit(&out, 0);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines = r["lines"].as_u64().unwrap();
    let keys = |t: &str| r["top"][t]["keys"].as_u64().unwrap();
    eprintln!(
        "{shape}: {bytes} bytes, {lines} lines in {:?}, peak RSS {} MB; {} senders, \
             {} recipients, {} hosts, {} relays",
        start.elapsed(),
        peak_kb / 1024,
        keys("sending_addresses"),
        keys("address_destinations"),
        keys("sending_hosts"),
        r["relayed"].as_array().unwrap().len(),
    );
    assert!(bytes >= 1_000_000_000, "{bytes} bytes");
    assert!(r["received"]["messages"].as_u64().unwrap() >= 2_600_000);
    assert!(keys("sending_addresses") >= 190_000);
    // Recipients reached only by `->` lines are no keys of the
    // league (as in eximstats), so fewer than the million the log has.
    assert!(keys("address_destinations") >= 900_000);
    assert!(keys("sending_hosts") >= 4_900);
    assert!(peak_kb > 0, "VmHWM was never read");
    assert!(peak_kb <= 256 * 1024, "{shape}: peak RSS {peak_kb} kB");
}

/// A log the daemon wrote (long IDs, local time): counted as it reads.
#[test]
fn a_log_the_daemon_wrote() {
    let d = Dir::new();
    let daemon = d.serve(&[]);
    let ids = [
        common::send_message(daemon.smtp, &["bob@localhost"], "one", true),
        common::send_message(
            daemon.smtp,
            &["bob@localhost", "carol@localhost"],
            "two",
            false,
        ),
        // A relay refusal: a rejection.
        common::send_message(
            daemon.smtp,
            &["dave@localhost", "eve@remote.example"],
            "three",
            true,
        ),
    ];
    common::wait_completed(&d, &ids);
    let log = d.home().join("log/mainlog");
    let r = json(&d, &["--tz", "local", log.to_str().unwrap()], b"");
    let text = d.log("mainlog");
    // The volume: each arrival's S=, and each delivery counts its
    // message's size once.
    let size = |id: &str| -> u64 {
        common::log_lines_of(&text, id)
            .iter()
            .find_map(|l| l.split(" S=").nth(1))
            .and_then(|v| v.split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no S= for {id}: {text}"))
    };
    let sizes: Vec<u64> = ids.iter().map(|id| size(id)).collect();
    assert_eq!(r["received"]["messages"], 3, "{r}");
    assert_eq!(r["received"]["bytes"], sizes.iter().sum::<u64>());
    assert_eq!(r["delivered"]["messages"], 4);
    assert_eq!(r["delivered"]["addresses"], 4);
    assert_eq!(r["delivered"]["bytes"], sizes[0] + 2 * sizes[1] + sizes[2]);
    assert_eq!(r["rejected"]["messages"], 1);
    let queued: u64 = r["queue_time"]["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(queued, 3);
    let reasons = r["rejection_reasons"].to_string();
    assert!(reasons.contains("Rejected RCPT"), "{reasons}");
    assert!(r["zone"].as_str().unwrap().starts_with("local"));
}
