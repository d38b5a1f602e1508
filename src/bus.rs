//! The cross-core messages and the queues that carry them. Every hop between executors is a
//! value of one of these types over a bounded, lock-free SPSC queue (glommio's
//! `shared_channel`): shard → API core ([`ApiCommand`]) and API core → shard
//! ([`ShardCommand`]). A broadcast crosses once per shard, never once per subscriber.

use crate::app::AppIdx;
use crate::http::{ApiRequest, ApiResponse};
use crate::protocol::SocketId;
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use std::sync::Arc;

/// Index of a shard, `0..shards`.
pub type ShardId = usize;

/// Capacity of each queue. A full queue makes the sender wait (backpressure on publishers),
/// so memory between cores stays bounded.
pub const QUEUE_CAPACITY: usize = 4096;

/// One event to deliver to a channel's local subscribers on a shard.
#[derive(Debug)]
pub struct Broadcast {
    pub app: AppIdx,
    pub channel: Box<str>,
    /// The complete JSON text of the event, encoded once by the API core.
    pub payload: Box<[u8]>,
    /// The publisher's own connection, which must not receive it.
    pub except: Option<SocketId>,
    /// A publish to a cache channel: every shard remembers it for later subscribers.
    pub cacheable: bool,
    /// When it was accepted, for the broadcast latency metric.
    pub accepted: std::time::Instant,
}

/// API core → shard.
#[derive(Debug)]
pub enum ShardCommand {
    Broadcast(Arc<Broadcast>),
    /// The answer to an [`ApiCommand::Http`] that this shard forwarded.
    HttpResponse {
        request: u64,
        response: ApiResponse,
    },
    /// Stop accepting, close every client with 4200, then report [`ApiCommand::ShardStopped`].
    Shutdown,
    /// An event for one connection (watchlist events), checked against its socket id.
    ToConnection {
        conn: usize,
        socket_id: SocketId,
        payload: Box<[u8]>,
    },
    /// Close every connection signed in as this user with 4009 (`terminate_connections`).
    TerminateUser {
        app: AppIdx,
        user_id: Box<str>,
    },
    /// The answer to a [`PresenceJoin`]: the presence payload for `subscription_succeeded`,
    /// or why the join was refused.
    PresenceReply {
        conn: usize,
        socket_id: SocketId,
        channel: Box<str>,
        result: Result<String, String>,
    },
}

/// Shard → API core.
#[derive(Debug)]
pub enum ApiCommand {
    /// An HTTP API request received on a shard; answered with [`ShardCommand::HttpResponse`].
    Http {
        shard: ShardId,
        request: u64,
        http: ApiRequest,
    },
    ShardStopped {
        shard: ShardId,
    },
    /// A client event that passed the shard's checks, to relay to every shard (the sender
    /// excluded by `except`).
    ClientEvent(Broadcast),
    /// A cache channel's subscriber got `pusher:cache_miss` (sent only when the app has a
    /// webhook for it).
    CacheMiss {
        app: AppIdx,
        channel: Box<str>,
    },
    /// A connection asks to join a presence channel; answered with
    /// [`ShardCommand::PresenceReply`].
    PresenceJoin(PresenceJoin),
    /// A presence connection left (unsubscribed or disconnected), or gave up a pending join.
    PresenceLeave {
        app: AppIdx,
        channel: Box<str>,
        user_id: Box<str>,
        socket_id: SocketId,
    },
    /// A connection signed in as `user_id`, watching `watchlist`.
    UserOnline {
        shard: ShardId,
        conn: usize,
        socket_id: SocketId,
        app: AppIdx,
        user_id: Box<str>,
        watchlist: Vec<Box<str>>,
    },
    /// A signed-in connection left.
    UserOffline {
        app: AppIdx,
        user_id: Box<str>,
        socket_id: SocketId,
    },
    /// A connection subscribed to (`+1`) or left (`-1`) a channel on this shard.
    Subscriptions {
        app: AppIdx,
        channel: Box<str>,
        delta: i64,
    },
}

/// A presence subscription whose signature and `channel_data` the shard has checked.
#[derive(Debug)]
pub struct PresenceJoin {
    pub shard: ShardId,
    /// The connection's place in its shard's hub, checked against `socket_id` on reply.
    pub conn: usize,
    pub socket_id: SocketId,
    pub app: AppIdx,
    pub channel: Box<str>,
    pub user_id: Box<str>,
    /// `user_info` as the client sent it (raw JSON), or `null`.
    pub user_info: Box<str>,
}

/// Both queue ends of one shard, before they are connected inside their executors.
pub struct ShardLink {
    pub to_shard: SharedSender<ShardCommand>,
    pub from_api: SharedReceiver<ShardCommand>,
    pub to_api: SharedSender<ApiCommand>,
    pub from_shard: SharedReceiver<ApiCommand>,
}

impl ShardLink {
    pub fn new() -> Self {
        let (to_shard, from_api) = shared_channel::new_bounded(QUEUE_CAPACITY);
        let (to_api, from_shard) = shared_channel::new_bounded(QUEUE_CAPACITY);
        ShardLink {
            to_shard,
            from_api,
            to_api,
            from_shard,
        }
    }
}

impl Default for ShardLink {
    fn default() -> Self {
        Self::new()
    }
}
