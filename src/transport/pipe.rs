//! The pipe transport: a message on a command's standard input, as Exim's
//! `pipe` transport runs it for a `|command` in an alias or forward file.
//!
//! ```toml
//! [[transport]]
//! name = "address_pipe"
//! driver = "pipe"
//! # user = "list"          # who runs it; a forward file's pipe runs as its user
//! # use_shell = false      # true: /bin/sh -c COMMAND (envelope values only in the environment)
//! timeout = "1h"           # then the command's whole process group is killed
//! timeout_defer = true     # a timeout defers (Exim: false, a failure)
//! temp_errors = [75, 73]   # exit codes that defer; any other non-zero fails
//! return_fail_output = false   # a failed command's output goes into the report
//! return_output = false        # any output at all is a failure (and reported)
//! max_output = "20K"       # more output than this kills the command
//! message_prefix = true    # a "From " line first, as Exim's default prefix
//! ```
//!
//! The command never runs as root, without a shell unless asked (split on
//! white space, as Exim splits a pipe command), with `PATH=/bin:/usr/bin`
//! and Exim's variables `LOCAL_PART`, `DOMAIN`, `SENDER`, `RECIPIENT`,
//! `HOME`, `MESSAGE_ID` and nothing else, `umask 022`, its own process
//! group, and no descriptor of Sluice's but its standard ones (every
//! descriptor Sluice opens is close-on-exec, so no spool lock outlives the
//! daemon in a child). A pipe cannot be found again after a crash: at
//! least once.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use smtp::Status;

use super::Outcome;
use crate::config::{parse_duration, parse_size};

/// The pipe driver's options as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipeOptions {
    /// The command, for a transport an `accept` router names directly (a
    /// redirect's `|command` brings its own).
    pub command: Option<String>,
    pub user: Option<String>,
    #[serde(default)]
    pub use_shell: bool,
    pub timeout: Option<String>,
    pub timeout_defer: Option<bool>,
    pub temp_errors: Option<Vec<i32>>,
    #[serde(default)]
    pub return_fail_output: bool,
    #[serde(default)]
    pub return_output: bool,
    pub max_output: Option<String>,
    pub message_prefix: Option<bool>,
}

/// The options, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeSettings {
    pub command: Option<String>,
    /// (uid, gid, home) of `user`.
    pub user: Option<(u32, u32, std::path::PathBuf)>,
    pub use_shell: bool,
    pub timeout: Duration,
    pub timeout_defer: bool,
    pub temp_errors: Vec<i32>,
    pub return_fail_output: bool,
    pub return_output: bool,
    pub max_output: usize,
    pub message_prefix: bool,
}

impl PipeOptions {
    /// Checks the options; the error names the key.
    pub fn settings(&self) -> Result<PipeSettings, String> {
        let user = match &self.user {
            None => None,
            Some(name) => match crate::sys::user_by_name(name) {
                Ok(Some(u)) if u.uid == 0 => {
                    return Err(format!(
                        "key `user`: {name:?} is root; a pipe never runs as root"
                    ));
                }
                Ok(Some(u)) => Some((u.uid, u.gid, u.home)),
                Ok(None) => return Err(format!("key `user`: no user {name:?}")),
                Err(e) => return Err(format!("key `user`: {e}")),
            },
        };
        Ok(PipeSettings {
            command: self.command.clone(),
            user,
            use_shell: self.use_shell,
            timeout: match &self.timeout {
                Some(t) => parse_duration(t).map_err(|e| format!("key `timeout`: {e}"))?,
                None => Duration::from_secs(3600),
            },
            timeout_defer: self.timeout_defer.unwrap_or(true),
            temp_errors: self.temp_errors.clone().unwrap_or_else(|| vec![75, 73]),
            return_fail_output: self.return_fail_output,
            return_output: self.return_output,
            max_output: match &self.max_output {
                Some(s) => parse_size(s).map_err(|e| format!("key `max_output`: {e}"))? as usize,
                None => 20 * 1024,
            },
            message_prefix: self.message_prefix.unwrap_or(true),
        })
    }
}

/// One run of a command for one recipient.
#[derive(Debug, Clone)]
pub struct PipeRun {
    pub command: String,
    pub uid: u32,
    pub gid: u32,
    pub home: std::path::PathBuf,
    pub local_part: String,
    pub domain: String,
    pub sender: String,
    pub recipient: String,
    pub message_id: String,
}

/// Exim's splitting of a pipe command without a shell: words on white
/// space, double quotes grouping.
pub fn split_command(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in command.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
}

/// The verdict on a finished command (pure): exit code or signal, and its
/// output.
pub fn judge(
    s: &PipeSettings,
    command: &str,
    exit: Result<i32, i32>,
    output: &[u8],
    output_over: bool,
) -> Outcome {
    let shown = String::from_utf8_lossy(output);
    let shown = shown.trim_end();
    let with_output = |text: String| {
        if (s.return_fail_output || s.return_output) && !shown.is_empty() {
            format!("{text}\n{shown}")
        } else {
            text
        }
    };
    if output_over {
        return Outcome::Failed {
            status: Status::new(5, 3, 0),
            diagnostic: format!(
                "Child process of {command} was killed: output over max_output ({} bytes)",
                s.max_output
            ),
            remote: None,
        };
    }
    match exit {
        Ok(0) if s.return_output && !shown.is_empty() => Outcome::Failed {
            status: Status::new(5, 3, 0),
            diagnostic: with_output(format!("{command} wrote output (return_output)")),
            remote: None,
        },
        Ok(0) => Outcome::Delivered,
        Ok(code) if s.temp_errors.contains(&code) => Outcome::Deferred {
            status: Status::new(4, 3, 0),
            diagnostic: format!("Child process of {command} returned {code} (a temporary error)"),
        },
        Ok(code) => Outcome::Failed {
            status: Status::new(5, 3, 0),
            diagnostic: with_output(format!("Child process of {command} returned {code}")),
            remote: None,
        },
        Err(signal) => Outcome::Failed {
            status: Status::new(5, 3, 0),
            diagnostic: with_output(format!(
                "Child process of {command} was terminated by signal {signal}"
            )),
            remote: None,
        },
    }
}

/// Runs `run` with `message` on its standard input, within the settings'
/// limits. Blocking: called on a thread of its own.
pub fn deliver(s: &PipeSettings, run: &PipeRun, message: &[u8]) -> Outcome {
    let (argv, shown) = if s.use_shell {
        (
            vec!["/bin/sh".to_string(), "-c".into(), run.command.clone()],
            run.command.clone(),
        )
    } else {
        (split_command(&run.command), run.command.clone())
    };
    let Some(program) = argv.first() else {
        return Outcome::Failed {
            status: Status::new(5, 3, 0),
            diagnostic: "empty pipe command".into(),
            remote: None,
        };
    };
    if run.uid == 0 {
        return Outcome::Deferred {
            status: Status::new(4, 3, 0),
            diagnostic: format!("{shown}: a pipe never runs as root (set the transport's user)"),
        };
    }
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return temporary(&shown, &e),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return temporary(&shown, &e),
    };
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", "/bin:/usr/bin")
        .env("LOCAL_PART", &run.local_part)
        .env("DOMAIN", &run.domain)
        .env("SENDER", &run.sender)
        .env("RECIPIENT", &run.recipient)
        .env("HOME", &run.home)
        .env("MESSAGE_ID", &run.message_id)
        .current_dir(if run.home.is_dir() {
            run.home.as_path()
        } else {
            std::path::Path::new("/")
        })
        .uid(run.uid)
        .gid(run.gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .process_group(0);
    crate::sys::clean_exec(&mut cmd, 0o022);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return temporary(&shown, &e),
    };
    // The command builder holds the pipe's write ends: gone with it, so
    // the reader sees the end when the command's group closes them.
    drop(cmd);
    let pgid = child.id() as i32;
    let mut stdin = child.stdin.take();
    let prefix = if s.message_prefix {
        mailstore::mbox::from_line::format(&run.sender, crate::clock::now())
    } else {
        Vec::new()
    };
    let body = message.to_vec();
    // Written on a thread: a command that does not read must not stop
    // the reading of its output (or the timeout).
    let writer = std::thread::spawn(move || {
        if let Some(mut w) = stdin.take() {
            let _ = w.write_all(&prefix);
            let _ = w.write_all(&body);
        }
    });
    let max = s.max_output;
    let over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let over_flag = over.clone();
    let output = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut r = reader;
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out.len() + n > max {
                        over_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        break;
                    }
                    out.extend_from_slice(&buf[..n]);
                }
            }
        }
        out
    });
    let kill_group = || {
        // The whole group: a shell's children too.
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_raw(pgid).expect("a child's pid is positive"),
            rustix::process::Signal::KILL,
        );
    };
    let deadline = Instant::now() + s.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if over.load(std::sync::atomic::Ordering::SeqCst) => {
                kill_group();
                let _ = child.wait();
                break None;
            }
            Ok(None) if Instant::now() >= deadline => {
                kill_group();
                let _ = child.wait();
                let _ = writer.join();
                return if s.timeout_defer {
                    Outcome::Deferred {
                        status: Status::new(4, 3, 0),
                        diagnostic: format!(
                            "Child process of {shown} timed out (killed after {:?})",
                            s.timeout
                        ),
                    }
                } else {
                    Outcome::Failed {
                        status: Status::new(5, 3, 0),
                        diagnostic: format!(
                            "Child process of {shown} timed out (killed after {:?})",
                            s.timeout
                        ),
                        remote: None,
                    }
                };
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return temporary(&shown, &e),
        }
    };
    // Descendants still holding the output pipe would keep the reader
    // waiting: after a moment they go with the group.
    let grace = Instant::now() + Duration::from_secs(1);
    while !output.is_finished() && Instant::now() < grace {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !output.is_finished() {
        kill_group();
    }
    let _ = writer.join();
    let out = output.join().unwrap_or_default();
    let exit = match status {
        None => Ok(0),
        Some(st) => match (
            st.code(),
            std::os::unix::process::ExitStatusExt::signal(&st),
        ) {
            (Some(c), _) => Ok(c),
            (None, Some(sig)) => Err(sig),
            (None, None) => Err(0),
        },
    };
    let over = over.load(std::sync::atomic::Ordering::SeqCst);
    judge(s, &shown, exit, &out, over)
}

fn temporary(command: &str, e: &std::io::Error) -> Outcome {
    Outcome::Deferred {
        status: Status::new(4, 3, 0),
        diagnostic: format!("{command}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PipeSettings {
        PipeOptions::default().settings().unwrap()
    }

    #[test]
    fn commands_split_as_exim_splits_them() {
        assert_eq!(
            split_command("/usr/bin/list  post \"my list\" x"),
            ["/usr/bin/list", "post", "my list", "x"]
        );
        assert_eq!(split_command("  "), Vec::<String>::new());
        assert_eq!(split_command("a \"\" b"), ["a", "", "b"]);
    }

    #[test]
    fn exit_codes_and_output_decide() {
        let s = settings();
        assert_eq!(judge(&s, "c", Ok(0), b"", false), Outcome::Delivered);
        assert!(matches!(
            judge(&s, "c", Ok(75), b"", false),
            Outcome::Deferred { .. }
        ));
        assert!(matches!(
            judge(&s, "c", Ok(73), b"", false),
            Outcome::Deferred { .. }
        ));
        match judge(&s, "c", Ok(1), b"no such list\n", false) {
            Outcome::Failed { diagnostic, .. } => {
                assert_eq!(diagnostic, "Child process of c returned 1")
            }
            o => panic!("{o:?}"),
        }
        let fail_output = PipeSettings {
            return_fail_output: true,
            ..settings()
        };
        match judge(&fail_output, "c", Ok(1), b"no such list\n", false) {
            Outcome::Failed { diagnostic, .. } => {
                assert_eq!(diagnostic, "Child process of c returned 1\nno such list")
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            judge(&s, "c", Err(9), b"", false),
            Outcome::Failed { .. }
        ));
        assert!(matches!(
            judge(&s, "c", Ok(0), b"x", true),
            Outcome::Failed { .. }
        ));
        let any_output = PipeSettings {
            return_output: true,
            ..settings()
        };
        assert!(matches!(
            judge(&any_output, "c", Ok(0), b"hello", false),
            Outcome::Failed { .. }
        ));
        assert_eq!(
            judge(&any_output, "c", Ok(0), b"", false),
            Outcome::Delivered
        );
    }
}
