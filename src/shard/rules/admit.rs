//! What every admitted subscription goes through, whatever its kind: the channel signature,
//! then the confirmation (the API core counts it, `subscription_succeeded`, a cache channel's
//! last event).

use super::{Effects, Outgoing, Turn};
use crate::app::App;
use crate::auth;
use crate::bus::ApiCommand;
use crate::protocol::errors::SubscriptionRefusal;
use crate::protocol::{ChannelName, ErrorCode, frames};
use crate::shard::state::ShardState;
use crate::webhook_kind::Kind;

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
    let key = t.app.key();
    let signed = |secret: &str| {
        auth::verify_channel_auth(key, secret, &socket_id, channel, channel_data, token)
    };
    if !t.app.accepted_secrets().any(signed) {
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
        socket: t.socket,
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
