//! The last event of each cache channel (docs/protocol.md), keyed by app and channel, with an expiry.
//!
//! Two owners keep one: every shard (every publish reaches every shard anyway, so a new
//! subscriber gets the cached frame right after `subscription_succeeded`, in order with what
//! the shard delivers next, without a round trip), and the API core (to answer `info=cache`
//! on a channel query without asking the shards).

use crate::app::AppIdx;
use crate::fair_share::{Cap, Usage};
use ahash::AHashMap;
use std::rc::Rc;

pub use crate::clock::Tick;

/// What an entry weighs against the byte cap.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Rc<[u8]> {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weigh for (Box<str>, Box<str>) {
    fn weight(&self) -> usize {
        self.0.len() + self.1.len()
    }
}

impl Weigh for &str {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// Each app's cache channels with their last event and its expiry. Bounded in channels and
/// bytes (`server.cache_max_channels`, `server.cache_max_mb`), shared fairly by the apps
/// ([`crate::fair_share`]): past either, the app holding the most forgets one of its channels.
pub struct LastEvents<V> {
    apps: AHashMap<AppIdx, AHashMap<Box<str>, (V, Tick)>>,
    usage: Usage,
    cap: Cap,
}

impl<V> LastEvents<V> {
    pub fn new(cap: Cap) -> LastEvents<V> {
        LastEvents {
            apps: AHashMap::new(),
            usage: Usage::default(),
            cap,
        }
    }
}

impl<V: Clone + Weigh> LastEvents<V> {
    /// Remembers `event` as the channel's last event until `expires`.
    pub fn store(&mut self, app: AppIdx, channel: &str, event: V, expires: Tick) {
        self.forget(app, channel);
        self.usage.add(app, event.weight());
        let channels = self.apps.entry(app).or_default();
        channels.insert(channel.into(), (event, expires));
        while let Some(heaviest) = self.usage.over(self.cap) {
            let victim = self
                .apps
                .get(&heaviest)
                .and_then(|c| c.keys().next().cloned());
            match victim {
                Some(victim) => self.forget(heaviest, &victim),
                None => break,
            }
        }
    }

    /// The channel's last event and when it expires, unless it already has.
    pub fn get(&self, app: AppIdx, channel: &str, now: Tick) -> Option<(V, Tick)> {
        let (event, expires) = self.apps.get(&app)?.get(channel)?;
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
        let Some(channels) = self.apps.get_mut(&app) else {
            return;
        };
        if let Some((gone, _)) = channels.remove(channel) {
            self.usage.remove(app, gone.weight());
        }
        if channels.is_empty() {
            self.apps.remove(&app);
        }
    }

    pub fn purge(&mut self, now: Tick) {
        let usage = &mut self.usage;
        self.apps.retain(|app, channels| {
            channels.retain(|_, (event, expires)| {
                let keep = now < *expires;
                if !keep {
                    usage.remove(*app, event.weight());
                }
                keep
            });
            !channels.is_empty()
        });
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_event_until_it_expires() {
        let mut c = LastEvents::new(ROOMY);
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
        assert!(c.is_empty());
    }

    const ROOMY: Cap = Cap {
        entries: usize::MAX,
        bytes: usize::MAX,
    };

    #[test]
    fn a_flood_of_one_app_never_evicts_another_within_its_share() {
        let cap = Cap {
            entries: 100,
            bytes: 10_000,
        };
        let mut c = LastEvents::new(cap);
        c.store(AppIdx(0), "cache-mine", "kept", 10);
        let names: Vec<String> = (0..1000).map(|i| format!("cache-{i}")).collect();
        for name in &names {
            c.store(AppIdx(1), name, "flood", 10);
        }
        assert_eq!(c.get(AppIdx(0), "cache-mine", 0), Some(("kept", 10)));
        assert_eq!(c.usage.entries(), 100);
        // Bytes: one heavy event pushes out the heavy app's own entries.
        let heavy: &str = Box::leak("x".repeat(9_990).into_boxed_str());
        c.store(AppIdx(1), "cache-heavy", heavy, 10);
        assert!(c.usage.bytes() <= 10_000);
        assert_eq!(c.get(AppIdx(0), "cache-mine", 0), Some(("kept", 10)));
    }
}
