//! What `POST /events` and `POST /batch_events` send, and the checks an event passes before
//! anything is published (docs/http-api.md): name, channels, `socket_id`, `data` size.

use crate::api::channel_info::Info;
use crate::app::App;
use crate::http::ApiError;
use crate::protocol::{ChannelName, SocketId, frames};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
pub struct EventBody<'a> {
    name: String,
    #[serde(borrow)]
    data: &'a RawValue,
    channel: Option<String>,
    channels: Option<Vec<String>>,
    socket_id: Option<String>,
    #[serde(default)]
    info: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Deserialize)]
pub struct BatchBody<'a> {
    #[serde(borrow)]
    pub batch: Vec<EventBody<'a>>,
}

/// One validated event, ready to publish.
pub struct Publish {
    pub info: Info,
    pub name: String,
    /// `data` as a JSON string literal, quotes included.
    pub data: String,
    pub channels: Vec<String>,
    pub except: Option<SocketId>,
}

pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

fn channels(app: &App, body: &EventBody<'_>) -> Result<Vec<String>, ApiError> {
    let limits = &app.config;
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
    Ok(channels)
}

pub fn validate(app: &App, body: &EventBody<'_>) -> Result<Publish, ApiError> {
    let limits = &app.config;
    if body.name.is_empty() || body.name.len() > limits.max_event_name_length {
        return Err(ApiError::BadRequest(format!(
            "event name must be 1 to {} characters",
            limits.max_event_name_length
        )));
    }
    let channels = channels(app, body)?;
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
    Ok(Publish {
        info: Info::parse(body.info.as_deref()),
        name: body.name.clone(),
        data: literal,
        channels,
        except,
    })
}

/// Bytes of the string a JSON string literal stands for.
pub fn decoded_len(literal: &str) -> usize {
    if !literal.contains('\\') {
        return literal.len().saturating_sub(2);
    }
    serde_json::from_str::<String>(literal).map_or(0, |s| s.len())
}
