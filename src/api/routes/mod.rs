//! Routing and request authentication for the HTTP API (SPEC §4, §4.1): find the app, check
//! the signature, then hand the request to its handler. Every error answer is an
//! [`ApiError`], mapped to its status in one table (`http::error`).

mod channels;

use super::ApiCore;
use super::request::{Authed, decode, parse_query};
use crate::app::App;
use crate::auth::{self, RequestAuthError};
use crate::http::{ApiError, ApiRequest, ApiResponse};
use std::sync::Arc;

impl From<RequestAuthError> for ApiError {
    fn from(e: RequestAuthError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

/// Answers one HTTP API request.
pub async fn route(core: &ApiCore, request: ApiRequest) -> ApiResponse {
    match dispatch(core, &request).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

/// The app a request is for and the rest of its path. Order (SPEC §4.1): unknown app id →
/// 404; unknown or foreign key → 401 (the signature is checked next).
fn find_app<'a, 'p>(
    core: &'a ApiCore,
    segments: &[&'p str],
    key: Option<&str>,
) -> Result<(&'a Arc<App>, Vec<&'p str>), ApiError> {
    let missing = || ApiError::Unauthorized("missing auth_key".into());
    match segments {
        ["apps", app_id, rest @ ..] => {
            let app = core
                .apps
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
            let app = core
                .apps
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

async fn dispatch(core: &ApiCore, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let params = parse_query(&request.query);
    let key = params
        .iter()
        .find(|(k, _)| k == "auth_key")
        .map(|(_, v)| v.as_str());
    let (app, rest) = find_app(core, &segments, key)?;
    auth::verify_request(
        app.secret(),
        &request.method,
        &request.path,
        &params,
        &request.body,
        crate::clock::unix_s(),
    )?;
    if !app.config.enabled {
        return Err(ApiError::Forbidden("app is disabled".into()));
    }
    let req = Authed {
        app,
        params,
        request,
    };
    let publisher = &core.publisher;
    match (request.method.as_str(), rest.as_slice()) {
        ("POST", ["events"]) => publisher.trigger(core, &req).await,
        ("POST", ["batch_events"]) => publisher.trigger_batch(core, &req).await,
        ("POST", ["users", user_id, "terminate_connections"]) => {
            core.terminate_user(app.idx, &decode(user_id)).await?;
            Ok(ApiResponse::json(200, "{}"))
        }
        (_, ["users", _, "terminate_connections"]) => Err(ApiError::MethodNotAllowed),
        ("GET", ["channels"]) => channels::list(core, &req).await,
        ("GET", ["channels", channel]) => channels::show(core, &req, channel).await,
        ("GET", ["channels", channel, "users"]) => channels::users(core, &req, channel).await,
        ("GET", ["channels", channel, "history"]) => {
            let channel = req.channel(channel)?;
            crate::api::history::page::page(&*core.cluster.history, &req, &channel).await
        }
        (_, ["events"] | ["batch_events"]) => Err(ApiError::MethodNotAllowed),
        (m, ["channels", ..]) if m != "GET" => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound(format!("no route for {}", request.path))),
    }
}
