//! A host another user can use: a data directory, a configuration and the
//! binary that `nobody` (run with setpriv) can reach, for the tests of
//! what an unprivileged local user may do.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Everything under one directory of mode 0755.
pub struct Host {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub config: PathBuf,
    pub bin: PathBuf,
}

/// A host for `host.test` whose data directory has mode `home_mode`
/// (0777: `nobody` writes the spool itself; 0755: only root does), with
/// `config` added to its configuration.
pub fn host(home_mode: u32, config: &str) -> Host {
    let dir = tempfile::Builder::new()
        .prefix("sluice-others")
        .tempdir()
        .expect("a directory");
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).expect("chmod");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("the data directory");
    std::fs::set_permissions(&home, PermissionsExt::from_mode(home_mode)).expect("chmod");
    let conf = dir.path().join("sluice.toml");
    std::fs::write(
        &conf,
        format!("primary_hostname = \"host.test\"\nlocal_domains = [\"host.test\"]\n{config}"),
    )
    .expect("the configuration");
    std::fs::set_permissions(&conf, PermissionsExt::from_mode(0o644)).expect("chmod");
    Host {
        dir,
        home,
        config: conf,
        bin: super::binary_for_others(),
    }
}

impl Host {
    /// The binary with this host's data directory and configuration, run
    /// as `nobody` (nogroup, no other groups) or as root.
    pub fn command(&self, as_nobody: bool) -> Command {
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(&self.bin);
            c
        } else {
            Command::new(&self.bin)
        };
        cmd.env("SLUICE_HOME", &self.home)
            .env("SLUICE_CONFIG", &self.config)
            .env_remove("SLUICE_SET");
        cmd
    }

    /// The messages delivered to `local@host.test`.
    pub fn delivered(&self, local: &str) -> Vec<String> {
        delivered(&self.home, local)
    }

    pub fn mainlog(&self) -> String {
        std::fs::read_to_string(self.home.join("log/mainlog")).unwrap_or_default()
    }
}

fn delivered(home: &Path, local: &str) -> Vec<String> {
    super::maildir_messages(&home.join("mail/host.test").join(local))
        .into_iter()
        .map(|(_, m)| String::from_utf8_lossy(&m).into_owned())
        .collect()
}

/// Whether this process may run commands as `nobody` (root, and setpriv
/// from util-linux); under `CI=true` it must.
pub fn usable() -> bool {
    let ok = super::is_root() && super::have("setpriv");
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "needs root and setpriv under CI=true"
        );
        eprintln!("skipped: needs root and setpriv (util-linux)");
    }
    ok
}
