//! The daemon in process: [`serve`] on a listener the test binds itself,
//! stopped through its shutdown future, with no stdout to scrape.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::{Kind, Listener, serve};
use crate::app::App;
use crate::config::{self, Config};

/// How long a step may take before the test gives up on it (a loaded
/// machine shared with other builds is slow, not broken).
const PATIENCE: Duration = Duration::from_secs(30);

/// A configuration whose data directory is `dir`.
fn config_in(dir: &Path) -> Arc<Config> {
    config_with(dir, "")
}

/// [`config_in`] with more settings.
fn config_with(dir: &Path, more: &str) -> Arc<Config> {
    let data_dir = toml::Value::String(dir.display().to_string());
    let text = format!("data_dir = {data_dir}\nprimary_hostname = \"mx.test\"\n{more}");
    let cfg = config::from_str("test", &text).expect("test configuration");
    // $SLUICE_HOME wins over data_dir; the test must not write there.
    assert_eq!(
        cfg.data_dir, dir,
        "SLUICE_HOME is set in the environment; unset it to run this test"
    );
    Arc::new(cfg)
}

/// A line-by-line SMTP client on a tokio stream.
struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        let (r, w) = TcpStream::connect(addr)
            .await
            .expect("connect")
            .into_split();
        Client {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    async fn reply(&mut self) -> smtp::Reply {
        let mut reader = smtp::ReplyReader::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(PATIENCE, self.reader.read_until(b'\n', &mut line))
                .await
                .expect("a reply in time")
                .expect("read");
            assert!(n > 0, "connection closed in a reply");
            if let Some(r) = reader.push_line(&line).expect("a reply line") {
                return r;
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> smtp::Reply {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write");
        self.reply().await
    }
}

/// Polls `cond` until it holds or [`PATIENCE`] runs out.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// The files directly in `dir`; none when it does not exist yet.
fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Serves `app` on a loopback port: its address, the sender that stops it,
/// and the task (which returns the exit code).
async fn start(
    app: App,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<i32>,
) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        app,
        vec![Listener::Tcp(tcp, Kind::Smtp)],
        None,
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop, server)
}

#[tokio::test]
async fn serve_delivers_a_message_and_returns_when_shutdown_resolves() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cfg = config_in(dir.path());
    let app = App::open(cfg.clone()).expect("open the application context");
    let (addr, stop, server) = start(app).await;

    let mut c = Client::connect(addr).await;
    assert_eq!(c.reply().await.code(), 220);
    assert_eq!(c.cmd("EHLO client.test").await.code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<bob@client.test>").await.code(), 250);
    assert_eq!(c.cmd("RCPT TO:<alice@mx.test>").await.code(), 250);
    assert_eq!(c.cmd("DATA").await.code(), 354);
    let queued = c
        .cmd("Subject: in process\r\n\r\nHello from the test.\r\n.")
        .await;
    assert_eq!(queued.code(), 250, "{queued}");
    let id = queued.queued_id().expect("250 OK id=...").to_string();
    assert_eq!(c.cmd("QUIT").await.code(), 221);

    // The delivery workers take the message after the 250.
    let new = cfg.data_dir.join("mail/mx.test/alice/new");
    assert!(
        eventually(|| files_in(&new).len() == 1).await,
        "no Maildir file in {}",
        new.display()
    );
    let files = files_in(&new);
    let message = std::fs::read(&files[0]).expect("the delivered message");
    let text = String::from_utf8_lossy(&message);
    assert!(text.contains("Hello from the test."), "{text}");
    assert!(
        text.contains(&id),
        "the Received: header names {id}: {text}"
    );

    stop.send(())
        .expect("serve is still waiting for its shutdown");
    let code = tokio::time::timeout(PATIENCE, server)
        .await
        .expect("serve returned in time")
        .expect("serve did not panic");
    assert_eq!(code, 0);
    let mainlog = std::fs::read_to_string(cfg.log_dir().join("mainlog")).expect("mainlog");
    assert!(
        mainlog.contains("sluice daemon stopping on signal"),
        "{mainlog}"
    );
    // No listener accepts any more once serve has returned.
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "{addr} still accepts after serve returned");
}

/// How a power-cut run is weakened, to prove the check notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Weaken {
    Nothing,
    NoDataBarrier,
    NoNewDirSync,
}

/// Sends messages to two local Maildirs (the direct path) through a
/// daemon whose every durable write is recorded, marking each `250`; then
/// checks, at every point a power cut could fall, that each acknowledged
/// message is whole in both Maildirs and nothing partial is visible in
/// `new/`. Returns the number of cut points, or the first violation.
///
/// `split`: bob asks for a success report, so his copy is spooled while
/// alice's is written directly; an acknowledged message must then be whole
/// in alice's Maildir and either whole in bob's or whole in the spool.
async fn direct_power_cut(weaken: Weaken, split: bool) -> Result<usize, String> {
    use durable::sim::Recorder;
    let dir = tempfile::tempdir().expect("temporary directory");
    // DSN offered to the test's client; the reports go to a local sender.
    let cfg = config_with(
        dir.path(),
        "[smtp]\ndsn_advertise_hosts = [\"127.0.0.1\"]\n",
    );
    // Over the daemon's own `Io` (`app::open_queue`).
    let rec = Arc::new(Recorder::over(Arc::new(durable::DirIo::default())));
    let maildirs = ["alice", "bob"].map(|u| cfg.data_dir.join("mail/mx.test").join(u));
    match weaken {
        Weaken::Nothing => {}
        Weaken::NoDataBarrier => rec.skip_sync_data(),
        Weaken::NoNewDirSync => {
            for m in &maildirs {
                rec.skip_sync_dir(m.join("new"));
            }
        }
    }
    let app = App::open_with_io(cfg.clone(), rec.clone()).expect("open");
    let (addr, stop, server) = start(app).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.reply().await.code(), 220);
    assert_eq!(c.cmd("EHLO client.test").await.code(), 250);
    for i in 0..6 {
        assert_eq!(c.cmd("MAIL FROM:<carol@mx.test>").await.code(), 250);
        assert_eq!(c.cmd("RCPT TO:<alice@mx.test>").await.code(), 250);
        let notify = if split { " NOTIFY=SUCCESS" } else { "" };
        let r = c.cmd(&format!("RCPT TO:<bob@mx.test>{notify}")).await;
        assert_eq!(r.code(), 250, "{r}");
        assert_eq!(c.cmd("DATA").await.code(), 354);
        let body = format!(
            "Subject: cut {i}\r\n\r\n{}\r\n.",
            "line\r\n".repeat(50 * (i + 1))
        );
        let r = c.cmd(&body).await;
        assert_eq!(r.code(), 250, "{r}");
        rec.mark(format!("ack {}", r.queued_id().expect("id")));
    }
    let _ = c.cmd("QUIT").await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(PATIENCE, server).await;
    // Unsplit, every message took the direct path: nothing was spooled.
    let spooled = rec
        .events()
        .iter()
        .any(|e| matches!(e, durable::sim::Event::Create(p) if p.starts_with(cfg.spool_dir())));
    assert_eq!(spooled, split, "messages through the spool");

    let cuts = rec.cut_points();
    for &cut in &cuts {
        let pc = rec.power_cut(cut);
        // A whole file named `name...` in `dir` after the cut; an error
        // naming it when it is partial.
        let whole = |dir: &Path, name: &str| -> Result<bool, String> {
            let found = pc.files.iter().find(|(p, _)| {
                p.parent() == Some(dir)
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(name))
            });
            match found {
                None => Ok(false),
                Some((p, img)) if !img.is_whole() => Err(format!(
                    "cut {cut}: acknowledged {} is partial: {img:?}",
                    p.display()
                )),
                Some(_) => Ok(true),
            }
        };
        for m in &pc.marks {
            let id = m.trim_start_matches("ack ");
            for (k, md) in maildirs.iter().enumerate() {
                let new = md.join("new");
                if whole(&new, id)? {
                    continue;
                }
                // Bob's copy may still be waiting in the spool.
                if split && k == 1 {
                    let input = spool::MessageId::parse(id)
                        .map(|i| spool::Layout::new(cfg.spool_dir(), true).input_dir(&i))
                        .map_err(|e| e.to_string())?;
                    if whole(&input, &format!("{id}-H"))? && whole(&input, &format!("{id}-D"))? {
                        continue;
                    }
                }
                return Err(format!(
                    "cut {cut}: acknowledged {id} is missing in {}",
                    new.display()
                ));
            }
        }
        for (p, img) in &pc.files {
            if p.parent()
                .and_then(|d| d.file_name())
                .is_some_and(|n| n == "new")
                && !img.is_whole()
            {
                return Err(format!("cut {cut}: visible {} is partial", p.display()));
            }
        }
    }
    Ok(cuts.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_deliveries_survive_every_power_cut_and_the_check_needs_both_barriers() {
    for split in [false, true] {
        let cuts = direct_power_cut(Weaken::Nothing, split)
            .await
            .unwrap_or_else(|e| panic!("split={split}: {e}"));
        assert!(cuts >= 12, "split={split}: only {cuts} cut points");
        for weaken in [Weaken::NoDataBarrier, Weaken::NoNewDirSync] {
            let e = direct_power_cut(weaken, split)
                .await
                .expect_err("a weakened run must fail the check");
            assert!(
                e.contains("acknowledged") || e.contains("partial"),
                "split={split} {weaken:?}: {e}"
            );
        }
    }
}

/// Case (c) of direct delivery: the second copy's rename fails (EIO)
/// after the first was published. Alice keeps her copy; the message is
/// spooled under the same ID with her recorded as delivered, and bob gets
/// his copy from the spool under the same name (`250`). When the spool's
/// renames fail too, the client gets `451` and the log names alice as
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_failing_after_another_keeps_the_published_copy() {
    use durable::sim::{Op, Recorder};
    for spool_fails in [false, true] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let cfg = config_in(dir.path());
        let rec = Arc::new(Recorder::over(Arc::new(durable::DirIo::default())));
        // Renames: alice's copy (0), bob's (1), then the spool's -D (2).
        rec.fail(Op::Rename, 1);
        if spool_fails {
            rec.fail(Op::Rename, 2);
        }
        let app = App::open_with_io(cfg.clone(), rec.clone()).expect("open");
        let (addr, stop, server) = start(app).await;
        let mut c = Client::connect(addr).await;
        assert_eq!(c.reply().await.code(), 220);
        assert_eq!(c.cmd("EHLO client.test").await.code(), 250);
        assert_eq!(c.cmd("MAIL FROM:<carol@client.test>").await.code(), 250);
        assert_eq!(c.cmd("RCPT TO:<alice@mx.test>").await.code(), 250);
        assert_eq!(c.cmd("RCPT TO:<bob@mx.test>").await.code(), 250);
        assert_eq!(c.cmd("DATA").await.code(), 354);
        let r = c.cmd("Subject: case c\r\n\r\nhalf published\r\n.").await;
        let new = |who: &str| cfg.data_dir.join("mail/mx.test").join(who).join("new");
        let alice = files_in(&new("alice"));
        assert_eq!(alice.len(), 1, "alice keeps her copy ({r})");
        let mainlog = || std::fs::read_to_string(cfg.log_dir().join("mainlog")).unwrap();
        if spool_fails {
            assert_eq!(r.code(), 451, "{r}");
            let log = mainlog();
            assert!(
                log.lines()
                    .any(|l| l.contains(" => alice <alice@mx.test> "))
                    && log
                        .lines()
                        .any(|l| l.contains("not accepted after delivery to alice@mx.test")),
                "{log}"
            );
            assert!(files_in(&new("bob")).is_empty());
        } else {
            assert_eq!(r.code(), 250, "{r}");
            let id = r.queued_id().expect("id").to_string();
            let name =
                |p: &std::path::PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name(&alice[0]).starts_with(&format!("{id}.0,")),
                "{alice:?}"
            );
            assert!(
                eventually(|| files_in(&new("bob")).len() == 1).await,
                "bob's copy from the spool; mainlog:\n{}",
                mainlog()
            );
            assert!(name(&files_in(&new("bob"))[0]).starts_with(&format!("{id}.1,")));
            assert!(
                eventually(|| mainlog().contains(&format!("{id} Completed"))).await,
                "{}",
                mainlog()
            );
            let log = mainlog();
            for who in ["alice", "bob"] {
                let n = log
                    .lines()
                    .filter(|l| l.contains(&format!(" => {who} <{who}@mx.test> ")))
                    .count();
                assert_eq!(n, 1, "{who}: {log}");
            }
            assert_eq!(files_in(&new("alice")).len(), 1);
        }
        let _ = c.cmd("QUIT").await;
        let _ = stop.send(());
        let _ = tokio::time::timeout(PATIENCE, server).await;
    }
}
