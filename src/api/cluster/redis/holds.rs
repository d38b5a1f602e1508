//! Webhook holds in Redis: one key per hold, `{prefix}:hold:{what}`, holding the token of the
//! node that decided the event and expiring by itself if that node never releases it. The
//! presence and occupancy scripts place and cancel them; releasing deletes one only if it
//! still holds the same token.

use super::link::Link;
use super::{Keys, eval};
use crate::api::cluster::StateFuture;
use crate::api::cluster::holds::{HoldOf, Holds, Ticket};
use std::rc::Rc;

/// KEYS: the hold. ARGV: the token. Answers 1 if it was this hold.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"#;

/// The Redis key of a hold.
pub fn key(keys: &Keys, of: HoldOf<'_>) -> String {
    format!("{}:hold:{}", keys.prefix, of.key(&keys.app_id(of.app())))
}

/// A ticket as script arguments: token and milliseconds, or `""` and 0 for none.
pub fn args(ticket: Option<&Ticket>) -> (String, String) {
    match ticket {
        Some(t) => {
            let ms = u64::try_from(t.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            (t.token.to_string(), ms.to_string())
        }
        None => (String::new(), "0".into()),
    }
}

pub struct RedisHolds {
    link: Rc<Link>,
    keys: Rc<Keys>,
}

impl RedisHolds {
    pub fn new(link: Rc<Link>, keys: Rc<Keys>) -> RedisHolds {
        RedisHolds { link, keys }
    }
}

impl Holds for RedisHolds {
    fn release<'a>(&'a self, of: HoldOf<'a>, token: &'a str) -> StateFuture<'a, bool> {
        Box::pin(async move {
            let key = key(&self.keys, of);
            let mine: i64 = eval(&self.link, RELEASE, &[&key], &[token]).await?;
            Ok(mine == 1)
        })
    }
}
