//! Presence membership in Redis. Per channel, a hash of members (user id → `user_info`), a
//! hash of their connections (`user␟socket` → node) and a hash of connection counts per user.
//! Join and leave are single Lua scripts, so "first connection anywhere" and "last connection
//! anywhere" are decided atomically, whatever node the connections are on. Every connection
//! is also filed under its node, so a dead node's members can be removed.

use super::{Keys, entry, eval, holds};
use crate::api::cluster::holds::{HoldOf, Ticket};
use crate::api::cluster::presence::presence_data;
use crate::api::cluster::{Join, Joined, Left, Presence, StateFuture};
use crate::app::AppIdx;
use crate::protocol::SocketId;
use std::rc::Rc;

use super::link::Link;

/// KEYS: members, connections, counts, node's entries, the user's `member_removed` hold.
/// ARGV: user, info, connection, max, node, node entry. Answers `{-1}` when full, else
/// `{first (0/1), members as HGETALL, 1 if it came back while held}`.
const JOIN: &str = r#"
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
  return {0, redis.call('HGETALL', KEYS[1]), 0}
end
local n = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local first = 0
if n == 0 then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return {-1} end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  first = 1
end
redis.call('HSET', KEYS[3], ARGV[1], n + 1)
redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
redis.call('SADD', KEYS[4], ARGV[6])
local returned = 0
if first == 1 then returned = redis.call('DEL', KEYS[5]) end
return {first, redis.call('HGETALL', KEYS[1]), returned}
"#;

/// KEYS as [`JOIN`]; ARGV: user, connection, node entry, hold token and milliseconds (0: no
/// hold). Answers 0 (not a member), 1 (other connections remain) or 2 (the user's last
/// connection left; the hold is placed).
const LEAVE: &str = r#"
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('SREM', KEYS[4], ARGV[3])
local n = redis.call('HINCRBY', KEYS[3], ARGV[1], -1)
if n > 0 then return 1 end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
if tonumber(ARGV[5]) > 0 then redis.call('SET', KEYS[5], ARGV[4], 'PX', ARGV[5]) end
return 2
"#;

pub struct RedisPresence {
    link: Rc<Link>,
    keys: Rc<Keys>,
}

/// The keys the join and leave scripts touch: the channel's, and the user's hold on it.
struct ChannelKeys {
    members: String,
    connections: String,
    counts: String,
    node: String,
    hold: String,
}

impl RedisPresence {
    pub fn new(link: Rc<Link>, keys: Rc<Keys>) -> RedisPresence {
        RedisPresence { link, keys }
    }

    fn app_id(&self, app: AppIdx) -> String {
        self.keys.app_id(app)
    }

    /// The channel's members: user id → `user_info`.
    fn members_key(&self, app: AppIdx, channel: &str) -> String {
        self.keys.channel("pres", &self.app_id(app), channel)
    }

    fn channel_keys(&self, app: AppIdx, channel: &str, user_id: &str) -> ChannelKeys {
        let id = &self.app_id(app);
        let of = HoldOf::Removed {
            app,
            channel,
            user_id,
        };
        ChannelKeys {
            members: self.members_key(app, channel),
            connections: self.keys.channel("pconn", id, channel),
            counts: self.keys.channel("pcount", id, channel),
            node: self.keys.node("pres"),
            hold: holds::key(&self.keys, of),
        }
    }
}

/// Members as `HGETALL` answers them (`[user, info, …]`), sorted by user id.
fn sorted_members(flat: Vec<String>) -> Vec<(String, String)> {
    let mut members: Vec<(String, String)> = flat
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    members.sort();
    members
}

impl Presence for RedisPresence {
    fn join<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        user_id: &'a str,
        user_info: &'a str,
        socket: SocketId,
        max_members: usize,
    ) -> StateFuture<'a, Join> {
        Box::pin(async move {
            let k = self.channel_keys(app, channel, user_id);
            let socket = socket.to_string();
            let conn = entry(&[user_id, &socket]);
            let mine = entry(&[&self.app_id(app), channel, user_id, &socket]);
            let max = max_members.to_string();
            let keys = [&*k.members, &*k.connections, &*k.counts, &*k.node, &*k.hold];
            let args = [user_id, user_info, &*conn, &*max, &*self.keys.node, &*mine];
            let (first, flat, returned): (i64, Vec<String>, i64) =
                match eval::<Vec<redis::Value>>(&self.link, JOIN, &keys, &args).await? {
                    v if v.len() == 3 => {
                        let mut v = v.into_iter();
                        let mut number = || {
                            v.next()
                                .and_then(|f| redis::from_redis_value::<i64>(f).ok())
                                .unwrap_or(0)
                        };
                        let first = number();
                        let flat = v.next().and_then(|f| redis::from_redis_value(f).ok());
                        let returned = v.next().and_then(|f| redis::from_redis_value(f).ok());
                        (first, flat.unwrap_or_default(), returned.unwrap_or(0))
                    }
                    _ => return Ok(Join::Full { max: max_members }),
                };
            let members = sorted_members(flat);
            let data = presence_data(members.iter().map(|(u, i)| (u.as_str(), i.as_str())));
            Ok(Join::Admitted(Joined {
                first_connection: first == 1,
                returned: returned > 0,
                presence_data: data,
            }))
        })
    }

    fn leave<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        user_id: &'a str,
        socket: SocketId,
        hold: Option<&'a Ticket>,
    ) -> StateFuture<'a, Left> {
        Box::pin(async move {
            let k = self.channel_keys(app, channel, user_id);
            let socket = socket.to_string();
            let conn = entry(&[user_id, &socket]);
            let mine = entry(&[&self.app_id(app), channel, user_id, &socket]);
            let keys = [&*k.members, &*k.connections, &*k.counts, &*k.node, &*k.hold];
            let (token, ms) = holds::args(hold);
            let args = [user_id, &*conn, &*mine, &*token, &*ms];
            let left: i64 = eval(&self.link, LEAVE, &keys, &args).await?;
            Ok(match left {
                2 => Left::LastConnection,
                1 => Left::OtherConnectionsRemain,
                _ => Left::NotAMember,
            })
        })
    }

    fn user_ids<'a>(&'a self, app: AppIdx, channel: &'a str) -> StateFuture<'a, Vec<String>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("HKEYS");
            cmd.arg(self.members_key(app, channel));
            let mut ids: Vec<String> = super::query(&self.link, cmd).await?;
            ids.sort();
            Ok(ids)
        })
    }
}
