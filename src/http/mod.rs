//! HTTP/1.1 on the public port: request heads parsed with httparse on the shards, the
//! request/response types handed to the API core, response serialization, and the one table
//! of error answers ([`ApiError`]).

mod error;
mod read;
pub mod signed;

pub use error::{ApiError, STATUSES};
pub use read::{HEAD_DEADLINE, read_head, read_more, read_more_by};

/// Largest request head we accept (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Hard cap on an HTTP API body: `max_event_batch_size` items of `max_event_payload_kb` fit
/// comfortably; anything larger is refused with 413 before it is read.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The parts of a request head the server acts on.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_length: usize,
    pub chunked: bool,
    pub keep_alive: bool,
    pub upgrade_websocket: bool,
    pub ws_key: Option<String>,
    pub ws_version: Option<String>,
    pub idempotency_key: Option<String>,
    /// Bytes of the head, so the caller knows where the body starts.
    pub head_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    TooLarge,
    Malformed,
    /// Not complete within [`read::HEAD_DEADLINE`] of its first byte.
    TooSlow,
}

impl From<HeadError> for ApiError {
    fn from(e: HeadError) -> Self {
        let status = match e {
            HeadError::TooLarge => 431,
            HeadError::Malformed => 400,
            HeadError::TooSlow => return ApiError::TooSlow,
        };
        ApiError::MalformedHead { status }
    }
}

fn has_token(value: &[u8], token: &str) -> bool {
    std::str::from_utf8(value)
        .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

/// Parses a request head at the start of `buf`; `Ok(None)` means more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let target = req.path.ok_or(HeadError::Malformed)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let version_11 = req.version == Some(1);
    let mut head = RequestHead {
        method: req.method.ok_or(HeadError::Malformed)?.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        keep_alive: version_11,
        head_len,
        ..RequestHead::default()
    };
    let text = |v: &[u8]| std::str::from_utf8(v).map(|s| s.trim().to_string()).ok();
    let mut content_length: Option<usize> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = text(h.value)
                .and_then(|v| v.parse().ok())
                .ok_or(HeadError::Malformed)?;
            // Two lengths that disagree frame the body two ways (request smuggling behind a
            // proxy): RFC 9112 §6.3 makes that an error.
            if content_length.is_some_and(|before| before != n) {
                return Err(HeadError::Malformed);
            }
            content_length = Some(n);
            head.content_length = n;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = has_token(h.value, "chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, "close") {
                head.keep_alive = false;
            } else if has_token(h.value, "keep-alive") {
                head.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            head.upgrade_websocket = has_token(h.value, "websocket");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            head.ws_key = text(h.value);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            head.ws_version = text(h.value);
        } else if name.eq_ignore_ascii_case("x-idempotency-key") {
            head.idempotency_key = text(h.value);
        }
    }
    Ok(Some(head))
}

/// An HTTP API request as the API core receives it from a shard.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Vec<u8>,
    pub idempotency_key: Option<String>,
}

/// The API core's answer, written back by the shard that holds the client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: String,
}

impl ApiResponse {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        ApiResponse {
            status,
            body: body.into(),
        }
    }

    /// `{"error":"…","code":"…"}` (docs/http-api.md).
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        let body = serde_json::json!({ "error": message, "code": code }).to_string();
        ApiResponse { status, body }
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A complete HTTP/1.1 response.
pub fn response(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    response_with(status, content_type, &[], body, keep_alive)
}

/// [`response`] with extra headers (`name`, `value`).
pub fn response_with(
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {connection}\r\n",
        reason(status),
        body.len()
    );
    // Every rate limit counts in one-second windows.
    if status == 429 {
        out.push_str("Retry-After: 1\r\n");
    }
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let raw = b"POST /apps/1/events?auth_key=k&body_md5=x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nX-Idempotency-Key: abc\r\n\r\n{\"a\":1}";
        let h = parse_head(raw).unwrap().unwrap();
        assert_eq!(
            (h.method.as_str(), h.path.as_str(), h.query.as_str()),
            ("POST", "/apps/1/events", "auth_key=k&body_md5=x")
        );
        assert_eq!(h.content_length, 12);
        let two = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 12\r\n\r\n";
        assert!(matches!(parse_head(two), Err(HeadError::Malformed)));
        let same = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parse_head(same).unwrap().unwrap().content_length, 5);
        assert!(h.keep_alive);
        assert_eq!(h.idempotency_key.as_deref(), Some("abc"));
        assert_eq!(&raw[h.head_len..], b"{\"a\":1}");
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost:").unwrap().is_none());
        assert_eq!(
            parse_head(b"\x01\x02 nonsense\r\n\r\n").unwrap_err(),
            HeadError::Malformed
        );
        let h =
            parse_head(b"GET /app/k HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(h.upgrade_websocket && !h.keep_alive);
        let huge = vec![b'a'; MAX_HEAD_BYTES + 1];
        assert_eq!(parse_head(&huge).unwrap_err(), HeadError::TooLarge);
    }
}
