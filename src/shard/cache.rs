//! The last event of each cache channel (SPEC §3), kept by every shard: every publish reaches
//! every shard anyway, so a new subscriber gets the cached event right after
//! `subscription_succeeded`, in order with what the shard delivers next, without a round trip.

use super::hub::Tick;
use super::outbox::Frame;
use crate::app::AppIdx;
use ahash::AHashMap;

/// Most cache channels a shard remembers; past it an arbitrary entry makes room (expired
/// ones go first, once a minute).
pub const MAX_CACHED_CHANNELS: usize = 100_000;

#[derive(Default)]
pub struct LastEvents {
    entries: AHashMap<(AppIdx, Box<str>), (Frame, Tick)>,
}

impl LastEvents {
    /// Remembers `frame` as the channel's last event until `expires`.
    pub fn store(&mut self, app: AppIdx, channel: &str, frame: Frame, expires: Tick) {
        let key = (app, Box::<str>::from(channel));
        if !self.entries.contains_key(&key)
            && self.entries.len() >= MAX_CACHED_CHANNELS
            && let Some(victim) = self.entries.keys().next().cloned()
        {
            self.entries.remove(&victim);
        }
        self.entries.insert(key, (frame, expires));
    }

    /// The channel's last event, unless it has expired.
    pub fn get(&self, app: AppIdx, channel: &str, now: Tick) -> Option<Frame> {
        let (frame, expires) = self.entries.get(&(app, Box::<str>::from(channel)))?;
        (now < *expires).then(|| frame.clone())
    }

    pub fn purge(&mut self, now: Tick) {
        self.entries.retain(|_, (_, expires)| now < *expires);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn keeps_the_last_event_until_it_expires() {
        let mut c = LastEvents::default();
        let app = AppIdx(0);
        c.store(app, "cache-a", Rc::from(&b"one"[..]), 10);
        c.store(app, "cache-a", Rc::from(&b"two"[..]), 12);
        assert_eq!(c.get(app, "cache-a", 11).as_deref(), Some(&b"two"[..]));
        assert_eq!(c.get(app, "cache-a", 12), None);
        assert_eq!(c.get(AppIdx(1), "cache-a", 0), None);
        c.purge(12);
        assert!(c.entries.is_empty());
    }
}
