//! Who announces a busy channel's `subscription_count`, and when. Above a threshold a
//! channel's count is announced at most once per interval over the whole cluster: the node
//! that claims the interval announces the count as it is then, and a node whose change came
//! after that announcement tries again when the interval is over, unless another node's
//! later announcement already covered it.

use super::{StateFuture, ready};
use crate::app::AppIdx;
use ahash::AHashMap;
use std::cell::RefCell;
use std::time::Duration;

/// What a node with a change to announce does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Announce the count now (this node claimed the interval).
    Now,
    /// An announcement made after the change already told it.
    Covered,
    /// Try again after this long.
    After(Duration),
}

pub trait Throttle {
    /// A change at `changed_ms` (Unix ms) of a channel wants announcing, at most once per
    /// `every`.
    fn claim<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        every: Duration,
        changed_ms: u64,
    ) -> StateFuture<'a, Turn>;
    /// The channel is empty: its interval is over.
    fn forget(&self, app: AppIdx, channel: &str);
}

/// The decision given when the last announcement was at `last_ms`.
pub fn turn(last_ms: Option<u64>, now_ms: u64, every: Duration, changed_ms: u64) -> Turn {
    let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
    match last_ms {
        Some(last) if last.saturating_add(every_ms) > now_ms => {
            if last >= changed_ms {
                Turn::Covered
            } else {
                Turn::After(Duration::from_millis(last + every_ms - now_ms))
            }
        }
        _ => Turn::Now,
    }
}

/// A single node: when each channel was last announced.
#[derive(Default)]
pub struct MemoryThrottle {
    last: RefCell<AHashMap<(AppIdx, Box<str>), u64>>,
}

impl Throttle for MemoryThrottle {
    fn claim<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        every: Duration,
        changed_ms: u64,
    ) -> StateFuture<'a, Turn> {
        let now = crate::clock::unix_ms();
        let mut last = self.last.borrow_mut();
        let key = (app, Box::<str>::from(channel));
        let t = turn(last.get(&key).copied(), now, every, changed_ms);
        if t == Turn::Now {
            last.insert(key, now);
        }
        ready(t)
    }

    fn forget(&self, app: AppIdx, channel: &str) {
        self.last.borrow_mut().remove(&(app, channel.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_is_claimed_once_and_covers_what_came_before_it() {
        let every = Duration::from_millis(5000);
        assert_eq!(turn(None, 100, every, 90), Turn::Now);
        assert_eq!(turn(Some(100), 200, every, 90), Turn::Covered);
        assert_eq!(
            turn(Some(100), 200, every, 150),
            Turn::After(Duration::from_millis(4900))
        );
        assert_eq!(turn(Some(100), 5100, every, 150), Turn::Now);
    }
}
