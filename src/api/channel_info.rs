//! A channel's counts as queries and publishes report them (`info=user_count,…`), read from
//! the cluster-wide state, so they are exact across shards and nodes (once the shards' reports
//! have arrived: a subscription counts a moment after its `subscription_succeeded`).

use super::ApiCore;
use super::cluster::ClusterError;
use crate::app::AppIdx;
use crate::protocol::ChannelName;
use serde_json::{Map, Value, json};

/// Which counts a request asks for with `info=`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Info {
    pub user_count: bool,
    pub subscription_count: bool,
    /// Only on `GET /channels/{channel}`.
    pub cache: bool,
}

impl Info {
    pub fn parse(info: Option<&str>) -> Info {
        let mut i = Info::default();
        for item in info.unwrap_or("").split(',').map(str::trim) {
            match item {
                "user_count" => i.user_count = true,
                "subscription_count" => i.subscription_count = true,
                "cache" => i.cache = true,
                _ => {}
            }
        }
        i
    }

    /// Whether any count was asked for.
    pub fn any(&self) -> bool {
        self.user_count || self.subscription_count
    }
}

pub fn is_presence(channel: &str) -> bool {
    ChannelName::classify(channel).is_some_and(|c| c.is_presence())
}

/// The requested counts of one channel (`user_count` only where it means something).
pub async fn counts(
    core: &ApiCore,
    app: AppIdx,
    channel: &str,
    info: Info,
) -> Result<Map<String, Value>, ClusterError> {
    let mut m = Map::new();
    if info.user_count && is_presence(channel) {
        let users = core.cluster.presence.user_ids(app, channel).await?;
        m.insert("user_count".into(), json!(users.len()));
    }
    if info.subscription_count {
        let count = core.cluster.occupancy.count(app, channel).await?;
        m.insert("subscription_count".into(), json!(count));
    }
    Ok(m)
}
