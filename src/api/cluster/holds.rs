//! Webhook holds shared by the nodes. A `channel_vacated` or `member_removed` waits out the
//! app's hold before it is sent, and is cancelled if the channel or the member comes back
//! meanwhile — on any node.
//!
//! A hold is placed by the very step that decides the event (the last subscriber or member
//! leaving, in [`super::Occupancy::add`] and [`super::Presence::leave`]) and cancelled by the
//! step that decides the return (the first subscriber or member again), so no node can see a
//! return between a departure and its hold. The node that decided the event keeps its timer
//! and its payload, and sends it if [`Holds::release`] finds its hold still in place.

use super::{StateFuture, ready};
use crate::app::AppIdx;
use ahash::AHashMap;
use std::cell::RefCell;
use std::time::Duration;

/// A hold to place if a step decides a departure: its token names it, and it expires by
/// itself after `ttl` if its node never releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub token: Box<str>,
    pub ttl: Duration,
}

/// What a hold waits on: the channel coming back, or the member coming back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOf<'a> {
    Vacated {
        app: AppIdx,
        channel: &'a str,
    },
    Removed {
        app: AppIdx,
        channel: &'a str,
        user_id: &'a str,
    },
}

impl HoldOf<'_> {
    pub fn app(&self) -> AppIdx {
        match self {
            HoldOf::Vacated { app, .. } | HoldOf::Removed { app, .. } => *app,
        }
    }

    /// Its name, with the app named by `app_id` (ids are the same on every node).
    pub fn key(&self, app_id: &str) -> String {
        match self {
            HoldOf::Vacated { channel, .. } => format!("v\u{1f}{app_id}\u{1f}{channel}"),
            HoldOf::Removed {
                channel, user_id, ..
            } => format!("r\u{1f}{app_id}\u{1f}{channel}\u{1f}{user_id}"),
        }
    }

    /// Its name on a single node, where apps are named by index.
    fn local_key(&self) -> String {
        self.key(&self.app().0.to_string())
    }
}

pub trait Holds {
    /// The hold is over: `true` if the hold `token` was still in place (it is gone now, and
    /// its event is due); `false` if it was cancelled or replaced.
    fn release<'a>(&'a self, of: HoldOf<'a>, token: &'a str) -> StateFuture<'a, bool>;
}

/// Holds of a single node, shared by its presence and occupancy.
#[derive(Default)]
pub struct MemoryHolds {
    held: RefCell<AHashMap<String, Box<str>>>,
}

impl MemoryHolds {
    pub fn place(&self, of: HoldOf<'_>, ticket: Option<&Ticket>) {
        if let Some(t) = ticket {
            self.held
                .borrow_mut()
                .insert(of.local_key(), t.token.clone());
        }
    }

    /// `true` if a hold was cancelled.
    pub fn cancel(&self, of: HoldOf<'_>) -> bool {
        self.held.borrow_mut().remove(&of.local_key()).is_some()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.held.borrow().is_empty()
    }
}

impl Holds for MemoryHolds {
    fn release<'a>(&'a self, of: HoldOf<'a>, token: &'a str) -> StateFuture<'a, bool> {
        let mut held = self.held.borrow_mut();
        let key = of.local_key();
        let mine = held.get(&key).is_some_and(|t| **t == *token);
        if mine {
            held.remove(&key);
        }
        ready(mine)
    }
}
