//! Client events (docs/protocol.md): every rule a `client-*` event must pass on the sender's shard
//! before the API core relays it to every shard (the sender excluded, `data` byte-for-byte).

use super::Turn;
use crate::bus::{Broadcast, ClientEvent, ClientEventReport};
use crate::protocol::{ChannelKind, ChannelName};
use crate::webhook_kind::Kind;

/// The one field of a client event taken from the original bytes (simd-json has parsed the
/// rest in place, and its values carry no byte offsets).
#[derive(serde::Deserialize)]
struct RawData<'a> {
    #[serde(borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

/// Checks a client event and, if it passes, sets it up for relaying; `Err` is the 4301
/// message.
pub fn check(t: &mut Turn<'_>, event: &str, channel: &str, raw: &[u8]) -> Result<(), String> {
    let limits = &t.app.config;
    if !limits.enable_client_messages {
        return Err("Client events are not enabled for this app".into());
    }
    let name =
        ChannelName::parse(channel, limits.max_channel_name_length).map_err(|e| e.to_string())?;
    match name.kind {
        ChannelKind::Private | ChannelKind::Presence => {}
        ChannelKind::PrivateEncrypted => {
            return Err("Client events are not allowed on encrypted channels".into());
        }
        _ => return Err("Client events are only allowed on private and presence channels".into()),
    }
    if event.len() > limits.max_event_name_length {
        return Err(format!(
            "Event name is longer than {} characters",
            limits.max_event_name_length
        ));
    }
    let raw = serde_json::from_slice::<RawData>(raw).map_err(|_| "Invalid client event")?;
    let data = raw.data.map_or("{}", |d| d.get());
    if data.len() > limits.max_event_payload_kb * 1024 {
        return Err(format!(
            "Event data is larger than {} KB",
            limits.max_event_payload_kb
        ));
    }
    let now = t.state.now;
    let max = limits.max_client_events_per_second;
    let conn = t.conn().ok_or("connection is gone")?;
    if !conn.is_subscribed(channel) {
        return Err(format!("Not subscribed to channel {channel}"));
    }
    if !conn.take_client_event(now, max) {
        return Err(format!("Over {max} client events per second"));
    }
    // On presence channels the relayed event names its sender.
    let user_id = conn.joins().user_on(channel).cloned();
    let broadcast = Broadcast::event(t.app.idx, channel, event, data, user_id.as_deref())
        .except(Some(t.socket));
    let report = t
        .app
        .webhook_kinds
        .contains(Kind::ClientEvent)
        .then(|| ClientEventReport {
            event: event.into(),
            data: data.into(),
            user_id: user_id.map(|u| (*u).into()),
        });
    t.effects.relay = Some(ClientEvent {
        broadcast,
        sender: t.socket,
        report,
    });
    Ok(())
}
