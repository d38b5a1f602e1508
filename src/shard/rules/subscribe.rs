//! `pusher:subscribe` and `pusher:unsubscribe` (docs/protocol.md): who may subscribe to which kind
//! of channel, and leaving again.

use super::Turn;
use super::admit::{already_subscribed, check_signature, succeeded};
use super::{join, presence_join};
use crate::bus::ApiCommand;
use crate::protocol::errors::SubscriptionRefusal;
use crate::protocol::{ChannelKind, ChannelName, ErrorCode};
use crate::shard::joins::Leaving;

pub fn subscribe(t: &mut Turn<'_>, channel: &str, auth: Option<&str>, channel_data: Option<&str>) {
    let name = match ChannelName::parse(channel, t.app.config.max_channel_name_length) {
        Ok(n) => n,
        Err(e) => {
            return t
                .effects
                .error(ErrorCode::Channel, &format!("{e}: {channel}"));
        }
    };
    if let Err(refusal) = room_for_one_more(t, channel) {
        return t.effects.refuse(channel, refusal);
    }
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
    if t.state.clustered {
        return join::ask(t, &name, None);
    }
    if t.state.hub.subscribe(t.key, &name).is_err() {
        return already_subscribed(&mut t.effects, channel);
    }
    succeeded(t, &name, "{}");
}

/// Whether the connection may subscribe now: within its subscribes per second, and with room
/// for one more channel (one it has or is joining already is refused later, as already
/// subscribed).
fn room_for_one_more(t: &mut Turn<'_>, channel: &str) -> Result<(), SubscriptionRefusal> {
    let max = t.app.config.max_channels_per_connection;
    let per_second = t.app.config.max_subscribes_per_second;
    let now = t.state.now;
    let Some(conn) = t.conn() else { return Ok(()) };
    if !conn.take_subscribe(now, per_second) {
        return Err(SubscriptionRefusal::TooFast { max: per_second });
    }
    let known = conn.is_subscribed(channel) || conn.joins().contains(channel);
    if !known && conn.channel_count() + conn.joins().pending() >= max {
        return Err(SubscriptionRefusal::TooManyChannels { max });
    }
    Ok(())
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
            socket: t.socket,
        });
    }
    let left = t.conn().and_then(|c| c.joins_mut().leave(channel));
    match left {
        Some(Leaving::Presence(user_id)) => {
            let report = join::leave_report(t.app.idx, channel, &user_id, t.socket);
            t.effects.report(report);
        }
        Some(Leaving::Pending) => {}
        None if !indexed => t.effects.error(
            ErrorCode::Channel,
            &format!("Not subscribed to channel {channel}"),
        ),
        None => {}
    }
}
