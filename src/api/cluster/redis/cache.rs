//! Cache channels' last events in Redis: one key per channel, `{prefix}:cache:{app}:{channel}`,
//! holding the event name, its `data` and the frame subscribers received, with the app's
//! `cache_ttl_s` as the key's expiry, so any node (also one started after the publish) can
//! replay it and answer `info=cache`.

use super::link::Link;
use super::{Keys, eval, unavailable};
use crate::api::cluster::StateFuture;
use crate::api::cluster::cache::{CacheStore, Cached, LastPublish};
use crate::app::AppIdx;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::rc::Rc;

/// KEYS: the channel's key. Answers `{value or false, milliseconds left}`.
const READ: &str = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}";

/// The stored value: `data` and the frame embedded as the JSON they are.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    e: &'a str,
    #[serde(borrow)]
    d: &'a RawValue,
    #[serde(borrow)]
    f: &'a RawValue,
}

pub struct RedisCache {
    link: Rc<Link>,
    keys: Rc<Keys>,
}

impl RedisCache {
    pub fn new(link: Rc<Link>, keys: Rc<Keys>) -> RedisCache {
        RedisCache { link, keys }
    }

    fn key(&self, app: AppIdx, channel: &str) -> String {
        self.keys.channel("cache", &self.keys.app_id(app), channel)
    }
}

impl CacheStore for RedisCache {
    fn remember<'a>(&'a self, last: LastPublish<'a>) -> StateFuture<'a, ()> {
        Box::pin(async move {
            let raw = |text: &'a str| serde_json::from_str::<&RawValue>(text);
            let frame = std::str::from_utf8(last.frame).map_err(|e| unavailable(e.to_string()));
            let value = match (raw(last.data), frame.map(raw)) {
                (Ok(d), Ok(Ok(f))) => serde_json::to_string(&Stored {
                    e: last.event,
                    d,
                    f,
                })
                .map_err(|e| unavailable(e.to_string()))?,
                _ => return Err(unavailable("a cache channel event that is not JSON".into())),
            };
            let mut set = redis::cmd("SET");
            set.arg(self.key(last.app, last.channel))
                .arg(value)
                .arg("PX")
                .arg(last.ttl_s.saturating_mul(1000).max(1));
            super::query::<()>(&self.link, set).await
        })
    }

    fn last<'a>(&'a self, app: AppIdx, channel: &'a str) -> StateFuture<'a, Option<Cached>> {
        Box::pin(async move {
            let key = self.key(app, channel);
            let (value, ttl_ms): (Option<String>, i64) =
                eval(&self.link, READ, &[&key], &[]).await?;
            let Some(value) = value else { return Ok(None) };
            let Ok(s) = serde_json::from_str::<Stored>(&value) else {
                return Err(unavailable(
                    "a cached event in Redis is not ringcast's".into(),
                ));
            };
            Ok(Some(Cached {
                event: s.e.into(),
                data: s.d.get().into(),
                // Rounded up: a key with a few milliseconds left still counts.
                ttl_s: u64::try_from(ttl_ms).unwrap_or(0).div_ceil(1000),
                frame: Some(s.f.get().as_bytes().into()),
            }))
        })
    }
}
