//! The admin listener end to end: `/metrics` read by Prometheus's own
//! parser (Python's `prometheus_client`) after real SMTP sessions
//! (smtplib, one with STARTTLS) and a `sendmail` submission; the token
//! rules for `/` and `/queue` on TCP and the Unix socket; the status
//! page's charts parsed as XML; a start refused without a token.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::Dir;

const TOKEN: &str = "s3cret-token-for-the-admin-test";

/// Python's `prometheus_client` (from PyPI; .ci/run installs it).
fn have_parser() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 -m pip install prometheus_client is needed under CI=true"
        );
        eprintln!(
            "NOTICE: prometheus_client is not installed; skipping (bash .ci/run installs it)"
        );
    }
    ok
}

fn token_file(d: &Dir) -> String {
    let p = d.path().join("admin.token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

/// `sluice FLAG ID` (-Mf, -Mt) as an operator runs it: again while the
/// daemon's startup queue run has the message locked for a moment.
fn operator(d: &Dir, flag: &str, id: &str) {
    let mut last = None;
    let done = common::wait_until(Duration::from_secs(10), || {
        let out = d.run(&[flag, id], b"");
        let ok = out.status.success();
        last = Some(out);
        ok
    });
    assert!(
        done,
        "{flag} {id}: {:?}",
        last.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
    );
}

/// One HTTP request over any stream: (status, body).
fn request(mut s: impl Read + Write, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a whole response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

fn get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    request(s, path, token)
}

/// The samples of an exposition as Prometheus's parser reads them:
/// `name{label="v",...}` (labels sorted) → value.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let out = common::python_with_input(script, text.as_bytes());
    serde_json::from_str(&out).unwrap()
}

#[test]
fn metrics_count_what_the_daemon_did_and_pages_need_the_token() {
    if !have_parser() {
        return;
    }
    let d = Dir::new();
    let tf = token_file(&d);
    // A message queued by sendmail and frozen by an operator before the
    // daemon starts: not received by it, but on its queue (the frozen
    // count starts from a scan of the spool).
    let q = d.run(
        &["-odq", "-f", "alice@localhost", "carol@localhost"],
        b"Subject: queued\n\nwaits\n",
    );
    common::assert_exit(&q, 0);
    let log = d.log("mainlog");
    let queued = log
        .lines()
        .find(|l| l.contains(" <= "))
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("the arrival of the queued message")
        .to_string();
    operator(&d, "-Mf", &queued);
    let daemon = d.serve(&[
        "admin.listen=\"127.0.0.1:0\"",
        &format!("admin.token_file=\"{tf}\""),
    ]);
    let admin = daemon.admin.expect("the admin listener is announced");

    let script = r#"
import smtplib, sys
port = int(sys.argv[1])
for i in range(2):
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.sendmail("alice@example.org", ["bob@localhost"], f"Subject: {i}\r\n\r\nhello\r\n")
with smtplib.SMTP("127.0.0.1", port) as s:
    s.starttls()
    s.sendmail("alice@example.org", ["bob@localhost", "dave@localhost"], "Subject: tls\r\n\r\nsecret\r\n")
with smtplib.SMTP("127.0.0.1", port) as s:
    s.ehlo()
    s.mail("alice@example.org")
    code, _ = s.rcpt("someone@elsewhere.example")
    assert code == 550, code
"#;
    common::python(script, &[&daemon.smtp.port().to_string()]);
    assert!(common::wait_until(Duration::from_secs(20), || {
        d.log("mainlog").matches(" Completed").count() >= 3
    }));

    let (status, text) = get(admin, "/metrics", None);
    assert_eq!(status, 200, "{text}");
    let m = parse_metrics(&text);
    let value = |k: &str| -> f64 { *m.get(k).unwrap_or_else(|| panic!("no {k} in {m:#?}")) };
    assert_eq!(
        value("sluice_messages_received_total{protocol=\"esmtp\"}"),
        2.0
    );
    assert_eq!(
        value("sluice_messages_received_total{protocol=\"esmtps\"}"),
        1.0
    );
    // The sendmail submission went through its own process: not counted
    // (README, "Metrics").
    assert!(!m.contains_key("sluice_messages_received_total{protocol=\"local\"}"));
    assert_eq!(
        value("sluice_deliveries_total{result=\"delivered\",transport=\"maildir_delivery\"}"),
        4.0,
        "{m:#?}"
    );
    assert_eq!(
        value("sluice_rejections_total{reason=\"relay\"}"),
        1.0,
        "{}",
        d.log("rejectlog")
    );
    assert_eq!(value("sluice_rejections_total{reason=\"quota\"}"), 0.0);
    assert_eq!(value("sluice_tls_sessions_total{}"), 1.0);
    assert!(value("sluice_bytes_received_total{}") > 0.0);
    assert_eq!(value("sluice_queue_messages{}"), 1.0);
    assert_eq!(
        value("sluice_queue_frozen_messages{}"),
        1.0,
        "frozen by -Mf, seen in the log"
    );
    assert!(value("sluice_commit_batch_messages_count{}") >= 1.0);
    assert!(value("sluice_commit_flush_seconds_count{}") >= 1.0);
    // This scrape's session is not SMTP: none open.
    assert_eq!(value("sluice_smtp_sessions{state=\"command\"}"), 0.0);

    // Thawed and frozen again by an operator (another process): the
    // gauge follows the main log at the next scrape.
    operator(&d, "-Mt", &queued);
    let m = parse_metrics(&get(admin, "/metrics", None).1);
    assert_eq!(m["sluice_queue_frozen_messages{}"], 0.0);
    operator(&d, "-Mf", &queued);
    let m = parse_metrics(&get(admin, "/metrics", None).1);
    assert_eq!(m["sluice_queue_frozen_messages{}"], 1.0);

    // Addresses need the token.
    for path in ["/", "/queue"] {
        assert_eq!(get(admin, path, None).0, 401, "{path} without a token");
        assert_eq!(get(admin, path, Some("wrong-token-wrong-token")).0, 401);
    }
    let (status, queue) = get(admin, "/queue", Some(TOKEN));
    assert_eq!(status, 200);
    let lines: Vec<serde_json::Value> = queue
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{queue}");
    assert_eq!(lines[0]["queue_id"], queued.as_str());
    assert_eq!(lines[0]["recipients"][0]["address"], "carol@localhost");

    let (status, page) = get(admin, "/", Some(TOKEN));
    assert_eq!(status, 200);
    assert!(page.contains("<td>localhost</td><td>1</td>"), "{page}");
    assert!(page.contains(&queued));
    check_charts(&page, 4);
    assert_eq!(get(admin, "/nothing", Some(TOKEN)).0, 404);
}

/// Every SVG of `page` parses as XML, and the per-hour chart's received
/// bars add up to `received`.
fn check_charts(page: &str, received: u64) {
    let charts = common::svg_charts(page);
    let charts = charts.as_array().expect("a list of charts");
    assert_eq!(charts.len(), 4, "{page}");
    let per_hour = charts
        .iter()
        .find(|c| c["chart"] == "per-hour")
        .expect("the per-hour chart");
    let total: u64 = per_hour["bars"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b[0] == "received")
        .map(|b| b[2].as_u64().unwrap())
        .sum();
    assert_eq!(total, received);
}

#[test]
fn the_unix_socket_needs_no_token_and_is_group_only() {
    let d = Dir::new();
    let sock = d.path().join("run").join("admin.sock");
    let daemon = d.serve(&[&format!("admin.listen=\"unix:{}\"", sock.display())]);
    assert_eq!(daemon.admin_unix.as_deref(), Some(sock.as_path()));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    let s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let (status, page) = request(s, "/", None);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h2>Queue</h2>"));
    let s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let (status, _) = request(s, "/queue", None);
    assert_eq!(status, 200);
}

#[test]
fn a_tcp_listener_without_a_good_token_does_not_start() {
    let d = Dir::new();
    let out = d.run(
        &[
            "--set",
            "admin.listen=\"127.0.0.1:0\"",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin.token_file"), "{err}");

    let loose = d.path().join("loose.token");
    std::fs::write(&loose, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = d.run(
        &[
            "--set",
            "admin.listen=\"127.0.0.1:0\"",
            "--set",
            &format!("admin.token_file=\"{}\"", loose.display()),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(78));
    let said = String::from_utf8_lossy(&out.stderr).to_string() + &d.log("paniclog");
    assert!(said.contains("chmod 600"), "{said}");
    assert!(!d.log("mainlog").contains("daemon started"));
}

#[test]
fn requests_are_bounded() {
    let d = Dir::new();
    let tf = token_file(&d);
    let daemon = d.serve(&[
        "admin.listen=\"127.0.0.1:0\"",
        &format!("admin.token_file=\"{tf}\""),
    ]);
    let admin = daemon.admin.unwrap();
    // A head over 8 KiB.
    let mut s = std::net::TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    let _ = s.write_all(big.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    // Not HTTP.
    let mut s = std::net::TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"EHLO me\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // Eight idle connections take every slot; the ninth is told at once.
    let idle: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(admin).unwrap())
        .collect();
    // (Once the daemon has accepted all eight: it holds them for 10 s.)
    assert!(
        common::wait_until(Duration::from_secs(5), || get(admin, "/metrics", None).0
            == 503),
        "a ninth connection is refused with 503"
    );
    drop(idle);
    assert!(common::wait_until(Duration::from_secs(5), || {
        get(admin, "/metrics", None).0 == 200
    }));
}
