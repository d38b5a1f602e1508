//! The API core's queues to the shards: one command to one shard, or the same to all (a
//! broadcast crosses once per shard, never once per subscriber).

use crate::bus::{Broadcast, ShardCommand, ShardId, ShardSender};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

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

    /// Sends `make()` to every shard: at once to each that has room, then to the others each
    /// as soon as it makes room, so a busy shard delays no other shard's copy.
    pub async fn send_all(&self, make: impl Fn() -> ShardCommand) {
        let mut full: Vec<Pin<Box<dyn Future<Output = bool> + '_>>> = Vec::new();
        for tx in &self.0 {
            if let Err(cmd) = tx.try_send(make()) {
                full.push(Box::pin(tx.send(cmd)));
            }
        }
        if full.is_empty() {
            return;
        }
        futures_lite::future::poll_fn(|cx| {
            full.retain_mut(|send| send.as_mut().poll(cx).is_pending());
            if full.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Sends one broadcast to every shard. Waits while a shard's queue is full, so a flood of
    /// publishes slows the publishers instead of growing memory.
    pub async fn broadcast(&self, b: Arc<Broadcast>) {
        self.send_all(|| ShardCommand::Broadcast(b.clone())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::ShardQueue;
    use crate::metrics::Metrics;
    use glommio::{LocalExecutorBuilder, Placement};

    /// Shard 0 takes nothing, shard 1 everything: once shard 0's queue is full, a command
    /// still reaches shard 1 while its copy for shard 0 waits.
    #[test]
    fn a_full_shard_queue_delays_no_other_shard() {
        let metrics = Metrics::new(2);
        let queues = [ShardQueue::new(0, &metrics), ShardQueue::new(1, &metrics)];
        let [q0, q1] = queues;
        let (stuck_rx, busy_rx) = (q0.from_api, q1.from_api);
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = taken.clone();
        // Shard 1: takes every command, in an executor of its own.
        let shard1 = LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(move || async move {
                let rx = busy_rx.connect().await;
                while rx.recv().await.is_some() {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .unwrap();
        let (to0, to1) = (q0.to_shard, q1.to_shard);
        LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(move || async move {
                // Shard 0 connects its end and never takes anything.
                let stuck = glommio::spawn_local(stuck_rx.connect());
                let shards = Shards::new(vec![to0.connect().await, to1.connect().await]);
                let _stuck = stuck.await;
                let cap = crate::bus::QUEUE_CAPACITY;
                for _ in 0..cap {
                    shards.send_all(|| ShardCommand::Disown).await;
                }
                // Shard 0 is full now: this one waits for it, but shard 1 has its copy.
                let waiting = glommio::spawn_local(async move {
                    shards.send_all(|| ShardCommand::Disown).await;
                });
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while taken.load(std::sync::atomic::Ordering::Relaxed) < cap + 1 {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "shard 1 waited for shard 0"
                    );
                    glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                }
                drop(waiting);
            })
            .unwrap()
            .join()
            .unwrap();
        drop(shard1);
    }
}
