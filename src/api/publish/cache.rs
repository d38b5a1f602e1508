//! The API core's copy of each cache channel's last event, for `info=cache` on a channel
//! query (the shards keep their own copy for replay to new subscribers).

use crate::app::{App, AppIdx};
use crate::clock::Tick;
use crate::last_events::LastEvents;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// A cache channel's last event as the channel query shows it.
#[derive(Clone)]
struct CachedEvent {
    event: Rc<str>,
    /// `data` as a JSON string literal.
    data: Rc<str>,
}

pub struct CachedEvents {
    events: RefCell<LastEvents<CachedEvent>>,
    started: Instant,
}

impl CachedEvents {
    pub fn new() -> CachedEvents {
        CachedEvents {
            events: RefCell::new(LastEvents::default()),
            started: Instant::now(),
        }
    }

    /// Seconds since the API core started.
    fn now(&self) -> Tick {
        self.started.elapsed().as_secs() as Tick
    }

    /// Keeps a cache channel's event for `info=cache`.
    pub fn remember(&self, app: &App, channel: &str, event: &str, data: &str) {
        let expires = self.now() + app.config.cache_ttl_s as Tick;
        let cached = CachedEvent {
            event: event.into(),
            data: data.into(),
        };
        self.events
            .borrow_mut()
            .store(app.idx, channel, cached, expires);
    }

    /// `info=cache`: the cached event a new subscriber would get now and its seconds left, or
    /// `null` (no event cached, or not a cache channel).
    pub fn info(&self, app: AppIdx, channel: &str) -> Value {
        let now = self.now();
        let Some((cached, expires)) = self.events.borrow().get(app, channel, now) else {
            return Value::Null;
        };
        let data: Value = serde_json::from_str(&cached.data).unwrap_or(Value::Null);
        json!({ "event": &*cached.event, "data": data, "ttl_s": expires - now })
    }

    pub fn purge(&self) {
        self.events.borrow_mut().purge(self.now());
    }
}

impl Default for CachedEvents {
    fn default() -> Self {
        Self::new()
    }
}
