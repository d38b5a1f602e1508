//! `POST /events` and `POST /batch_events`: validate everything first, then broadcast each
//! (channel, event) to the shards with its frame encoded once.

use super::ApiCore;
use super::channels::{self, Info};
use super::history;
use super::idempotency::{self, Claim};
use super::router::{ApiError, Authed};
use crate::app::App;
use crate::bus::Broadcast;
use crate::http::ApiResponse;
use crate::protocol::{ChannelName, SocketId, frames};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::sync::Arc;

#[derive(Deserialize)]
struct EventBody<'a> {
    name: String,
    #[serde(borrow)]
    data: &'a RawValue,
    channel: Option<String>,
    channels: Option<Vec<String>>,
    socket_id: Option<String>,
    #[serde(default)]
    info: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Vec<EventBody<'a>>,
}

/// One validated event, ready to broadcast.
struct Publish {
    info: Info,
    name: String,
    /// `data` as a JSON string literal, quotes included.
    data: String,
    channels: Vec<String>,
    payloads: Vec<Box<[u8]>>,
    except: Option<SocketId>,
}

fn validate(app: &App, body: &EventBody<'_>) -> Result<Publish, ApiError> {
    let limits = &app.config;
    if body.name.is_empty() || body.name.len() > limits.max_event_name_length {
        return Err(ApiError::BadRequest(format!(
            "event name must be 1 to {} characters",
            limits.max_event_name_length
        )));
    }
    let channels: Vec<String> = match (&body.channel, &body.channels) {
        (Some(c), None) => vec![c.clone()],
        (None, Some(cs)) => cs.clone(),
        (Some(c), Some(cs)) => std::iter::once(c.clone())
            .chain(cs.iter().cloned())
            .collect(),
        (None, None) => return Err(ApiError::BadRequest("missing channel or channels".into())),
    };
    if channels.is_empty() || channels.len() > limits.max_event_channels_at_once {
        return Err(ApiError::BadRequest(format!(
            "an event goes to 1 to {} channels",
            limits.max_event_channels_at_once
        )));
    }
    for c in &channels {
        ChannelName::parse(c, limits.max_channel_name_length)
            .map_err(|e| ApiError::BadRequest(format!("{e}: {c}")))?;
    }
    let except = match &body.socket_id {
        Some(s) => Some(
            s.parse::<SocketId>()
                .map_err(|_| ApiError::BadRequest(format!("invalid socket_id {s}")))?,
        ),
        None => None,
    };
    // `data` is relayed byte-for-byte when it is a string; anything else is serialized once.
    let raw = body.data.get();
    let literal = if raw.starts_with('"') {
        raw.to_string()
    } else {
        frames::json_string(raw)
    };
    if literal.len().saturating_sub(2) > limits.max_event_payload_kb * 1024 {
        return Err(ApiError::PayloadTooLarge(format!(
            "data is larger than {} KB",
            limits.max_event_payload_kb
        )));
    }
    let payloads = channels
        .iter()
        .map(|c| {
            frames::channel_event(&body.name, c, &literal, None)
                .into_bytes()
                .into_boxed_slice()
        })
        .collect();
    Ok(Publish {
        info: Info::parse(body.info.as_deref()),
        name: body.name.clone(),
        data: literal,
        channels,
        payloads,
        except,
    })
}

/// Broadcasts a validated event; returns the `info` counts asked for, per channel.
async fn deliver(core: &ApiCore, app: &App, publish: Publish) -> Map<String, Value> {
    let mut info = Map::new();
    if publish.info.any() {
        for channel in &publish.channels {
            info.insert(
                channel.clone(),
                Value::Object(channels::counts(core, app.idx, channel, publish.info)),
            );
        }
    }
    let keep = history::retention(app);
    let data_len = decoded_len(&publish.data);
    for (channel, payload) in publish.channels.into_iter().zip(publish.payloads) {
        let cacheable = ChannelName::classify(&channel).is_some_and(|c| c.cache);
        if cacheable {
            core.remember(app, &channel, &publish.name, &publish.data);
        }
        let b = Arc::new(Broadcast {
            app: app.idx,
            channel: channel.into_boxed_str(),
            payload,
            except: publish.except,
            cacheable,
            accepted: std::time::Instant::now(),
        });
        if keep.max_messages > 0 {
            core.history.borrow_mut().record(
                b.clone(),
                &publish.name,
                data_len,
                crate::clock::unix_ms(),
                keep,
            );
        }
        core.broadcast_shared(b).await;
    }
    info
}

/// Bytes of the string a JSON string literal stands for.
fn decoded_len(literal: &str) -> usize {
    if !literal.contains('\\') {
        return literal.len().saturating_sub(2);
    }
    serde_json::from_str::<String>(literal).map_or(0, |s| s.len())
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

pub async fn trigger(core: &ApiCore, req: &Authed<'_>) -> Result<ApiResponse, ApiError> {
    let body: EventBody = parse(&req.request.body)?;
    let key = idempotency::key(
        body.idempotency_key.as_deref(),
        req.request.idempotency_key.as_deref(),
    )?;
    let publish = validate(req.app, &body)?;
    let guard = match key {
        Some(key) => match idempotency::claim(core, req.app.idx, key).await {
            Claim::Repeat(answer) => return Ok((*answer).clone()),
            Claim::Fresh(guard) => Some(guard),
        },
        None => None,
    };
    let asked = publish.info.any();
    let info = deliver(core, req.app, publish).await;
    let answer = if asked {
        ApiResponse::json(200, json!({ "channels": info }).to_string())
    } else {
        ApiResponse::json(200, "{}")
    };
    if let Some(guard) = guard {
        guard.settle(&answer);
    }
    Ok(answer)
}

pub async fn trigger_batch(core: &ApiCore, req: &Authed<'_>) -> Result<ApiResponse, ApiError> {
    let body: BatchBody = parse(&req.request.body)?;
    let max = req.app.config.max_event_batch_size;
    if body.batch.len() > max {
        return Err(ApiError::BadRequest(format!(
            "batch has more than {max} events"
        )));
    }
    let publishes = body
        .batch
        .iter()
        .map(|e| validate(req.app, e))
        .collect::<Result<Vec<_>, _>>()?;
    let item_keys = body
        .batch
        .iter()
        .map(|e| idempotency::key(e.idempotency_key.as_deref(), None))
        .collect::<Result<Vec<_>, _>>()?;
    // A header key covers the whole batch.
    let batch_guard = match idempotency::key(None, req.request.idempotency_key.as_deref())? {
        Some(key) => match idempotency::claim(core, req.app.idx, key).await {
            Claim::Repeat(answer) => return Ok((*answer).clone()),
            Claim::Fresh(guard) => Some(guard),
        },
        None => None,
    };
    let asked = publishes.iter().any(|p| p.info.any());
    let mut items = Vec::with_capacity(publishes.len());
    let mut item_guards = Vec::new();
    for (p, key) in publishes.into_iter().zip(item_keys) {
        // An item whose own key was accepted before is skipped.
        if let Some(key) = key {
            match idempotency::claim(core, req.app.idx, key).await {
                Claim::Repeat(_) => {
                    items.push(json!({}));
                    continue;
                }
                Claim::Fresh(guard) => item_guards.push(guard),
            }
        }
        // A batch item has one channel; its answer is that channel's counts.
        let info = deliver(core, req.app, p).await;
        items.push(
            info.into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or_else(|| json!({})),
        );
    }
    let answer = if asked {
        ApiResponse::json(200, json!({ "batch": items }).to_string())
    } else {
        ApiResponse::json(200, "{}")
    };
    for guard in item_guards.into_iter().chain(batch_guard) {
        guard.settle(&answer);
    }
    Ok(answer)
}
