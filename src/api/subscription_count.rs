//! Subscription changes reported by the shards: the cluster-wide counts, `channel_occupied` /
//! `channel_vacated` webhooks, and `pusher_internal:subscription_count` (SPEC §3): when an app
//! enables it, a non-presence channel's subscribers hear its new subscription count after
//! each change; above 100 subscribers at most every 5 s per channel, the latest count always
//! sent in the end.

use super::ApiCore;
use super::channel_info::is_presence;
use crate::api::webhooks::Event;
use crate::app::AppIdx;
use crate::bus::Broadcast;
use crate::webhook_kind::Kind;
use ahash::{AHashMap, AHashSet};
use glommio::timer::Timer;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Above this many subscribers, count events are throttled.
const THROTTLE_ABOVE: u64 = 100;
const THROTTLE_INTERVAL: Duration = Duration::from_secs(5);

type Channel = (AppIdx, Box<str>);

/// When each occupied channel's count was last announced, and which have one scheduled.
#[derive(Default)]
pub struct Announcements {
    last: RefCell<AHashMap<Channel, Instant>>,
    scheduled: RefCell<AHashSet<Channel>>,
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
    let key: Channel = (app, channel.into());
    if count == 0 {
        if before > 0 {
            core.webhooks.vacated(app, channel, ticket);
        }
        core.announcements.last.borrow_mut().remove(&key);
        return;
    }
    let wanted = core.apps.get(app).config.subscription_count_events
        || core.webhooks.wants(app, Kind::SubscriptionCount);
    if !wanted || is_presence(channel) {
        return;
    }
    let since_last = core
        .announcements
        .last
        .borrow()
        .get(&key)
        .map(Instant::elapsed);
    match since_last {
        Some(elapsed) if count > THROTTLE_ABOVE && elapsed < THROTTLE_INTERVAL => {
            // Announce the latest count when the interval is over: one timer per channel.
            if core
                .announcements
                .scheduled
                .borrow_mut()
                .insert(key.clone())
            {
                let core = core.clone();
                glommio::spawn_local(async move {
                    Timer::new(THROTTLE_INTERVAL - elapsed).await;
                    core.announcements.scheduled.borrow_mut().remove(&key);
                    announce(&core, app, &key.1).await;
                })
                .detach();
            }
        }
        _ => announce(core, app, channel).await,
    }
}

async fn announce(core: &ApiCore, app: AppIdx, channel: &str) {
    let count = match core.cluster.occupancy.count(app, channel).await {
        Ok(count) => count,
        Err(e) => return log::warn!("subscription count of {channel}: {e}"),
    };
    core.announcements
        .last
        .borrow_mut()
        .insert((app, channel.into()), Instant::now());
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
    if !core.apps.get(app).config.subscription_count_events {
        return;
    }
    let data = format!(r#"{{"subscription_count":{count}}}"#);
    let event = "pusher_internal:subscription_count";
    core.broadcast(Broadcast::internal(app, channel, event, &data))
        .await;
}
