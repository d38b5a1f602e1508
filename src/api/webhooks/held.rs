//! The events this node holds (`channel_vacated`, `member_removed`) until their hold is over.
//! Every hold lasts the same time, so they fall due in the order they were made: one queue,
//! served by one timer task, instead of a task per hold. Each app may hold at most
//! [`PER_APP`] at once, so a flood of departures in one app cannot grow memory without bound
//! or delay another app's events.

use super::Event;
use crate::api::cluster::holds::HoldOf;
use crate::app::AppIdx;
use ahash::AHashMap;
use std::collections::VecDeque;
use std::time::Instant;

/// Events one app may hold at once; beyond it they are sent without a hold.
pub const PER_APP: usize = 10_000;

/// What a held event waits on: the channel coming back, or the user coming back to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hold {
    Vacated(AppIdx, Box<str>),
    Removed(AppIdx, Box<str>, Box<str>),
}

impl Hold {
    pub fn of(&self) -> HoldOf<'_> {
        match self {
            Hold::Vacated(app, channel) => HoldOf::Vacated { app: *app, channel },
            Hold::Removed(app, channel, user_id) => HoldOf::Removed {
                app: *app,
                channel,
                user_id,
            },
        }
    }

    fn app(&self) -> AppIdx {
        self.of().app()
    }
}

/// A hold that has come due, with its token.
pub type Due = (Hold, Box<str>);

#[derive(Default)]
pub struct Held {
    /// The current hold of each key, with its token and event.
    events: AHashMap<Hold, (Box<str>, Event)>,
    /// Holds in the order they fall due. A key held again gets a second entry; the first
    /// finds its token replaced and does nothing.
    due: VecDeque<(Instant, Hold, Box<str>)>,
    /// Entries of `due` per app.
    per_app: AHashMap<AppIdx, usize>,
}

impl Held {
    /// Whether `app` may hold one more event.
    pub fn has_room(&self, app: AppIdx) -> bool {
        self.per_app.get(&app).copied().unwrap_or(0) < PER_APP
    }

    pub fn insert(&mut self, key: Hold, token: Box<str>, event: Event, until: Instant) {
        *self.per_app.entry(key.app()).or_default() += 1;
        self.events.insert(key.clone(), (token.clone(), event));
        self.due.push_back((until, key, token));
    }

    /// When the next hold falls due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.front().map(|(at, ..)| *at)
    }

    /// Takes up to `max` holds due by `now`.
    pub fn take_due(&mut self, now: Instant, max: usize) -> Vec<Due> {
        let mut out = Vec::new();
        while out.len() < max && self.due.front().is_some_and(|(at, ..)| *at <= now) {
            let Some((_, key, token)) = self.due.pop_front() else {
                break;
            };
            if let Some(n) = self.per_app.get_mut(&key.app()) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_app.remove(&key.app());
                }
            }
            out.push((key, token));
        }
        out
    }

    /// Takes every hold, due or not (shutting down).
    pub fn take_all(&mut self) -> Vec<Due> {
        self.per_app.clear();
        self.due
            .drain(..)
            .map(|(_, key, token)| (key, token))
            .collect()
    }

    /// The event of `key` if `token` is still its hold (not replaced by a newer one, nor
    /// sent already).
    pub fn remove(&mut self, key: &Hold, token: &str) -> Option<Event> {
        match self.events.get(key) {
            Some((t, _)) if **t == *token => self.events.remove(key).map(|(_, e)| e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn vacated(app: u16, channel: &str) -> (Hold, Event) {
        let key = Hold::Vacated(AppIdx(app), channel.into());
        let event = Event::ChannelVacated {
            channel: channel.into(),
        };
        (key, event)
    }

    #[test]
    fn holds_fall_due_in_order_and_a_newer_hold_replaces_an_older() {
        let mut held = Held::default();
        let t0 = Instant::now();
        let (a, ea) = vacated(0, "a");
        let (b, eb) = vacated(0, "b");
        held.insert(a.clone(), "1".into(), ea.clone(), t0);
        held.insert(b.clone(), "2".into(), eb, t0 + Duration::from_secs(1));
        held.insert(a.clone(), "3".into(), ea, t0 + Duration::from_secs(2));
        assert_eq!(held.take_due(t0, 10), vec![(a.clone(), "1".into())]);
        assert_eq!(held.remove(&a, "1"), None, "replaced by hold 3");
        let later = held.take_due(t0 + Duration::from_secs(5), 10);
        assert_eq!(later.len(), 2);
        assert!(held.remove(&b, "2").is_some());
        assert!(held.remove(&a, "3").is_some());
        assert_eq!(held.next_due(), None);
    }

    #[test]
    fn each_app_has_its_own_room() {
        let mut held = Held::default();
        let until = Instant::now();
        for i in 0..PER_APP {
            let (key, event) = vacated(0, &i.to_string());
            held.insert(key, i.to_string().into(), event, until);
        }
        assert!(!held.has_room(AppIdx(0)));
        assert!(held.has_room(AppIdx(1)));
        held.take_due(until, 1);
        assert!(held.has_room(AppIdx(0)));
    }
}
