//! The console's figures: what every shard counts for each app (asked with one
//! [`Inspection`] per shard, answered at once from its state), with the cluster-wide channel
//! and presence counts and the webhook queue the API core knows. Counters only grow; the page
//! turns two readings into rates.

use crate::api::ApiCore;
use crate::api::cluster::ClusterError;
use crate::app::AppIdx;
use crate::bus::ShardCommand;
use crate::bus::inspect::{Inspection, ShardFigures};
use crate::protocol::SocketId;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Presence channels whose members the overview counts at most, per app.
const MAX_PRESENCE_COUNTED: usize = 200;
/// Subscribers a drill-down lists at most (over all shards).
pub const MAX_SOCKETS_LISTED: usize = 500;

/// Asks every shard the same question; a shard that is gone (shutting down) is left out.
/// Each answers after every command queued for it before.
pub async fn ask_shards<T>(
    core: &ApiCore,
    question: impl Fn(oneshot::Sender<T>) -> Inspection,
) -> Vec<T> {
    let mut waiting = Vec::with_capacity(core.shards.len());
    for shard in 0..core.shards.len() {
        let (tx, rx) = oneshot::channel();
        core.shards
            .send_to(shard, ShardCommand::Inspect(question(tx)))
            .await;
        waiting.push(rx);
    }
    let mut answers = Vec::with_capacity(waiting.len());
    for rx in waiting {
        if let Ok(answer) = rx.await {
            answers.push(answer);
        }
    }
    answers
}

/// `GET /console/api/overview[?app={id}]`: every app's figures (its key, never its secret).
/// The channel and presence counts, which ask the cluster's state, only for app `only` when
/// one is named (`null` for the others).
pub async fn overview(core: &ApiCore, only: Option<&str>) -> Result<Value, ClusterError> {
    let shards: Vec<ShardFigures> = ask_shards(core, Inspection::Apps).await;
    let apps: Vec<_> = core
        .apps
        .now()
        .iter()
        .filter(|a| !a.removed)
        .map(|a| {
            (
                a.idx,
                a.id().to_string(),
                a.key().to_string(),
                a.config.enabled,
            )
        })
        .collect();
    let mut out = Vec::with_capacity(apps.len());
    for (idx, id, key, enabled) in apps {
        let of = |s: &ShardFigures| s.apps.get(idx.0 as usize).copied().unwrap_or_default();
        let per_shard: Vec<_> = shards.iter().map(of).collect();
        let sum = |f: fn(&crate::bus::inspect::AppFigures) -> u64| -> u64 {
            per_shard.iter().map(f).sum()
        };
        let (mut channels, mut members, mut partial) = (Value::Null, Value::Null, Value::Null);
        if only.is_none_or(|only| only == id) {
            let occupied = core.cluster.occupancy.occupied(idx, "").await?;
            let (n, more) = presence_members(core, idx, &occupied).await?;
            (channels, members, partial) = (json!(occupied.len()), json!(n), json!(more));
        }
        out.push(json!({
            "id": id,
            "key": key,
            "enabled": enabled,
            "connections": per_shard.iter().map(|f| f.connections).collect::<Vec<_>>(),
            "channels": channels,
            "presence_members": members,
            "presence_members_partial": partial,
            "events": core.console.events(idx),
            "messages_in": sum(|f| f.messages_in),
            "messages_out": sum(|f| f.messages_out),
            "webhook_queue": core.webhooks.queued(idx),
        }));
    }
    Ok(json!({
        "shards": core.shards.len(),
        "apps": out,
        "console": {
            "watchers": core.console.feed.len(),
            "dropped_at_shards": shards.iter().map(|s| s.dropped).sum::<u64>(),
        },
    }))
}

/// Members of the app's presence channels (the first [`MAX_PRESENCE_COUNTED`]), and whether
/// there were more channels than that.
async fn presence_members(
    core: &ApiCore,
    app: AppIdx,
    channels: &[(String, u64)],
) -> Result<(usize, bool), ClusterError> {
    let presence = channels
        .iter()
        .filter(|(name, _)| crate::api::channel_info::is_presence(name));
    let mut members = 0;
    for (counted, (name, _)) in presence.enumerate() {
        if counted == MAX_PRESENCE_COUNTED {
            return Ok((members, true));
        }
        members += core.cluster.presence.user_ids(app, name).await?.len();
    }
    Ok((members, false))
}

/// A channel's subscribers on this node's shards (their socket ids, [`MAX_SOCKETS_LISTED`]
/// at most).
pub async fn sockets(core: &ApiCore, app: AppIdx, channel: &str) -> Vec<SocketId> {
    let answers = ask_shards(core, |reply| Inspection::Subscribers {
        app,
        channel: channel.into(),
        limit: MAX_SOCKETS_LISTED,
        reply,
    })
    .await;
    let mut all: Vec<SocketId> = answers.into_iter().flatten().collect();
    all.truncate(MAX_SOCKETS_LISTED);
    all
}
