//! `pusher:subscribe` and `pusher:unsubscribe` (SPEC §2–§3): who may subscribe to which kind
//! of channel, the local index and the API core's counts, and a cache channel's replay.

use super::presence_join;
use super::{Effects, Outgoing, Turn};
use crate::app::App;
use crate::auth;
use crate::bus::ApiCommand;
use crate::protocol::errors::SubscriptionRefusal;
use crate::protocol::{ChannelKind, ChannelName, ErrorCode, frames};
use crate::shard::state::ShardState;
use crate::webhook_kind::Kind;

pub fn subscribe(t: &mut Turn<'_>, channel: &str, auth: Option<&str>, channel_data: Option<&str>) {
    let name = match ChannelName::parse(channel, t.app.config.max_channel_name_length) {
        Ok(n) => n,
        Err(e) => {
            return t
                .effects
                .error(ErrorCode::Channel, &format!("{e}: {channel}"));
        }
    };
    match name.kind {
        ChannelKind::Public => {}
        ChannelKind::Private | ChannelKind::PrivateEncrypted => {
            if let Err(refusal) = check_signature(t, channel, None, auth) {
                return t.effects.refuse(channel, refusal);
            }
        }
        ChannelKind::ServerToUser => {
            let own = t.conn().and_then(|c| c.user_id().cloned());
            if own.as_deref() != name.server_to_user_id() {
                return t.effects.refuse(channel, SubscriptionRefusal::NotThatUser);
            }
        }
        ChannelKind::Presence => return presence_join::begin(t, &name, auth, channel_data),
    }
    if t.state.hub.subscribe(t.key, &name).is_err() {
        return already_subscribed(&mut t.effects, channel);
    }
    succeeded(t, &name, "{}");
}

/// A channel authorization token (`{key}:{hmac}`) over the socket id, the channel and, for
/// presence, `channel_data`.
pub(super) fn check_signature(
    t: &Turn<'_>,
    channel: &str,
    channel_data: Option<&str>,
    auth: Option<&str>,
) -> Result<(), SubscriptionRefusal> {
    let token = auth
        .filter(|a| !a.is_empty())
        .ok_or(SubscriptionRefusal::MissingSignature)?;
    let socket_id = t.socket.to_string();
    let (key, secret) = (t.app.key(), t.app.secret());
    if !auth::verify_channel_auth(key, secret, &socket_id, channel, channel_data, token) {
        return Err(SubscriptionRefusal::BadSignature);
    }
    Ok(())
}

pub(super) fn already_subscribed(effects: &mut Effects, channel: &str) {
    effects.error(
        ErrorCode::Channel,
        &format!("Already subscribed to channel {channel}"),
    );
}

/// The connection is in the channel's index now: the API core counts it, the client hears
/// `subscription_succeeded` (with `data_json`), then a cache channel's last event.
pub(super) fn succeeded(t: &mut Turn<'_>, name: &ChannelName<'_>, data_json: &str) {
    t.effects.report(ApiCommand::Subscriptions {
        app: t.app.idx,
        channel: name.name.into(),
        delta: 1,
    });
    t.effects
        .json(frames::subscription_succeeded(name.name, data_json));
    if name.cache {
        replay_cache(t.state, t.app, name.name, &mut t.effects);
    }
}

/// Right after a cache channel's `subscription_succeeded`: its last event, or
/// `pusher:cache_miss` (reported to the API core when a webhook wants it).
fn replay_cache(state: &ShardState, app: &App, channel: &str, effects: &mut Effects) {
    if let Some((frame, _)) = state.last_events.get(app.idx, channel, state.now) {
        return effects.frames.push(Outgoing::Frame(frame));
    }
    if app.webhook_kinds.contains(Kind::CacheMiss) {
        effects.report(ApiCommand::CacheMiss {
            app: app.idx,
            channel: channel.into(),
        });
    }
    effects.json(frames::cache_miss(channel));
}

/// `pusher:unsubscribe`: leaves the channel index and, for presence, the membership (joined
/// or still pending).
pub fn unsubscribe(t: &mut Turn<'_>, channel: &str) {
    let indexed = t.state.hub.unsubscribe(t.key, channel).is_ok();
    if indexed {
        t.effects.report(ApiCommand::Subscriptions {
            app: t.app.idx,
            channel: channel.into(),
            delta: -1,
        });
    }
    let left = t.conn().and_then(|c| c.presence_mut().leave(channel));
    match left {
        Some(user_id) => {
            let report = presence_join::leave_report(t.app.idx, channel, &user_id, t.socket);
            t.effects.report(report);
        }
        None if !indexed => t.effects.error(
            ErrorCode::Channel,
            &format!("Not subscribed to channel {channel}"),
        ),
        None => {}
    }
}
