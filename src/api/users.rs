//! Signed-in users coming and going: the watchlist events of SPEC §3 (user authentication).

use super::ApiCore;
use crate::app::AppIdx;
use crate::bus::ShardCommand;
use crate::cluster::Watcher;
use crate::protocol::{SocketId, frames};

async fn tell(core: &ApiCore, w: Watcher, json: &str) {
    let payload = json.as_bytes().into();
    core.send_to(
        w.shard,
        ShardCommand::ToConnection {
            conn: w.conn,
            socket_id: w.socket,
            payload,
        },
    )
    .await;
}

/// A connection signed in: it learns which of its watched users are online, and the user's
/// watchers learn it came online if this is its first connection.
pub async fn online(
    core: &ApiCore,
    me: Watcher,
    app: AppIdx,
    user_id: &str,
    watchlist: Vec<Box<str>>,
) {
    let (first, online_now, watchers) = {
        let mut users = core.users.borrow_mut();
        let first = users.connect(app, user_id, me.socket);
        if !watchlist.is_empty() {
            users.watch(app, me, &watchlist);
        }
        let online_now: Vec<Box<str>> = watchlist
            .into_iter()
            .filter(|u| users.is_online(app, u))
            .collect();
        let watchers = if first {
            users.watchers(app, user_id)
        } else {
            Vec::new()
        };
        (first, online_now, watchers)
    };
    if !online_now.is_empty() {
        let ids: Vec<&str> = online_now.iter().map(|u| &**u).collect();
        tell(core, me, &frames::watchlist_event("online", &ids)).await;
    }
    if first {
        let event = frames::watchlist_event("online", &[user_id]);
        for w in watchers.into_iter().filter(|w| w.socket != me.socket) {
            tell(core, w, &event).await;
        }
    }
}

/// A signed-in connection left: its watchlist is forgotten, and the user's watchers learn it
/// went offline if this was its last connection.
pub async fn offline(core: &ApiCore, app: AppIdx, user_id: &str, socket: SocketId) {
    let watchers = {
        let mut users = core.users.borrow_mut();
        users.unwatch(app, socket);
        if users.disconnect(app, user_id, socket) {
            users.watchers(app, user_id)
        } else {
            Vec::new()
        }
    };
    let event = frames::watchlist_event("offline", &[user_id]);
    for w in watchers {
        tell(core, w, &event).await;
    }
}
