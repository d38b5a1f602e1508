//! Subscription changes reported by the shards: the cluster-wide counts, `channel_occupied` /
//! `channel_vacated` webhooks, and `pusher_internal:subscription_count` (docs/protocol.md): when an app
//! enables it, a non-presence channel's subscribers hear its new subscription count after
//! each change; above 100 subscribers at most every 5 s per channel over the whole cluster
//! ([`crate::api::cluster::throttle`]), the latest count always sent in the end.

use super::ApiCore;
use super::channel_info::is_presence;
use crate::api::cluster::throttle::Turn;
use crate::api::webhooks::Event;
use crate::app::AppIdx;
use crate::bus::Broadcast;
use crate::webhook_kind::Kind;
use ahash::AHashMap;
use glommio::timer::Timer;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Above this many subscribers, count events are throttled.
const THROTTLE_ABOVE: u64 = 100;
const THROTTLE_INTERVAL: Duration = Duration::from_secs(5);

type Channel = (AppIdx, Box<str>);

/// This node's busy channels with a change not announced yet, and when the latest change was
/// (Unix ms): one task per channel waits for the cluster's next interval.
#[derive(Default)]
pub struct Announcements {
    pending: RefCell<AHashMap<Channel, u64>>,
}

/// Applies a shard's subscription change and announces the new count where due.
pub async fn changed(core: &Rc<ApiCore>, app: AppIdx, channel: &str, delta: i64) {
    let ticket = core.webhooks.ticket(app, Kind::ChannelVacated);
    let occupancy = &core.cluster.occupancy;
    let change = match occupancy.add(app, channel, delta, ticket.as_ref()).await {
        Ok(change) => change,
        Err(e) => return log::warn!("subscription count of {channel}: {e}"),
    };
    let count = change.count;
    let before = (count as i64).saturating_sub(delta);
    if before <= 0 && count > 0 {
        core.webhooks.occupied(app, channel, change.returned);
    }
    if count == 0 {
        if before > 0 {
            core.webhooks.vacated(app, channel, ticket);
        }
        core.cluster.throttle.forget(app, channel);
        return;
    }
    let wanted = core.apps.now().get(app).config.subscription_count_events
        || core.webhooks.wants(app, Kind::SubscriptionCount);
    if !wanted || is_presence(channel) {
        return;
    }
    if count <= THROTTLE_ABOVE {
        return announce(core, app, channel).await;
    }
    let key: Channel = (app, channel.into());
    let now = crate::clock::unix_ms();
    if core
        .announcements
        .pending
        .borrow_mut()
        .insert(key.clone(), now)
        .is_none()
    {
        let core = core.clone();
        glommio::spawn_local(async move { announce_when_due(&core, key).await }).detach();
    }
}

/// Announces a busy channel's count when this node gets the cluster's next interval, unless
/// another node's announcement after the latest change here has told it already.
async fn announce_when_due(core: &ApiCore, key: Channel) {
    let (app, channel) = (key.0, &*key.1);
    loop {
        let Some(changed) = core.announcements.pending.borrow().get(&key).copied() else {
            return;
        };
        let turn = core
            .cluster
            .throttle
            .claim(app, channel, THROTTLE_INTERVAL, changed)
            .await;
        match turn {
            Ok(Turn::After(wait)) => {
                Timer::new(wait).await;
                continue;
            }
            // A change that came meanwhile needs an announcement of its own.
            Ok(Turn::Covered)
                if core.announcements.pending.borrow().get(&key) != Some(&changed) =>
            {
                continue;
            }
            Ok(Turn::Covered) => {}
            Ok(Turn::Now) => {
                core.announcements.pending.borrow_mut().remove(&key);
                return announce(core, app, channel).await;
            }
            Err(e) => log::warn!("subscription count of {channel}: {e}"),
        }
        core.announcements.pending.borrow_mut().remove(&key);
        return;
    }
}

async fn announce(core: &ApiCore, app: AppIdx, channel: &str) {
    let count = match core.cluster.occupancy.count(app, channel).await {
        Ok(count) => count,
        Err(e) => return log::warn!("subscription count of {channel}: {e}"),
    };
    if count == 0 {
        return;
    }
    if core.webhooks.wants(app, Kind::SubscriptionCount) {
        let event = Event::SubscriptionCount {
            channel: channel.into(),
            count,
        };
        core.webhooks.emit(app, &event);
    }
    if !core.apps.now().get(app).config.subscription_count_events {
        return;
    }
    let data = format!(r#"{{"subscription_count":{count}}}"#);
    let event = "pusher_internal:subscription_count";
    core.broadcast(Broadcast::internal(app, channel, event, &data))
        .await;
}
