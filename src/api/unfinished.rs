//! Departures the cluster state did not hear while Redis was unreachable: a presence
//! connection that left, a signed-in connection that closed. Each is kept (bounded) and
//! replayed once Redis answers again (by `node_life`), so no member or user stays behind as a
//! ghost; the replay is idempotent and sends the `member_removed` / offline events that are
//! still due.
//! (Counts need no list: each node registers its exact share again.)

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

    /// Takes what was kept, and how many more were dropped, to tell Redis now.
    pub fn take(&self) -> (Vec<Departure>, u64) {
        let kept = self.kept.borrow_mut().drain(..).collect();
        (kept, self.dropped.replace(0))
    }
}
