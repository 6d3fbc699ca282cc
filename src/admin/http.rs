//! The HTTP the admin listener speaks: one `GET` (or `HEAD`) per
//! connection, a bounded request head, a whole response, then close.
//! Scrapers and browsers need nothing more, and less parsing is less to
//! get wrong on a port any local user can reach.

/// The most a request head may take (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

/// What the listener needs of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The token of `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Anything else: answered 405.
    Other,
}

/// Why a head is refused (400, or 431 when too long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    TooLarge,
    Malformed(&'static str),
}

/// The length of the head in `buf` (through the blank line), once it is
/// all there.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| memchr::memmem::find(buf, b"\n\n").map(|i| i + 2))
}

/// Parses a request head.
pub fn parse_head(head: &[u8]) -> Result<Request, HeadError> {
    if head.len() > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed("not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(HeadError::Malformed("empty"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed("request line"));
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Err(HeadError::Malformed("version"));
    }
    if !target.starts_with('/') {
        return Err(HeadError::Malformed("target"));
    }
    let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    let mut bearer = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(HeadError::Malformed("header line"))?;
        if name.eq_ignore_ascii_case("authorization") {
            let value = value.trim();
            if let Some((scheme, token)) = value.split_once(' ')
                && scheme.eq_ignore_ascii_case("bearer")
            {
                bearer = Some(token.trim().to_string());
            }
        }
    }
    Ok(Request {
        method,
        path,
        bearer,
    })
}

/// Whether `given` is `token`, in time that does not depend on where they
/// first differ.
pub fn token_matches(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    for (i, t) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ t;
    }
    diff == 0
}

/// A whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{body}\n"))
    }

    /// The bytes on the wire; a `HEAD` gets the head only.
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        match self.status {
            401 => out.push_str("WWW-Authenticate: Bearer realm=\"sluice\"\r\n"),
            405 => out.push_str("Allow: GET, HEAD\r\n"),
            _ => {}
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_request_line_and_the_bearer_token() {
        let r = parse_head(
            b"GET /queue?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: bearer  s3cret \r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/queue");
        assert_eq!(r.bearer.as_deref(), Some("s3cret"));
        let r = parse_head(b"HEAD / HTTP/1.0\n\n").unwrap();
        assert_eq!(
            (r.method, r.path.as_str(), r.bearer),
            (Method::Head, "/", None)
        );
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1\r\n\r\n")
                .unwrap()
                .method,
            Method::Other
        );
        let r = parse_head(b"GET / HTTP/1.1\r\nAuthorization: Basic Zm9v\r\n\r\n").unwrap();
        assert_eq!(r.bearer, None, "only a bearer token counts");
    }

    #[test]
    fn refuses_what_is_not_a_request() {
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/2\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"\xff / HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(bad), Err(HeadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse_head(long.as_bytes()), Err(HeadError::TooLarge));
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn compares_tokens_whole() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
        assert!(!token_matches("abcd", "abc"));
        assert!(!token_matches("", "abc"));
    }

    #[test]
    fn responses_close_and_say_their_length() {
        let r = Response::text(401, "token needed").to_bytes(false);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
        assert!(text.contains("Content-Length: 13\r\n"));
        assert!(text.contains("WWW-Authenticate: Bearer"));
        assert!(text.ends_with("\r\n\r\ntoken needed\n"));
        let head = Response::text(200, "x").to_bytes(true);
        assert!(head.ends_with(b"\r\n\r\n"));
    }
}
