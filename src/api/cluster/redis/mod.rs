//! The cluster backend on Redis. The API core is the only part of a node that talks to Redis,
//! through one [`link::Link`]; shards never do.
//!
//! The bus ([`RedisTransport`]) uses one Redis pub/sub channel per app channel,
//! `{prefix}:b:{app_id}:{channel}`: a node subscribes to it while it has local subscribers,
//! so Redis sends each node only the broadcasts of channels it serves, and a publish is one
//! `PUBLISH` whatever the number of nodes or subscribers. Cluster-wide commands go to
//! `{prefix}:all`, which every node hears.

mod cache;
mod connections;
mod history;
pub(crate) mod holds;
pub mod link;
mod nodes;
mod occupancy;
mod presence;
mod throttle;
mod users;
mod wire;

pub use cache::RedisCache;
pub use connections::RedisConnections;
pub use history::RedisHistory;
pub use holds::RedisHolds;
pub use nodes::RedisNodes;
pub use occupancy::RedisOccupancy;
pub use presence::RedisPresence;
pub use throttle::RedisThrottle;
pub use users::RedisUsers;

use super::{ClusterError, NodeEvent, StateFuture, Transport};
use crate::metrics::ClusterCounters;
use link::Link;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A node's place in a cluster on Redis, before the API executor takes it over.
pub struct RedisNode {
    link: Link,
    node_id: String,
    prefix: String,
    heartbeat: std::time::Duration,
    timeout: std::time::Duration,
    webhook_hold: std::time::Duration,
    counters: Arc<ClusterCounters>,
}

impl RedisNode {
    /// Joins the cluster `prefix` on the Redis at `url` as `node_id` (the link connects, and
    /// reconnects, in the background).
    pub fn start(url: &str, prefix: &str, node_id: &str) -> Result<RedisNode, String> {
        let link = Link::start(url, vec![wire::all_channel(prefix)])?;
        Ok(RedisNode {
            link,
            node_id: node_id.to_string(),
            prefix: prefix.to_string(),
            heartbeat: std::time::Duration::from_secs(2),
            timeout: std::time::Duration::from_secs(10),
            webhook_hold: std::time::Duration::from_secs(3),
            counters: Arc::default(),
        })
    }

    /// How often the node beats, and how long a silent node lives.
    pub fn with_liveness(mut self, heartbeat_s: u64, timeout_s: u64) -> RedisNode {
        self.heartbeat = std::time::Duration::from_secs(heartbeat_s);
        self.timeout = std::time::Duration::from_secs(timeout_s);
        self
    }

    /// The apps' webhook hold (`server.webhook_hold_ms`): the holds a sweep places last longer.
    pub fn with_webhook_hold(mut self, hold: std::time::Duration) -> RedisNode {
        self.webhook_hold = hold;
        self
    }

    /// Where the node counts bus traffic and live nodes (`/metrics`).
    pub fn with_counters(mut self, counters: Arc<ClusterCounters>) -> RedisNode {
        self.counters = counters;
        self
    }

    /// The bus and the state backends, sharing the one link. `apps` give the app ids: Redis
    /// names apps by id, as every node may list them in another order.
    /// `seed` makes the history stream ids this node starts differ from every other node's.
    pub fn into_parts(self, apps: std::sync::Arc<crate::app::LiveApps>, seed: u64) -> Parts {
        let keys = Rc::new(Keys {
            prefix: self.prefix,
            node: self.node_id,
            apps: crate::app::AppsView::new(apps),
        });
        let link = Rc::new(self.link);
        let transport = RedisTransport {
            link: link.clone(),
            keys: keys.clone(),
            counters: self.counters.clone(),
        };
        let presence = RedisPresence::new(link.clone(), keys.clone());
        let occupancy = RedisOccupancy::new(link.clone(), keys.clone());
        let users = RedisUsers::new(link.clone(), keys.clone());
        let history = RedisHistory::new(link.clone(), keys.clone(), seed);
        let cache = RedisCache::new(link.clone(), keys.clone());
        let holds = RedisHolds::new(link.clone(), keys.clone());
        let connections = RedisConnections::new(link.clone(), keys.clone());
        let throttle = RedisThrottle::new(link.clone(), keys.clone());
        let publish_keys = RedisKeys {
            link: link.clone(),
            prefix: keys.prefix.clone(),
        };
        // The holds a sweep places outlive the sweeper's timers, as a node's own do.
        let hold =
            (self.webhook_hold.saturating_mul(2)).saturating_add(std::time::Duration::from_secs(5));
        let (beat, timeout) = (self.heartbeat, self.timeout);
        let nodes = RedisNodes::new(link, keys, beat, timeout, hold, self.counters);
        Parts {
            transport,
            presence,
            occupancy,
            users,
            history,
            cache,
            holds,
            connections,
            throttle,
            nodes,
            keys: publish_keys,
        }
    }
}

/// The backends of one node, sharing its link.
pub struct Parts {
    pub transport: RedisTransport,
    pub presence: RedisPresence,
    pub occupancy: RedisOccupancy,
    pub users: RedisUsers,
    pub history: RedisHistory,
    pub cache: RedisCache,
    pub holds: RedisHolds,
    pub connections: RedisConnections,
    pub throttle: RedisThrottle,
    pub nodes: RedisNodes,
    pub keys: RedisKeys,
}

/// How this node names things in Redis: every key and channel starts with the prefix, and
/// what the node counts is also filed under its id, so it can be removed if the node dies.
pub struct Keys {
    pub prefix: String,
    pub node: String,
    /// The apps, as reloads leave them: Redis names an app by id, which every node knows,
    /// while indexes are this node's own.
    pub apps: crate::app::AppsView,
}

impl Keys {
    fn app_id(&self, app: crate::app::AppIdx) -> String {
        self.apps
            .now()
            .find(app)
            .map_or_else(String::new, |a| a.id().to_string())
    }

    /// A key of an app: `{prefix}:{what}:{app_id}`.
    fn app(&self, what: &str, app_id: &str) -> String {
        format!("{}:{what}:{app_id}", self.prefix)
    }

    /// A key of an app's channel. Channel names cannot contain `:`.
    fn channel(&self, what: &str, app_id: &str, channel: &str) -> String {
        format!("{}:{what}:{app_id}:{channel}", self.prefix)
    }

    /// The key listing what this node holds of `what`.
    fn node(&self, what: &str) -> String {
        format!("{}:node:{}:{what}", self.prefix, self.node)
    }
}

/// Joins parts with a separator no id or name contains.
fn entry(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

fn unavailable(e: String) -> ClusterError {
    ClusterError::Unavailable(e)
}

/// An `EVALSHA` of `script` (its hash computed once per script), to which the caller adds
/// the key count, keys and arguments. Sending the hash rather than the code saves Redis
/// reading and hashing the whole script on every call.
fn script_cmd(script: &'static str) -> redis::Cmd {
    thread_local! {
        static HASHES: std::cell::RefCell<ahash::AHashMap<usize, String>> = Default::default();
    }
    let hash = HASHES.with(|h| {
        h.borrow_mut()
            .entry(script.as_ptr() as usize)
            .or_insert_with(|| redis::Script::new(script).get_hash().to_string())
            .clone()
    });
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(hash);
    cmd
}

/// Runs a Lua script by its hash and converts its answer.
async fn eval<T: redis::FromRedisValue>(
    link: &Link,
    script: &'static str,
    keys: &[&str],
    args: &[&str],
) -> Result<T, ClusterError> {
    let mut cmd = script_cmd(script);
    cmd.arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    for a in args {
        cmd.arg(*a);
    }
    run_script(link, cmd, script).await
}

/// Runs an `EVALSHA` built by [`script_cmd`] and converts its answer.
async fn run_script<T: redis::FromRedisValue>(
    link: &Link,
    cmd: redis::Cmd,
    script: &'static str,
) -> Result<T, ClusterError> {
    let value = link.query_script(cmd, script).await.map_err(unavailable)?;
    redis::from_redis_value(value).map_err(|e| unavailable(format!("unexpected answer: {e}")))
}

/// Runs a command and converts its answer.
async fn query<T: redis::FromRedisValue>(link: &Link, cmd: redis::Cmd) -> Result<T, ClusterError> {
    let value = link.query(cmd).await.map_err(unavailable)?;
    redis::from_redis_value(value).map_err(|e| unavailable(format!("unexpected answer: {e}")))
}

/// Idempotency keys in Redis: `SET NX` claims a key for a moment, the answer replaces it
/// for the app's `idempotency_ttl_s`.
pub struct RedisKeys {
    link: Rc<Link>,
    prefix: String,
}

/// How long a claimed key stays claimed if its node never settles it (it died).
const CLAIM_MS: u64 = 30_000;

impl RedisKeys {
    fn key(&self, app_id: &str, key: &str) -> String {
        format!("{}:idem:{app_id}:{key}", self.prefix)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Settled {
    s: u16,
    b: String,
}

impl super::PublishKeys for RedisKeys {
    fn claim<'a>(&'a self, app_id: &'a str, key: &'a str) -> StateFuture<'a, super::KeyClaim> {
        Box::pin(async move {
            let k = self.key(app_id, key);
            let mut set = redis::cmd("SET");
            set.arg(&k).arg("~").arg("NX").arg("PX").arg(CLAIM_MS);
            let value = self.link.query(set).await.map_err(unavailable)?;
            if value != redis::Value::Nil {
                return Ok(super::KeyClaim::Fresh);
            }
            let mut get = redis::cmd("GET");
            get.arg(&k);
            let value = self.link.query(get).await.map_err(unavailable)?;
            let text: Option<String> = redis::from_redis_value(value).unwrap_or(None);
            Ok(match text.as_deref().map(serde_json::from_str::<Settled>) {
                Some(Ok(done)) => {
                    super::KeyClaim::Repeat(crate::http::ApiResponse::json(done.s, done.b))
                }
                // Gone meanwhile: try again as fresh next time; held: someone publishes.
                _ => super::KeyClaim::Busy,
            })
        })
    }

    fn settle<'a>(
        &'a self,
        app_id: &'a str,
        key: &'a str,
        answer: Option<&'a crate::http::ApiResponse>,
        ttl: std::time::Duration,
    ) -> StateFuture<'a, ()> {
        Box::pin(async move {
            let k = self.key(app_id, key);
            let cmd = match answer {
                Some(a) => {
                    let done = serde_json::to_string(&Settled {
                        s: a.status,
                        b: a.body.clone(),
                    })
                    .unwrap_or_default();
                    let mut set = redis::cmd("SET");
                    set.arg(&k)
                        .arg(done)
                        .arg("PX")
                        .arg(ttl.as_millis().max(1) as u64);
                    set
                }
                None => {
                    let mut del = redis::cmd("DEL");
                    del.arg(&k);
                    del
                }
            };
            self.link.query(cmd).await.map_err(unavailable)?;
            Ok(())
        })
    }
}

pub struct RedisTransport {
    link: Rc<Link>,
    keys: Rc<Keys>,
    counters: Arc<ClusterCounters>,
}

impl RedisTransport {
    pub fn connected(&self) -> bool {
        self.link.connected()
    }
}

impl Transport for RedisTransport {
    fn has_peers(&self) -> bool {
        true
    }

    fn send<'a>(&'a self, event: &'a NodeEvent) -> StateFuture<'a, ()> {
        let channel = wire::channel_for(&self.keys.prefix, event);
        let now_us = crate::clock::unix_us();
        let bytes = wire::encode(&self.keys.node, now_us, event);
        Box::pin(async move {
            let len = bytes.len() as u64;
            self.link
                .publish(channel, bytes)
                .await
                .map_err(unavailable)?;
            self.counters.messages_out.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes_out.fetch_add(len, Ordering::Relaxed);
            Ok(())
        })
    }

    fn interest<'a>(&'a self, app_id: &'a str, channel: &'a str, on: bool) -> StateFuture<'a, ()> {
        let name = wire::broadcast_channel(&self.keys.prefix, app_id, channel);
        Box::pin(async move { self.link.interest(name, on).await.map_err(unavailable) })
    }

    fn recv(&self) -> StateFuture<'_, NodeEvent> {
        Box::pin(async move {
            loop {
                let bytes = self
                    .link
                    .next()
                    .await
                    .ok_or_else(|| unavailable("Redis link stopped".into()))?;
                let c = &self.counters;
                c.connected
                    .store(i64::from(self.link.connected()), Ordering::Relaxed);
                match wire::decode(&bytes) {
                    Some(m) if m.origin == self.keys.node => continue,
                    Some(m) => {
                        c.messages_in.fetch_add(1, Ordering::Relaxed);
                        c.bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        let waited = crate::clock::unix_us().saturating_sub(m.sent_us);
                        c.latency.record(std::time::Duration::from_micros(waited));
                        return Ok(m.event);
                    }
                    None => log::warn!("cluster: ignored a message that is not ringcast's"),
                }
            }
        })
    }
}
