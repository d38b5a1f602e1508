//! Every HTTP error answer, in one table: an [`ApiError`] names what went wrong and maps to
//! its status and machine-readable code here, whether the shard (malformed heads, bodies it
//! will not read, shutdown) or the API core (routing, signatures, validation) decides it.

use super::ApiResponse;

/// Why an HTTP request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    /// A body without `Content-Length` (chunked).
    LengthRequired,
    PayloadTooLarge(String),
    /// A request to the WebSocket path that is not a valid upgrade.
    NotAnUpgrade {
        status: u16,
    },
    /// A head that is not HTTP/1.1, or too large.
    MalformedHead {
        status: u16,
    },
    /// A request head or body that did not arrive in time.
    TooSlow,
    /// Over a rate limit (answered with `Retry-After: 1`: every window is one second).
    TooManyRequests(String),
    /// Shutting down, or a state backend that cannot be reached.
    Unavailable(String),
}

/// Every status the server answers, for `/metrics` (anything else counts as "other").
pub const STATUSES: [u16; 15] = [
    200, 400, 401, 403, 404, 405, 408, 411, 413, 426, 429, 431, 500, 503, 101,
];

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed => 405,
            Self::LengthRequired => 411,
            Self::PayloadTooLarge(_) => 413,
            Self::NotAnUpgrade { status } | Self::MalformedHead { status } => *status,
            Self::TooSlow => 408,
            Self::TooManyRequests(_) => 429,
            Self::Unavailable(_) => 503,
        }
    }

    fn code_and_message(&self) -> (&'static str, &str) {
        match self {
            Self::BadRequest(m) => ("bad_request", m),
            Self::Unauthorized(m) => ("unauthorized", m),
            Self::Forbidden(m) => ("forbidden", m),
            Self::NotFound(m) => ("not_found", m),
            Self::MethodNotAllowed => ("method_not_allowed", "method not allowed"),
            Self::LengthRequired => ("length_required", "send the body with Content-Length"),
            Self::PayloadTooLarge(m) => ("payload_too_large", m),
            Self::NotAnUpgrade { .. } => ("bad_request", "expected a WebSocket upgrade"),
            Self::MalformedHead { .. } => ("bad_request", "malformed HTTP request"),
            Self::TooSlow => ("request_timeout", "the request did not arrive in time"),
            Self::TooManyRequests(m) => ("too_many_requests", m),
            Self::Unavailable(m) => ("unavailable", m),
        }
    }

    /// `{"error":"…","code":"…"}` with the status (docs/http-api.md).
    pub fn response(&self) -> ApiResponse {
        let (code, message) = self.code_and_message();
        ApiResponse::error(self.status(), code, message)
    }

    pub fn shutting_down() -> ApiError {
        ApiError::Unavailable("server is shutting down".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_counted() {
        let all = [
            ApiError::BadRequest(String::new()),
            ApiError::Unauthorized(String::new()),
            ApiError::Forbidden(String::new()),
            ApiError::NotFound(String::new()),
            ApiError::MethodNotAllowed,
            ApiError::LengthRequired,
            ApiError::PayloadTooLarge(String::new()),
            ApiError::NotAnUpgrade { status: 426 },
            ApiError::MalformedHead { status: 431 },
            ApiError::TooSlow,
            ApiError::TooManyRequests(String::new()),
            ApiError::Unavailable(String::new()),
        ];
        for e in all {
            assert!(STATUSES.contains(&e.status()), "{e:?}");
            assert_eq!(e.response().status, e.status());
        }
    }
}
