//! Postfix's `smtp-sink` as a receiver whose faults are its own options
//! (`-f`, `-r`, `-q`, `-Q`, `-w`, `-A`, `-L`), not ours: unpacked from the
//! postfix .deb into `$SLUICE_PEERS/postfix` (default `/opt/sluice-peers`;
//! `.ci/run` and `benches/peers/outbound.sh` put it there), since the
//! package conflicts with exim4. Killed when dropped.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn root() -> PathBuf {
    let peers = std::env::var_os("SLUICE_PEERS").unwrap_or_else(|| "/opt/sluice-peers".into());
    PathBuf::from(peers).join("postfix")
}

fn binary() -> PathBuf {
    root().join("usr/sbin/smtp-sink")
}

/// Whether smtp-sink is here. Under `CI=true` its absence fails the test.
pub fn available() -> bool {
    let here = binary().exists();
    if !here && std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "Postfix's smtp-sink must be unpacked into {} in CI (.ci/run does it)",
            root().display()
        );
    }
    if !here {
        eprintln!(
            "SKIPPED: {} is missing (apt-get download postfix; dpkg -x postfix_*.deb {})",
            binary().display(),
            root().display()
        );
    }
    here
}

pub struct Sink {
    child: Child,
    pub addr: SocketAddr,
    /// Every transaction it received, appended (`-D`).
    pub dump: PathBuf,
}

impl Sink {
    /// Starts smtp-sink on `ip` with `options`, dumping into `dir`.
    pub fn start(dir: &Path, ip: &str, options: &[&str]) -> Sink {
        let port = TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        // Run as root it must drop to a user, who must write the dump.
        let own = dir.join(format!("sink-{ip}-{port}"));
        std::fs::create_dir_all(&own).unwrap();
        std::fs::set_permissions(&own, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let dump = own.join("dump");
        let mut cmd = Command::new(binary());
        cmd.env("LD_LIBRARY_PATH", root().join("usr/lib/postfix"))
            .args(options)
            .arg("-D")
            .arg(&dump);
        if super::is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg(format!("{ip}:{port}"))
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start smtp-sink");
        let mut sink = Sink { child, addr, dump };
        let up = super::wait_until(Duration::from_secs(10), || TcpStream::connect(addr).is_ok());
        if !up {
            let _ = sink.child.kill();
            panic!("smtp-sink did not listen on {addr}");
        }
        sink
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many transactions it dumped (each starts its envelope with one
    /// `X-Mail-Args:` line).
    pub fn messages(&self) -> usize {
        self.dumped()
            .lines()
            .filter(|l| l.starts_with("X-Mail-Args:"))
            .count()
    }

    pub fn dumped(&self) -> String {
        std::fs::read_to_string(&self.dump).unwrap_or_default()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
