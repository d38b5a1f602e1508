//! Presence joins and leaves arriving from the shards: membership lives in the API core (see
//! [`crate::cluster::Presence`]), and `member_added` / `member_removed` go to every shard when a
//! user's first connection joins or its last one leaves, anywhere in the cluster.

use super::ApiCore;
use crate::app::AppIdx;
use crate::bus::{Broadcast, PresenceJoin, ShardCommand};
use crate::cluster::{JoinError, Left};
use crate::protocol::{SocketId, frames};

fn member_event(
    app: AppIdx,
    channel: &str,
    event: &str,
    data: &str,
    except: Option<SocketId>,
) -> Broadcast {
    let payload = frames::channel_event(event, channel, &frames::json_string(data), None);
    Broadcast {
        app,
        channel: channel.into(),
        payload: payload.into_bytes().into_boxed_slice(),
        except,
        cacheable: false,
        accepted: std::time::Instant::now(),
    }
}

pub async fn join(core: &ApiCore, j: PresenceJoin) {
    let max = core.apps.get(j.app).config.max_presence_members_per_channel;
    let joined = core.presence.borrow_mut().join(
        j.app,
        &j.channel,
        &j.user_id,
        &j.user_info,
        j.socket_id,
        max,
    );
    let result = match joined {
        Ok(joined) => {
            if joined.first_connection {
                core.webhooks.member_added(j.app, &j.channel, &j.user_id);
                let data = format!(
                    r#"{{"user_id":{},"user_info":{}}}"#,
                    frames::json_string(&j.user_id),
                    j.user_info
                );
                let event = member_event(
                    j.app,
                    &j.channel,
                    "pusher_internal:member_added",
                    &data,
                    Some(j.socket_id),
                );
                core.broadcast(event).await;
            }
            Ok(joined.presence_data)
        }
        Err(JoinError::Full { max }) => Err(format!("presence channel is full ({max} members)")),
    };
    let reply = ShardCommand::PresenceReply {
        conn: j.conn,
        socket_id: j.socket_id,
        channel: j.channel,
        result,
    };
    core.send_to(j.shard, reply).await;
}

pub async fn leave(core: &ApiCore, app: AppIdx, channel: &str, user_id: &str, socket: SocketId) {
    let left = core
        .presence
        .borrow_mut()
        .leave(app, channel, user_id, socket);
    if left == Left::LastConnection {
        core.webhooks.member_removed(app, channel, user_id);
        let data = format!(r#"{{"user_id":{}}}"#, frames::json_string(user_id));
        core.broadcast(member_event(
            app,
            channel,
            "pusher_internal:member_removed",
            &data,
            None,
        ))
        .await;
    }
}
