//! The HTTP/1.1 request parser and response builder, sans-IO: bytes in, a [`Request`]
//! or an [`HttpError`] out; a [`Response`] to bytes. The socket loop
//! ([`super::run`](crate::daemon::http::run)) only moves bytes and time.
//!
//! What it takes: a request line `METHOD SP target SP HTTP/1.x`, header lines with
//! `name: value`, and a body only with `Content-Length` (at most [`MAX_BODY`] bytes;
//! `Transfer-Encoding` is refused with 501). The head (request line and headers) is at
//! most [`MAX_HEAD`] bytes (else 431), with at most [`MAX_HEADERS`] headers. Anything
//! else is a 400. Never panics on any bytes.

/// The most bytes of a request head (request line, headers, the blank line).
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines.
pub const MAX_HEADERS: usize = 64;
/// The most bytes of a request body.
pub const MAX_BODY: usize = 4 * 1024;

/// The methods the server knows; any other token is [`Method::Other`] (answered 405).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: as `GET`, without the body.
    Head,
    /// `POST`.
    Post,
    /// Any other (valid token) method.
    Other,
}

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path of the target, without the query.
    pub path: String,
    /// The query (after `?`), if any.
    pub query: Option<String>,
    /// The headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request is refused before it is routed; each has its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed request line or header (400).
    BadRequest,
    /// The head is longer than [`MAX_HEAD`] or has more than [`MAX_HEADERS`] headers
    /// (431).
    HeadTooLarge,
    /// The body is longer than [`MAX_BODY`] (413).
    BodyTooLarge,
    /// `Transfer-Encoding` (chunked bodies) is not supported (501).
    NotImplemented,
    /// Not HTTP/1.0 or HTTP/1.1 (505).
    Version,
}

impl HttpError {
    /// The status code and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HttpError::BadRequest => (400, "Bad Request"),
            HttpError::HeadTooLarge => (431, "Request Header Fields Too Large"),
            HttpError::BodyTooLarge => (413, "Content Too Large"),
            HttpError::NotImplemented => (501, "Not Implemented"),
            HttpError::Version => (505, "HTTP Version Not Supported"),
        }
    }
}

/// What the bytes received so far make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not complete yet: read more (the buffer never needs more than
    /// [`MAX_HEAD`] + [`MAX_BODY`] bytes).
    Partial,
    /// A complete request, and the bytes it took.
    Complete(Request, usize),
}

/// Parses the start of `buf`: a complete request, [`Parsed::Partial`], or why not.
/// An error is decided as early as the bytes allow (a head over [`MAX_HEAD`] without
/// its end, a `Content-Length` over [`MAX_BODY`] before the body arrives).
pub fn parse(buf: &[u8]) -> Result<Parsed, HttpError> {
    // Leading empty lines are allowed before the request line (RFC 9112 2.2).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    if start > 64 {
        return Err(HttpError::BadRequest);
    }
    let rest = &buf[start..];
    let Some(head_len) = find_head_end(rest) else {
        if rest.len() > MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        // A request line that is already wrong need not wait for the rest.
        if let Some(line_end) = rest.iter().position(|&b| b == b'\n') {
            parse_request_line(trim_cr(&rest[..line_end]))?;
        }
        return Ok(Parsed::Partial);
    };
    if head_len > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&rest[..head_len]).map_err(|_| HttpError::BadRequest)?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or(HttpError::BadRequest)?;
    let (method, path, query) = parse_request_line(first.as_bytes())?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(HttpError::HeadTooLarge);
        }
        let (name, value) = line.split_once(':').ok_or(HttpError::BadRequest)?;
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(HttpError::BadRequest);
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(HttpError::BadRequest);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    if headers.iter().any(|(n, _)| n == "transfer-encoding") {
        return Err(HttpError::NotImplemented);
    }
    let mut lengths = headers.iter().filter(|(n, _)| n == "content-length");
    let body_len = match (lengths.next(), lengths.next()) {
        (None, _) => 0,
        (Some((_, v)), None) => {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::BadRequest);
            }
            match v.parse::<usize>() {
                Ok(n) if n <= MAX_BODY => n,
                _ => return Err(HttpError::BodyTooLarge),
            }
        }
        (Some(_), Some(_)) => return Err(HttpError::BadRequest),
    };
    let body_start = start + head_len;
    let Some(body) = buf.get(body_start..body_start + body_len) else {
        return Ok(Parsed::Partial);
    };
    Ok(Parsed::Complete(
        Request {
            method,
            path,
            query,
            headers,
            body: body.to_vec(),
        },
        body_start + body_len,
    ))
}

/// The length of the head (through the blank line), if it is complete.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let limit = buf.len().min(MAX_HEAD + 4);
    let buf = &buf[..limit];
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// RFC 9110 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_request_line(line: &[u8]) -> Result<(Method, String, Option<String>), HttpError> {
    let line = std::str::from_utf8(line).map_err(|_| HttpError::BadRequest)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest);
    };
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err(HttpError::BadRequest);
    }
    match version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        v if v.starts_with("HTTP/") => return Err(HttpError::Version),
        _ => return Err(HttpError::BadRequest),
    }
    // Origin form only (and `*` is refused): a path from `/`, visible ASCII.
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HttpError::BadRequest);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    Ok((method, path, query))
}

/// A response: status, content type, body and extra headers. Every response closes
/// the connection (one request per connection keeps the server small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra headers (`Allow`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `body` of `content_type`.
    pub fn new(
        status: u16,
        reason: &'static str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Self {
        Response {
            status,
            reason,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    /// 200 with `body`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response::new(200, "OK", content_type, body.into())
    }

    /// A plain-text error (`status reason`, and `detail` on the next line).
    pub fn error(status: u16, reason: &'static str, detail: &str) -> Self {
        let body = if detail.is_empty() {
            format!("{status} {reason}\n")
        } else {
            format!("{status} {reason}\n{detail}\n")
        };
        Response::new(
            status,
            reason,
            "text/plain; charset=utf-8",
            body.into_bytes(),
        )
    }

    /// The response to a request refused by the parser.
    pub fn from_error(e: HttpError) -> Self {
        let (status, reason) = e.status();
        Response::error(status, reason, "")
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire; without the body for `HEAD` (`head_only`).
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
             Connection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            // Values are ours; a line break in one would split the head.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            out.push_str(&format!("{name}: {value}\r\n"));
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
    use proptest::prelude::*;

    fn complete(bytes: &[u8]) -> Request {
        match parse(bytes) {
            Ok(Parsed::Complete(r, n)) => {
                assert_eq!(n, bytes.len());
                r
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_get_parses_with_its_query_and_headers() {
        let r = complete(b"GET /api/status?x=1 HTTP/1.1\r\nHost: pi:8080\r\nAccept: */*\r\n\r\n");
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/api/status");
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.header("host"), Some("pi:8080"));
        assert!(r.body.is_empty());
        // Bare LF line ends, HTTP/1.0, other methods.
        let r = complete(b"HEAD / HTTP/1.0\n\n");
        assert_eq!((r.method, r.path.as_str()), (Method::Head, "/"));
        let r = complete(b"DELETE /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(r.method, Method::Other);
    }

    #[test]
    fn a_body_waits_for_content_length_bytes() {
        let req = b"POST /api/write HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..req.len() {
            assert_eq!(parse(&req[..cut]), Ok(Parsed::Partial), "cut at {cut}");
        }
        assert_eq!(complete(req).body, b"hello");
        // Pipelined bytes after it are not taken.
        let mut two = req.to_vec();
        two.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(parse(&two), Ok(Parsed::Complete(_, n)) if n == req.len()));
    }

    #[test]
    fn too_large_heads_and_bodies_are_refused_early() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 1, b'a');
        assert_eq!(parse(&big), Err(HttpError::HeadTooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Err(HttpError::HeadTooLarge));
        let body = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(parse(body.as_bytes()), Err(HttpError::BodyTooLarge));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Err(HttpError::BodyTooLarge)
        );
    }

    #[test]
    fn malformed_requests_are_400_and_the_rest_has_its_status() {
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET /  HTTP/1.1\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\n\r\n",
            b"GET * HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        ] {
            assert_eq!(
                parse(bad),
                Err(HttpError::BadRequest),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A wrong request line is refused before the head ends.
        assert_eq!(parse(b"GARBAGE\r\n"), Err(HttpError::BadRequest));
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Err(HttpError::Version));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpError::NotImplemented)
        );
    }

    #[test]
    fn a_response_has_its_length_and_closes() {
        let r = Response::ok("text/plain", "hi").with_header("Allow", "GET\r\nX: y");
        let text = String::from_utf8(r.to_bytes(false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(
            text.contains("Allow: GETX: y\r\n"),
            "no header injection: {text}"
        );
        assert!(text.ends_with("\r\n\r\nhi"));
        let head = String::from_utf8(r.to_bytes(true)).unwrap();
        assert!(head.ends_with("\r\n\r\n") && head.contains("Content-Length: 2"));
        assert_eq!(Response::from_error(HttpError::HeadTooLarge).status, 431);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes: a request, partial, or an error — never a panic, and never a
        /// request that takes more bytes than given.
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(Parsed::Complete(r, n)) = parse(&bytes) {
                prop_assert!(n <= bytes.len());
                prop_assert!(r.path.starts_with('/'));
                prop_assert!(r.body.len() <= MAX_BODY);
            }
        }

        /// A valid request split anywhere is partial before its end and the same
        /// request at its end.
        #[test]
        fn valid_requests_split_anywhere(
            path in "/[a-z0-9/_.-]{0,40}",
            query in proptest::option::of("[a-z0-9=&]{0,20}"),
            headers in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,30}"), 0..8),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            post in any::<bool>(),
        ) {
            let mut text = format!("{} {path}", if post { "POST" } else { "GET" });
            if let Some(q) = &query {
                text.push('?');
                text.push_str(q);
            }
            text.push_str(" HTTP/1.1\r\n");
            for (n, v) in &headers {
                if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding") {
                    continue;
                }
                text.push_str(&format!("{n}: {v}\r\n"));
            }
            text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            let mut bytes = text.into_bytes();
            bytes.extend_from_slice(&body);
            for cut in 0..bytes.len() {
                prop_assert_eq!(parse(&bytes[..cut]), Ok(Parsed::Partial));
            }
            match parse(&bytes) {
                Ok(Parsed::Complete(r, n)) => {
                    prop_assert_eq!(n, bytes.len());
                    prop_assert_eq!(r.path, path);
                    prop_assert_eq!(r.query, query);
                    prop_assert_eq!(r.body, body);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
