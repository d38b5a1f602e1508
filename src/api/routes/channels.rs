//! Channel queries (docs/http-api.md): `GET /channels`, `GET /channels/{channel}`,
//! `GET /channels/{channel}/users`.

use crate::api::ApiCore;
use crate::api::channel_info::{Info, counts, is_presence};
use crate::api::request::Authed;
use crate::app::AppIdx;
use crate::http::{ApiError, ApiResponse};
use serde_json::{Map, Value, json};

pub async fn list(core: &ApiCore, req: &Authed<'_>) -> Result<ApiResponse, ApiError> {
    let prefix = req.param("filter_by_prefix").unwrap_or("");
    let info = Info::parse(req.param("info"));
    if info.user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::BadRequest(
            "user_count needs filter_by_prefix=presence-".into(),
        ));
    }
    let occupied = core.cluster.occupancy.occupied(req.app.idx, prefix).await?;
    let mut channels = Map::new();
    for (name, _) in occupied {
        let c = counts(core, req.app.idx, &name, info).await?;
        channels.insert(name, Value::Object(c));
    }
    Ok(ApiResponse::json(
        200,
        json!({ "channels": channels }).to_string(),
    ))
}

pub async fn show(core: &ApiCore, req: &Authed<'_>, raw: &str) -> Result<ApiResponse, ApiError> {
    let channel = req.channel(raw)?;
    let info = Info::parse(req.param("info"));
    if info.user_count && !is_presence(&channel) {
        return Err(ApiError::BadRequest(
            "user_count is only for presence channels".into(),
        ));
    }
    let app = req.app.idx;
    let mut body = counts(core, app, &channel, info).await?;
    let occupied = core.cluster.occupancy.count(app, &channel).await? > 0;
    body.insert("occupied".into(), json!(occupied));
    if info.cache {
        body.insert("cache".into(), cache_info(core, app, &channel).await?);
    }
    Ok(ApiResponse::json(200, Value::Object(body).to_string()))
}

/// `info=cache`: the cached event a new subscriber would get now and its seconds left, or
/// `null` (no event cached, or not a cache channel).
async fn cache_info(core: &ApiCore, app: AppIdx, channel: &str) -> Result<Value, ApiError> {
    let Some(cached) = core.cluster.cache.last(app, channel).await? else {
        return Ok(Value::Null);
    };
    let data: Value = serde_json::from_str(&cached.data).unwrap_or(Value::Null);
    Ok(json!({ "event": &*cached.event, "data": data, "ttl_s": cached.ttl_s }))
}

pub async fn users(core: &ApiCore, req: &Authed<'_>, raw: &str) -> Result<ApiResponse, ApiError> {
    let channel = req.channel(raw)?;
    if !is_presence(&channel) {
        return Err(ApiError::BadRequest(
            "users are only listed for presence channels".into(),
        ));
    }
    let ids = core
        .cluster
        .presence
        .user_ids(req.app.idx, &channel)
        .await?;
    let users: Vec<Value> = ids.into_iter().map(|id| json!({ "id": id })).collect();
    Ok(ApiResponse::json(
        200,
        json!({ "users": users }).to_string(),
    ))
}
