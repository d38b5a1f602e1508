//! Signed-in users in Redis. Per app, a hash of online users (user id → signed-in
//! connections) and a hash of those connections (`user␟socket` → node). Sign-in and leave are
//! Lua scripts, so "first connection anywhere" and "last connection anywhere" are decided
//! atomically; a connection already counted is not counted again. Every connection is also
//! filed under its node, so a dead node's users can be taken offline.

use super::link::Link;
use super::{Keys, entry, eval, query};
use crate::api::cluster::{StateFuture, Users};
use crate::app::AppIdx;
use crate::protocol::SocketId;
use std::rc::Rc;

/// KEYS: the app's online users, their connections, the node's entries. ARGV: user,
/// connection, node, node entry. Answers 1 when the user just came online.
const CONNECT: &str = r#"
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[4])
if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then return 1 end
return 0
"#;

/// KEYS as [`CONNECT`]. ARGV: user, connection, node entry. Answers 1 when the user's last
/// connection left.
const DISCONNECT: &str = r#"
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('SREM', KEYS[3], ARGV[3])
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) > 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"#;

pub struct RedisUsers {
    link: Rc<Link>,
    keys: Rc<Keys>,
}

impl RedisUsers {
    pub fn new(link: Rc<Link>, keys: Rc<Keys>) -> RedisUsers {
        RedisUsers { link, keys }
    }

    /// The script keys and the two entries naming this connection.
    fn names(&self, app: AppIdx, user: &str, socket: SocketId) -> ([String; 3], [String; 2]) {
        let app_id = &self.keys.app_id(app);
        let socket = socket.to_string();
        let keys = [
            self.keys.app("users", app_id),
            self.keys.app("uconn", app_id),
            self.keys.node("users"),
        ];
        (
            keys,
            [entry(&[user, &socket]), entry(&[app_id, user, &socket])],
        )
    }
}

impl Users for RedisUsers {
    fn connect<'a>(
        &'a self,
        app: AppIdx,
        user: &'a str,
        socket: SocketId,
    ) -> StateFuture<'a, bool> {
        Box::pin(async move {
            let ([a, b, c], [conn, mine]) = self.names(app, user, socket);
            let args = [user, &*conn, &*self.keys.node, &*mine];
            let first: i64 = eval(&self.link, CONNECT, &[&a, &b, &c], &args).await?;
            Ok(first == 1)
        })
    }

    fn disconnect<'a>(
        &'a self,
        app: AppIdx,
        user: &'a str,
        socket: SocketId,
    ) -> StateFuture<'a, bool> {
        Box::pin(async move {
            let ([a, b, c], [conn, mine]) = self.names(app, user, socket);
            let last: i64 =
                eval(&self.link, DISCONNECT, &[&a, &b, &c], &[user, &conn, &mine]).await?;
            Ok(last == 1)
        })
    }

    fn online<'a>(&'a self, app: AppIdx, users: &'a [Box<str>]) -> StateFuture<'a, Vec<Box<str>>> {
        Box::pin(async move {
            if users.is_empty() {
                return Ok(Vec::new());
            }
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(self.keys.app("users", &self.keys.app_id(app)));
            for u in users {
                cmd.arg(&**u);
            }
            let counts: Vec<Option<i64>> = query(&self.link, cmd).await?;
            Ok(users
                .iter()
                .zip(counts)
                .filter(|(_, n)| n.is_some_and(|n| n > 0))
                .map(|(u, _)| u.clone())
                .collect())
        })
    }
}
