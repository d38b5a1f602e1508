//! Presence joins, the protocol around each connection's join state machine
//! ([`crate::shard::presence_joins`]):
//!
//! ```text
//!   (none) --subscribe, checked here--> Pending(id) --answer id: admitted--> Member
//!      ^                                    |  \--answer id: refused--> (none)
//!      +--------- unsubscribe / disconnect -+-------------- from Member --+
//! ```
//!
//! The shard checks the signature and `channel_data`, then asks the API core (which owns
//! membership across the cluster) to admit the connection; the question's request id is kept
//! in the `Pending` state and the answer is applied only if it carries the same id. So a
//! subscribe, unsubscribe and subscribe of one channel in a single write ends subscribed by
//! the second join: the answer to the first finds a different id and is dropped. Leaving
//! (pending or member) always reports to the API core, in order after the join, so membership
//! there never keeps a ghost.

use super::admit::{already_subscribed, check_signature, succeeded};
use super::{Effects, Outgoing, Turn};
use crate::app::{AppIdx, Apps};
use crate::bus::{ApiCommand, ConnRef, PresenceJoin, Question, RequestId};
use crate::protocol::errors::SubscriptionRefusal;
use crate::protocol::{ChannelName, SocketId};
use crate::shard::hub::ConnKey;
use crate::shard::state::{ShardState, Waiter};

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

/// A presence subscription: checked here, then a question to the API core.
pub fn begin(
    t: &mut Turn<'_>,
    name: &ChannelName<'_>,
    auth: Option<&str>,
    channel_data: Option<&str>,
) {
    let channel = name.name;
    let (user_id, user_info) = match member(t, channel, auth, channel_data) {
        Ok(m) => m,
        Err(refusal) => return t.effects.refuse(channel, refusal),
    };
    let already = t
        .state
        .hub
        .conn(t.key)
        .is_none_or(|c| c.is_subscribed(channel) || c.presence().contains(channel));
    if already {
        return already_subscribed(&mut t.effects, channel);
    }
    let from = t
        .state
        .outstanding
        .ask(Waiter::PresenceJoin(ConnRef::new(t.key, t.socket)));
    if let Some(conn) = t.conn() {
        conn.presence_mut().begin(channel, &user_id, from.request);
    }
    let question = Question::PresenceJoin(PresenceJoin {
        socket: t.socket,
        app: t.app.idx,
        channel: channel.into(),
        user_id: user_id.into(),
        user_info: user_info.into(),
    });
    t.effects.report(ApiCommand::Ask { from, question });
}

/// The API core's answer to a join: subscribe and confirm (then replay a cache channel's last
/// event), or refuse. Returns the connection it is for and what to do there; nothing when
/// the connection has gone or left the channel meanwhile.
pub fn answered(
    state: &mut ShardState,
    apps: &Apps,
    conn: ConnRef,
    request: RequestId,
    verdict: Result<String, SubscriptionRefusal>,
) -> Option<(ConnKey, Effects)> {
    let c = state.hub.conn_at(conn.slot(), conn.socket())?;
    let app = apps.get(c.app());
    let mut t = Turn {
        app,
        key: conn.slot(),
        socket: conn.socket(),
        effects: Effects::default(),
        state,
    };
    match verdict {
        Ok(data) => {
            let channel = t.conn()?.presence_mut().admit(request)?;
            let name = ChannelName::classify(&channel)?;
            if t.state.hub.subscribe(t.key, &name).is_ok() {
                succeeded(&mut t, &name, &data);
            }
        }
        Err(refusal) => {
            let channel = t.conn()?.presence_mut().refuse(request)?;
            t.effects
                .frames
                .push(Outgoing::Json(refusal.frame(&channel)));
        }
    }
    Some((t.key, t.effects))
}

pub fn leave_report(app: AppIdx, channel: &str, user_id: &str, socket: SocketId) -> ApiCommand {
    ApiCommand::PresenceLeave {
        app,
        channel: channel.into(),
        user_id: user_id.into(),
        socket,
    }
}
