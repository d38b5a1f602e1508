//! A reference to one connection anywhere on this node, as cross-core messages carry it.

use super::ShardId;
use crate::protocol::SocketId;

/// A connection's place in its shard's hub (`slot`) and its socket id. The socket id names
/// the shard (its low bits) and tells a reused slot from the connection that held it before,
/// so a command for a connection that has gone is dropped rather than delivered to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRef {
    slot: usize,
    socket: SocketId,
}

impl ConnRef {
    pub fn new(slot: usize, socket: SocketId) -> ConnRef {
        ConnRef { slot, socket }
    }

    pub fn shard(&self) -> ShardId {
        self.socket.shard()
    }

    pub fn slot(&self) -> usize {
        self.slot
    }

    pub fn socket(&self) -> SocketId {
        self.socket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_comes_from_the_socket_id() {
        let c = ConnRef::new(17, SocketId::new(3, 9, 1));
        assert_eq!((c.shard(), c.slot()), (3, 17));
    }
}
