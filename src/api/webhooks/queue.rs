//! One endpoint's queue from the API core to its sender thread. Each event type has its own
//! share ([`PER_KIND`]), so a flood of one type (say anonymous clients churning public channels
//! into `channel_occupied` / `channel_vacated`) fills only its own share and never crowds out
//! `member_added` or `client_event`. Apps never share a queue: every endpoint has its own.

use crate::metrics::WebhookCounters as Counters;
use crate::webhook_kind::Kind;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Events of one type queued for one endpoint before new ones of that type are dropped.
pub const PER_KIND: usize = 10_000;

/// An event on its way to an endpoint: its JSON, and what batching needs to know of it.
#[derive(Debug)]
pub struct Queued {
    pub kind: Kind,
    pub channel: Box<str>,
    pub json: String,
}

/// Events queued and not yet taken, by type.
#[derive(Default)]
struct Pending([AtomicUsize; Kind::ALL.len()]);

/// The API core's end.
pub struct QueueTx {
    tx: Sender<Queued>,
    pending: Arc<Pending>,
    counters: Arc<Counters>,
}

/// The sender thread's end.
pub struct QueueRx {
    rx: Receiver<Queued>,
    pending: Arc<Pending>,
    counters: Arc<Counters>,
}

/// A queue whose drops and depth are counted in `counters` (shared by all endpoints).
pub fn new(counters: &Arc<Counters>) -> (QueueTx, QueueRx) {
    // Room for every type's full share, so one type never finds the queue full of others.
    let (tx, rx) = crossbeam_channel::bounded(PER_KIND * Kind::ALL.len());
    let pending = Arc::new(Pending::default());
    let rx = QueueRx {
        rx,
        pending: pending.clone(),
        counters: counters.clone(),
    };
    let counters = counters.clone();
    (
        QueueTx {
            tx,
            pending,
            counters,
        },
        rx,
    )
}

impl QueueTx {
    /// Queues `event`, or drops it (counted) when its type's share is full or the sender
    /// has gone.
    pub fn push(&self, event: Queued) {
        let kind = event.kind;
        let pending = &self.pending.0[kind.index()];
        if pending.fetch_add(1, Ordering::Relaxed) >= PER_KIND || self.tx.try_send(event).is_err() {
            pending.fetch_sub(1, Ordering::Relaxed);
            return self.counters.dropped(kind);
        }
        self.counters.queued[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Events queued and not yet taken by the sender.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

impl QueueRx {
    /// Drops every queued event (the endpoint was removed); returns how many there were.
    pub fn discard_all(&self) -> usize {
        let mut n = 0;
        while let Ok(event) = self.rx.try_recv() {
            self.pending.0[event.kind.index()].fetch_sub(1, Ordering::Relaxed);
            self.counters.queued[event.kind.index()].fetch_sub(1, Ordering::Relaxed);
            n += 1;
        }
        n
    }

    /// The next event, waiting until `until` at most (for ever without one).
    pub fn recv_until(&self, until: Option<Instant>) -> Result<Queued, RecvTimeoutError> {
        let event = match until {
            Some(at) => self
                .rx
                .recv_timeout(at.saturating_duration_since(Instant::now()))?,
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected)?,
        };
        self.pending.0[event.kind.index()].fetch_sub(1, Ordering::Relaxed);
        self.counters.queued[event.kind.index()].fetch_sub(1, Ordering::Relaxed);
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Kind) -> Queued {
        Queued {
            kind,
            channel: "c".into(),
            json: "{}".into(),
        }
    }

    #[test]
    fn a_full_type_leaves_room_for_the_others_and_frees_as_taken() {
        let counters = Arc::new(Counters::default());
        let dropped = |kind: Kind| counters.dropped[kind.index()].load(Ordering::Relaxed);
        let (tx, rx) = new(&counters);
        for _ in 0..=PER_KIND {
            tx.push(event(Kind::ChannelOccupied));
        }
        assert_eq!(dropped(Kind::ChannelOccupied), 1);
        tx.push(event(Kind::MemberAdded));
        assert_eq!(dropped(Kind::MemberAdded), 0);
        assert_eq!(rx.recv_until(None).unwrap().kind, Kind::ChannelOccupied);
        tx.push(event(Kind::ChannelOccupied));
        assert_eq!(dropped(Kind::ChannelOccupied), 1);
        tx.push(event(Kind::ChannelOccupied));
        assert_eq!(dropped(Kind::ChannelOccupied), 2);
    }
}
