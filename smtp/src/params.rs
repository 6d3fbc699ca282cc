//! ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 `Mail-parameters`,
//! `Rcpt-parameters`).
//!
//! Only the parameters of advertised extensions are accepted: SIZE (RFC
//! 1870), BODY (RFC 6152 8BITMIME) and SMTPUTF8 (RFC 6531) on MAIL; DSN's
//! RET and ENVID on MAIL and NOTIFY and ORCPT on RCPT (RFC 3461) when the
//! session offers DSN to this client. Anything else is refused with 555 as
//! RFC 5321 §4.1.1.11 requires for parameters the server did not announce. smtp-proto's parameter parser folds every known keyword into
//! flags and zero defaults, so it cannot tell "MT-PRIORITY=0 was sent" from
//! "nothing was sent"; the keyword scan below can.

use std::fmt;

/// Parameters of an accepted MAIL command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// SIZE=: the client's estimate of the message size in octets.
    pub size: Option<u64>,
    /// BODY=: what the client says the content is.
    pub body: Option<BodyType>,
    /// SMTPUTF8: addresses and headers may contain UTF-8.
    pub smtputf8: bool,
    /// DSN `RET=`: what a failure report returns.
    pub ret: Option<crate::client::Ret>,
    /// DSN `ENVID=`, xtext-decoded.
    pub envid: Option<String>,
}

/// The BODY= parameter (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
}

impl BodyType {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
        }
    }
}

/// Parameters of an accepted RCPT command: DSN's NOTIFY and ORCPT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NOTIFY=`: which reports the sender wants (all false: NEVER).
    pub notify: Option<crate::client::Notify>,
    /// `ORCPT=` as `addr-type;address`, the address xtext-decoded.
    pub orcpt: Option<String>,
}

/// RFC 3461 §4.4: ENVID is at most 100 characters.
const ENVID_MAX: usize = 100;
/// RFC 3461 §4.2: ORCPT is at most 500 characters.
const ORCPT_MAX: usize = 500;

/// Decodes RFC 3461 `xtext`: `+XX` (two upper-case hex digits) for an
/// octet, other characters as they are (`!` to `~` but `+` and `=`).
fn xtext_decode(keyword: &str, value: &str) -> Result<String, ParamError> {
    let bad = || ParamError::Syntax(format!("{keyword}: invalid xtext"));
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
                let digit = |c: u8| match c {
                    b'0'..=b'9' => Some(c - b'0'),
                    b'A'..=b'F' => Some(c - b'A' + 10),
                    _ => None,
                };
                let (Some(h), Some(l)) = (digit(hex[0]), digit(hex[1])) else {
                    return Err(bad());
                };
                out.push(h * 16 + l);
                i += 3;
            }
            c @ b'!'..=b'~' if c != b'=' => {
                out.push(c);
                i += 1;
            }
            _ => return Err(bad()),
        }
    }
    // Decoded control characters would reach the spool and the logs.
    String::from_utf8(out)
        .ok()
        .filter(|s| !s.chars().any(char::is_control))
        .ok_or_else(bad)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParamError {
    /// Malformed parameter text: 501 5.5.4.
    Syntax(String),
    /// A parameter of an extension that was not advertised: 555 5.5.4.
    Unsupported(String),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Syntax(s) | ParamError::Unsupported(s) => f.write_str(s),
        }
    }
}

/// RFC 1870: `size-value ::= 1*20DIGIT`.
const SIZE_DIGITS_MAX: usize = 20;

/// Parses the parameters after MAIL's path. `esmtp` is false after HELO:
/// nothing was advertised then, so every parameter is unsupported. `dsn`:
/// DSN is offered to this client.
pub(crate) fn parse_mail(input: &[u8], esmtp: bool, dsn: bool) -> Result<MailParams, ParamError> {
    let mut params = MailParams::default();
    for (keyword, value) in split(input)? {
        if !esmtp {
            return Err(ParamError::Unsupported(keyword));
        }
        let duplicate = || ParamError::Syntax(format!("duplicate {keyword}"));
        match keyword.as_str() {
            "SIZE" => {
                if params.size.is_some() {
                    return Err(duplicate());
                }
                let value = value.unwrap_or_default();
                if value.is_empty()
                    || value.len() > SIZE_DIGITS_MAX
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(ParamError::Syntax(format!("SIZE={value}")));
                }
                // Twenty digits may exceed u64; such a size is over any limit.
                params.size = Some(value.parse().unwrap_or(u64::MAX));
            }
            "BODY" => {
                if params.body.is_some() {
                    return Err(duplicate());
                }
                let value = value.unwrap_or_default();
                params.body = Some(match value.to_ascii_uppercase().as_str() {
                    "7BIT" => BodyType::SevenBit,
                    "8BITMIME" => BodyType::EightBitMime,
                    // RFC 3030's BINARYMIME is an extension Sluice does not offer.
                    "BINARYMIME" => return Err(ParamError::Unsupported("BODY=BINARYMIME".into())),
                    _ => return Err(ParamError::Syntax(format!("BODY={value}"))),
                });
            }
            "SMTPUTF8" => {
                if params.smtputf8 {
                    return Err(duplicate());
                }
                if value.is_some() {
                    return Err(ParamError::Syntax("SMTPUTF8 takes no value".into()));
                }
                params.smtputf8 = true;
            }
            "RET" if dsn => {
                if params.ret.is_some() {
                    return Err(duplicate());
                }
                let value = value.unwrap_or_default();
                params.ret = Some(match value.to_ascii_uppercase().as_str() {
                    "FULL" => crate::client::Ret::Full,
                    "HDRS" => crate::client::Ret::Headers,
                    _ => return Err(ParamError::Syntax(format!("RET={value}"))),
                });
            }
            "ENVID" if dsn => {
                if params.envid.is_some() {
                    return Err(duplicate());
                }
                let value = value.unwrap_or_default();
                if value.is_empty() || value.len() > ENVID_MAX {
                    return Err(ParamError::Syntax("ENVID: 1 to 100 characters".into()));
                }
                params.envid = Some(xtext_decode("ENVID", &value)?);
            }
            _ => return Err(ParamError::Unsupported(keyword)),
        }
    }
    Ok(params)
}

/// Parses the parameters after RCPT's path: NOTIFY and ORCPT when DSN is
/// offered (`dsn`), nothing else.
pub(crate) fn parse_rcpt(input: &[u8], dsn: bool) -> Result<RcptParams, ParamError> {
    let mut params = RcptParams::default();
    for (keyword, value) in split(input)? {
        let duplicate = || ParamError::Syntax(format!("duplicate {keyword}"));
        match keyword.as_str() {
            "NOTIFY" if dsn => {
                if params.notify.is_some() {
                    return Err(duplicate());
                }
                let value = value.unwrap_or_default().to_ascii_uppercase();
                params.notify = Some(parse_notify(&value)?);
            }
            "ORCPT" if dsn => {
                if params.orcpt.is_some() {
                    return Err(duplicate());
                }
                let value = value.unwrap_or_default();
                let bad = || ParamError::Syntax(format!("ORCPT={value}"));
                let (kind, address) = value.split_once(';').ok_or_else(bad)?;
                let kind_ok = !kind.is_empty()
                    && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !kind_ok || address.is_empty() || value.len() > ORCPT_MAX {
                    return Err(bad());
                }
                params.orcpt = Some(format!("{kind};{}", xtext_decode("ORCPT", address)?));
            }
            _ => return Err(ParamError::Unsupported(keyword)),
        }
    }
    Ok(params)
}

/// RFC 3461 §4.1: `NEVER` alone, or a list of SUCCESS, FAILURE, DELAY.
fn parse_notify(value: &str) -> Result<crate::client::Notify, ParamError> {
    let bad = |why: &str| ParamError::Syntax(format!("NOTIFY={value}: {why}"));
    if value == "NEVER" {
        return Ok(crate::client::Notify::NEVER);
    }
    let mut n = crate::client::Notify::NEVER;
    for word in value.split(',') {
        let flag = match word {
            "SUCCESS" => &mut n.success,
            "FAILURE" => &mut n.failure,
            "DELAY" => &mut n.delay,
            "NEVER" => return Err(bad("NEVER must stand alone")),
            _ => return Err(bad("expected NEVER or SUCCESS, FAILURE, DELAY")),
        };
        if std::mem::replace(flag, true) {
            return Err(bad("a value twice"));
        }
    }
    Ok(n)
}

/// Splits `SP esmtp-param *(SP esmtp-param)` into (upper-case keyword,
/// value). Runs of spaces are tolerated, as most servers do.
///
/// ```text
/// esmtp-param   = esmtp-keyword ["=" esmtp-value]
/// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
/// esmtp-value   = 1*(%d33-60 / %d62-126 / UTF8-non-ascii)   ; RFC 6531
/// ```
fn split(input: &[u8]) -> Result<Vec<(String, Option<String>)>, ParamError> {
    if !input.is_empty() && input[0] != b' ' {
        return Err(ParamError::Syntax("a space must follow the address".into()));
    }
    let mut out = Vec::new();
    for word in input.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let (keyword, value) = match word.iter().position(|&b| b == b'=') {
            Some(eq) => (&word[..eq], Some(&word[eq + 1..])),
            None => (word, None),
        };
        let keyword_ok = keyword.first().is_some_and(u8::is_ascii_alphanumeric)
            && keyword
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-');
        if !keyword_ok {
            return Err(ParamError::Syntax(format!(
                "invalid parameter {}",
                String::from_utf8_lossy(word).escape_debug()
            )));
        }
        let keyword = String::from_utf8_lossy(keyword).to_ascii_uppercase();
        let value = match value {
            None => None,
            Some(v) => {
                let chars_ok = v
                    .iter()
                    .all(|&b| matches!(b, 33..=60 | 62..=126) || b >= 0x80);
                let text = std::str::from_utf8(v)
                    .ok()
                    .filter(|_| chars_ok && !v.is_empty());
                match text {
                    Some(text) => Some(text.to_owned()),
                    None => return Err(ParamError::Syntax(format!("invalid value for {keyword}"))),
                }
            }
        };
        out.push((keyword, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(size: Option<u64>, body: Option<BodyType>, smtputf8: bool) -> MailParams {
        MailParams {
            size,
            body,
            smtputf8,
            ..MailParams::default()
        }
    }

    #[test]
    fn parses_mail_parameters() {
        use BodyType::*;
        let syntax = |s: &str| Err(ParamError::Syntax(s.to_owned()));
        let unsupported = |s: &str| Err(ParamError::Unsupported(s.to_owned()));
        let cases: Vec<(&str, bool, Result<MailParams, ParamError>)> = vec![
            ("", true, Ok(mail(None, None, false))),
            (" SIZE=1000", true, Ok(mail(Some(1000), None, false))),
            (
                " size=0 body=8bitmime smtputf8",
                true,
                Ok(mail(Some(0), Some(EightBitMime), true)),
            ),
            ("  BODY=7BIT  ", true, Ok(mail(None, Some(SevenBit), false))),
            (
                " SIZE=99999999999999999999",
                true,
                Ok(mail(Some(u64::MAX), None, false)),
            ),
            (
                " SIZE=123456789012345678901",
                true,
                syntax("SIZE=123456789012345678901"),
            ),
            (" SIZE=", true, syntax("invalid value for SIZE")),
            (" SIZE", true, syntax("SIZE=")),
            (" SIZE=12k", true, syntax("SIZE=12k")),
            (" SIZE=1 SIZE=2", true, syntax("duplicate SIZE")),
            (" BODY=BINARYMIME", true, unsupported("BODY=BINARYMIME")),
            (" BODY=9BIT", true, syntax("BODY=9BIT")),
            (" SMTPUTF8=yes", true, syntax("SMTPUTF8 takes no value")),
            (" RET=HDRS", true, unsupported("RET")),
            (" ENVID=abc", true, unsupported("ENVID")),
            (" AUTH=<>", true, unsupported("AUTH")),
            (" MT-PRIORITY=0", true, unsupported("MT-PRIORITY")),
            (" X-FOO", true, unsupported("X-FOO")),
            (" SIZE=10", false, unsupported("SIZE")),
            ("SIZE=10", true, syntax("a space must follow the address")),
            (" =10", true, syntax("invalid parameter =10")),
            (" -X=1", true, syntax("invalid parameter -X=1")),
            (" SIZE=1\u{1}", true, syntax("invalid value for SIZE")),
            (" SIZE==1", true, syntax("invalid value for SIZE")),
        ];
        for (input, esmtp, expected) in cases {
            assert_eq!(
                parse_mail(input.as_bytes(), esmtp, false),
                expected,
                "{input:?}"
            );
        }
    }

    #[test]
    fn body_types_print_as_sent() {
        assert_eq!(BodyType::SevenBit.as_str(), "7BIT");
        assert_eq!(BodyType::EightBitMime.as_str(), "8BITMIME");
    }

    #[test]
    fn dsn_parameters_when_offered() {
        use crate::client::{Notify, Ret};
        let p = parse_mail(b" RET=hdrs ENVID=QQ+2B314+3D", true, true).unwrap();
        assert_eq!(p.ret, Some(Ret::Headers));
        assert_eq!(p.envid.as_deref(), Some("QQ+314="));
        let syntax = |s: &str| Err(ParamError::Syntax(s.to_owned()));
        for (input, want) in [
            (" RET=ALL", syntax("RET=ALL")),
            (" RET=FULL RET=FULL", syntax("duplicate RET")),
            (" ENVID=a+2", syntax("ENVID: invalid xtext")),
            (" ENVID=a+0A", syntax("ENVID: invalid xtext")),
            (" ENVID=a+zz", syntax("ENVID: invalid xtext")),
        ] {
            assert_eq!(parse_mail(input.as_bytes(), true, true), want, "{input}");
        }
        let long = format!(" ENVID={}", "x".repeat(101));
        assert!(parse_mail(long.as_bytes(), true, true).is_err());
        // Not offered: 555, whatever the value.
        assert_eq!(
            parse_mail(b" RET=FULL", true, false),
            Err(ParamError::Unsupported("RET".into()))
        );

        let r = parse_rcpt(b" NOTIFY=success,DELAY ORCPT=rfc822;A+2BB@x.example", true).unwrap();
        assert_eq!(
            r.notify,
            Some(Notify {
                success: true,
                failure: false,
                delay: true
            })
        );
        assert_eq!(r.orcpt.as_deref(), Some("rfc822;A+B@x.example"));
        assert_eq!(
            parse_rcpt(b" NOTIFY=NEVER", true).unwrap().notify,
            Some(Notify::NEVER)
        );
        for input in [
            " NOTIFY=NEVER,FAILURE",
            " NOTIFY=FAILURE,FAILURE",
            " NOTIFY=SOMETIMES",
            " NOTIFY=",
            " ORCPT=rfc822",
            " ORCPT=;a@b",
            " ORCPT=rfc822;",
            " NOTIFY=NEVER NOTIFY=NEVER",
        ] {
            assert!(
                matches!(
                    parse_rcpt(input.as_bytes(), true),
                    Err(ParamError::Syntax(_))
                ),
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_every_rcpt_parameter() {
        let cases: Vec<(&str, Result<RcptParams, ParamError>)> = vec![
            ("", Ok(RcptParams::default())),
            ("   ", Ok(RcptParams::default())),
            (
                " NOTIFY=SUCCESS,FAILURE",
                Err(ParamError::Unsupported("NOTIFY".into())),
            ),
            (
                " ORCPT=rfc822;a@b",
                Err(ParamError::Unsupported("ORCPT".into())),
            ),
            (
                "x",
                Err(ParamError::Syntax("a space must follow the address".into())),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_rcpt(input.as_bytes(), false), expected, "{input:?}");
        }
    }
}
