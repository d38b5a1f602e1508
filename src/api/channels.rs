//! Channel queries (SPEC §4): `GET /channels`, `GET /channels/{channel}`,
//! `GET /channels/{channel}/users`, and the `info` answer of a publish. Counts come from the
//! API core's cluster-wide state, so they are exact across shards (once the shards' reports
//! have arrived: a subscription counts a moment after its `subscription_succeeded`).

use super::ApiCore;
use super::router::{ApiError, Authed};
use crate::app::AppIdx;
use crate::http::ApiResponse;
use crate::protocol::ChannelName;
use serde_json::{Map, Value, json};

/// Which counts a request asks for with `info=`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Info {
    pub user_count: bool,
    pub subscription_count: bool,
    /// Only on `GET /channels/{channel}`.
    pub cache: bool,
}

impl Info {
    pub fn parse(info: Option<&str>) -> Info {
        let mut i = Info::default();
        for item in info.unwrap_or("").split(',').map(str::trim) {
            match item {
                "user_count" => i.user_count = true,
                "subscription_count" => i.subscription_count = true,
                "cache" => i.cache = true,
                _ => {}
            }
        }
        i
    }

    /// Whether anything was asked for.
    pub fn any(&self) -> bool {
        self.user_count || self.subscription_count
    }
}

fn is_presence(channel: &str) -> bool {
    ChannelName::classify(channel).is_some_and(|c| c.is_presence())
}

/// The requested counts of one channel (`user_count` only where it means something).
pub fn counts(core: &ApiCore, app: AppIdx, channel: &str, info: Info) -> Map<String, Value> {
    let mut m = Map::new();
    if info.user_count && is_presence(channel) {
        m.insert(
            "user_count".into(),
            json!(core.presence.borrow().user_ids(app, channel).len()),
        );
    }
    if info.subscription_count {
        m.insert(
            "subscription_count".into(),
            json!(core.subscriptions.borrow().count(app, channel)),
        );
    }
    m
}

pub fn list(core: &ApiCore, req: &Authed<'_>) -> Result<ApiResponse, ApiError> {
    let prefix = req.param("filter_by_prefix").unwrap_or("");
    let info = Info::parse(req.param("info"));
    if info.user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::BadRequest(
            "user_count needs filter_by_prefix=presence-".into(),
        ));
    }
    let occupied = core.subscriptions.borrow().occupied(req.app.idx, prefix);
    let channels: Map<String, Value> = occupied
        .into_iter()
        .map(|(name, _)| {
            let c = counts(core, req.app.idx, &name, info);
            (name, Value::Object(c))
        })
        .collect();
    Ok(ApiResponse::json(
        200,
        json!({ "channels": channels }).to_string(),
    ))
}

pub(super) fn channel_param(req: &Authed<'_>, raw: &str) -> Result<String, ApiError> {
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    ChannelName::parse(&name, req.app.config.max_channel_name_length)
        .map_err(|e| ApiError::BadRequest(format!("{e}: {name}")))?;
    Ok(name)
}

pub fn show(core: &ApiCore, req: &Authed<'_>, raw: &str) -> Result<ApiResponse, ApiError> {
    let channel = channel_param(req, raw)?;
    let info = Info::parse(req.param("info"));
    if info.user_count && !is_presence(&channel) {
        return Err(ApiError::BadRequest(
            "user_count is only for presence channels".into(),
        ));
    }
    let mut body = counts(core, req.app.idx, &channel, info);
    let occupied = core.subscriptions.borrow().count(req.app.idx, &channel) > 0;
    body.insert("occupied".into(), json!(occupied));
    if info.cache {
        body.insert("cache".into(), cache_info(core, req.app.idx, &channel));
    }
    Ok(ApiResponse::json(200, Value::Object(body).to_string()))
}

/// `info=cache`: the cached event a new subscriber would get now and its seconds left, or
/// `null` (no event cached, or not a cache channel).
fn cache_info(core: &ApiCore, app: AppIdx, channel: &str) -> Value {
    let Some((cached, ttl)) = core.cached(app, channel) else {
        return Value::Null;
    };
    let data: Value = serde_json::from_str(&cached.data).unwrap_or(Value::Null);
    json!({ "event": &*cached.event, "data": data, "ttl_s": ttl })
}

pub fn users(core: &ApiCore, req: &Authed<'_>, raw: &str) -> Result<ApiResponse, ApiError> {
    let channel = channel_param(req, raw)?;
    if !is_presence(&channel) {
        return Err(ApiError::BadRequest(
            "users are only listed for presence channels".into(),
        ));
    }
    let ids = core.presence.borrow().user_ids(req.app.idx, &channel);
    let users: Vec<Value> = ids.into_iter().map(|id| json!({ "id": id })).collect();
    Ok(ApiResponse::json(
        200,
        json!({ "users": users }).to_string(),
    ))
}
