//! Helpers for the end-to-end tests: a temporary directory, the built
//! binary with a private data directory, and checks on what it wrote.
#![allow(dead_code)]

pub mod dns;
pub mod exim;
pub mod others;
pub mod receiver;
pub mod sink;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `sluice` binary under test.
pub fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// The DNS the tests' commands use by default: a closed loopback port.
pub const NO_DNS: &str = "dns.servers=[\"127.0.0.1:9\"]";

/// A temporary directory that also serves as `$SLUICE_HOME`.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// A `sluice` command with `SLUICE_HOME` set to this directory and no
    /// configuration from the environment. The embedded default routes
    /// other domains by their MX records: the tests' DNS is a closed port
    /// on loopback (nothing leaves the machine; lookups fail at once and
    /// defer), unless a test names its own configuration or servers.
    pub fn sluice(&self) -> Command {
        let mut c = self.sluice_bare();
        c.args([
            "--set",
            NO_DNS,
            "--set",
            "dns.timeout=1s",
            "--set",
            "dns.attempts=1",
            // Test daemons run side by side: none takes the system's
            // submission socket (tests/submission_socket.rs sets its own).
            "--set",
            "submission_socket=\"\"",
        ]);
        c
    }

    /// [`Dir::sluice`] without the DNS override, for invocations whose
    /// first arguments are not sluice's own (`sendmail` and `mailq` under
    /// their own names).
    pub fn sluice_bare(&self) -> Command {
        let mut c = Command::new(sluice_bin());
        c.env("SLUICE_HOME", self.path().join("home"))
            .env_remove("SLUICE_CONFIG")
            .current_dir(self.path());
        c
    }

    /// Runs `sluice ARGS` with `stdin` as input.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with_input(self.sluice().args(args), stdin)
    }
}

/// Runs a command feeding it `stdin`; returns its output.
pub fn run_with_input(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

/// Files directly in `dir` (names), sorted; empty when `dir` is missing.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The `S=` value of a Maildir file name.
pub fn size_field(name: &str) -> Option<u64> {
    let base = name.split(':').next()?;
    base.split(',')
        .find_map(|f| f.strip_prefix("S="))
        .and_then(|v| v.parse().ok())
}

/// The binary, copied once into a directory of mode 0755, for tests that
/// run it as another user (`nobody` cannot reach the build directory).
/// Once per test process: a copy being written while another test forks
/// keeps a writable descriptor open in that child until it execs, and
/// every exec of the copy meanwhile fails (ETXTBSY).
pub fn binary_for_others() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static BIN: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("sluice-bin")
            .tempdir()
            .expect("a directory for the binary");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod 755");
        let bin = dir.path().join("sluice");
        std::fs::copy(sluice_bin(), &bin).expect("copy the binary");
        (dir, bin)
    })
    .1
    .clone()
}

/// Whether a program is on PATH; prints a skip notice when it is not.
pub fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        eprintln!("NOTICE: {program} is not installed; skipping (bash .ci/run installs it)");
    }
    found
}

/// Whether the tests run as root (permission tests then drop privileges).
/// The login of the user running the tests, as `id -un` finds it in the
/// password database (what `sluice submit` must use, whatever `$USER` says).
pub fn login() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    assert!(out.status.success(), "id -un failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

// ---------------------------------------------------------------------
// The daemon, SMTP clients, TLS certificates and Python, for the tests of
// `sluice serve` (tests/smtp_*.rs, tests/lmtp_*.rs, tests/daemon_*.rs).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Dir {
    /// The data directory (`$SLUICE_HOME`) of this directory's commands.
    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// Starts `sluice serve --listen 127.0.0.1:0` with `--set` overrides
    /// and waits for its `listening` line.
    pub fn serve(&self, sets: &[&str]) -> Daemon {
        Daemon::start(self, &["serve", "--listen", "127.0.0.1:0"], sets)
    }

    /// Writes `text` to `sluice.toml` in the test's directory and starts
    /// the daemon with `--config` on it (a file the test can change and
    /// SIGHUP); its path and the daemon.
    pub fn serve_with_config(&self, text: &str) -> (PathBuf, Daemon) {
        let conf = self.path().join("sluice.toml");
        std::fs::write(&conf, text).unwrap();
        let c = conf.to_str().unwrap();
        let daemon = self.serve_args(&["--config", c, "serve", "--listen", "127.0.0.1:0"], &[]);
        (conf, daemon)
    }

    /// Starts the daemon with other arguments (e.g. Exim's `-bd -oX 0`).
    pub fn serve_args(&self, args: &[&str], sets: &[&str]) -> Daemon {
        Daemon::start(self, args, sets)
    }

    /// A log file of the data directory (`mainlog`, `rejectlog`,
    /// `paniclog`); empty when it does not exist yet.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.home().join("log").join(name)).unwrap_or_default()
    }

    /// The Maildir of `local@domain` under the default layout.
    pub fn maildir(&self, domain: &str, local: &str) -> PathBuf {
        self.home().join("mail").join(domain).join(local)
    }
}

/// A running `sluice serve`; killed (SIGKILL) when dropped.
pub struct Daemon {
    pub child: Child,
    pub smtp: SocketAddr,
    pub smtps: Option<SocketAddr>,
    pub lmtp: Option<SocketAddr>,
    pub lmtp_unix: Option<PathBuf>,
    /// The admin listener (`[admin] listen`).
    pub admin: Option<SocketAddr>,
    pub admin_unix: Option<PathBuf>,
    /// The submission socket.
    pub submit: Option<PathBuf>,
    /// Where the daemon's standard error goes.
    pub stderr: PathBuf,
}

impl Daemon {
    fn start(dir: &Dir, args: &[&str], sets: &[&str]) -> Daemon {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr = dir.path().join(format!("serve-{n}.stderr"));
        let mut cmd = dir.sluice();
        for s in sets {
            cmd.arg("--set").arg(s);
        }
        cmd.args(args);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("daemon stderr file"))
            .spawn()
            .expect("spawn sluice serve");
        let stdout = child.stdout.take().expect("daemon stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the one line, then keeps the pipe drained until the end.
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.starts_with("listening ") => l,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "sluice serve did not start ({other:?}); stderr: {}; paniclog: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default(),
                    dir.log("paniclog")
                );
            }
        };
        let mut d = Daemon {
            child,
            smtp: SocketAddr::from(([127, 0, 0, 1], 0)),
            smtps: None,
            lmtp: None,
            lmtp_unix: None,
            admin: None,
            admin_unix: None,
            submit: None,
            stderr,
        };
        for word in line.split_whitespace().skip(1) {
            let (kind, addr) = word.split_once('=').expect("listening KIND=ADDR");
            match (kind, addr.strip_prefix("unix:")) {
                ("lmtp", Some(path)) => d.lmtp_unix = Some(PathBuf::from(path)),
                ("smtp", None) => d.smtp = addr.parse().expect("smtp address"),
                ("smtps", None) => d.smtps = Some(addr.parse().expect("smtps address")),
                ("lmtp", None) => d.lmtp = Some(addr.parse().expect("lmtp address")),
                ("admin", Some(path)) => d.admin_unix = Some(PathBuf::from(path)),
                ("admin", None) => d.admin = Some(addr.parse().expect("admin address")),
                ("submit", Some(path)) => d.submit = Some(PathBuf::from(path)),
                _ => panic!("unexpected listener {word} in {line:?}"),
            }
        }
        assert_ne!(d.smtp.port(), 0, "no smtp listener in {line:?}");
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit (SIGKILL after `grace`); returns
    /// the exit status when it exited by itself.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The protocol crate's reply type: what the daemon writes is read back
/// by the same code the load generator uses.
pub use smtp::Reply;

/// A plain-text SMTP/LMTP client over TCP, line by line.
pub struct SmtpClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl SmtpClient {
    /// Connects (30 s timeouts) without reading the greeting.
    pub fn connect(addr: SocketAddr) -> std::io::Result<SmtpClient> {
        SmtpClient::from_stream(TcpStream::connect_timeout(&addr, Duration::from_secs(10))?)
    }

    /// A client on a connected stream (30 s timeouts).
    pub fn from_stream(s: TcpStream) -> std::io::Result<SmtpClient> {
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        Ok(SmtpClient {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// Connects and reads the greeting.
    pub fn open(addr: SocketAddr) -> std::io::Result<(SmtpClient, Reply)> {
        let mut c = SmtpClient::connect(addr)?;
        let greeting = c.reply()?;
        Ok((c, greeting))
    }

    pub fn set_read_timeout(&self, t: Duration) {
        let _ = self.writer.set_read_timeout(Some(t));
    }

    /// Sends bytes as they are.
    pub fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Sends one command line (CRLF appended).
    pub fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.write_raw(format!("{line}\r\n").as_bytes())
    }

    /// Reads one (possibly multi-line) reply.
    pub fn reply(&mut self) -> std::io::Result<Reply> {
        let mut reader = smtp::ReplyReader::new();
        loop {
            let mut raw = Vec::new();
            let n = self.reader.read_until(b'\n', &mut raw)?;
            if n == 0 || !raw.ends_with(b"\r\n") {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed in a reply (after {:?}, partial {:?})",
                        reader.partial_lines(),
                        String::from_utf8_lossy(&raw)
                    ),
                ));
            }
            if let Some(reply) = reader.push_line(&raw).map_err(std::io::Error::other)? {
                return Ok(reply);
            }
        }
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> std::io::Result<Reply> {
        self.send(line)?;
        self.reply()
    }

    /// Whether the server closed the connection: reads until EOF, failing
    /// on any byte or when nothing happens within `timeout`.
    pub fn expect_closed(&mut self, timeout: Duration) -> Result<(), String> {
        self.set_read_timeout(timeout);
        let mut buf = [0u8; 512];
        match self.reader.read(&mut buf) {
            Ok(0) => Ok(()),
            Ok(n) => Err(format!(
                "server sent {:?} instead of closing",
                String::from_utf8_lossy(&buf[..n])
            )),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(format!("connection not closed: {e}")),
        }
    }
}

/// A test CA and a server certificate it signed for `localhost` and
/// `127.0.0.1`, as PEM files in a directory.
pub struct TestCerts {
    pub ca_pem: String,
    pub ca_path: PathBuf,
    /// The CA's key, for signing more certificates (`receiver::receiver_tls`).
    pub ca_key_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestCerts {
    /// Makes the CA and the server certificate under `dir`.
    pub fn new(dir: &Path) -> TestCerts {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Sluice test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_key_pem = ca_key.serialize_pem();
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        std::fs::create_dir_all(dir).expect("certificate directory");
        let ca_pem = ca.as_ref().pem();
        let c = TestCerts {
            ca_path: dir.join("ca.pem"),
            ca_key_path: dir.join("ca-key.pem"),
            cert_path: dir.join("server-cert.pem"),
            key_path: dir.join("server-key.pem"),
            ca_pem,
        };
        std::fs::write(&c.ca_path, &c.ca_pem).expect("write CA");
        std::fs::write(&c.ca_key_path, ca_key_pem).expect("write CA key");
        std::fs::write(&c.cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&c.key_path, key.serialize_pem()).expect("write key");
        c
    }

    /// The `--set` overrides that make the daemon use this certificate.
    pub fn sets(&self) -> [String; 2] {
        [
            format!(
                "smtp.tls_certificate={:?}",
                self.cert_path.display().to_string()
            ),
            format!(
                "smtp.tls_privatekey={:?}",
                self.key_path.display().to_string()
            ),
        ]
    }

    /// A rustls client configuration that trusts only this CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(der.expect("CA PEM")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(cfg)
    }
}

/// Runs `python3 -c SCRIPT ARGS...`; panics with its stderr when it fails.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python output is UTF-8")
}

/// Runs `python3 -c SCRIPT` with `input` on its standard input; panics
/// with its stderr when it fails; returns what it printed.
pub fn python_with_input(script: &str, input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("python's stdin")
        .write_all(input)
        .expect("write to python");
    let out = child.wait_with_output().expect("python3 ran");
    assert!(
        out.status.success(),
        "python failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python output is UTF-8")
}

/// Every inline SVG chart of an HTML page as Python's XML parser reads
/// it: `[{"chart": ID, "bars": [[series, category, value], ...]}, ...]`,
/// the bars being the `<rect>`s with a `data-value`.
pub fn svg_charts(html: &str) -> serde_json::Value {
    let svgs: Vec<&str> = html
        .match_indices("<svg")
        .map(|(i, _)| {
            let end = html[i..].find("</svg>").expect("a closed <svg>") + i + 6;
            &html[i..end]
        })
        .collect();
    let script = r#"
import json, sys
import xml.etree.ElementTree as ET
out = []
for doc in sys.stdin.read().split("\0"):
    if not doc:
        continue
    root = ET.fromstring(doc)
    bars = [
        [e.get("data-series"), e.get("data-category"), int(e.get("data-value"))]
        for e in root.iter("{http://www.w3.org/2000/svg}rect")
        if e.get("data-value") is not None
    ]
    out.append({"chart": root.get("data-chart"), "bars": bars})
print(json.dumps(out))
"#;
    let out = python_with_input(script, svgs.join("\0").as_bytes());
    serde_json::from_str(&out).expect("the charts as JSON")
}

/// The messages of a Maildir (`new/` and `cur/`): (subdirectory/name, bytes),
/// sorted by name.
pub fn maildir_messages(md: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        for name in files_in(&md.join(sub)) {
            let bytes = std::fs::read(md.join(sub).join(&name)).expect("read Maildir file");
            out.push((format!("{sub}/{name}"), bytes));
        }
    }
    out.sort();
    out
}

/// Mainlog lines of message `id`.
pub fn log_lines_of<'a>(log: &'a str, id: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.split_whitespace().nth(2) == Some(id))
        .collect()
}

/// The messages of a Maildir as Python's `mailbox.Maildir` reads them:
/// (key, bytes), sorted by key. Empty when the Maildir does not exist.
pub fn python_maildir(md: &Path) -> Vec<(String, Vec<u8>)> {
    if !md.join("new").is_dir() {
        return Vec::new();
    }
    let script = r#"
import mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
for key in sorted(md.keys()):
    print(key, md.get_bytes(key).hex())
"#;
    let out = python(script, &[md.to_str().expect("UTF-8 path")]);
    out.lines()
        .map(|l| {
            let (key, hex) = l.split_once(' ').expect("key and bytes");
            (key.to_string(), unhex(hex))
        })
        .collect()
}

/// Hex digits to bytes.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex digits"))
        .collect()
}

/// CRLF → LF (the spool and the Maildir files store LF line ends).
pub fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if !(data[i] == b'\r' && data.get(i + 1) == Some(&b'\n')) {
            out.push(data[i]);
        }
        i += 1;
    }
    out
}

/// Splits a delivered message into its leading Received: header (with its
/// continuation lines) and the rest; `None` when it does not start with one.
pub fn split_received(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let msg = without_return_path(msg);
    if !msg.starts_with(b"Received: ") {
        return None;
    }
    let mut at = 0;
    loop {
        let nl = msg[at..].iter().position(|&b| b == b'\n')? + at + 1;
        at = nl;
        if !matches!(msg.get(at), Some(b' ' | b'\t')) {
            return Some((&msg[..at], &msg[at..]));
        }
    }
}

/// A delivered copy without the `Return-path:` line the embedded default's
/// Maildir transport writes on top (`return_path_add`).
pub fn without_return_path(msg: &[u8]) -> &[u8] {
    if msg.starts_with(b"Return-path: <") {
        let nl = msg
            .iter()
            .position(|&b| b == b'\n')
            .map_or(msg.len(), |n| n + 1);
        &msg[nl..]
    } else {
        msg
    }
}

/// Checks a main-log line's time stamp (`YYYY-MM-DD HH:MM:SS `) and returns
/// the rest of the line.
pub fn after_stamp(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    let shape = "dddd-dd-dd dd:dd:dd ";
    if b.len() < shape.len() {
        return None;
    }
    for (c, s) in b.iter().zip(shape.bytes()) {
        let ok = match s {
            b'd' => c.is_ascii_digit(),
            other => *c == other,
        };
        if !ok {
            return None;
        }
    }
    Some(&line[shape.len()..])
}

/// A delivered copy with its message ID and the `Received:` time taken
/// out, to compare the copies of two messages.
pub fn normalised_copy(bytes: &[u8], id: &str) -> String {
    let text = String::from_utf8_lossy(bytes).replace(id, "ID");
    text.lines()
        .map(|l| match l.find("id ID; ") {
            Some(at) => format!("{}id ID; DATE", &l[..at]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits (up to 20 s) until `d`'s mainlog contains `needle`, and fails
/// with the log if it never does.
pub fn wait_logged(d: &Dir, needle: &str) {
    assert!(
        wait_until(Duration::from_secs(20), || d
            .log("mainlog")
            .contains(needle)),
        "no {needle:?} in mainlog:\n{}",
        d.log("mainlog")
    );
}

/// How many delivery (`=>`) lines mainlog `log` has for message `id`.
pub fn deliveries_logged(log: &str, id: &str) -> usize {
    log_lines_of(log, id)
        .iter()
        .filter(|l| l.contains(" => "))
        .count()
}

/// What the `<=` line of message `id` in `d`'s mainlog says after `<= `.
pub fn arrival_fields(d: &Dir, id: &str) -> String {
    let log = d.log("mainlog");
    log_lines_of(&log, id)
        .first()
        .and_then(|l| l.split_once(" <= "))
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_else(|| panic!("no <= line for {id} in:\n{log}"))
}

/// Configuration lines: mary of the local domains has an mbox
/// (`mbox/<local>` in the data directory, which the test makes), everyone
/// else of them a Maildir.
pub const MBOX_FOR_MARY: &str = r#"[[router]]
name = "mboxes"
driver = "accept"
domains = ["+local_domains"]
local_parts = ["mary"]
transport = "mbox_delivery"

[[router]]
name = "local"
driver = "accept"
domains = ["+local_domains"]
transport = "maildir_delivery"

[[transport]]
name = "maildir_delivery"
driver = "maildir"
path = "mail/{domain}/{local}"

[[transport]]
name = "mbox_delivery"
driver = "mbox"
path = "mbox/{local}"
"#;

/// Makes a Maildir (`new/`, `cur/`, `tmp/`) with a Maildir++ `maildirsize`
/// file, e.g. `"10S\n100 1\n"` for a mailbox over its 10-byte quota.
pub fn maildir_with_quota(md: &Path, maildirsize: &str) {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).expect("Maildir directories");
    }
    std::fs::write(md.join("maildirsize"), maildirsize).expect("maildirsize");
}

/// Asserts a command's exit code, showing its stderr when it differs.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends one message over SMTP from alice@example.org with `subject` (and
/// a `Message-ID: <subject@example.org>` when `with_id`); returns the ID
/// of the `250` reply. Recipients the server refuses are left out.
pub fn send_message(addr: SocketAddr, rcpts: &[&str], subject: &str, with_id: bool) -> String {
    let (mut c, greeting) = SmtpClient::open(addr).expect("connect");
    assert_eq!(greeting.code(), 220, "{greeting}");
    assert_eq!(c.cmd("EHLO client.example").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<alice@example.org>").unwrap().code(), 250);
    for r in rcpts {
        c.cmd(&format!("RCPT TO:<{r}>")).unwrap();
    }
    assert_eq!(c.cmd("DATA").unwrap().code(), 354);
    let id = if with_id {
        format!("Message-ID: <{subject}@example.org>\r\n")
    } else {
        String::new()
    };
    c.write_raw(format!("Subject: {subject}\r\n{id}\r\nbody of {subject}\r\n").as_bytes())
        .unwrap();
    let ok = c.cmd(".").unwrap();
    assert_eq!(ok.code(), 250, "{ok}");
    let _ = c.cmd("QUIT");
    ok.queued_id()
        .map(str::to_owned)
        .expect("id in the 250 reply")
}

/// Waits (up to 20 s) until the main log of `d` says `Completed` for every
/// message of `ids`, and fails with the log if it never does.
pub fn wait_completed(d: &Dir, ids: &[String]) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            let log = d.log("mainlog");
            ids.iter().all(|id| {
                log_lines_of(&log, id)
                    .last()
                    .is_some_and(|l| l.ends_with(" Completed"))
            })
        }),
        "not all completed; mainlog:\n{}",
        d.log("mainlog")
    );
}

/// Writes `sluice.toml` for the remote delivery tests: `example.org` is
/// local (Maildirs under the data directory), `top` adds top-level keys
/// and sections, and `remote` is the remote router: its `[[router]]` body
/// (after `name`), sent through an smtp transport `remote_smtp` with the
/// options `transport`.
/// [`remote_config`] whose remote router is a manualroute smarthost:
/// `route_list = ["DOMAINS HOSTS"]` (Exim's host list), no
/// `ignore_target_hosts` (the tests' hosts are on loopback).
pub fn smarthost_config(
    d: &Dir,
    top: &str,
    domains: &str,
    hosts: &str,
    transport: &str,
) -> PathBuf {
    remote_config(
        d,
        top,
        &format!(
            "name = \"smarthost\"\ndriver = \"manualroute\"\nroute_list = [\"{domains} {hosts}\"]\nignore_target_hosts = []"
        ),
        transport,
    )
}

/// `sluice log check` passes on the data directory's logs: every line
/// parses.
pub fn assert_log_parses(d: &Dir, conf: &Path) {
    let check = d.run(&["--config", conf.to_str().unwrap(), "log", "check"], b"");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// The lines of `log` holding `marker`.
pub fn lines_with<'a>(log: &'a str, marker: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(marker)).collect()
}

/// The first line of `log` holding `marker`; panics showing the log.
pub fn line_with(log: &str, marker: &str) -> String {
    log.lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?} in:\n{log}"))
        .to_string()
}

pub fn remote_config(d: &Dir, top: &str, remote: &str, transport: &str) -> PathBuf {
    let text = format!(
        r#"primary_hostname = "mx.example.org"
local_domains = ["example.org"]
{top}

[[router]]
name = "virtual_mailbox"
driver = "accept"
domains = ["+local_domains"]
transport = "maildir_delivery"

[[router]]
{remote}
domains = ["!+local_domains"]
transport = "remote_smtp"

[[transport]]
name = "maildir_delivery"
driver = "maildir"
path = "mail/{{domain}}/{{local}}"

[[transport]]
name = "remote_smtp"
driver = "smtp"
{transport}
"#
    );
    let path = d.path().join("sluice.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// Mounts a tmpfs of `size` at `dir` (made if missing); false, with a
/// notice, where this process may not (root is needed). Under `CI=true`
/// that is a failure: CI runs the tests as root.
pub fn small_tmpfs(dir: &Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).expect("mount point");
    let ok = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot mount a tmpfs (root is needed) under CI=true"
        );
        eprintln!(
            "skipped: cannot mount a tmpfs at {} (not root?)",
            dir.display()
        );
    }
    ok
}

/// A mount point, unmounted when dropped.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
