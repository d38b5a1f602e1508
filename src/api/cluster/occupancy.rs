//! Subscription counts per channel, summed over every shard (and node): what makes a channel
//! occupied, and what `subscription_count` reports.

use super::holds::{HoldOf, MemoryHolds, Ticket};
use super::{StateFuture, ready};
use crate::app::AppIdx;
use ahash::AHashMap;
use std::cell::RefCell;
use std::rc::Rc;

/// What a change of a channel's count did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The channel's new total.
    pub count: u64,
    /// The channel was occupied again while its `channel_vacated` was held: the hold is
    /// cancelled (and `channel_occupied` is not due either).
    pub returned: bool,
}

/// Cluster-wide subscription counts.
pub trait Occupancy {
    /// Applies a change reported by a shard. If it vacates the channel, `hold` (if any) is
    /// placed on its `channel_vacated` in the same step; if it occupies the channel, any such
    /// hold is cancelled.
    fn add<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        delta: i64,
        hold: Option<&'a Ticket>,
    ) -> StateFuture<'a, Change>;
    fn count<'a>(&'a self, app: AppIdx, channel: &'a str) -> StateFuture<'a, u64>;
    /// Sets this node's share of a channel's count to `count` (after the backend lost it;
    /// setting the same share again changes nothing).
    fn restore<'a>(&'a self, app: AppIdx, channel: &'a str, count: u64) -> StateFuture<'a, ()>;
    /// Occupied channels of an app whose name starts with `prefix`, with their counts, sorted.
    fn occupied<'a>(&'a self, app: AppIdx, prefix: &'a str) -> StateFuture<'a, Vec<(String, u64)>>;
}

/// Counts for a single node, in the API core's memory.
#[derive(Default)]
pub struct MemoryOccupancy {
    counts: RefCell<AHashMap<(AppIdx, Box<str>), u64>>,
    holds: Rc<MemoryHolds>,
}

impl MemoryOccupancy {
    /// Counts whose `channel_vacated` holds are kept in `holds`.
    pub fn new(holds: Rc<MemoryHolds>) -> MemoryOccupancy {
        MemoryOccupancy {
            counts: RefCell::default(),
            holds,
        }
    }
}

impl Occupancy for MemoryOccupancy {
    fn add<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        delta: i64,
        hold: Option<&'a Ticket>,
    ) -> StateFuture<'a, Change> {
        let mut counts = self.counts.borrow_mut();
        let key = (app, Box::<str>::from(channel));
        let count = counts.get(&key).copied().unwrap_or(0);
        let new = count.saturating_add_signed(delta);
        let of = HoldOf::Vacated { app, channel };
        let mut returned = false;
        if new == 0 {
            counts.remove(&key);
            if count > 0 {
                self.holds.place(of, hold);
            }
        } else {
            counts.insert(key, new);
            returned = count == 0 && self.holds.cancel(of);
        }
        ready(Change {
            count: new,
            returned,
        })
    }

    fn restore<'a>(&'a self, app: AppIdx, channel: &'a str, count: u64) -> StateFuture<'a, ()> {
        // One node: its share is the whole count.
        let key = (app, Box::<str>::from(channel));
        let mut counts = self.counts.borrow_mut();
        if count == 0 {
            counts.remove(&key);
        } else {
            counts.insert(key, count);
        }
        ready(())
    }

    fn count<'a>(&'a self, app: AppIdx, channel: &'a str) -> StateFuture<'a, u64> {
        let key = (app, Box::<str>::from(channel));
        ready(self.counts.borrow().get(&key).copied().unwrap_or(0))
    }

    fn occupied<'a>(&'a self, app: AppIdx, prefix: &'a str) -> StateFuture<'a, Vec<(String, u64)>> {
        let mut out: Vec<(String, u64)> = self
            .counts
            .borrow()
            .iter()
            .filter(|((a, ch), _)| *a == app && ch.starts_with(prefix))
            .map(|((_, ch), n)| (ch.to_string(), *n))
            .collect();
        out.sort();
        ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_backend_keeps_the_contract() {
        let holds = Rc::new(MemoryHolds::default());
        let o = MemoryOccupancy::new(holds.clone());
        futures_lite::future::block_on(super::super::contract::occupancy(&o, &*holds));
        assert!(o.counts.borrow().is_empty(), "vacated channels are dropped");
        assert!(holds.is_empty());
    }
}
