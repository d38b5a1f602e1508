//! Rate limits as fixed one-second windows: cheap (two words, no clock read of their own) and
//! owned by one executor each, so counting needs no lock. A limit of 0 means none.

use crate::clock::Tick;
use ahash::AHashMap;
use std::hash::Hash;
use std::net::IpAddr;

/// What one counter allowed in its current second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerSecond {
    second: Tick,
    count: u32,
}

impl PerSecond {
    /// Counts one more in second `now`; `false` when that would pass `max` (0: no limit).
    pub fn take(&mut self, now: Tick, max: u32) -> bool {
        if max == 0 {
            return true;
        }
        if self.second != now {
            *self = PerSecond {
                second: now,
                count: 0,
            };
        }
        if self.count >= max {
            return false;
        }
        self.count += 1;
        true
    }

    /// Whether second `now` has taken `max` already (never with no limit).
    pub fn spent(&self, now: Tick, max: u32) -> bool {
        max != 0 && self.second == now && self.count >= max
    }

    /// The second counted last.
    pub fn second(&self) -> Tick {
        self.second
    }
}

/// One counter per key (a source address, an app), forgetting keys idle for a second.
#[derive(Debug)]
pub struct PerKey<K> {
    counters: AHashMap<K, PerSecond>,
}

impl<K> Default for PerKey<K> {
    fn default() -> Self {
        PerKey {
            counters: AHashMap::new(),
        }
    }
}

impl<K: Hash + Eq> PerKey<K> {
    /// [`PerSecond::take`] for `key`.
    pub fn take(&mut self, key: K, now: Tick, max: u32) -> bool {
        max == 0 || self.counters.entry(key).or_default().take(now, max)
    }

    /// Drops the counters of seconds before `now`: the table holds only keys seen this
    /// second, so it is bounded by what one second can bring.
    pub fn purge(&mut self, now: Tick) {
        self.counters.retain(|_, c| c.second == now);
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }
}

/// WebSocket connects per source address.
pub type ConnectsPerIp = PerKey<IpAddr>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_max_per_second_and_starts_afresh() {
        let mut w = PerSecond::default();
        assert!((0..3).all(|_| w.take(5, 3)));
        assert!(!w.take(5, 3));
        assert!(w.take(6, 3));
        assert!((0..1000).all(|_| w.take(7, 0)), "0 means no limit");
    }

    #[test]
    fn keys_count_apart_and_idle_ones_are_forgotten() {
        let mut ips = ConnectsPerIp::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(ips.take(a, 1, 1));
        assert!(!ips.take(a, 1, 1));
        assert!(ips.take(b, 1, 1));
        ips.purge(2);
        assert!(ips.is_empty());
        assert!(ips.take(a, 2, 1));
    }
}
