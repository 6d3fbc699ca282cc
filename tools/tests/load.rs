//! `sluice-load` against a real `sluice serve`: every message it reports
//! accepted is in the Maildir, and a refused message makes it fail.
//!
//! The `sluice` binary belongs to another package of the workspace, so
//! cargo does not build it for these tests: they use `$SLUICE_BIN`, else
//! target/debug/sluice, else target/release/sluice, and skip with a notice
//! when none is built (`cargo build --bin sluice`; `cargo test --workspace`
//! builds it).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long the server gets to deliver everything it accepted.
const DELIVERY_WAIT: Duration = Duration::from_secs(60);

fn sluice_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SLUICE_BIN") {
        return Some(PathBuf::from(p));
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join("sluice"))
        .find(|p| p.is_file())
}

/// A `sluice serve` on an ephemeral port with a private data directory;
/// killed when dropped.
struct Server {
    child: Child,
    /// Kept open: a server writing to a closed pipe would fail.
    _stdout: BufReader<ChildStdout>,
    port: u16,
    /// The implicit-TLS listener's port, when one was asked for.
    tls_port: Option<u16>,
    home: tempfile::TempDir,
}

impl Server {
    /// None (after a notice) when the sluice binary is not built.
    fn start(test: &str) -> Option<Server> {
        Server::start_with(test, &[])
    }

    /// With extra arguments for `sluice serve`.
    fn start_with(test: &str, extra: &[&str]) -> Option<Server> {
        let Some(bin) = sluice_bin() else {
            eprintln!(
                "{test}: skipped: no sluice binary (run `cargo build --bin sluice` or set SLUICE_BIN)"
            );
            return None;
        };
        let home = tempfile::tempdir().expect("temporary directory");
        let mut child = Command::new(&bin)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("SLUICE_HOME", home.path())
            .env_remove("SLUICE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the listening line");
        let port_of = |kind: &str| -> Option<u16> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(kind)?.strip_prefix('='))
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
        };
        let (port, tls_port) = (port_of("smtp"), port_of("smtps"));
        let Some(port) = port else {
            let _ = child.kill();
            panic!("no smtp= port in the server's first line: {line:?}");
        };
        Some(Server {
            child,
            _stdout: stdout,
            port,
            tls_port,
            home,
        })
    }

    fn maildir_new(&self, local: &str) -> PathBuf {
        self.home
            .path()
            .join("mail/localhost")
            .join(local)
            .join("new")
    }

    /// Waits until `want` files are in `local`'s new/ (or the time is up);
    /// returns how many there are.
    fn wait_delivered(&self, local: &str, want: usize) -> usize {
        let dir = self.maildir_new(local);
        let deadline = Instant::now() + DELIVERY_WAIT;
        loop {
            let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            if n >= want || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(port: u16, args: &[&str]) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-load"))
        .args(["--port", &port.to_string(), "--json", "--timeout", "60"])
        .args(args)
        .output()
        .expect("run sluice-load");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sluice-load printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, report)
}

#[test]
fn two_hundred_messages_over_four_connections() {
    let Some(server) = Server::start("two_hundred_messages_over_four_connections") else {
        return;
    };
    let (out, r) = load(
        server.port,
        &[
            "-n",
            "200",
            "-c",
            "4",
            "-s",
            "2048",
            "--to",
            "bulk@localhost",
        ],
    );
    assert!(out.status.success(), "{r}");
    assert_eq!(r["accepted"], 200, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    let l = &r["latency_ms"];
    let (p50, p99, max) = (
        l["p50"].as_f64().expect("p50"),
        l["p99"].as_f64().expect("p99"),
        l["max"].as_f64().expect("max"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{r}");
    assert!(
        r["messages_per_second"].as_f64().expect("rate") > 0.0,
        "{r}"
    );
    assert_eq!(server.wait_delivered("bulk", 200), 200);
    // Every delivered message carries one of this run's Message-IDs, once.
    let mut ids: Vec<String> = std::fs::read_dir(server.maildir_new("bulk"))
        .expect("new/")
        .map(|e| {
            let text = std::fs::read_to_string(e.expect("entry").path()).expect("read");
            text.lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .expect("Message-ID")
                .to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
}

#[test]
fn starttls_one_message_per_connection() {
    let Some(server) = Server::start("starttls_one_message_per_connection") else {
        return;
    };
    let (out, r) = load(
        server.port,
        &[
            "-n",
            "12",
            "-c",
            "3",
            "--starttls",
            "--no-reuse",
            "--to",
            "tls@localhost",
        ],
    );
    assert!(out.status.success(), "{r}");
    assert_eq!(
        (&r["accepted"], &r["tls"], &r["reuse"]),
        (&12.into(), &"starttls".into(), &false.into())
    );
    assert_eq!(server.wait_delivered("tls", 12), 12);
}

#[test]
fn implicit_tls() {
    let Some(server) = Server::start_with(
        "implicit_tls",
        &["--set", "smtp.tls_listen=[\"127.0.0.1:0\"]"],
    ) else {
        return;
    };
    let port = server.tls_port.expect("smtps= port");
    let (out, r) = load(
        port,
        &["-n", "10", "-c", "2", "--tls", "--to", "tls465@localhost"],
    );
    assert!(out.status.success(), "{r}");
    assert_eq!(
        (&r["accepted"], &r["tls"]),
        (&10.into(), &"tls".into()),
        "{r}"
    );
    assert_eq!(server.wait_delivered("tls465", 10), 10);
}

#[test]
fn refused_messages_are_failures() {
    let Some(server) = Server::start("refused_messages_are_failures") else {
        return;
    };
    // Relaying is refused by default: every RCPT gets a 5xx.
    let (out, r) = load(
        server.port,
        &["-n", "6", "-c", "2", "--to", "someone@example.com"],
    );
    assert_eq!(out.status.code(), Some(1), "{r}");
    assert_eq!(
        (&r["accepted"], &r["failed"]),
        (&0.into(), &6.into()),
        "{r}"
    );
    assert_eq!(r["latency_ms"], serde_json::Value::Null);
    let errors = r["errors"].as_object().expect("errors");
    assert_eq!(errors.len(), 1, "{r}");
    let (code, e) = errors.iter().next().expect("one kind");
    assert!(code.starts_with('5'), "{r}");
    assert_eq!(e["count"], 6);
    assert!(
        e["example"]
            .as_str()
            .expect("example")
            .starts_with("RCPT: 5"),
        "{r}"
    );
}

#[test]
fn nothing_listening() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let (out, r) = load(port, &["-n", "3", "-c", "1"]);
    assert_eq!(out.status.code(), Some(1), "{r}");
    assert_eq!(r["errors"]["connect"]["count"], 3, "{r}");
}
