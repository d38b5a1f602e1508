//! Broadcasts between nodes. Each node's API core sends what it accepted (a publish, a client
//! event, `terminate_connections`) to every other node once, and hands what arrives to its
//! own shards; shards never talk to another node.

use super::{ClusterError, StateFuture, ready};
use crate::protocol::SocketId;
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
}

/// An event and the node that accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMessage {
    pub origin: u64,
    pub event: NodeEvent,
}

/// The link between this node and the others.
pub trait Transport {
    /// Whether there are other nodes at all (a single node sends nothing).
    fn has_peers(&self) -> bool;
    /// Sends to every other node: each gets it once, after what this node sent before.
    fn send<'a>(&'a self, message: NodeMessage) -> StateFuture<'a, ()>;
    /// The next message from another node (never one of this node's own).
    fn recv(&self) -> StateFuture<'_, NodeMessage>;
}

/// A node without peers: the single-node default.
pub struct Solo;

impl Transport for Solo {
    fn has_peers(&self) -> bool {
        false
    }

    fn send<'a>(&'a self, _message: NodeMessage) -> StateFuture<'a, ()> {
        ready(())
    }

    fn recv(&self) -> StateFuture<'_, NodeMessage> {
        Box::pin(std::future::pending())
    }
}

/// Nodes joined in one process: for tests of anything that spans nodes, and the reference
/// behaviour a networked transport must match.
#[derive(Clone, Default)]
pub struct MemoryBus {
    nodes: Rc<RefCell<Vec<Inbox>>>,
}

/// A node's id and the way into its inbox.
type Inbox = (u64, LocalSender<NodeMessage>);

impl MemoryBus {
    /// A new node on this bus.
    pub fn join(&self) -> MemoryTransport {
        let (tx, rx) = local_channel::new_unbounded();
        let mut nodes = self.nodes.borrow_mut();
        let id = nodes.len() as u64 + 1;
        nodes.push((id, tx));
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
    inbox: LocalReceiver<NodeMessage>,
}

impl MemoryTransport {
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Transport for MemoryTransport {
    fn has_peers(&self) -> bool {
        self.bus.nodes.borrow().len() > 1
    }

    fn send<'a>(&'a self, message: NodeMessage) -> StateFuture<'a, ()> {
        for (id, tx) in self.bus.nodes.borrow().iter() {
            if *id != self.id {
                let _ = tx.try_send(message.clone());
            }
        }
        ready(())
    }

    fn recv(&self) -> StateFuture<'_, NodeMessage> {
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
        let bus = MemoryBus::default();
        assert!(!bus.join().has_peers());
    }
}
