//! Routing and request authentication for the HTTP API (docs/http-api.md): find the app, check
//! the signature, then hand the request to its handler. Every error answer is an
//! [`ApiError`], mapped to its status in one table (`http::error`).

mod channels;

use super::ApiCore;
use super::request::{Authed, decode, parse_query};
use crate::app::App;
use crate::auth;
use crate::http::signed::find_app;
use crate::http::{ApiError, ApiRequest, ApiResponse};

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
    // The app is taken out of the API core's copy of the apps, which a reload may replace
    // while this request awaits.
    let (app, rest) = {
        let apps = core.apps.now();
        let (app, rest) = find_app(&apps, &segments, key)?;
        (app.clone(), rest)
    };
    let now = crate::clock::unix_s();
    app.verify_with(|secret| {
        let (method, path) = (&request.method, &request.path);
        auth::verify_request(secret, method, path, &params, &request.body, now)
    })?;
    serving(&app)?;
    // Counted once the signature holds, so nobody but the app can spend its budget.
    let max = app.config.max_api_requests_per_second;
    let second = crate::clock::unix_s() as crate::clock::Tick;
    if !core.api_requests.borrow_mut().take(app.idx, second, max) {
        let why = format!("over {max} API requests per second");
        return Err(ApiError::TooManyRequests(why));
    }
    let req = Authed {
        app: &app,
        params,
        request,
    };
    handle(core, &req, &rest).await
}

/// A disabled app's requests answer 403 (on the HTTP API and the console alike).
pub fn serving(app: &App) -> Result<(), ApiError> {
    if !app.config.enabled {
        return Err(ApiError::Forbidden("app is disabled".into()));
    }
    Ok(())
}

/// Hands an authenticated request to its handler; `rest` is its path after `/apps/{app_id}/`.
/// The console (on `metrics_port`, behind its own token) comes in here too.
pub async fn handle(
    core: &ApiCore,
    req: &Authed<'_>,
    rest: &[&str],
) -> Result<ApiResponse, ApiError> {
    let (publisher, app, request) = (&core.publisher, req.app, req.request);
    match (request.method.as_str(), rest) {
        ("POST", ["events"]) => publisher.trigger(core, req).await,
        ("POST", ["batch_events"]) => publisher.trigger_batch(core, req).await,
        ("POST", ["users", user_id, "terminate_connections"]) => {
            core.terminate_user(app.idx, &decode(user_id)).await?;
            Ok(ApiResponse::json(200, "{}"))
        }
        (_, ["users", _, "terminate_connections"]) => Err(ApiError::MethodNotAllowed),
        ("GET", ["channels"]) => channels::list(core, req).await,
        ("GET", ["channels", channel]) => channels::show(core, req, channel).await,
        ("GET", ["channels", channel, "users"]) => channels::users(core, req, channel).await,
        ("GET", ["channels", channel, "history"]) => {
            let channel = req.channel(channel)?;
            crate::api::history::page::page(&*core.cluster.history, req, &channel).await
        }
        (_, ["events"] | ["batch_events"]) => Err(ApiError::MethodNotAllowed),
        (m, ["channels", ..]) if m != "GET" => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound(format!("no route for {}", request.path))),
    }
}
