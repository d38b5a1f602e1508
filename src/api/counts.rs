//! `pusher_internal:subscription_count` (SPEC §3): when an app enables it, a non-presence
//! channel's subscribers hear its new subscription count after each change; above 100
//! subscribers at most every 5 s per channel, the latest count always sent in the end.

use super::ApiCore;
use crate::app::AppIdx;
use crate::bus::Broadcast;
use crate::protocol::{ChannelName, frames};
use crate::webhooks::{Event, Kind};
use glommio::timer::Timer;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Above this many subscribers, count events are throttled.
const THROTTLE_ABOVE: u64 = 100;
const THROTTLE_INTERVAL: Duration = Duration::from_secs(5);

/// Applies a shard's subscription change and announces the new count where due.
pub async fn changed(core: &Rc<ApiCore>, app: AppIdx, channel: &str, delta: i64) {
    let count = core.subscriptions.borrow_mut().add(app, channel, delta);
    let before = count as i64 - delta;
    if before <= 0 && count > 0 {
        core.webhooks.occupied(app, channel);
    }
    let key = (app, Box::<str>::from(channel));
    if count == 0 {
        if before > 0 {
            core.webhooks.vacated(app, channel);
        }
        core.count_events.borrow_mut().remove(&key);
        return;
    }
    let presence = ChannelName::classify(channel).is_some_and(|c| c.is_presence());
    let wanted = core.apps.get(app).config.subscription_count_events
        || core.webhooks.wants(app, Kind::SubscriptionCount);
    if !wanted || presence {
        return;
    }
    let since_last = core.count_events.borrow().get(&key).map(Instant::elapsed);
    match since_last {
        Some(elapsed) if count > THROTTLE_ABOVE && elapsed < THROTTLE_INTERVAL => {
            // Announce the latest count when the interval is over: one timer per channel.
            if core.count_timers.borrow_mut().insert(key.clone()) {
                let core = core.clone();
                glommio::spawn_local(async move {
                    Timer::new(THROTTLE_INTERVAL - elapsed).await;
                    core.count_timers.borrow_mut().remove(&key);
                    announce(&core, app, &key.1).await;
                })
                .detach();
            }
        }
        _ => announce(core, app, channel).await,
    }
}

async fn announce(core: &ApiCore, app: AppIdx, channel: &str) {
    let count = core.subscriptions.borrow().count(app, channel);
    core.count_events
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
    let payload = frames::channel_event(
        "pusher_internal:subscription_count",
        channel,
        &frames::json_string(&data),
        None,
    );
    core.broadcast(Broadcast {
        app,
        channel: channel.into(),
        payload: payload.into_bytes().into_boxed_slice(),
        except: None,
        cacheable: false,
        accepted: std::time::Instant::now(),
    })
    .await;
}
