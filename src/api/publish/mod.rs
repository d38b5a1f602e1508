//! The publish service: everything a publish goes through on the API core, in order —
//! validation ([`validate`]), idempotency keys ([`idempotency`]), the `info` counts, history
//! and the cache channel copy ([`cache`]), then one broadcast per shard with the frame
//! encoded once. It also serves what it keeps: history pages and `info=cache`.

mod cache;
pub mod idempotency;
mod validate;

use super::ApiCore;
use super::channel_info;
use super::history::{self, History};
use super::request::Authed;
use crate::app::{App, AppIdx};
use crate::bus::Broadcast;
use crate::http::{ApiError, ApiResponse};
use crate::protocol::ChannelName;
use cache::CachedEvents;
use idempotency::{Claim, Guard, Idempotency};
use serde_json::{Map, Value, json};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;
use validate::{BatchBody, EventBody, Publish, decoded_len, parse};

pub struct Publisher {
    history: RefCell<History>,
    keys: Idempotency,
    cache: CachedEvents,
}

/// An answer with the `info` counts asked for, or `{}`.
fn answer(asked: bool, key: &str, info: Value) -> ApiResponse {
    if asked {
        ApiResponse::json(200, json!({ key: info }).to_string())
    } else {
        ApiResponse::json(200, "{}")
    }
}

impl Publisher {
    /// `seed` makes history stream ids differ from run to run.
    pub fn new(seed: u64) -> Publisher {
        Publisher {
            history: RefCell::new(History::new(seed)),
            keys: Idempotency::default(),
            cache: CachedEvents::new(),
        }
    }

    /// Claims an idempotency key: `Ok(guard)` to publish, `Err(answer)` for a repeat.
    async fn claim(&self, app: &App, key: Option<&str>) -> Result<Option<Guard<'_>>, ApiResponse> {
        let Some(key) = key else { return Ok(None) };
        let ttl = Duration::from_secs(app.config.idempotency_ttl_s);
        match self.keys.claim(app.idx, key, ttl).await {
            Claim::Repeat(answer) => Err((*answer).clone()),
            Claim::Fresh(guard) => Ok(Some(guard)),
        }
    }

    /// `POST /events`.
    pub async fn trigger(&self, core: &ApiCore, req: &Authed<'_>) -> Result<ApiResponse, ApiError> {
        let body: EventBody = parse(&req.request.body)?;
        let key = idempotency::key(
            body.idempotency_key.as_deref(),
            req.request.idempotency_key.as_deref(),
        )?;
        let publish = validate::validate(req.app, &body)?;
        let guard = match self.claim(req.app, key).await {
            Ok(guard) => guard,
            Err(repeat) => return Ok(repeat),
        };
        let asked = publish.info.any();
        let info = self.publish(core, req.app, publish).await?;
        let answer = answer(asked, "channels", Value::Object(info));
        if let Some(guard) = guard {
            guard.settle(&answer);
        }
        Ok(answer)
    }

    /// `POST /batch_events`: every item validated first, then published in order.
    pub async fn trigger_batch(
        &self,
        core: &ApiCore,
        req: &Authed<'_>,
    ) -> Result<ApiResponse, ApiError> {
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
            .map(|e| validate::validate(req.app, e))
            .collect::<Result<Vec<_>, _>>()?;
        let item_keys = body
            .batch
            .iter()
            .map(|e| idempotency::key(e.idempotency_key.as_deref(), None))
            .collect::<Result<Vec<_>, _>>()?;
        // A header key covers the whole batch.
        let header_key = idempotency::key(None, req.request.idempotency_key.as_deref())?;
        let batch_guard = match self.claim(req.app, header_key).await {
            Ok(guard) => guard,
            Err(repeat) => return Ok(repeat),
        };
        let asked = publishes.iter().any(|p| p.info.any());
        let mut items = Vec::with_capacity(publishes.len());
        let mut item_guards = Vec::new();
        for (p, key) in publishes.into_iter().zip(item_keys) {
            // An item whose own key was accepted before is skipped.
            match self.claim(req.app, key).await {
                Ok(guard) => item_guards.extend(guard),
                Err(_) => {
                    items.push(json!({}));
                    continue;
                }
            }
            // A batch item has one channel; its answer is that channel's counts.
            let info = self.publish(core, req.app, p).await?;
            items.push(
                info.into_iter()
                    .next()
                    .map_or_else(|| json!({}), |(_, v)| v),
            );
        }
        let answer = answer(asked, "batch", Value::Array(items));
        for guard in item_guards.into_iter().chain(batch_guard) {
            guard.settle(&answer);
        }
        Ok(answer)
    }

    /// Publishes a validated event to each of its channels; returns the `info` counts asked
    /// for, per channel (read before the event goes out).
    async fn publish(
        &self,
        core: &ApiCore,
        app: &App,
        publish: Publish,
    ) -> Result<Map<String, Value>, ApiError> {
        let mut info = Map::new();
        if publish.info.any() {
            for channel in &publish.channels {
                let counts = channel_info::counts(core, app.idx, channel, publish.info).await?;
                info.insert(channel.clone(), Value::Object(counts));
            }
        }
        let keep = history::retention(app);
        let data_len = decoded_len(&publish.data);
        for channel in &publish.channels {
            let cacheable = ChannelName::classify(channel).is_some_and(|c| c.cache);
            if cacheable {
                self.cache
                    .remember(app, channel, &publish.name, &publish.data);
            }
            let b = Broadcast::event(app.idx, channel, &publish.name, &publish.data, None)
                .except(publish.except)
                .cacheable(cacheable);
            let b = Arc::new(b);
            if keep.max_messages > 0 {
                let now = crate::clock::unix_ms();
                let mut history = self.history.borrow_mut();
                history.record(b.clone(), &publish.name, data_len, now, keep);
            }
            core.distribute(b).await?;
        }
        Ok(info)
    }

    /// `GET /channels/{channel}/history`.
    pub fn history_page(&self, req: &Authed<'_>, channel: &str) -> Result<ApiResponse, ApiError> {
        history::page::page(&mut self.history.borrow_mut(), req, channel)
    }

    /// `info=cache` of a channel query.
    pub fn cache_info(&self, app: AppIdx, channel: &str) -> Value {
        self.cache.info(app, channel)
    }

    /// Drops what has expired (a periodic sweep; reads skip expired entries anyway).
    pub fn purge(&self, apps: &crate::app::Apps) {
        self.cache.purge();
        self.history
            .borrow_mut()
            .purge(crate::clock::unix_ms(), |app| {
                history::retention(apps.get(app))
            });
    }
}
