//! The last event of each cache channel as the cluster keeps it: for `info=cache` on a
//! channel query, and, in a cluster, for a node that starts serving a cache channel after its
//! last publish (it hands the event to its shards, which replay it to new subscribers).
//!
//! A single node keeps it in the API core's memory ([`MemoryCache`]; its shards keep their
//! own frames); a cluster keeps it in Redis with the app's `cache_ttl_s` as its expiry.

use super::{StateFuture, ready};
use crate::app::AppIdx;
use crate::clock::Tick;
use crate::fair_share::Cap;
use crate::last_events::LastEvents;
use std::cell::RefCell;
use std::time::Instant;

/// A cache channel's last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub event: Box<str>,
    /// `data` as a JSON string literal.
    pub data: Box<str>,
    /// Seconds until it expires (rounded up).
    pub ttl_s: u64,
    /// The frame subscribers received; only a store shared by nodes keeps it.
    pub frame: Option<Box<[u8]>>,
}

/// What one publish to a cache channel leaves behind.
pub struct LastPublish<'a> {
    pub app: AppIdx,
    pub channel: &'a str,
    pub event: &'a str,
    pub data: &'a str,
    pub frame: &'a [u8],
    pub ttl_s: u64,
}

/// Where cache channels' last events are kept.
pub trait CacheStore {
    /// Remembers a publish as its channel's last event, for `ttl_s`.
    fn remember<'a>(&'a self, last: LastPublish<'a>) -> StateFuture<'a, ()>;
    /// The channel's last event, unless it has expired.
    fn last<'a>(&'a self, app: AppIdx, channel: &'a str) -> StateFuture<'a, Option<Cached>>;
    /// Drops what has expired (a periodic sweep; reads skip expired entries anyway).
    fn purge(&self) {}
}

/// Cache channels of a single node.
pub struct MemoryCache {
    events: RefCell<LastEvents<(Box<str>, Box<str>)>>,
    started: Instant,
}

impl MemoryCache {
    /// Remembers at most `cap` channels and bytes (shared fairly by the apps).
    pub fn new(cap: Cap) -> MemoryCache {
        MemoryCache {
            events: RefCell::new(LastEvents::new(cap)),
            started: Instant::now(),
        }
    }

    /// Seconds since the API core started.
    fn now(&self) -> Tick {
        self.started.elapsed().as_secs() as Tick
    }
}

impl CacheStore for MemoryCache {
    fn remember<'a>(&'a self, last: LastPublish<'a>) -> StateFuture<'a, ()> {
        let ttl = Tick::try_from(last.ttl_s).unwrap_or(Tick::MAX);
        let expires = self.now().saturating_add(ttl);
        let value = (last.event.into(), last.data.into());
        self.events
            .borrow_mut()
            .store(last.app, last.channel, value, expires);
        ready(())
    }

    fn last<'a>(&'a self, app: AppIdx, channel: &'a str) -> StateFuture<'a, Option<Cached>> {
        let now = self.now();
        let found = self.events.borrow().get(app, channel, now);
        ready(found.map(|((event, data), expires)| Cached {
            event,
            data,
            ttl_s: u64::from(expires - now),
            frame: None,
        }))
    }

    fn purge(&self) {
        self.events.borrow_mut().purge(self.now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_backend_keeps_the_contract() {
        let cap = Cap {
            entries: 100,
            bytes: 100_000,
        };
        futures_lite::future::block_on(super::super::contract::cache(&MemoryCache::new(cap)));
    }
}
