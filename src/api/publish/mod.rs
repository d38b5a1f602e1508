//! The publish service: everything a publish goes through on the API core, in order —
//! validation ([`validate`]), idempotency keys ([`idempotency`]), the `info` counts, history
//! and the cache channel's last event (kept by the cluster state), then one broadcast per
//! shard (and one bus message per node) with the frame encoded once.

pub mod idempotency;
pub mod validate;

use super::ApiCore;
use super::channel_info;
use super::cluster::KeyClaim;
use super::cluster::cache::LastPublish;
use super::cluster::history::Retention;
use super::request::Authed;
use crate::app::App;
use crate::bus::Broadcast;
use crate::http::{ApiError, ApiResponse};
use crate::protocol::ChannelName;
use futures_lite::future::zip;
use idempotency::{Claim, Guard, Idempotency};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use validate::{BatchBody, EventBody, Publish, decoded_len, parse};

/// Longest a publish waits for another node that holds its idempotency key.
const CLUSTER_CLAIM_WAIT: Duration = Duration::from_secs(5);

/// An idempotency key this request holds, here and with the other nodes.
struct Held<'a> {
    guard: Guard<'a>,
    key: String,
    ttl: Duration,
}

/// Why a key cannot be used to publish.
enum Refused {
    /// Accepted before: its first answer.
    Repeat(ApiResponse),
    Failed(ApiError),
}

impl Refused {
    fn answer(self) -> Result<ApiResponse, ApiError> {
        match self {
            Refused::Repeat(a) => Ok(a),
            Refused::Failed(e) => Err(e),
        }
    }
}

pub struct Publisher {
    keys: Idempotency,
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
    /// A publisher remembering at most `max_keys` idempotency keys (shared fairly by apps).
    pub fn new(max_keys: usize) -> Publisher {
        Publisher {
            keys: Idempotency::new(max_keys),
        }
    }

    /// Claims an idempotency key, on this node and then with the others: `Ok(held)` to
    /// publish, `Err(Refused::Repeat)` for a key accepted before anywhere.
    async fn claim<'a>(
        &'a self,
        core: &ApiCore,
        app: &App,
        key: Option<&str>,
    ) -> Result<Option<Held<'a>>, Refused> {
        let Some(key) = key else { return Ok(None) };
        let ttl = Duration::from_secs(app.config.idempotency_ttl_s);
        let guard = match self.keys.claim(app.idx, key, ttl).await {
            Claim::Repeat(answer) => return Err(Refused::Repeat((*answer).clone())),
            Claim::Fresh(guard) => guard,
        };
        // Another node may be publishing with it: wait for its answer (bounded).
        let deadline = std::time::Instant::now() + CLUSTER_CLAIM_WAIT;
        loop {
            match core.cluster.keys.claim(app.id(), key).await {
                Ok(KeyClaim::Fresh) => break,
                Ok(KeyClaim::Repeat(answer)) => {
                    guard.settle(&answer);
                    return Err(Refused::Repeat(answer));
                }
                Ok(KeyClaim::Busy) if std::time::Instant::now() < deadline => {
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                }
                Ok(KeyClaim::Busy) => {
                    let e = "another node is still publishing with this idempotency key";
                    return Err(Refused::Failed(ApiError::Unavailable(e.into())));
                }
                Err(e) => return Err(Refused::Failed(e.into())),
            }
        }
        Ok(Some(Held {
            guard,
            key: key.to_string(),
            ttl,
        }))
    }

    /// Settles every held key with `answer` (a failed publish releases them).
    async fn settle(
        &self,
        core: &ApiCore,
        app: &App,
        held: Vec<Held<'_>>,
        answer: Option<&ApiResponse>,
    ) {
        for h in held {
            let remembered = answer.filter(|a| (200..300).contains(&a.status));
            if let Err(e) = core
                .cluster
                .keys
                .settle(app.id(), &h.key, remembered, h.ttl)
                .await
            {
                log::warn!("cluster: settling idempotency key {}: {e}", h.key);
            }
            if let Some(a) = answer {
                h.guard.settle(a);
            }
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
        let held = match self.claim(core, req.app, key).await {
            Ok(held) => held,
            Err(refused) => return refused.answer(),
        };
        let asked = publish.info.any();
        let held: Vec<Held> = held.into_iter().collect();
        match self.publish(core, req.app, publish).await {
            Ok(info) => {
                let answer = answer(asked, "channels", Value::Object(info));
                self.settle(core, req.app, held, Some(&answer)).await;
                Ok(answer)
            }
            Err(e) => {
                self.settle(core, req.app, held, None).await;
                Err(e)
            }
        }
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
        // A key used twice in one request could never be settled before its repeat is
        // claimed (keys are settled once the whole batch is done): refused up front.
        let mut seen = ahash::AHashSet::new();
        if header_key
            .iter()
            .chain(item_keys.iter().flatten())
            .any(|k| !seen.insert(*k))
        {
            return Err(ApiError::BadRequest(
                "an idempotency_key is used twice in this request".into(),
            ));
        }
        let mut held: Vec<Held> = match self.claim(core, req.app, header_key).await {
            Ok(h) => h.into_iter().collect(),
            Err(refused) => return refused.answer(),
        };
        let asked = publishes.iter().any(|p| p.info.any());
        let mut items = Vec::with_capacity(publishes.len());
        for (p, key) in publishes.into_iter().zip(item_keys) {
            // An item whose own key was accepted before is skipped.
            match self.claim(core, req.app, key).await {
                Ok(h) => held.extend(h),
                Err(Refused::Repeat(_)) => {
                    items.push(json!({}));
                    continue;
                }
                Err(Refused::Failed(e)) => {
                    self.settle(core, req.app, held, None).await;
                    return Err(e);
                }
            }
            // A batch item has one channel; its answer is that channel's counts.
            match self.publish(core, req.app, p).await {
                Ok(info) => items.push(
                    info.into_iter()
                        .next()
                        .map_or_else(|| json!({}), |(_, v)| v),
                ),
                Err(e) => {
                    self.settle(core, req.app, held, None).await;
                    return Err(e);
                }
            }
        }
        let answer = answer(asked, "batch", Value::Array(items));
        self.settle(core, req.app, held, Some(&answer)).await;
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
        let keep = Retention::of(app);
        let data_len = decoded_len(&publish.data);
        let cluster = &core.cluster;
        for channel in &publish.channels {
            let cacheable = ChannelName::classify(channel).is_some_and(|c| c.cache);
            let b = Broadcast::event(app.idx, channel, &publish.name, &publish.data, None)
                .except(publish.except)
                .cacheable(cacheable);
            let b = Arc::new(b);
            // Kept and sent together: in a cluster one pipeline to Redis carries the history
            // record, the cache copy and the publish, in that order.
            let last = cacheable.then(|| LastPublish {
                app: app.idx,
                channel,
                event: &publish.name,
                data: &publish.data,
                frame: &b.payload,
                ttl_s: app.config.cache_ttl_s,
            });
            let recorded = async {
                match keep.max_messages {
                    0 => Ok(()),
                    _ => {
                        cluster
                            .history
                            .record(keep, &b, &publish.name, data_len)
                            .await
                    }
                }
            };
            let cached = async {
                match last {
                    Some(last) => cluster.cache.remember(last).await,
                    None => Ok(()),
                }
            };
            // `zip` polls left to right, so the three are queued in this order.
            let ((recorded, cached), sent) =
                zip(zip(recorded, cached), core.distribute(b.clone())).await;
            sent?;
            let kept = recorded.and(cached);
            // Delivered, so the publish succeeded; only the copy is missing.
            if let Err(e) = kept {
                log::warn!("history or cache of {channel}: {e}");
            }
        }
        Ok(info)
    }

    /// Drops what has expired (a periodic sweep; reads skip expired entries anyway).
    pub fn purge(&self, core: &ApiCore) {
        self.keys.purge();
        core.cluster.cache.purge();
        let keep = |app| Retention::of(core.apps.now().get(app));
        core.cluster.history.purge(&keep);
    }
}
