//! Signed-in users coming and going: the watchlist events of user authentication.
//!
//! Whether a user is online is cluster-wide ([`super::cluster::Users`]); who watches whom is
//! this node's own ([`Watchers`]), since a watcher is a connection here. When a user comes
//! online or goes offline, the node that saw it tells its own watchers and sends one
//! [`NodeEvent::UserStatus`] to the other nodes, which tell theirs.

use super::ApiCore;
use super::cluster::{ClusterError, NodeEvent};
use super::unfinished::Departure;
use crate::app::AppIdx;
use crate::bus::{ConnRef, ShardCommand};
use crate::protocol::{SocketId, frames};
use ahash::AHashMap;
use std::cell::RefCell;

/// A user of an app.
type User = (AppIdx, Box<str>);

/// This node's signed-in connections and watchers. Bounded by the node's connections and
/// each connection's watchlist (which the shard limits).
#[derive(Default)]
pub struct Watchers {
    by_user: RefCell<AHashMap<User, Vec<Watch>>>,
    /// Each signed-in connection: who it is and whom it watches (to forget it when it
    /// leaves, and to register it again when Redis lost it).
    signed_in: RefCell<AHashMap<SocketId, SignedIn>>,
}

/// A watcher of one user and what it was last told of it. A watcher learns of a user both
/// from its first look and from the other nodes, in either order; it is told only changes.
struct Watch {
    conn: ConnRef,
    online: bool,
}

struct SignedIn {
    app: AppIdx,
    user_id: Box<str>,
    watching: Vec<Box<str>>,
}

impl Watchers {
    /// Files a signed-in connection and its watchlist; `false` if it was filed already (a
    /// replayed sign-in changes nothing).
    fn add(&self, app: AppIdx, me: ConnRef, user_id: &str, watchlist: &[Box<str>]) -> bool {
        let mut signed_in = self.signed_in.borrow_mut();
        if signed_in.contains_key(&me.socket()) {
            return false;
        }
        let mut by_user = self.by_user.borrow_mut();
        for u in watchlist {
            let watch = Watch {
                conn: me,
                online: false,
            };
            by_user.entry((app, u.clone())).or_default().push(watch);
        }
        let entry = SignedIn {
            app,
            user_id: user_id.into(),
            watching: watchlist.to_vec(),
        };
        signed_in.insert(me.socket(), entry);
        true
    }

    /// Forgets a connection that left.
    fn remove(&self, socket: SocketId) {
        let Some(gone) = self.signed_in.borrow_mut().remove(&socket) else {
            return;
        };
        let mut by_user = self.by_user.borrow_mut();
        for u in gone.watching {
            let key = (gone.app, u);
            if let Some(list) = by_user.get_mut(&key) {
                list.retain(|w| w.conn.socket() != socket);
                if list.is_empty() {
                    by_user.remove(&key);
                }
            }
        }
    }

    /// The watchers of `user_id` (only `me`, if given) not yet told it is `online` (or
    /// offline), taken as told now.
    fn to_tell(
        &self,
        app: AppIdx,
        user_id: &str,
        online: bool,
        me: Option<SocketId>,
    ) -> Vec<ConnRef> {
        let key = (app, Box::<str>::from(user_id));
        let mut by_user = self.by_user.borrow_mut();
        let Some(list) = by_user.get_mut(&key) else {
            return Vec::new();
        };
        list.iter_mut()
            .filter(|w| w.online != online && me.is_none_or(|s| s == w.conn.socket()))
            .map(|w| {
                w.online = online;
                w.conn
            })
            .collect()
    }

    /// Every signed-in connection of this node: app, user, socket.
    pub fn signed_in(&self) -> Vec<(AppIdx, Box<str>, SocketId)> {
        let all = self.signed_in.borrow();
        all.iter()
            .map(|(s, e)| (e.app, e.user_id.clone(), *s))
            .collect()
    }
}

async fn tell(core: &ApiCore, w: ConnRef, json: &str) {
    let payload = json.as_bytes().into();
    let cmd = ShardCommand::ToConnection { conn: w, payload };
    core.shards.send_to(w.shard(), cmd).await;
}

/// A connection signed in: it learns which of its watched users are online, and the user's
/// watchers everywhere learn it came online if this is its first connection.
pub async fn online(
    core: &ApiCore,
    me: ConnRef,
    app: AppIdx,
    user_id: &str,
    watchlist: Vec<Box<str>>,
) {
    if !core.watchers.add(app, me, user_id, &watchlist) {
        return;
    }
    if let Err(e) = announce_online(core, me, app, user_id, watchlist).await {
        log::warn!("sign-in of {user_id}: {e}");
    }
}

async fn announce_online(
    core: &ApiCore,
    me: ConnRef,
    app: AppIdx,
    user_id: &str,
    watchlist: Vec<Box<str>>,
) -> Result<(), ClusterError> {
    let users = &core.cluster.users;
    let first = users.connect(app, user_id, me.socket()).await?;
    let online_now = users.online(app, &watchlist).await?;
    // Those another node announced meanwhile are told already.
    let ids: Vec<&str> = online_now
        .iter()
        .filter(|u| {
            !core
                .watchers
                .to_tell(app, u, true, Some(me.socket()))
                .is_empty()
        })
        .map(|u| &**u)
        .collect();
    if !ids.is_empty() {
        tell(core, me, &frames::watchlist_event("online", &ids)).await;
    }
    if first {
        changed(core, app, user_id, true).await;
    }
    Ok(())
}

/// A signed-in connection left: its watchlist is forgotten, and the user's watchers
/// everywhere learn it went offline if this was its last connection.
pub async fn offline(core: &ApiCore, app: AppIdx, user_id: &str, socket: SocketId) {
    core.watchers.remove(socket);
    match core.cluster.users.disconnect(app, user_id, socket).await {
        Ok(true) => changed(core, app, user_id, false).await,
        Ok(false) => {}
        Err(e) => {
            log::warn!("sign-out of {user_id}: {e}; kept for when Redis is back");
            let departure = Departure::SignOut {
                app,
                user_id: user_id.into(),
                socket,
            };
            core.unfinished.keep(departure);
        }
    }
}

/// A user came online or went offline as this node saw it: this node's watchers hear it, and
/// so do the other nodes'.
pub async fn changed(core: &ApiCore, app: AppIdx, user_id: &str, online: bool) {
    let transport = &core.cluster.transport;
    if transport.has_peers() {
        let event = NodeEvent::UserStatus {
            app_id: core.apps.now().get(app).id().into(),
            user_id: user_id.into(),
            online,
        };
        if let Err(e) = transport.send(&event).await {
            log::warn!("cluster: watchers elsewhere missed {user_id}: {e}");
        }
    }
    tell_watchers(core, app, user_id, online).await;
}

/// Tells this node's watchers of `user_id` that it came online or went offline (each only
/// once: a watcher that signed in meanwhile may have heard it from its first look).
pub async fn tell_watchers(core: &ApiCore, app: AppIdx, user_id: &str, online: bool) {
    let watchers = core.watchers.to_tell(app, user_id, online, None);
    if watchers.is_empty() {
        return;
    }
    let name = if online { "online" } else { "offline" };
    let event = frames::watchlist_event(name, &[user_id]);
    for w in watchers {
        tell(core, w, &event).await;
    }
}
