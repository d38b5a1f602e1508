//! The last event of each cache channel (SPEC §3), keyed by app and channel, with an expiry.
//!
//! Two owners keep one: every shard (every publish reaches every shard anyway, so a new
//! subscriber gets the cached frame right after `subscription_succeeded`, in order with what
//! the shard delivers next, without a round trip), and the API core (to answer `info=cache`
//! on a channel query without asking the shards).

use crate::app::AppIdx;
use ahash::AHashMap;

pub use crate::clock::Tick;

/// Most cache channels one owner remembers; past it an arbitrary entry makes room (expired
/// ones go first, once a minute).
pub const MAX_CACHED_CHANNELS: usize = 100_000;

pub struct LastEvents<V> {
    entries: AHashMap<(AppIdx, Box<str>), (V, Tick)>,
}

impl<V> Default for LastEvents<V> {
    fn default() -> Self {
        LastEvents {
            entries: AHashMap::new(),
        }
    }
}

impl<V: Clone> LastEvents<V> {
    /// Remembers `event` as the channel's last event until `expires`.
    pub fn store(&mut self, app: AppIdx, channel: &str, event: V, expires: Tick) {
        let key = (app, Box::<str>::from(channel));
        if !self.entries.contains_key(&key)
            && self.entries.len() >= MAX_CACHED_CHANNELS
            && let Some(victim) = self.entries.keys().next().cloned()
        {
            self.entries.remove(&victim);
        }
        self.entries.insert(key, (event, expires));
    }

    /// The channel's last event and when it expires, unless it already has.
    pub fn get(&self, app: AppIdx, channel: &str, now: Tick) -> Option<(V, Tick)> {
        let (event, expires) = self.entries.get(&(app, Box::<str>::from(channel)))?;
        (now < *expires).then(|| (event.clone(), *expires))
    }

    /// Remembers `event` unless the channel has an unexpired one already.
    pub fn store_if_absent(
        &mut self,
        app: AppIdx,
        channel: &str,
        event: V,
        expires: Tick,
        now: Tick,
    ) {
        if self.get(app, channel, now).is_none() {
            self.store(app, channel, event, expires);
        }
    }

    pub fn forget(&mut self, app: AppIdx, channel: &str) {
        self.entries.remove(&(app, Box::<str>::from(channel)));
    }

    pub fn purge(&mut self, now: Tick) {
        self.entries.retain(|_, (_, expires)| now < *expires);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_event_until_it_expires() {
        let mut c = LastEvents::default();
        let app = AppIdx(0);
        c.store(app, "cache-a", "one", 10);
        c.store(app, "cache-a", "two", 12);
        assert_eq!(c.get(app, "cache-a", 11), Some(("two", 12)));
        assert_eq!(c.get(app, "cache-a", 12), None);
        assert_eq!(c.get(AppIdx(1), "cache-a", 0), None);
        c.store_if_absent(app, "cache-a", "three", 20, 11);
        assert_eq!(
            c.get(app, "cache-a", 11),
            Some(("two", 12)),
            "a newer one stays"
        );
        c.store_if_absent(app, "cache-a", "three", 20, 12);
        assert_eq!(
            c.get(app, "cache-a", 12),
            Some(("three", 20)),
            "an expired one goes"
        );
        c.forget(app, "cache-a");
        assert_eq!(c.get(app, "cache-a", 12), None);
        c.store(app, "cache-b", "four", 12);
        c.purge(12);
        assert!(c.entries.is_empty());
    }
}
