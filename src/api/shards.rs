//! The API core's queues to the shards: one command to one shard, or the same to all (a
//! broadcast crosses once per shard, never once per subscriber).

use crate::bus::{Broadcast, ShardCommand, ShardId, ShardSender};
use std::sync::Arc;

pub struct Shards(Vec<ShardSender>);

impl Shards {
    pub fn new(senders: Vec<ShardSender>) -> Shards {
        Shards(senders)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sends a command to one shard, waiting while its queue is full.
    pub async fn send_to(&self, shard: ShardId, cmd: ShardCommand) {
        if let Some(tx) = self.0.get(shard) {
            tx.send(cmd).await;
        }
    }

    /// Sends `make()` to every shard.
    pub async fn send_all(&self, make: impl Fn() -> ShardCommand) {
        for tx in &self.0 {
            tx.send(make()).await;
        }
    }

    /// Sends one broadcast to every shard. Waits while a shard's queue is full, so a flood of
    /// publishes slows the publishers instead of growing memory.
    pub async fn broadcast(&self, b: Arc<Broadcast>) {
        self.send_all(|| ShardCommand::Broadcast(b.clone())).await
    }
}
