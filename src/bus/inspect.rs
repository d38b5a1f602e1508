//! What the web console asks a shard and hears from it (`api::console`). A question carries a
//! one-shot reply channel and is answered at once from the shard's state; connection events
//! for the apps the console watches go the other way, dropped (and counted) rather than ever
//! making the shard wait.

use crate::app::AppIdx;
use crate::protocol::SocketId;
use tokio::sync::oneshot;

/// A question for one shard, answered over its own channel.
#[derive(Debug)]
pub enum Inspection {
    /// Each app's figures on the shard, by app index.
    Apps(oneshot::Sender<ShardFigures>),
    /// A channel's subscribers on the shard (their socket ids, `limit` at most).
    Subscribers {
        app: AppIdx,
        channel: Box<str>,
        limit: usize,
        reply: oneshot::Sender<Vec<SocketId>>,
    },
}

/// One app's figures on one shard. The counters only grow; the console turns them into
/// rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppFigures {
    pub connections: u64,
    /// Channels with a subscriber on the shard.
    pub channels: u64,
    /// Client messages received.
    pub messages_in: u64,
    /// Events delivered to subscribers.
    pub messages_out: u64,
}

/// A shard's answer to [`Inspection::Apps`].
#[derive(Debug, Clone, Default)]
pub struct ShardFigures {
    /// By app index.
    pub apps: Vec<AppFigures>,
    /// Connection events for the console the shard dropped because its queue to the API core
    /// was busy.
    pub dropped: u64,
}

/// A connection of a watched app opened or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEvent {
    Opened {
        app: AppIdx,
        socket: SocketId,
    },
    /// `code` is the close code the server sent, none when the client vanished first.
    Closed {
        app: AppIdx,
        socket: SocketId,
        code: Option<u16>,
    },
}

impl ConnectionEvent {
    pub fn app(&self) -> AppIdx {
        match *self {
            ConnectionEvent::Opened { app, .. } | ConnectionEvent::Closed { app, .. } => app,
        }
    }
}
