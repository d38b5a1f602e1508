//! Routing and request authentication for the HTTP API (SPEC §4, §4.1). Every error answer
//! is made here or in a handler as an [`ApiError`], mapped to a status in one place.

use super::{ApiCore, channels, events, history};
use crate::app::App;
use crate::auth::{self, RequestAuthError};
use crate::http::{ApiRequest, ApiResponse};
use std::sync::Arc;

/// Why an API request failed, mapped to an HTTP status in [`ApiError::response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    PayloadTooLarge(String),
}

impl ApiError {
    pub fn response(&self) -> ApiResponse {
        match self {
            Self::BadRequest(m) => ApiResponse::error(400, "bad_request", m),
            Self::Unauthorized(m) => ApiResponse::error(401, "unauthorized", m),
            Self::Forbidden(m) => ApiResponse::error(403, "forbidden", m),
            Self::NotFound(m) => ApiResponse::error(404, "not_found", m),
            Self::MethodNotAllowed => {
                ApiResponse::error(405, "method_not_allowed", "method not allowed")
            }
            Self::PayloadTooLarge(m) => ApiResponse::error(413, "payload_too_large", m),
        }
    }
}

impl From<RequestAuthError> for ApiError {
    fn from(e: RequestAuthError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

/// Decoded query parameters, in order. SDKs send values unescaped, so decoding is lenient.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn now_unix_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An authenticated request, ready for a handler.
pub struct Authed<'a> {
    pub app: &'a Arc<App>,
    pub params: Vec<(String, String)>,
    pub request: &'a ApiRequest,
}

impl Authed<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Answers one HTTP API request.
pub async fn route(core: &ApiCore, request: ApiRequest) -> ApiResponse {
    match dispatch(core, &request).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

async fn dispatch(core: &ApiCore, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let params = parse_query(&request.query);
    let key = params
        .iter()
        .find(|(k, _)| k == "auth_key")
        .map(|(_, v)| v.as_str());
    // Order (SPEC §4.1): unknown app id → 404; unknown or foreign key → 401; signature.
    let (app, rest): (&Arc<App>, Vec<&str>) = match segments.as_slice() {
        ["apps", app_id, rest @ ..] => {
            let app = core
                .apps
                .by_id(app_id)
                .ok_or_else(|| ApiError::NotFound(format!("unknown app id {app_id}")))?;
            match key {
                None => return Err(ApiError::Unauthorized("missing auth_key".into())),
                Some(k) if k != app.key() => {
                    return Err(ApiError::Unauthorized(format!("unknown auth_key {k}")));
                }
                Some(_) => {}
            }
            (app, rest.to_vec())
        }
        // The Python SDK posts terminate_connections without the /apps/{id} prefix: the app
        // is the one whose key signed the request.
        ["users", _, "terminate_connections"] => {
            let k = key.ok_or_else(|| ApiError::Unauthorized("missing auth_key".into()))?;
            let app = core
                .apps
                .by_key(k)
                .ok_or_else(|| ApiError::Unauthorized(format!("unknown auth_key {k}")))?;
            (app, segments.clone())
        }
        _ => return Err(ApiError::NotFound(format!("no route for {}", request.path))),
    };
    auth::verify_request(
        app.secret(),
        &request.method,
        &request.path,
        &params,
        &request.body,
        now_unix_s(),
    )?;
    if !app.config.enabled {
        return Err(ApiError::Forbidden("app is disabled".into()));
    }
    let authed = Authed {
        app,
        params,
        request,
    };
    match (request.method.as_str(), rest.as_slice()) {
        ("POST", ["events"]) => events::trigger(core, &authed).await,
        ("POST", ["batch_events"]) => events::trigger_batch(core, &authed).await,
        ("POST", ["users", user_id, "terminate_connections"]) => {
            let user_id = percent_encoding::percent_decode_str(user_id).decode_utf8_lossy();
            core.terminate_user(app.idx, &user_id).await;
            Ok(ApiResponse::json(200, "{}"))
        }
        (_, ["users", _, "terminate_connections"]) => Err(ApiError::MethodNotAllowed),
        ("GET", ["channels"]) => channels::list(core, &authed),
        ("GET", ["channels", channel]) => channels::show(core, &authed, channel),
        ("GET", ["channels", channel, "users"]) => channels::users(core, &authed, channel),
        ("GET", ["channels", channel, "history"]) => history::page(core, &authed, channel),
        (_, ["events"] | ["batch_events"]) => Err(ApiError::MethodNotAllowed),
        (m, ["channels", ..]) if m != "GET" => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound(format!("no route for {}", request.path))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_is_lenient() {
        let q = parse_query("a=1&info=user_count,subscription_count&x=%2Fy&flag&c=a:b");
        assert_eq!(
            q[1],
            ("info".into(), "user_count,subscription_count".into())
        );
        assert_eq!(q[2], ("x".into(), "/y".into()));
        assert_eq!(q[3], ("flag".into(), "".into()));
        assert_eq!(q[4], ("c".into(), "a:b".into()));
    }
}
