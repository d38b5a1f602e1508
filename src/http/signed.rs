//! Who signed an HTTP API request: the app it names (by path, or by `auth_key` for the one
//! path without an app) and whether the signature holds. The API core checks this for every
//! request; a shard checks a large request's head before it reads the body, so an unsigned
//! 4 MiB body is refused before it is buffered.

use crate::app::{App, Apps};
use crate::auth::{self, RequestAuthError};
use crate::http::ApiError;
use std::sync::Arc;

impl From<RequestAuthError> for ApiError {
    fn from(e: RequestAuthError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

/// Decoded query parameters, in order. SDKs send values unescaped, so decoding is lenient.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A percent-encoded path segment or query part, decoded leniently.
pub fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The app a request is for and the rest of its path. Order (docs/http-api.md): unknown app id →
/// 404; unknown or foreign key → 401 (the signature is checked next).
pub fn find_app<'a, 'p>(
    apps: &'a Apps,
    segments: &[&'p str],
    key: Option<&str>,
) -> Result<(&'a Arc<App>, Vec<&'p str>), ApiError> {
    let missing = || ApiError::Unauthorized("missing auth_key".into());
    match segments {
        ["apps", app_id, rest @ ..] => {
            let app = apps
                .by_id(app_id)
                .ok_or_else(|| ApiError::NotFound(format!("unknown app id {app_id}")))?;
            match key {
                None => Err(missing()),
                Some(k) if k != app.key() => {
                    Err(ApiError::Unauthorized(format!("unknown auth_key {k}")))
                }
                Some(_) => Ok((app, rest.to_vec())),
            }
        }
        // The Python SDK posts terminate_connections without the /apps/{id} prefix: the app
        // is the one whose key signed the request.
        ["users", _, "terminate_connections"] => {
            let k = key.ok_or_else(missing)?;
            let app = apps
                .by_key(k)
                .ok_or_else(|| ApiError::Unauthorized(format!("unknown auth_key {k}")))?;
            Ok((app, segments.to_vec()))
        }
        _ => Err(ApiError::NotFound(format!(
            "no route for /{}",
            segments.join("/")
        ))),
    }
}

/// Checks what a request's head alone can show: the app, its key, the timestamp and the
/// signature (which covers `body_md5`; the body itself is checked once read).
pub fn check_head(
    apps: &Apps,
    method: &str,
    path: &str,
    query: &str,
    now_unix_s: i64,
) -> Result<(), ApiError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let params = parse_query(query);
    let key = params
        .iter()
        .find(|(k, _)| k == "auth_key")
        .map(|(_, v)| v.as_str());
    let (app, _) = find_app(apps, &segments, key)?;
    app.verify_with(|secret| auth::verify_request_head(secret, method, path, &params, now_unix_s))?;
    Ok(())
}
