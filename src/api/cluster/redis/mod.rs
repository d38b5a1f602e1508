//! The cluster backend on Redis. The API core is the only part of a node that talks to Redis,
//! through one [`link::Link`]; shards never do.
//!
//! The bus ([`RedisTransport`]) uses one Redis pub/sub channel per app channel,
//! `{prefix}:b:{app_id}:{channel}`: a node subscribes to it while it has local subscribers,
//! so Redis sends each node only the broadcasts of channels it serves, and a publish is one
//! `PUBLISH` whatever the number of nodes or subscribers. Cluster-wide commands go to
//! `{prefix}:all`, which every node hears.

pub mod link;
mod wire;

use super::{ClusterError, NodeEvent, StateFuture, Transport};
use link::Link;

pub struct RedisTransport {
    link: Link,
    node_id: String,
    prefix: String,
}

impl RedisTransport {
    /// Joins the cluster `prefix` on the Redis at `url` as `node_id`.
    pub fn start(url: &str, prefix: &str, node_id: &str) -> Result<RedisTransport, String> {
        let link = Link::start(url, vec![wire::all_channel(prefix)])?;
        Ok(RedisTransport {
            link,
            node_id: node_id.to_string(),
            prefix: prefix.to_string(),
        })
    }

    pub fn connected(&self) -> bool {
        self.link.connected()
    }
}

fn unavailable(e: String) -> ClusterError {
    ClusterError::Unavailable(e)
}

impl Transport for RedisTransport {
    fn has_peers(&self) -> bool {
        true
    }

    fn send<'a>(&'a self, event: &'a NodeEvent) -> StateFuture<'a, ()> {
        let channel = wire::channel_for(&self.prefix, event);
        let bytes = wire::encode(&self.node_id, event);
        Box::pin(async move { self.link.publish(channel, bytes).await.map_err(unavailable) })
    }

    fn interest<'a>(&'a self, app_id: &'a str, channel: &'a str, on: bool) -> StateFuture<'a, ()> {
        let name = wire::broadcast_channel(&self.prefix, app_id, channel);
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
                match wire::decode(&bytes) {
                    Some((origin, _)) if origin == self.node_id => continue,
                    Some((_, event)) => return Ok(event),
                    None => log::warn!("cluster: ignored a message that is not ringcast's"),
                }
            }
        })
    }
}
