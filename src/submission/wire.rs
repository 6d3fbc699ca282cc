//! What `sendmail` and the daemon say to each other on the submission
//! socket. Pure: bytes in, values out, so that a fuzzer can drive it.
//!
//! ```text
//! client: SUBMIT {"extract_recipients":true,...,"recipients":["a@b"]}\n
//! client: the message, as sendmail read it, up to end of stream (shutdown)
//! daemon: {"exit":0,"id":"1tixMn-00000000C5j-1wRa","message":""}\n
//! ```
//!
//! The request line carries what was on the command line, parsed; never
//! a configuration, an environment or an identity: the daemon takes the
//! caller's identity from the socket alone.

use serde::{Deserialize, Serialize};
use spool::{DsnNotify, DsnRet};

use crate::cmd::sendmail_args::{DeliveryMode, Dsn, Origin, SubmitArgs};

/// The longest request line: far more than any command line.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// The request line's first word.
const VERB: &str = "SUBMIT ";

/// A submission's command line on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Request {
    pub extract_recipients: bool,
    pub ignore_dots: bool,
    pub sender: Option<String>,
    pub full_name: Option<String>,
    /// `"background"`, `"foreground"` or `"queue"`.
    pub delivery: String,
    /// `-oMa`, `-oMr`, `-oMs`, `-oMt`: root's only.
    pub host_address: Option<String>,
    pub protocol: Option<String>,
    pub host_name: Option<String>,
    pub ident: Option<String>,
    /// `-N` as flags; all false and `notify_never` false: not given.
    pub notify_success: bool,
    pub notify_failure: bool,
    pub notify_delay: bool,
    pub notify_never: bool,
    /// `-R`: `"full"` or `"hdrs"`.
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub recipients: Vec<String>,
}

/// The daemon's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The exit code `sendmail` ends with (sysexits).
    pub exit: i32,
    /// The message's ID when it was queued.
    pub id: Option<String>,
    /// What to print on standard error (empty when nothing).
    pub message: String,
}

/// Why a request line is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    TooLong,
    NoVerb,
    Json(String),
    Field(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::TooLong => write!(f, "request line over {MAX_REQUEST_LINE} bytes"),
            WireError::NoVerb => f.write_str("not a submission (expected SUBMIT)"),
            WireError::Json(e) => write!(f, "bad request: {e}"),
            WireError::Field(e) => write!(f, "bad request: {e}"),
        }
    }
}

impl Request {
    /// The request of a parsed command line.
    pub fn of(a: &SubmitArgs) -> Request {
        let n = a.dsn.notify.0;
        Request {
            extract_recipients: a.extract_recipients,
            ignore_dots: a.ignore_dots,
            sender: a.sender.clone(),
            full_name: a.full_name.clone(),
            delivery: match a.delivery {
                DeliveryMode::Background => "background",
                DeliveryMode::Foreground => "foreground",
                DeliveryMode::Queue => "queue",
            }
            .to_string(),
            host_address: a.origin.host_address.map(|ip| ip.to_string()),
            protocol: a.origin.protocol.clone(),
            host_name: a.origin.host_name.clone(),
            ident: a.origin.ident.clone(),
            notify_success: n & DsnNotify::SUCCESS != 0,
            notify_failure: n & DsnNotify::FAILURE != 0,
            notify_delay: n & DsnNotify::DELAY != 0,
            notify_never: n & DsnNotify::NEVER != 0,
            ret: a.dsn.ret.map(|r| match r {
                DsnRet::Full => "full".to_string(),
                DsnRet::Headers => "hdrs".to_string(),
            }),
            envid: a.dsn.envid.clone(),
            recipients: a.recipients.clone(),
        }
    }

    /// The command line again, checked as the command line's parser checks
    /// it (no `-v`: the daemon prints nothing).
    pub fn args(&self) -> Result<SubmitArgs, WireError> {
        let bad = |m: String| Err(WireError::Field(m));
        let delivery = match self.delivery.as_str() {
            "" | "background" => DeliveryMode::Background,
            "foreground" => DeliveryMode::Foreground,
            "queue" => DeliveryMode::Queue,
            other => return bad(format!("delivery {other:?}")),
        };
        let host_address = match &self.host_address {
            Some(a) => match a.parse() {
                Ok(ip) => Some(ip),
                Err(_) => return bad(format!("host_address {a:?} is no IP address")),
            },
            None => None,
        };
        let notify = if self.notify_never {
            if self.notify_success || self.notify_failure || self.notify_delay {
                return bad("NEVER with other notify flags".to_string());
            }
            DsnNotify(DsnNotify::NEVER)
        } else if self.notify_success || self.notify_failure || self.notify_delay {
            DsnNotify::from_flags(self.notify_success, self.notify_failure, self.notify_delay)
        } else {
            DsnNotify::default()
        };
        let ret = match self.ret.as_deref() {
            None => None,
            Some("full") => Some(DsnRet::Full),
            Some("hdrs") => Some(DsnRet::Headers),
            Some(r) => return bad(format!("ret {r:?}")),
        };
        Ok(SubmitArgs {
            extract_recipients: self.extract_recipients,
            ignore_dots: self.ignore_dots,
            sender: self.sender.clone(),
            full_name: self.full_name.clone(),
            verbose: false,
            delivery,
            origin: Origin {
                host_address,
                protocol: self.protocol.clone(),
                host_name: self.host_name.clone(),
                ident: self.ident.clone(),
            },
            dsn: Dsn {
                notify,
                ret,
                envid: self.envid.clone(),
            },
            recipients: self.recipients.clone(),
        })
    }

    /// The request line, with its newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = VERB.as_bytes().to_vec();
        // A struct of strings and bools always serializes.
        line.extend_from_slice(serde_json::to_string(self).unwrap_or_default().as_bytes());
        line.push(b'\n');
        line
    }
}

/// Reads a request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<SubmitArgs, WireError> {
    if line.len() > MAX_REQUEST_LINE {
        return Err(WireError::TooLong);
    }
    let rest = line
        .strip_prefix(VERB.as_bytes())
        .ok_or(WireError::NoVerb)?;
    let req: Request = serde_json::from_slice(rest).map_err(|e| WireError::Json(e.to_string()))?;
    req.args()
}

impl Reply {
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// The daemon's reply line; `None` for anything else.
    pub fn parse(line: &[u8]) -> Option<Reply> {
        serde_json::from_slice(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_goes_over_and_comes_back_the_same() {
        let a = SubmitArgs {
            extract_recipients: true,
            ignore_dots: true,
            sender: Some("<>".into()),
            full_name: Some("Joe \"Q\" User".into()),
            verbose: false,
            delivery: DeliveryMode::Queue,
            origin: Origin {
                host_address: Some("192.0.2.1".parse().unwrap()),
                protocol: Some("esmtp".into()),
                host_name: None,
                ident: Some("joe".into()),
            },
            dsn: Dsn {
                notify: DsnNotify::from_flags(true, false, true),
                ret: Some(DsnRet::Headers),
                envid: Some("x1".into()),
            },
            recipients: vec!["a@b.example, c@d.example".into(), "e".into()],
        };
        let line = Request::of(&a).to_line();
        assert!(line.ends_with(b"\n"));
        assert_eq!(parse_request(&line[..line.len() - 1]).unwrap(), a);
        let never = SubmitArgs {
            dsn: Dsn {
                notify: DsnNotify(DsnNotify::NEVER),
                ..Dsn::default()
            },
            ..SubmitArgs::default()
        };
        let line = Request::of(&never).to_line();
        assert_eq!(parse_request(&line[..line.len() - 1]).unwrap(), never);
    }

    #[test]
    fn what_is_not_a_request_is_refused() {
        assert_eq!(parse_request(b"HELO x"), Err(WireError::NoVerb));
        assert!(matches!(
            parse_request(b"SUBMIT {"),
            Err(WireError::Json(_))
        ));
        assert!(matches!(
            parse_request(b"SUBMIT {\"config\":\"/tmp/evil.toml\"}"),
            Err(WireError::Json(_))
        ));
        assert!(matches!(
            parse_request(b"SUBMIT {\"delivery\":\"now\"}"),
            Err(WireError::Field(_))
        ));
        assert!(matches!(
            parse_request(b"SUBMIT {\"host_address\":\"nowhere\"}"),
            Err(WireError::Field(_))
        ));
        let long = [b'x'; MAX_REQUEST_LINE + 1];
        assert_eq!(parse_request(&long), Err(WireError::TooLong));
    }

    #[test]
    fn replies_round_trip() {
        let r = Reply {
            exit: 75,
            id: None,
            message: "try later".into(),
        };
        let line = r.to_line();
        assert_eq!(Reply::parse(&line[..line.len() - 1]), Some(r));
        assert_eq!(Reply::parse(b"garbage"), None);
    }
}
