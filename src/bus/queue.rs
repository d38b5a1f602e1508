//! The queues between the API core and the shards, and the one owner of the queue-depth gauge:
//! [`ShardSender`] raises it as it queues a command and [`ShardReceiver`] lowers it as the
//! shard takes one, so nobody else touches the counter.

use super::{ApiCommand, QUEUE_CAPACITY, ShardCommand, ShardId};
use crate::metrics::Metrics;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use std::sync::Arc;

/// Both queue ends of one shard, before they are connected inside their executors.
pub struct ShardQueue {
    pub to_shard: UnconnectedSender,
    pub from_api: UnconnectedReceiver,
    pub to_api: SharedSender<ApiCommand>,
    pub from_shard: SharedReceiver<ApiCommand>,
}

/// The API core's end of the shard → API queue (each shard has one).
pub type ApiQueue = ConnectedReceiver<ApiCommand>;

impl ShardQueue {
    pub fn new(shard: ShardId, metrics: &Arc<Metrics>) -> ShardQueue {
        let (to_shard, from_api) = shared_channel::new_bounded(QUEUE_CAPACITY);
        let (to_api, from_shard) = shared_channel::new_bounded(QUEUE_CAPACITY);
        ShardQueue {
            to_shard: UnconnectedSender {
                tx: to_shard,
                shard,
                metrics: metrics.clone(),
            },
            from_api: UnconnectedReceiver {
                rx: from_api,
                shard,
                metrics: metrics.clone(),
            },
            to_api,
            from_shard,
        }
    }
}

pub struct UnconnectedSender {
    tx: SharedSender<ShardCommand>,
    shard: ShardId,
    metrics: Arc<Metrics>,
}

impl UnconnectedSender {
    /// Connects inside the API executor (waits for the shard to connect its end).
    pub async fn connect(self) -> ShardSender {
        ShardSender {
            tx: self.tx.connect().await,
            shard: self.shard,
            metrics: self.metrics,
        }
    }
}

pub struct UnconnectedReceiver {
    rx: SharedReceiver<ShardCommand>,
    shard: ShardId,
    metrics: Arc<Metrics>,
}

impl UnconnectedReceiver {
    /// Connects inside the shard's executor (waits for the API core to connect its end).
    pub async fn connect(self) -> ShardReceiver {
        ShardReceiver {
            rx: self.rx.connect().await,
            shard: self.shard,
            metrics: self.metrics,
        }
    }
}

/// The API core's end of the queue to one shard.
pub struct ShardSender {
    tx: ConnectedSender<ShardCommand>,
    shard: ShardId,
    metrics: Arc<Metrics>,
}

impl ShardSender {
    /// Queues a command, waiting while the queue is full; `false` if the shard has stopped.
    pub async fn send(&self, cmd: ShardCommand) -> bool {
        let depth = &self.metrics.shard(self.shard).queue_depth;
        depth.raise();
        let sent = self.tx.send(cmd).await.is_ok();
        if !sent {
            depth.lower();
        }
        sent
    }
}

impl ShardSender {
    /// Queues a command if there is room now; gives it back if the queue is full. `Ok` also
    /// when the shard has stopped (the command is dropped).
    pub fn try_send(&self, cmd: ShardCommand) -> Result<(), ShardCommand> {
        use glommio::GlommioError;
        let depth = &self.metrics.shard(self.shard).queue_depth;
        depth.raise();
        match self.tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(e) => {
                depth.lower();
                match e {
                    GlommioError::WouldBlock(glommio::ResourceType::Channel(cmd)) => Err(cmd),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// A shard's end of the queue from the API core.
pub struct ShardReceiver {
    rx: ConnectedReceiver<ShardCommand>,
    shard: ShardId,
    metrics: Arc<Metrics>,
}

impl ShardReceiver {
    pub async fn recv(&self) -> Option<ShardCommand> {
        let cmd = self.rx.recv().await?;
        self.metrics.shard(self.shard).queue_depth.lower();
        Some(cmd)
    }
}
