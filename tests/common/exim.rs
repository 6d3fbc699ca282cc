//! A real Exim 4.96 (Debian's `exim4-daemon-light`) as a receiving MTA on
//! a loopback address: its own configuration, spool, logs and Maildirs
//! under a test directory, started in the foreground (`-bdf`) and killed
//! by its pid when dropped. PIPELINING and CHUNKING as Exim offers them by
//! default, STARTTLS with the test CA's certificate when asked.
//!
//! Exim takes a `-C` configuration only when it is root's and not
//! writable by others, and then drops root to its own user: the test must
//! run as root, and the directories Exim writes belong to `Debian-exim`.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const EXIM: &str = "/usr/sbin/exim4";

/// Whether Exim can be run here: installed, and the test is root. Under
/// `CI=true` its absence fails the test instead.
pub fn available() -> bool {
    let here = Path::new(EXIM).exists() && super::is_root();
    if !here && std::env::var("CI").as_deref() == Ok("true") {
        panic!("Exim 4.96 (exim4-daemon-light) must be installed and the tests run as root in CI");
    }
    if !here {
        eprintln!("SKIPPED: exim4 is not installed or the test is not root");
    }
    here
}

pub struct Exim {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

/// A free port on `ip` (bound and released).
fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Exim {
    /// Starts Exim on `ip`, accepting mail for `domain` into one Maildir,
    /// `dir/exim/mail` (Exim 4.96 will not put an address's local part in
    /// a path: it is tainted), a copy per recipient. `tls`: the certificate and key to
    /// offer STARTTLS with.
    pub fn start(dir: &Path, ip: &str, domain: &str, tls: Option<(&Path, &Path)>) -> Exim {
        let dir = dir.join("exim");
        for sub in ["spool", "log", "mail"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let port = free_port(ip);
        let tls_lines = match tls {
            Some((cert, key)) => {
                // Readable by Exim's user after it drops root.
                let c = dir.join("cert.pem");
                let k = dir.join("key.pem");
                std::fs::copy(cert, &c).unwrap();
                std::fs::copy(key, &k).unwrap();
                chown_exim(&k);
                format!(
                    "tls_advertise_hosts = *\ntls_certificate = {}\ntls_privatekey = {}\n",
                    c.display(),
                    k.display()
                )
            }
            None => "tls_advertise_hosts =\n".to_string(),
        };
        let d = dir.display();
        let conf = format!(
            "primary_hostname = exim-receiver.test\n\
             domainlist local_domains = {domain}\n\
             qualify_domain = {domain}\n\
             spool_directory = {d}/spool\n\
             log_file_path = {d}/log/%slog\n\
             pid_file_path = {d}/exim.pid\n\
             local_interfaces = {ip}\n\
             daemon_smtp_ports = {port}\n\
             host_lookup =\n\
             rfc1413_hosts =\n\
             never_users =\n\
             keep_environment =\n\
             {tls_lines}\
             acl_smtp_rcpt = acl_check_rcpt\n\
             \n\
             begin acl\n\
             acl_check_rcpt:\n\
             \x20 deny message = relay not permitted\n\
             \x20      !domains = +local_domains\n\
             \x20 accept\n\
             \n\
             begin routers\n\
             local_user:\n\
             \x20 driver = accept\n\
             \x20 domains = +local_domains\n\
             \x20 transport = local_maildir\n\
             \n\
             begin transports\n\
             local_maildir:\n\
             \x20 driver = appendfile\n\
             \x20 directory = {d}/mail\n\
             \x20 maildir_format\n\
             \x20 create_directory\n"
        );
        let conf_path = dir.join("exim.conf");
        std::fs::write(&conf_path, conf).unwrap();
        for sub in ["spool", "log", "mail"] {
            chown_exim(&dir.join(sub));
        }
        let child = Command::new(EXIM)
            .arg("-C")
            .arg(&conf_path)
            .args(["-bdf", "-oX", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start exim4");
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let up = super::wait_until(Duration::from_secs(10), || TcpStream::connect(addr).is_ok());
        assert!(up, "Exim did not start listening on {addr}");
        Exim { child, addr, dir }
    }

    pub fn mainlog(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/mainlog")).unwrap_or_default()
    }

    /// The messages in the Maildir (new/), a copy per recipient.
    pub fn maildir(&self) -> Vec<Vec<u8>> {
        let new = self.dir.join("mail").join("new");
        let mut files: Vec<_> = std::fs::read_dir(&new)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }
}

impl Drop for Exim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chown_exim(p: &Path) {
    let _ = Command::new("chown")
        .args(["-R", "Debian-exim:Debian-exim"])
        .arg(p)
        .status();
}
