//! Signed-in users across the cluster: a user is online from its first signed-in connection
//! anywhere until its last one leaves. Who watches whom is each node's own business
//! (`api::watchlists`): watchers are connections, and a connection lives on one node.

use super::{StateFuture, ready};
use crate::app::AppIdx;
use crate::protocol::SocketId;
use ahash::AHashMap;
use std::cell::RefCell;

/// Cluster-wide online users. Each signed-in connection counts once, however often it is
/// reported (a replayed sign-in is not a second connection).
pub trait Users {
    /// A connection signed in as `user`; `true` if the user just came online.
    fn connect<'a>(&'a self, app: AppIdx, user: &'a str, socket: SocketId)
    -> StateFuture<'a, bool>;
    /// A signed-in connection left; `true` if the user just went offline.
    fn disconnect<'a>(
        &'a self,
        app: AppIdx,
        user: &'a str,
        socket: SocketId,
    ) -> StateFuture<'a, bool>;
    /// Which of `users` are online now, in their order.
    fn online<'a>(&'a self, app: AppIdx, users: &'a [Box<str>]) -> StateFuture<'a, Vec<Box<str>>>;
}

/// A user of an app.
type User = (AppIdx, Box<str>);

/// Users for a single node, in the API core's memory: each online user's connections.
#[derive(Default)]
pub struct MemoryUsers {
    online: RefCell<AHashMap<User, Vec<SocketId>>>,
}

impl Users for MemoryUsers {
    fn connect<'a>(
        &'a self,
        app: AppIdx,
        user: &'a str,
        socket: SocketId,
    ) -> StateFuture<'a, bool> {
        let mut online = self.online.borrow_mut();
        let sockets = online.entry((app, user.into())).or_default();
        if sockets.contains(&socket) {
            return ready(false);
        }
        sockets.push(socket);
        ready(sockets.len() == 1)
    }

    fn disconnect<'a>(
        &'a self,
        app: AppIdx,
        user: &'a str,
        socket: SocketId,
    ) -> StateFuture<'a, bool> {
        let mut online = self.online.borrow_mut();
        let key = (app, Box::<str>::from(user));
        let Some(sockets) = online.get_mut(&key) else {
            return ready(false);
        };
        let before = sockets.len();
        sockets.retain(|s| *s != socket);
        let last = sockets.is_empty() && before > 0;
        if sockets.is_empty() {
            online.remove(&key);
        }
        ready(last)
    }

    fn online<'a>(&'a self, app: AppIdx, users: &'a [Box<str>]) -> StateFuture<'a, Vec<Box<str>>> {
        let online = self.online.borrow();
        let now = users
            .iter()
            .filter(|u| online.contains_key(&(app, (*u).clone())))
            .cloned()
            .collect();
        ready(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_backend_keeps_the_contract() {
        let u = MemoryUsers::default();
        futures_lite::future::block_on(super::super::contract::users(&u));
        assert!(u.online.borrow().is_empty());
    }
}
