//! What the peer's reply to EHLO or LHLO offers (RFC 5321 §4.1.1.1), read
//! with smtp-proto's EHLO parser one keyword line at a time, so that one
//! malformed line (`SIZE abc`) costs only its own extension.

use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, EXT_8BIT_MIME, EXT_AUTH, EXT_CHUNKING, EXT_DSN,
    EXT_ENHANCED_STATUS_CODES, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS,
    EhloResponse,
};

use crate::reply::Reply;

/// The extensions a peer offered in its latest EHLO/LHLO reply. After
/// HELO, or before any greeting, nothing is offered. Forgotten when TLS
/// starts (RFC 3207 §4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 1870: `Some(limit)` when SIZE is offered; `Some(0)` means no
    /// limit was announced.
    pub size: Option<u64>,
    /// RFC 6152.
    pub eight_bit_mime: bool,
    /// RFC 6531.
    pub smtputf8: bool,
    /// RFC 3030 (BDAT).
    pub chunking: bool,
    /// RFC 3207.
    pub starttls: bool,
    /// RFC 4954: AUTH is offered at all.
    pub auth: bool,
    /// RFC 4616 PLAIN among the AUTH mechanisms.
    pub auth_plain: bool,
    /// The LOGIN mechanism (draft-murchison-sasl-login) among them.
    pub auth_login: bool,
    /// RFC 3461.
    pub dsn: bool,
    /// RFC 2034.
    pub enhanced_status_codes: bool,
}

impl Capabilities {
    /// Reads the keyword lines of a 250 reply to EHLO or LHLO (every line
    /// after the first, which is the greeting). Unknown keywords and lines
    /// smtp-proto cannot read are ignored.
    pub fn from_reply(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines().iter().skip(1) {
            let text = format!("250-x\r\n250 {line}\r\n");
            let Ok(parsed) = EhloResponse::parse(&mut text.as_bytes().iter()) else {
                continue;
            };
            caps.add(&parsed);
        }
        caps
    }

    fn add(&mut self, parsed: &EhloResponse<String>) {
        let has = |ext: u32| parsed.capabilities & ext != 0;
        self.pipelining |= has(EXT_PIPELINING);
        if has(EXT_SIZE) {
            self.size = Some(u64::try_from(parsed.size).unwrap_or(0));
        }
        self.eight_bit_mime |= has(EXT_8BIT_MIME);
        self.smtputf8 |= has(EXT_SMTP_UTF8);
        self.chunking |= has(EXT_CHUNKING);
        self.starttls |= has(EXT_START_TLS);
        self.dsn |= has(EXT_DSN);
        self.enhanced_status_codes |= has(EXT_ENHANCED_STATUS_CODES);
        if has(EXT_AUTH) {
            self.auth = true;
            self.auth_plain |= parsed.auth_mechanisms & AUTH_PLAIN != 0;
            self.auth_login |= parsed.auth_mechanisms & AUTH_LOGIN != 0;
        }
    }

    /// Whether a message of `size` octets is over the announced limit.
    pub fn too_big(&self, size: u64) -> bool {
        matches!(self.size, Some(limit) if limit != 0 && size > limit)
    }
}
