//! Signed-in users across the cluster, and who watches whom (watchlists): a user is online from
//! its first signed-in connection anywhere until its last one leaves.

use crate::app::AppIdx;
use crate::protocol::SocketId;
use ahash::AHashMap;

/// A connection that asked to hear about some users (its shard and place there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watcher {
    pub shard: usize,
    pub conn: usize,
    pub socket: SocketId,
}

/// Cluster-wide online users and watchlists.
pub trait Users {
    /// A connection signed in as `user`; `true` if the user just came online.
    fn connect(&mut self, app: AppIdx, user: &str, socket: SocketId) -> bool;
    /// A signed-in connection left; `true` if the user just went offline.
    fn disconnect(&mut self, app: AppIdx, user: &str, socket: SocketId) -> bool;
    fn is_online(&self, app: AppIdx, user: &str) -> bool;
    fn watch(&mut self, app: AppIdx, watcher: Watcher, users: &[Box<str>]);
    fn unwatch(&mut self, app: AppIdx, socket: SocketId);
    fn watchers(&self, app: AppIdx, user: &str) -> Vec<Watcher>;
}

#[derive(Default)]
pub struct LocalUsers {
    online: AHashMap<(AppIdx, Box<str>), Vec<SocketId>>,
    watchers: AHashMap<(AppIdx, Box<str>), Vec<Watcher>>,
    /// What each watching connection watches, to forget it when it leaves.
    watching: AHashMap<SocketId, Vec<Box<str>>>,
}

impl Users for LocalUsers {
    fn connect(&mut self, app: AppIdx, user: &str, socket: SocketId) -> bool {
        let sockets = self.online.entry((app, user.into())).or_default();
        sockets.push(socket);
        sockets.len() == 1
    }

    fn disconnect(&mut self, app: AppIdx, user: &str, socket: SocketId) -> bool {
        let key = (app, Box::<str>::from(user));
        let Some(sockets) = self.online.get_mut(&key) else {
            return false;
        };
        let before = sockets.len();
        sockets.retain(|s| *s != socket);
        if sockets.is_empty() {
            self.online.remove(&key);
            return before > 0;
        }
        false
    }

    fn is_online(&self, app: AppIdx, user: &str) -> bool {
        self.online.contains_key(&(app, Box::<str>::from(user)))
    }

    fn watch(&mut self, app: AppIdx, watcher: Watcher, users: &[Box<str>]) {
        for u in users {
            self.watchers
                .entry((app, u.clone()))
                .or_default()
                .push(watcher);
        }
        self.watching.insert(watcher.socket, users.to_vec());
    }

    fn unwatch(&mut self, app: AppIdx, socket: SocketId) {
        for u in self.watching.remove(&socket).unwrap_or_default() {
            let key = (app, u);
            if let Some(list) = self.watchers.get_mut(&key) {
                list.retain(|w| w.socket != socket);
                if list.is_empty() {
                    self.watchers.remove(&key);
                }
            }
        }
    }

    fn watchers(&self, app: AppIdx, user: &str) -> Vec<Watcher> {
        self.watchers
            .get(&(app, Box::<str>::from(user)))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_from_first_to_last_connection_and_watchers_forgotten() {
        let mut u = LocalUsers::default();
        let app = AppIdx(0);
        let (s1, s2, w) = (
            SocketId::new(0, 1, 1),
            SocketId::new(1, 1, 1),
            SocketId::new(0, 9, 9),
        );
        assert!(u.connect(app, "a", s1));
        assert!(!u.connect(app, "a", s2));
        assert!(!u.disconnect(app, "a", s1));
        assert!(u.disconnect(app, "a", s2));
        assert!(!u.is_online(app, "a"));
        let watcher = Watcher {
            shard: 0,
            conn: 3,
            socket: w,
        };
        u.watch(app, watcher, &["a".into(), "b".into()]);
        assert_eq!(u.watchers(app, "b"), vec![watcher]);
        u.unwatch(app, w);
        assert!(u.watchers(app, "a").is_empty() && u.watchers.is_empty());
    }
}
