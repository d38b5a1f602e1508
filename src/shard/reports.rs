//! A shard's reports for the API core that must be neither lost nor reordered (joins,
//! subscription counts, presence leaves, sign-ins, departures, and last of all "stopped").
//! They queue here and one task ([`forward`]) moves them, in order, into the bounded
//! cross-core queue.
//!
//! When the API core falls behind (say Redis is slow), reports wait here. Past [`BACKLOG`]
//! the shard stops reading client messages: sessions wait for room, their sockets fill, and a
//! flooding client is slowed down instead of growing the shard's memory. Departures still
//! queue when it is full: each frees more (a connection and its subscriptions) than its
//! reports take.

use super::Shard;
use super::hub::ConnKey;
use crate::bus::{ApiCommand, ShardId};
use crate::metrics::Metrics;
use ahash::AHashMap;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Waker;

/// Reports queued on a shard past which it stops reading client messages.
pub const BACKLOG: usize = 16_384;

pub struct Reports {
    queue: LocalSender<ApiCommand>,
    /// Sessions waiting for the queue to fall below half of [`BACKLOG`].
    waiting: RefCell<AHashMap<ConnKey, Waker>>,
    metrics: Arc<Metrics>,
    shard: ShardId,
}

impl Reports {
    pub fn new(shard: ShardId, metrics: Arc<Metrics>) -> (Reports, LocalReceiver<ApiCommand>) {
        let (queue, rx) = local_channel::new_unbounded();
        let reports = Reports {
            queue,
            waiting: RefCell::new(AHashMap::new()),
            metrics,
            shard,
        };
        (reports, rx)
    }

    /// Queues a report (never refused: see the module's doc for what bounds it).
    pub fn push(&self, cmd: ApiCommand) {
        let _ = self.queue.try_send(cmd);
        self.measure();
    }

    fn measure(&self) {
        let gauge = &self.metrics.shard(self.shard).reports_queued;
        gauge.store(self.queued() as i64, Ordering::Relaxed);
    }

    /// Reports queued and not yet in the cross-core queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether sessions must stop reading client messages for now.
    pub fn is_full(&self) -> bool {
        self.queued() >= BACKLOG
    }

    /// Wakes connection `key`'s session (with `waker`) once there is room again.
    pub fn wait_for_room(&self, key: ConnKey, waker: &Waker) {
        self.waiting.borrow_mut().insert(key, waker.clone());
    }

    /// A report has left the queue.
    fn taken(&self) {
        self.measure();
        if self.queued() <= BACKLOG / 2 && !self.waiting.borrow().is_empty() {
            for (_, waker) in self.waiting.take() {
                waker.wake();
            }
        }
    }
}

/// Moves the shard's reports into the cross-core queue, in order, waiting for room there;
/// returns once it has handed over [`ApiCommand::ShardStopped`] (or the API core is gone).
pub async fn forward(shard: Rc<Shard>, rx: LocalReceiver<ApiCommand>) {
    while let Some(cmd) = rx.recv().await {
        shard.reports.taken();
        let last = matches!(cmd, ApiCommand::ShardStopped { .. });
        if shard.to_api.send(cmd).await.is_err() || last {
            return;
        }
    }
}
