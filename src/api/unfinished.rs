//! Departures the cluster state did not hear while Redis was unreachable: a presence
//! connection that left, a signed-in connection that closed. Each is kept (bounded) and
//! replayed once Redis answers again, so no member or user stays behind as a ghost; the
//! replay is idempotent and sends the `member_removed` / offline events that are still due.
//! (Counts need no list: each node registers its exact share again.)

use super::{ApiCore, membership, watchlists};
use crate::app::AppIdx;
use crate::protocol::SocketId;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// Most departures kept; past it the oldest are dropped (counted in the log).
pub const MAX_KEPT: usize = 100_000;

pub enum Departure {
    PresenceLeave {
        app: AppIdx,
        channel: Box<str>,
        user_id: Box<str>,
        socket: SocketId,
    },
    SignOut {
        app: AppIdx,
        user_id: Box<str>,
        socket: SocketId,
    },
}

#[derive(Default)]
pub struct Unfinished {
    kept: RefCell<VecDeque<Departure>>,
    dropped: Cell<u64>,
}

impl Unfinished {
    pub fn keep(&self, d: Departure) {
        let mut kept = self.kept.borrow_mut();
        if kept.len() >= MAX_KEPT {
            kept.pop_front();
            self.dropped.set(self.dropped.get() + 1);
        }
        kept.push_back(d);
    }

    /// Replays what was kept (what fails again is kept again).
    pub async fn replay(&self, core: &ApiCore) {
        let kept: Vec<Departure> = self.kept.borrow_mut().drain(..).collect();
        let dropped = self.dropped.replace(0);
        if kept.is_empty() && dropped == 0 {
            return;
        }
        log::info!(
            "cluster: telling Redis of {} departures it missed ({dropped} more were dropped)",
            kept.len()
        );
        for d in kept {
            match d {
                Departure::PresenceLeave {
                    app,
                    channel,
                    user_id,
                    socket,
                } => membership::leave(core, app, &channel, &user_id, socket).await,
                Departure::SignOut {
                    app,
                    user_id,
                    socket,
                } => watchlists::offline(core, app, &user_id, socket).await,
            }
        }
    }
}
