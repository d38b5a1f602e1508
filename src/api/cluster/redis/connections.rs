//! Connections per app in Redis: a hash of app id → connections over the cluster, and this
//! node's share in a hash of its own (so a dead node's share can be taken off). Acquiring checks
//! the limit and counts in one Lua script, so two nodes cannot both take the last place.

use super::link::Link;
use super::{Keys, eval};
use crate::api::cluster::{Connections, StateFuture};
use crate::app::AppIdx;
use ahash::AHashMap;
use std::cell::RefCell;
use std::rc::Rc;

/// KEYS: the totals, the node's shares. ARGV: app id, max. Answers 1 if counted.
const ACQUIRE: &str = r#"
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return 1
"#;

/// KEYS as [`ACQUIRE`]. ARGV: app id. Never below zero.
const RELEASE: &str = r#"
if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') <= 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"#;

/// KEYS as [`ACQUIRE`]. ARGV: app id, this node's share.
const RESTORE: &str = r#"
local mine = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local want = tonumber(ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], want)
if redis.call('HINCRBY', KEYS[1], ARGV[1], want - mine) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"#;

pub struct RedisConnections {
    link: Rc<Link>,
    keys: Rc<Keys>,
    /// What this node counted and has not released, per app: its share to register again.
    /// (Not the apps' own counters, which include connections still waiting for an answer.)
    mine: RefCell<AHashMap<AppIdx, usize>>,
}

impl RedisConnections {
    pub fn new(link: Rc<Link>, keys: Rc<Keys>) -> RedisConnections {
        RedisConnections {
            link,
            keys,
            mine: RefCell::default(),
        }
    }

    async fn run(
        &self,
        script: &'static str,
        app: AppIdx,
        arg: Option<usize>,
    ) -> Result<i64, super::ClusterError> {
        let totals = format!("{}:conns", self.keys.prefix);
        let mine = self.keys.node("conns");
        let app_id = &self.keys.app_id(app);
        let n = arg.map(|n| n.to_string()).unwrap_or_default();
        let args: &[&str] = if arg.is_some() {
            &[app_id, &n]
        } else {
            &[app_id]
        };
        eval(&self.link, script, &[&totals, &mine], args).await
    }
}

impl Connections for RedisConnections {
    fn acquire(&self, app: AppIdx, max: usize) -> StateFuture<'_, bool> {
        Box::pin(async move {
            let counted = self.run(ACQUIRE, app, Some(max)).await? == 1;
            if counted {
                *self.mine.borrow_mut().entry(app).or_default() += 1;
            }
            Ok(counted)
        })
    }

    fn release(&self, app: AppIdx) -> StateFuture<'_, ()> {
        if let Some(n) = self.mine.borrow_mut().get_mut(&app) {
            *n = n.saturating_sub(1);
        }
        Box::pin(async move { self.run(RELEASE, app, None).await.map(drop) })
    }

    fn restore(&self) -> StateFuture<'_, ()> {
        let mine: Vec<(AppIdx, usize)> = self.mine.borrow().iter().map(|(a, n)| (*a, *n)).collect();
        Box::pin(async move {
            for (app, count) in mine {
                self.run(RESTORE, app, Some(count)).await?;
            }
            Ok(())
        })
    }
}
