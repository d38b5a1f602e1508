//! The `subscription_count` throttle in Redis: one key per busy channel holding the time of its
//! last announcement, expiring with the interval, so the nodes share one interval.

use super::link::Link;
use super::{Keys, eval};
use crate::api::cluster::StateFuture;
use crate::api::cluster::throttle::{Throttle, Turn, turn};
use crate::app::AppIdx;
use std::rc::Rc;
use std::time::Duration;

/// KEYS: the channel's key. ARGV: now (ms), interval (ms). Claims the interval if it is
/// free (answers -1), else answers the time of the last announcement.
const CLAIM: &str = r#"
local last = redis.call('GET', KEYS[1])
if last then return tonumber(last) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return -1
"#;

pub struct RedisThrottle {
    link: Rc<Link>,
    keys: Rc<Keys>,
}

impl RedisThrottle {
    pub fn new(link: Rc<Link>, keys: Rc<Keys>) -> RedisThrottle {
        RedisThrottle { link, keys }
    }
}

impl Throttle for RedisThrottle {
    fn claim<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        every: Duration,
        changed_ms: u64,
    ) -> StateFuture<'a, Turn> {
        Box::pin(async move {
            let key = self.keys.channel("sc", &self.keys.app_id(app), channel);
            let now = crate::clock::unix_ms();
            let every_ms = every.as_millis().max(1).to_string();
            let last: i64 =
                eval(&self.link, CLAIM, &[&key], &[&now.to_string(), &every_ms]).await?;
            Ok(match u64::try_from(last) {
                Ok(last) => match turn(Some(last), now, every, changed_ms) {
                    // Expired between the script and now: try again at once.
                    Turn::Now => Turn::After(Duration::ZERO),
                    t => t,
                },
                Err(_) => Turn::Now,
            })
        })
    }

    fn forget(&self, _app: AppIdx, _channel: &str) {
        // The key expires with its interval.
    }
}
