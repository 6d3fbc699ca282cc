//! ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 `Mail-parameters`,
//! `Rcpt-parameters`).
//!
//! Only the parameters of advertised extensions are accepted: SIZE (RFC
//! 1870), BODY (RFC 6152 8BITMIME) and SMTPUTF8 (RFC 6531) on MAIL, none on
//! RCPT. Anything else, DSN's RET/ENVID/NOTIFY/ORCPT included, is refused
//! with 555 as RFC 5321 §4.1.1.11 requires for parameters the server did not
//! announce. smtp-proto's parameter parser folds every known keyword into
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

/// Parameters of an accepted RCPT command. No RCPT parameter is advertised
/// yet; DSN's NOTIFY and ORCPT will be kept here once DSN is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {}

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
/// nothing was advertised then, so every parameter is unsupported.
pub(crate) fn parse_mail(input: &[u8], esmtp: bool) -> Result<MailParams, ParamError> {
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
            _ => return Err(ParamError::Unsupported(keyword)),
        }
    }
    Ok(params)
}

/// Parses the parameters after RCPT's path: none is advertised.
pub(crate) fn parse_rcpt(input: &[u8]) -> Result<RcptParams, ParamError> {
    match split(input)?.into_iter().next() {
        Some((keyword, _)) => Err(ParamError::Unsupported(keyword)),
        None => Ok(RcptParams {}),
    }
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
            assert_eq!(parse_mail(input.as_bytes(), esmtp), expected, "{input:?}");
        }
    }

    #[test]
    fn body_types_print_as_sent() {
        assert_eq!(BodyType::SevenBit.as_str(), "7BIT");
        assert_eq!(BodyType::EightBitMime.as_str(), "8BITMIME");
    }

    #[test]
    fn refuses_every_rcpt_parameter() {
        let cases: Vec<(&str, Result<RcptParams, ParamError>)> = vec![
            ("", Ok(RcptParams {})),
            ("   ", Ok(RcptParams {})),
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
            assert_eq!(parse_rcpt(input.as_bytes()), expected, "{input:?}");
        }
    }
}
