//! Presence joins and leaves arriving from the shards: membership lives in the cluster state
//! ([`super::cluster::Presence`]), and `member_added` / `member_removed` go to every shard when
//! a user's first connection joins or its last one leaves, anywhere in the cluster.

use super::ApiCore;
use super::cluster::holds::Ticket;
use super::cluster::{Join, Left};
use super::unfinished::Departure;
use crate::app::AppIdx;
use crate::bus::{Answer, Broadcast, PresenceJoin, ReplyTo};
use crate::protocol::errors::SubscriptionRefusal;
use crate::protocol::{SocketId, frames};
use crate::webhook_kind::Kind;
use ahash::AHashMap;
use std::cell::RefCell;

/// One of this node's presence connections.
pub struct LocalMember {
    pub app: AppIdx,
    pub channel: Box<str>,
    pub user_id: Box<str>,
    pub user_info: Box<str>,
    pub socket: SocketId,
}

/// In a cluster, this node's presence connections: what it registers again when Redis lost
/// them. Bounded by the node's own presence subscriptions.
#[derive(Default)]
pub struct LocalMembers(RefCell<AHashMap<Connection, Member>>);

/// A presence connection: app, channel, socket.
type Connection = (AppIdx, Box<str>, SocketId);
/// Who it joined as: user id and raw `user_info`.
type Member = (Box<str>, Box<str>);

impl LocalMembers {
    fn add(&self, j: &PresenceJoin) {
        let key = (j.app, j.channel.clone(), j.socket);
        let value = (j.user_id.clone(), j.user_info.clone());
        self.0.borrow_mut().insert(key, value);
    }

    fn remove(&self, app: AppIdx, channel: &str, socket: SocketId) {
        self.0.borrow_mut().remove(&(app, channel.into(), socket));
    }

    pub fn all(&self) -> Vec<LocalMember> {
        self.0
            .borrow()
            .iter()
            .map(
                |((app, channel, socket), (user_id, user_info))| LocalMember {
                    app: *app,
                    channel: channel.clone(),
                    user_id: user_id.clone(),
                    user_info: user_info.clone(),
                    socket: *socket,
                },
            )
            .collect()
    }
}

/// Admits or refuses a join, tells the other members, and answers the asking shard.
pub async fn join(core: &ApiCore, from: ReplyTo, j: PresenceJoin) {
    if let Err(e) = core.interest.ensure(core, j.app, &j.channel).await {
        log::warn!("cluster: joining {}: {e}", j.channel);
        let refused = Err(SubscriptionRefusal::Unavailable);
        return core.answer(from, Answer::Join(refused)).await;
    }
    let max = core
        .apps
        .now()
        .get(j.app)
        .config
        .max_presence_members_per_channel;
    let joined = core
        .cluster
        .presence
        .join(j.app, &j.channel, &j.user_id, &j.user_info, j.socket, max)
        .await;
    let verdict = match joined {
        Ok(Join::Admitted(joined)) => {
            if core.cluster.transport.has_peers() {
                core.local_members.add(&j);
            }
            if joined.first_connection {
                let returned = joined.returned;
                core.webhooks
                    .member_added(j.app, &j.channel, &j.user_id, returned);
                let data = format!(
                    r#"{{"user_id":{},"user_info":{}}}"#,
                    frames::json_string(&j.user_id),
                    j.user_info
                );
                let event = "pusher_internal:member_added";
                let added = Broadcast::internal(j.app, &j.channel, event, &data);
                core.broadcast(added.except(Some(j.socket))).await;
            }
            Ok(joined.presence_data)
        }
        Ok(Join::Full { max }) => Err(SubscriptionRefusal::ChannelFull { max }),
        Err(e) => {
            log::warn!("presence join on {}: {e}", j.channel);
            Err(SubscriptionRefusal::Unavailable)
        }
    };
    core.answer(from, Answer::Join(verdict)).await;
}

pub async fn leave(core: &ApiCore, app: AppIdx, channel: &str, user_id: &str, socket: SocketId) {
    core.local_members.remove(app, channel, socket);
    let ticket = core.webhooks.ticket(app, Kind::MemberRemoved);
    let presence = &core.cluster.presence;
    let left = match presence
        .leave(app, channel, user_id, socket, ticket.as_ref())
        .await
    {
        Ok(left) => left,
        Err(e) => {
            log::warn!("presence leave on {channel}: {e}; kept for when Redis is back");
            let departure = Departure::PresenceLeave {
                app,
                channel: channel.into(),
                user_id: user_id.into(),
                socket,
            };
            return core.unfinished.keep(departure);
        }
    };
    if left == Left::LastConnection {
        removed(core, app, channel, user_id, ticket).await;
    }
}

/// A user's last connection anywhere left a presence channel: `member_removed` to the
/// members on every node, and its webhook once the hold `ticket` is over.
pub async fn removed(
    core: &ApiCore,
    app: AppIdx,
    channel: &str,
    user_id: &str,
    ticket: Option<Ticket>,
) {
    core.webhooks.member_removed(app, channel, user_id, ticket);
    let data = format!(r#"{{"user_id":{}}}"#, frames::json_string(user_id));
    let event = "pusher_internal:member_removed";
    core.broadcast(Broadcast::internal(app, channel, event, &data))
        .await;
}
