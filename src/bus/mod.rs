//! The cross-core messages and the queues that carry them. Every hop between executors is a
//! value of one of these types over a bounded, lock-free SPSC queue (glommio's
//! `shared_channel`): shard → API core ([`ApiCommand`]) and API core → shard
//! ([`ShardCommand`]). A broadcast crosses once per shard, never once per subscriber.
//!
//! One request/reply pattern serves every question a shard asks the API core (an HTTP
//! request, a presence join): the question carries a [`ReplyTo`] (the shard and a
//! [`RequestId`] it allocated), the answer carries the id back, and the shard looks up who is
//! waiting for it. Commands aimed at one connection carry a [`ConnRef`].

mod broadcast;
mod conn_ref;
pub mod inspect;
mod queue;

pub use broadcast::{Broadcast, ClientEvent, ClientEventReport};
pub use conn_ref::ConnRef;
pub use queue::{
    ApiQueue, ShardQueue, ShardReceiver, ShardSender, UnconnectedReceiver, UnconnectedSender,
};

use crate::app::AppIdx;
use crate::http::{ApiRequest, ApiResponse};
use crate::protocol::errors::SubscriptionRefusal;
use crate::protocol::{ErrorCode, SocketId};
use std::sync::Arc;

/// Index of a shard, `0..shards`.
pub type ShardId = usize;

/// Capacity of each queue. A full queue makes the sender wait (backpressure on publishers),
/// so memory between cores stays bounded.
pub const QUEUE_CAPACITY: usize = 4096;

/// Names one question a shard asked; unique on that shard for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// Where the answer to a question goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    pub shard: ShardId,
    pub request: RequestId,
}

/// A question for the API core, answered with [`ShardCommand::Answer`].
#[derive(Debug)]
pub enum Question {
    /// An HTTP API request received on a shard.
    Http(ApiRequest),
    /// A presence subscription whose signature and `channel_data` the shard has checked.
    PresenceJoin(PresenceJoin),
    /// In a cluster, any other subscription the shard has checked: the node must receive the
    /// channel's broadcasts from the other nodes before the client hears it succeeded.
    Subscribe { app: AppIdx, channel: Box<str> },
    /// In a cluster, a new connection of an app with `max_connections`, which this node's own
    /// count has admitted: may the cluster take it?
    Connect { app: AppIdx },
}

/// The API core's answer to a [`Question`] of the same kind.
#[derive(Debug)]
pub enum Answer {
    Http(ApiResponse),
    /// The `data` of `subscription_succeeded` (the presence payload, or `{}`), or why the
    /// join was refused.
    Join(Result<String, SubscriptionRefusal>),
    /// Whether a new connection may stay, or the code and reason it is closed with.
    Admit(Result<(), (ErrorCode, String)>),
}

/// API core → shard.
#[derive(Debug)]
pub enum ShardCommand {
    Broadcast(Arc<Broadcast>),
    Answer {
        request: RequestId,
        answer: Answer,
    },
    /// Stop accepting, close every client with 4200 and wait for them until `clients_by`,
    /// then report [`ApiCommand::ShardStopped`] after every other report, handing them over
    /// until `done_by` at most.
    Shutdown {
        clients_by: std::time::Instant,
        done_by: std::time::Instant,
    },
    /// An event for one connection (watchlist events), dropped if it has gone.
    ToConnection {
        conn: ConnRef,
        payload: Box<[u8]>,
    },
    /// Close every connection signed in as this user with 4009 (`terminate_connections`).
    TerminateUser {
        app: AppIdx,
        user_id: Box<str>,
    },
    /// In a cluster, a cache channel's last event published while this node did not serve the
    /// channel: kept for `ttl_s` unless the shard has a newer one already.
    Remember {
        app: AppIdx,
        channel: Box<str>,
        payload: Box<[u8]>,
        ttl_s: u64,
    },
    /// In a cluster, this node was declared dead while cut off from the others: close every
    /// client with 4200 so it reconnects and is announced again.
    Disown,
    /// In a cluster, this node stopped receiving the channel's broadcasts, so its copy of the
    /// last event may go stale: forget it (the next subscriber's node asks Redis again).
    Forget {
        app: AppIdx,
        channel: Box<str>,
    },
    /// The web console watches exactly these apps: report their connections' opens and
    /// closes ([`ApiCommand::Connection`]).
    Watch(Box<[AppIdx]>),
    /// A question of the web console.
    Inspect(inspect::Inspection),
}

/// Shard → API core.
#[derive(Debug)]
pub enum ApiCommand {
    Ask {
        from: ReplyTo,
        question: Question,
    },
    ShardStopped {
        shard: ShardId,
    },
    /// A client event that passed the shard's checks, to relay to every shard (the sender
    /// excluded).
    ClientEvent(ClientEvent),
    /// A cache channel's subscriber got `pusher:cache_miss` (sent only when the app has a
    /// webhook for it).
    CacheMiss {
        app: AppIdx,
        channel: Box<str>,
    },
    /// A presence connection left (unsubscribed or disconnected), or gave up a pending join.
    PresenceLeave {
        app: AppIdx,
        channel: Box<str>,
        user_id: Box<str>,
        socket: SocketId,
    },
    /// A connection signed in as `user_id`, watching `watchlist`.
    UserOnline {
        conn: ConnRef,
        app: AppIdx,
        user_id: Box<str>,
        watchlist: Vec<Box<str>>,
    },
    /// A signed-in connection left.
    UserOffline {
        app: AppIdx,
        user_id: Box<str>,
        socket: SocketId,
    },
    /// A connection the cluster counted ([`Question::Connect`]) closed.
    Disconnected {
        app: AppIdx,
    },
    /// A connection subscribed to (`+1`) or left (`-1`) a channel on this shard.
    Subscriptions {
        app: AppIdx,
        channel: Box<str>,
        delta: i64,
        socket: SocketId,
    },
    /// A connection of an app the web console watches opened or closed (best effort).
    Connection(inspect::ConnectionEvent),
}

/// A presence join as the API core admits it.
#[derive(Debug)]
pub struct PresenceJoin {
    pub socket: SocketId,
    pub app: AppIdx,
    pub channel: Box<str>,
    pub user_id: Box<str>,
    /// `user_info` as the client sent it (raw JSON), or `null`.
    pub user_info: Box<str>,
}
