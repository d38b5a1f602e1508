//! Subscription counts per channel, summed over every shard: what makes a channel occupied,
//! and what `subscription_count` reports.

use crate::app::AppIdx;
use ahash::AHashMap;

/// Cluster-wide subscription counts.
pub trait Subscriptions {
    /// Applies a change reported by a shard; returns the channel's new total.
    fn add(&mut self, app: AppIdx, channel: &str, delta: i64) -> u64;
    fn count(&self, app: AppIdx, channel: &str) -> u64;
    /// Occupied channels of an app whose name starts with `prefix`, with their counts.
    fn occupied(&self, app: AppIdx, prefix: &str) -> Vec<(String, u64)>;
}

/// Counts for a single node, in the API core's memory.
#[derive(Default)]
pub struct LocalSubscriptions {
    counts: AHashMap<(AppIdx, Box<str>), u64>,
}

impl Subscriptions for LocalSubscriptions {
    fn add(&mut self, app: AppIdx, channel: &str, delta: i64) -> u64 {
        let key = (app, Box::<str>::from(channel));
        let count = self.counts.get(&key).copied().unwrap_or(0);
        let new = count.saturating_add_signed(delta);
        if new == 0 {
            self.counts.remove(&key);
        } else {
            self.counts.insert(key, new);
        }
        new
    }

    fn count(&self, app: AppIdx, channel: &str) -> u64 {
        self.counts
            .get(&(app, Box::<str>::from(channel)))
            .copied()
            .unwrap_or(0)
    }

    fn occupied(&self, app: AppIdx, prefix: &str) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .counts
            .iter()
            .filter(|((a, ch), _)| *a == app && ch.starts_with(prefix))
            .map(|((_, ch), n)| (ch.to_string(), *n))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_prefixes() {
        let mut s = LocalSubscriptions::default();
        let app = AppIdx(0);
        assert_eq!(s.add(app, "presence-a", 1), 1);
        assert_eq!(s.add(app, "presence-a", 1), 2);
        assert_eq!(s.add(app, "news", 1), 1);
        assert_eq!(s.add(AppIdx(1), "news", 1), 1);
        assert_eq!(
            s.occupied(app, "presence-"),
            vec![("presence-a".to_string(), 2)]
        );
        assert_eq!(s.occupied(app, "").len(), 2);
        assert_eq!(s.add(app, "news", -1), 0);
        assert_eq!(s.count(app, "news"), 0);
        assert_eq!(s.occupied(app, ""), vec![("presence-a".to_string(), 2)]);
    }
}
