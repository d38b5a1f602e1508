//! Broadcasts between nodes. Each node's API core sends what it accepted (a publish, a client
//! event, `terminate_connections`) to the other nodes once, and hands what arrives to its own
//! shards; shards never talk to another node.

use super::{ClusterError, StateFuture, ready};
use crate::protocol::SocketId;
use ahash::AHashSet;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::RefCell;
use std::rc::Rc;

/// What travels between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A broadcast, its frame encoded once by the accepting node and carried as bytes. Apps
    /// are named by id: nodes may list them in different orders.
    Broadcast {
        app_id: Box<str>,
        channel: Box<str>,
        payload: Box<[u8]>,
        except: Option<SocketId>,
        cacheable: bool,
    },
    TerminateUser {
        app_id: Box<str>,
        user_id: Box<str>,
    },
    /// A user came online (its first signed-in connection anywhere) or went offline (its
    /// last): each node tells its own watchers.
    UserStatus {
        app_id: Box<str>,
        user_id: Box<str>,
        online: bool,
    },
}

impl NodeEvent {
    /// The app the event is for.
    pub fn app_id(&self) -> &str {
        match self {
            NodeEvent::Broadcast { app_id, .. }
            | NodeEvent::TerminateUser { app_id, .. }
            | NodeEvent::UserStatus { app_id, .. } => app_id,
        }
    }
}

/// The link between this node and the others.
///
/// Broadcasts travel by interest: a node receives a channel's broadcasts only while it has
/// declared interest in the channel (it has local subscribers), so what a node pays for grows
/// with the channels it serves, not with the cluster's traffic. Cluster-wide commands
/// (`TerminateUser`, `UserStatus`) reach every node.
pub trait Transport {
    /// Whether this node takes part in a cluster at all (a single node sends nothing).
    fn has_peers(&self) -> bool;
    /// Sends to every other node that should see it: each gets it once, after what this node
    /// sent before.
    fn send<'a>(&'a self, event: &'a NodeEvent) -> StateFuture<'a, ()>;
    /// Starts (`on`) or stops receiving the broadcasts of an app's channel. Once starting has
    /// returned, every broadcast sent after it is received.
    fn interest<'a>(&'a self, app_id: &'a str, channel: &'a str, on: bool) -> StateFuture<'a, ()>;
    /// The next event from another node (never one of this node's own).
    fn recv(&self) -> StateFuture<'_, NodeEvent>;
}

/// A node without peers: the single-node default.
pub struct Solo;

impl Transport for Solo {
    fn has_peers(&self) -> bool {
        false
    }

    fn send<'a>(&'a self, _event: &'a NodeEvent) -> StateFuture<'a, ()> {
        ready(())
    }

    fn interest<'a>(&'a self, _app: &'a str, _channel: &'a str, _on: bool) -> StateFuture<'a, ()> {
        ready(())
    }

    fn recv(&self) -> StateFuture<'_, NodeEvent> {
        Box::pin(std::future::pending())
    }
}

/// Nodes joined in one process: for tests of anything that spans nodes, and the reference
/// behaviour a networked transport must match.
#[derive(Clone, Default)]
pub struct MemoryBus {
    nodes: Rc<RefCell<Vec<Node>>>,
}

/// A node on a memory bus: its inbox and what it is interested in.
struct Node {
    id: u64,
    inbox: LocalSender<NodeEvent>,
    interest: AHashSet<(Box<str>, Box<str>)>,
}

impl MemoryBus {
    /// A new node on this bus.
    pub fn join(&self) -> MemoryTransport {
        let (tx, rx) = local_channel::new_unbounded();
        let mut nodes = self.nodes.borrow_mut();
        let id = nodes.len() as u64 + 1;
        nodes.push(Node {
            id,
            inbox: tx,
            interest: AHashSet::new(),
        });
        MemoryTransport {
            id,
            bus: self.clone(),
            inbox: rx,
        }
    }
}

pub struct MemoryTransport {
    id: u64,
    bus: MemoryBus,
    inbox: LocalReceiver<NodeEvent>,
}

impl Transport for MemoryTransport {
    fn has_peers(&self) -> bool {
        true
    }

    fn send<'a>(&'a self, event: &'a NodeEvent) -> StateFuture<'a, ()> {
        for node in self.bus.nodes.borrow().iter() {
            let wanted = match event {
                NodeEvent::Broadcast {
                    app_id, channel, ..
                } => node.interest.contains(&(app_id.clone(), channel.clone())),
                NodeEvent::TerminateUser { .. } | NodeEvent::UserStatus { .. } => true,
            };
            if node.id != self.id && wanted {
                let _ = node.inbox.try_send(event.clone());
            }
        }
        ready(())
    }

    fn interest<'a>(&'a self, app_id: &'a str, channel: &'a str, on: bool) -> StateFuture<'a, ()> {
        let mut nodes = self.bus.nodes.borrow_mut();
        if let Some(node) = nodes.iter_mut().find(|n| n.id == self.id) {
            let key = (app_id.into(), channel.into());
            if on {
                node.interest.insert(key);
            } else {
                node.interest.remove(&key);
            }
        }
        ready(())
    }

    fn recv(&self) -> StateFuture<'_, NodeEvent> {
        Box::pin(async move {
            self.inbox
                .recv()
                .await
                .ok_or_else(|| ClusterError::Unavailable("bus closed".into()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_bus_keeps_the_contract() {
        let bus = MemoryBus::default();
        let nodes = [bus.join(), bus.join(), bus.join()];
        futures_lite::future::block_on(super::super::contract::transport(&nodes));
    }

    #[test]
    fn a_single_node_has_no_peers() {
        assert!(!Solo.has_peers());
    }
}
