//! Presence subscriptions: the checks of `channel_data` and its signature on the shard, then a
//! join through the API core, which owns membership ([`super::join`]).

use super::Turn;
use super::admit::check_signature;
use super::join::{self, Member};
use crate::protocol::ChannelName;
use crate::protocol::errors::SubscriptionRefusal;

/// `channel_data` of a presence subscription: `user_id` a string or a number, `user_info`
/// kept as the client wrote it.
#[derive(serde::Deserialize)]
struct ChannelData<'a> {
    #[serde(default)]
    user_id: serde_json::Value,
    #[serde(borrow)]
    user_info: Option<&'a serde_json::value::RawValue>,
}

/// The user id and raw `user_info` of a presence subscription, or why it is refused.
fn member(
    t: &Turn<'_>,
    channel: &str,
    auth: Option<&str>,
    channel_data: Option<&str>,
) -> Result<(String, String), SubscriptionRefusal> {
    let data = channel_data.ok_or(SubscriptionRefusal::NoChannelData)?;
    check_signature(t, channel, Some(data), auth)?;
    let parsed = serde_json::from_str::<ChannelData>(data)
        .map_err(|_| SubscriptionRefusal::ChannelDataNotJson)?;
    let user_id = match parsed.user_id {
        serde_json::Value::String(s) if !s.is_empty() => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(SubscriptionRefusal::NoUserId),
    };
    let user_info = parsed.user_info.map_or("null", |r| r.get());
    let max_kb = t.app.config.max_presence_member_size_kb;
    if user_info.len() > max_kb * 1024 {
        return Err(SubscriptionRefusal::UserInfoTooLarge { max_kb });
    }
    Ok((user_id, user_info.to_string()))
}

/// A presence subscription: checked here, then a join through the API core.
pub fn begin(
    t: &mut Turn<'_>,
    name: &ChannelName<'_>,
    auth: Option<&str>,
    channel_data: Option<&str>,
) {
    match member(t, name.name, auth, channel_data) {
        Ok((user_id, user_info)) => join::ask(t, name, Some(Member { user_id, user_info })),
        Err(refusal) => t.effects.refuse(name.name, refusal),
    }
}
