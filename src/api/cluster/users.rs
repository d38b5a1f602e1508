//! Signed-in users across the cluster, and who watches whom (watchlists): a user is online from
//! its first signed-in connection anywhere until its last one leaves.

use super::{StateFuture, ready};
use crate::app::AppIdx;
use crate::bus::ConnRef;
use crate::protocol::SocketId;
use ahash::AHashMap;
use std::cell::RefCell;

/// Cluster-wide online users and watchlists. A watcher is the connection that asked to hear
/// about some users.
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
    fn is_online<'a>(&'a self, app: AppIdx, user: &'a str) -> StateFuture<'a, bool>;
    fn watch<'a>(
        &'a self,
        app: AppIdx,
        watcher: ConnRef,
        users: &'a [Box<str>],
    ) -> StateFuture<'a, ()>;
    fn unwatch(&self, app: AppIdx, socket: SocketId) -> StateFuture<'_, ()>;
    fn watchers<'a>(&'a self, app: AppIdx, user: &'a str) -> StateFuture<'a, Vec<ConnRef>>;
}

#[derive(Default)]
struct State {
    online: AHashMap<(AppIdx, Box<str>), Vec<SocketId>>,
    watchers: AHashMap<(AppIdx, Box<str>), Vec<ConnRef>>,
    /// What each watching connection watches, to forget it when it leaves.
    watching: AHashMap<SocketId, Vec<Box<str>>>,
}

/// Users for a single node, in the API core's memory.
#[derive(Default)]
pub struct MemoryUsers {
    state: RefCell<State>,
}

impl Users for MemoryUsers {
    fn connect<'a>(
        &'a self,
        app: AppIdx,
        user: &'a str,
        socket: SocketId,
    ) -> StateFuture<'a, bool> {
        let mut state = self.state.borrow_mut();
        let sockets = state.online.entry((app, user.into())).or_default();
        sockets.push(socket);
        ready(sockets.len() == 1)
    }

    fn disconnect<'a>(
        &'a self,
        app: AppIdx,
        user: &'a str,
        socket: SocketId,
    ) -> StateFuture<'a, bool> {
        let mut state = self.state.borrow_mut();
        let key = (app, Box::<str>::from(user));
        let Some(sockets) = state.online.get_mut(&key) else {
            return ready(false);
        };
        let before = sockets.len();
        sockets.retain(|s| *s != socket);
        if sockets.is_empty() {
            state.online.remove(&key);
            return ready(before > 0);
        }
        ready(false)
    }

    fn is_online<'a>(&'a self, app: AppIdx, user: &'a str) -> StateFuture<'a, bool> {
        let key = (app, Box::<str>::from(user));
        ready(self.state.borrow().online.contains_key(&key))
    }

    fn watch<'a>(
        &'a self,
        app: AppIdx,
        watcher: ConnRef,
        users: &'a [Box<str>],
    ) -> StateFuture<'a, ()> {
        let mut state = self.state.borrow_mut();
        for u in users {
            state
                .watchers
                .entry((app, u.clone()))
                .or_default()
                .push(watcher);
        }
        state.watching.insert(watcher.socket(), users.to_vec());
        ready(())
    }

    fn unwatch(&self, app: AppIdx, socket: SocketId) -> StateFuture<'_, ()> {
        let mut state = self.state.borrow_mut();
        for u in state.watching.remove(&socket).unwrap_or_default() {
            let key = (app, u);
            if let Some(list) = state.watchers.get_mut(&key) {
                list.retain(|w| w.socket() != socket);
                if list.is_empty() {
                    state.watchers.remove(&key);
                }
            }
        }
        ready(())
    }

    fn watchers<'a>(&'a self, app: AppIdx, user: &'a str) -> StateFuture<'a, Vec<ConnRef>> {
        let key = (app, Box::<str>::from(user));
        ready(
            self.state
                .borrow()
                .watchers
                .get(&key)
                .cloned()
                .unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_backend_keeps_the_contract() {
        let u = MemoryUsers::default();
        futures_lite::future::block_on(super::super::contract::users(&u));
        let state = u.state.borrow();
        assert!(state.watchers.is_empty() && state.watching.is_empty() && state.online.is_empty());
    }
}
