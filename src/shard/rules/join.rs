//! Joins through the API core: a presence subscription always (membership is cluster-wide),
//! and in a cluster every subscription (the node must receive the channel's broadcasts from
//! the other nodes before it confirms). One state machine per connection and channel
//! ([`crate::shard::joins`]):
//!
//! ```text
//!   (none) --subscribe, checked here--> Pending(id) --answer id: admitted--> indexed (Member)
//!      ^                                    |  \--answer id: refused--> (none)
//!      +--------- unsubscribe / disconnect -+----------------------------------+
//! ```
//!
//! The question's request id is kept in the `Pending` state and an answer is applied only if
//! it carries the same id. So a subscribe, unsubscribe and subscribe of one channel in a
//! single write ends subscribed by the second join: the answer to the first finds a different
//! id and is dropped. Leaving a presence channel (pending or member) always reports to the API
//! core, in order after the join, so membership there never keeps a ghost.

use super::admit::{already_subscribed, succeeded};
use super::{Effects, Outgoing, Turn};
use crate::app::{AppIdx, Apps};
use crate::bus::{ApiCommand, ConnRef, PresenceJoin, Question, RequestId};
use crate::protocol::errors::SubscriptionRefusal;
use crate::protocol::{ChannelName, SocketId};
use crate::shard::hub::ConnKey;
use crate::shard::state::{ShardState, Waiter};

/// Who a presence join is for: the user id and its raw `user_info`.
pub struct Member {
    pub user_id: String,
    pub user_info: String,
}

/// Asks the API core to admit the connection to `name`, as `member` on a presence channel.
pub fn ask(t: &mut Turn<'_>, name: &ChannelName<'_>, member: Option<Member>) {
    let channel = name.name;
    let already = t
        .state
        .hub
        .conn(t.key)
        .is_none_or(|c| c.is_subscribed(channel) || c.joins().contains(channel));
    if already {
        return already_subscribed(&mut t.effects, channel);
    }
    let from = t
        .state
        .outstanding
        .ask(Waiter::Join(ConnRef::new(t.key, t.socket)));
    let user = member.as_ref().map(|m| m.user_id.as_str());
    if let Some(conn) = t.conn() {
        conn.joins_mut().begin(channel, user, from.request);
    }
    let question = match member {
        Some(m) => Question::PresenceJoin(PresenceJoin {
            socket: t.socket,
            app: t.app.idx,
            channel: channel.into(),
            user_id: m.user_id.into(),
            user_info: m.user_info.into(),
        }),
        None => Question::Subscribe {
            app: t.app.idx,
            channel: channel.into(),
        },
    };
    t.effects.report(ApiCommand::Ask { from, question });
}

/// The API core's answer to a join: subscribe and confirm with `data` (then replay a cache
/// channel's last event), or refuse. Returns the connection it is for and what to do there;
/// nothing when the connection has gone or left the channel meanwhile.
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
            let channel = t.conn()?.joins_mut().admit(request)?;
            let name = ChannelName::classify(&channel)?;
            if t.state.hub.subscribe(t.key, &name).is_ok() {
                succeeded(&mut t, &name, &data);
            }
        }
        Err(refusal) => {
            let channel = t.conn()?.joins_mut().refuse(request)?;
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
