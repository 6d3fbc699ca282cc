//! Helpers for the end-to-end tests: a temporary directory, the built
//! binary with a private data directory, and checks on what it wrote.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `sluice` binary under test.
pub fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

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
    /// configuration from the environment.
    pub fn sluice(&self) -> Command {
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
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
