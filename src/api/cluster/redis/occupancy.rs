//! Subscription counts in Redis: per app a hash of channel → subscriptions over the cluster,
//! changed by a Lua script that also keeps this node's share (so a dead node's share can be
//! taken off) and never lets either go below zero.

use super::link::Link;
use super::{Keys, entry, eval, holds, query};
use crate::api::cluster::holds::{HoldOf, Ticket};
use crate::api::cluster::{Change, Occupancy, StateFuture};
use crate::app::AppIdx;
use std::rc::Rc;

/// KEYS: the app's totals, the node's shares, the channel's `channel_vacated` hold. ARGV:
/// channel, node entry, delta, hold token and milliseconds (0: no hold). Answers the channel's
/// new total and 1 if it came back while held.
const ADD: &str = r#"
local mine = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local d = tonumber(ARGV[3])
if mine + d < 0 then d = 0 - mine end
if mine + d == 0 then redis.call('HDEL', KEYS[2], ARGV[2]) else redis.call('HSET', KEYS[2], ARGV[2], mine + d) end
local before = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local total = redis.call('HINCRBY', KEYS[1], ARGV[1], d)
if total <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if before > 0 and tonumber(ARGV[5]) > 0 then
    redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
  end
  return {0, 0}
end
if before <= 0 then return {total, redis.call('DEL', KEYS[3])} end
return {total, 0}
"#;

/// KEYS as [`ADD`]. ARGV: channel, node entry, this node's share.
const RESTORE: &str = r#"
local mine = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local want = tonumber(ARGV[3])
if want == 0 then redis.call('HDEL', KEYS[2], ARGV[2]) else redis.call('HSET', KEYS[2], ARGV[2], want) end
local total = redis.call('HINCRBY', KEYS[1], ARGV[1], want - mine)
if total <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"#;

pub struct RedisOccupancy {
    link: Rc<Link>,
    keys: Rc<Keys>,
}

impl RedisOccupancy {
    pub fn new(link: Rc<Link>, keys: Rc<Keys>) -> RedisOccupancy {
        RedisOccupancy { link, keys }
    }

    fn totals(&self, app: AppIdx) -> String {
        self.keys.app("subs", &self.keys.app_id(app))
    }
}

impl Occupancy for RedisOccupancy {
    fn add<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        delta: i64,
        hold: Option<&'a Ticket>,
    ) -> StateFuture<'a, Change> {
        Box::pin(async move {
            let totals = self.totals(app);
            let app_id = &self.keys.app_id(app);
            let mine = entry(&[app_id, channel]);
            let node = self.keys.node("subs");
            let held = holds::key(&self.keys, HoldOf::Vacated { app, channel });
            let delta = delta.to_string();
            let (token, ms) = holds::args(hold);
            let (total, returned): (i64, i64) = eval(
                &self.link,
                ADD,
                &[&totals, &node, &held],
                &[channel, &mine, &delta, &token, &ms],
            )
            .await?;
            Ok(Change {
                count: total.max(0) as u64,
                returned: returned > 0,
            })
        })
    }

    fn restore<'a>(&'a self, app: AppIdx, channel: &'a str, count: u64) -> StateFuture<'a, ()> {
        Box::pin(async move {
            let totals = self.totals(app);
            let app_id = &self.keys.app_id(app);
            let mine = entry(&[app_id, channel]);
            let node = self.keys.node("subs");
            let count = count.to_string();
            let args = [channel, &*mine, &*count];
            let _: i64 = eval(&self.link, RESTORE, &[&totals, &node], &args).await?;
            Ok(())
        })
    }

    fn count<'a>(&'a self, app: AppIdx, channel: &'a str) -> StateFuture<'a, u64> {
        Box::pin(async move {
            let mut cmd = redis::cmd("HGET");
            cmd.arg(self.totals(app)).arg(channel);
            let n: Option<i64> = query(&self.link, cmd).await?;
            Ok(n.unwrap_or(0).max(0) as u64)
        })
    }

    fn occupied<'a>(&'a self, app: AppIdx, prefix: &'a str) -> StateFuture<'a, Vec<(String, u64)>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("HGETALL");
            cmd.arg(self.totals(app));
            let all: Vec<(String, i64)> = query(&self.link, cmd).await?;
            let mut out: Vec<(String, u64)> = all
                .into_iter()
                .filter(|(ch, n)| *n > 0 && ch.starts_with(prefix))
                .map(|(ch, n)| (ch, n as u64))
                .collect();
            out.sort();
            Ok(out)
        })
    }
}
