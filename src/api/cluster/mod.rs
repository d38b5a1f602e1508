//! The cluster seam: the state that must be consistent across shards (and, with several
//! nodes, across nodes), each concept behind a narrow interface the API core calls:
//!
//! - [`Presence`]: presence membership (who is on which presence channel, with which
//!   connections);
//! - [`Occupancy`]: subscription counts per channel (occupied/vacated, `subscription_count`);
//! - [`Users`]: signed-in users (who is online);
//! - [`Transport`]: broadcasts between nodes;
//! - [`history::HistoryStore`]: channel history; [`cache::CacheStore`]: cache channels' last
//!   events; [`holds::Holds`]: webhook holds; [`Connections`]: connections per app;
//!   [`throttle::Throttle`]: who announces a busy channel's count.
//!
//! Every method is asynchronous and fallible ([`StateFuture`]): a networked backend can be
//! slow or down, and the API core answers such failures with the error the spec names (503,
//! a refused subscription) instead of hanging. The in-memory implementations here are the
//! single-node default; [`contract`] holds the tests every backend must pass (the memory
//! backends run them as unit tests, the Redis ones in `tests/cluster_state.rs` against a real
//! `redis-server`).

pub mod cache;
mod connections;
pub mod history;
pub mod holds;
mod occupancy;
mod presence;
mod redis;
pub mod throttle;
mod transport;
mod users;

pub mod contract;

pub use connections::{Connections, Uncounted};
pub use occupancy::{Change, MemoryOccupancy, Occupancy};
pub use presence::{Join, Joined, Left, MemoryPresence, Presence};
pub use redis::{RedisNode, RedisTransport};
pub use transport::{MemoryBus, NodeEvent, Solo, Transport};
pub use users::{MemoryUsers, Users};

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// Why a backend could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterError {
    /// The backend cannot be reached or did not answer in time.
    Unavailable(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(why) => write!(f, "cluster state unavailable: {why}"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// What a backend's method returns: a future on the API core's executor (no `Send`), which
/// may wait for the network and may fail.
pub type StateFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ClusterError>> + 'a>>;

/// An answer an in-memory backend has at once.
pub(crate) fn ready<'a, T: 'a>(value: T) -> StateFuture<'a, T> {
    Box::pin(std::future::ready(Ok(value)))
}

/// What a dead node held that ended with it, as the sweep found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Departure {
    /// A user whose last connection anywhere was on the dead node left a presence channel.
    Member {
        app_id: String,
        channel: String,
        user_id: String,
        /// The token of the `member_removed` hold the sweep placed.
        hold: Box<str>,
    },
    /// A channel whose last subscribers were on the dead node.
    Vacated {
        app_id: String,
        channel: String,
        /// The token of the `channel_vacated` hold the sweep placed.
        hold: Box<str>,
    },
    /// A user whose last signed-in connection was on the dead node went offline.
    Offline { app_id: String, user_id: String },
}

/// What a heartbeat found of this node's registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Registered, as before.
    Registered,
    /// The backend no longer had it (Redis restarted empty): the node registers its state
    /// again, silently (its clients never left).
    Lost,
    /// Other nodes declared this node dead while it was cut off, and announced its clients as
    /// gone: the node drops them, so they come back (here or elsewhere) and are announced
    /// again.
    Swept,
}

/// The nodes of the cluster and which of them are alive.
pub trait Nodes {
    /// How often this node beats; `None` for a single node, which has nothing to watch.
    fn heartbeat(&self) -> Option<std::time::Duration>;
    /// At start: clears what a node of this id held before (it restarted).
    fn start(&self) -> StateFuture<'_, Vec<Departure>>;
    /// At shutdown, once its clients are gone: leaves the cluster, clearing whatever it still
    /// held (what never reached the backend while it closed).
    fn leave(&self) -> StateFuture<'_, Vec<Departure>>;
    /// This node is alive; what became of its registration.
    fn beat(&self) -> StateFuture<'_, Beat>;
    /// Removes what nodes silent for too long held; each dead node is swept by exactly one
    /// survivor, which gets its departures. A node sweeps only once it has been in touch with
    /// the backend for a whole timeout, so after an outage of the backend the others have
    /// beaten again before anyone judges them.
    fn sweep(&self) -> StateFuture<'_, Vec<Departure>>;
}

/// A single node: alone, nothing to watch.
pub struct Alone;

impl Nodes for Alone {
    fn heartbeat(&self) -> Option<std::time::Duration> {
        None
    }

    fn start(&self) -> StateFuture<'_, Vec<Departure>> {
        ready(Vec::new())
    }

    fn leave(&self) -> StateFuture<'_, Vec<Departure>> {
        ready(Vec::new())
    }

    fn beat(&self) -> StateFuture<'_, Beat> {
        ready(Beat::Registered)
    }

    fn sweep(&self) -> StateFuture<'_, Vec<Departure>> {
        ready(Vec::new())
    }
}

/// What another node made of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// Nobody has used it: this node publishes, then settles it.
    Fresh,
    /// Accepted before (anywhere): answer this, deliver nothing.
    Repeat(crate::http::ApiResponse),
    /// Another node is publishing with it right now.
    Busy,
}

/// Idempotency keys shared by the nodes (each node also keeps its own, in `publish`).
pub trait PublishKeys {
    /// Claims `key` of an app (held at most a short while if never settled).
    fn claim<'a>(&'a self, app_id: &'a str, key: &'a str) -> StateFuture<'a, KeyClaim>;
    /// Remembers the answer for `ttl`; `None` releases the key (the publish failed).
    fn settle<'a>(
        &'a self,
        app_id: &'a str,
        key: &'a str,
        answer: Option<&'a crate::http::ApiResponse>,
        ttl: std::time::Duration,
    ) -> StateFuture<'a, ()>;
}

/// A single node: its own table is the whole truth.
pub struct LocalKeysOnly;

impl PublishKeys for LocalKeysOnly {
    fn claim<'a>(&'a self, _app: &'a str, _key: &'a str) -> StateFuture<'a, KeyClaim> {
        ready(KeyClaim::Fresh)
    }

    fn settle<'a>(
        &'a self,
        _app: &'a str,
        _key: &'a str,
        _answer: Option<&'a crate::http::ApiResponse>,
        _ttl: std::time::Duration,
    ) -> StateFuture<'a, ()> {
        ready(())
    }
}

/// The node's view of cluster-wide state.
pub struct Cluster {
    pub presence: Box<dyn Presence>,
    pub occupancy: Box<dyn Occupancy>,
    pub users: Box<dyn Users>,
    pub transport: Box<dyn Transport>,
    pub nodes: Box<dyn Nodes>,
    pub keys: Box<dyn PublishKeys>,
    pub history: Box<dyn history::HistoryStore>,
    pub cache: Box<dyn cache::CacheStore>,
    /// Shared with the webhook dispatcher, which keeps the timers.
    pub holds: std::rc::Rc<dyn holds::Holds>,
    pub connections: Box<dyn Connections>,
    pub throttle: Box<dyn throttle::Throttle>,
}

impl Cluster {
    /// A single node: everything in the API core's memory, no other nodes, history and
    /// cache within the server's caps. `seed` makes history stream ids differ from run to run.
    pub fn single_node(seed: u64, config: &crate::config::ServerConfig) -> Cluster {
        let holds = std::rc::Rc::new(holds::MemoryHolds::default());
        Cluster {
            presence: Box::new(MemoryPresence::new(holds.clone())),
            occupancy: Box::new(MemoryOccupancy::new(holds.clone())),
            users: Box::new(MemoryUsers::default()),
            transport: Box::new(Solo),
            nodes: Box::new(Alone),
            keys: Box::new(LocalKeysOnly),
            history: Box::new(history::MemoryHistory::new(
                seed,
                crate::fair_share::Cap::history(config),
            )),
            cache: Box::new(cache::MemoryCache::new(crate::fair_share::Cap::cache(
                config,
            ))),
            holds,
            connections: Box::new(Uncounted),
            throttle: Box::new(throttle::MemoryThrottle::default()),
        }
    }

    /// A node of a cluster on Redis: the bus and the shared state there. `apps` are the app
    /// ids by index.
    pub fn on_redis(
        node: RedisNode,
        apps: std::sync::Arc<crate::app::LiveApps>,
        seed: u64,
    ) -> Cluster {
        let parts = node.into_parts(apps, seed);
        Cluster {
            transport: Box::new(parts.transport),
            presence: Box::new(parts.presence),
            occupancy: Box::new(parts.occupancy),
            users: Box::new(parts.users),
            nodes: Box::new(parts.nodes),
            keys: Box::new(parts.keys),
            history: Box::new(parts.history),
            cache: Box::new(parts.cache),
            holds: std::rc::Rc::new(parts.holds),
            connections: Box::new(parts.connections),
            throttle: Box::new(parts.throttle),
        }
    }
}

impl From<ClusterError> for crate::http::ApiError {
    fn from(e: ClusterError) -> Self {
        crate::http::ApiError::Unavailable(e.to_string())
    }
}
