//! Signed-in users coming and going: the watchlist events of SPEC §3 (user authentication),
//! from the cluster-wide users and watchlists ([`super::cluster::Users`]).

use super::ApiCore;
use super::cluster::ClusterError;
use crate::app::AppIdx;
use crate::bus::{ConnRef, ShardCommand};
use crate::protocol::{SocketId, frames};

async fn tell(core: &ApiCore, w: ConnRef, json: &str) {
    let payload = json.as_bytes().into();
    let cmd = ShardCommand::ToConnection { conn: w, payload };
    core.shards.send_to(w.shard(), cmd).await;
}

/// A connection signed in: it learns which of its watched users are online, and the user's
/// watchers learn it came online if this is its first connection.
pub async fn online(
    core: &ApiCore,
    me: ConnRef,
    app: AppIdx,
    user_id: &str,
    watchlist: Vec<Box<str>>,
) {
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
    if !watchlist.is_empty() {
        users.watch(app, me, &watchlist).await?;
    }
    let mut online_now = Vec::new();
    for u in &watchlist {
        if users.is_online(app, u).await? {
            online_now.push(&**u);
        }
    }
    // Everything is read before anything is sent: sending may wait, and other shards'
    // reports are handled meanwhile.
    let watchers = if first {
        users.watchers(app, user_id).await?
    } else {
        Vec::new()
    };
    if !online_now.is_empty() {
        tell(core, me, &frames::watchlist_event("online", &online_now)).await;
    }
    let event = frames::watchlist_event("online", &[user_id]);
    for w in watchers.into_iter().filter(|w| w.socket() != me.socket()) {
        tell(core, w, &event).await;
    }
    Ok(())
}

/// A signed-in connection left: its watchlist is forgotten, and the user's watchers learn it
/// went offline if this was its last connection.
pub async fn offline(core: &ApiCore, app: AppIdx, user_id: &str, socket: SocketId) {
    if let Err(e) = announce_offline(core, app, user_id, socket).await {
        log::warn!("sign-out of {user_id}: {e}");
    }
}

async fn announce_offline(
    core: &ApiCore,
    app: AppIdx,
    user_id: &str,
    socket: SocketId,
) -> Result<(), ClusterError> {
    let users = &core.cluster.users;
    users.unwatch(app, socket).await?;
    if !users.disconnect(app, user_id, socket).await? {
        return Ok(());
    }
    let event = frames::watchlist_event("offline", &[user_id]);
    for w in users.watchers(app, user_id).await? {
        tell(core, w, &event).await;
    }
    Ok(())
}
