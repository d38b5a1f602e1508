//! Which nodes are alive. Each node beats every `heartbeat_s` (its time in the sorted set
//! `{prefix}:nodes`); every node looks for nodes silent longer than `node_timeout_s` and
//! sweeps them, once it has itself been in touch with Redis for a whole timeout.
//!
//! The sweep is one Lua script that first takes the dead node out of the set, so exactly one
//! survivor removes what the dead node held (its presence connections, subscription counts,
//! signed-in connections and share of each app's connections), places the webhook holds of
//! the members and channels that ended there, and hears which ones did. It leaves a tombstone,
//! so a node that was only cut off learns it was swept when it beats again. A node starting
//! with the id of one that died sweeps its own leftovers first.

use super::Keys;
use super::link::Link;
use crate::api::cluster::{Beat, ClusterError, Departure, Nodes, StateFuture};
use crate::metrics::ClusterCounters;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// KEYS: the nodes set. ARGV: prefix, node id, cutoff (ms; a node beaten at or before it is
/// dead), hold token prefix, hold milliseconds, 1 to leave a tombstone the swept node finds
/// if it is still alive (0 for a node clearing its own leftovers at start). Answers the departures as a flat list:
/// `m app channel user token` for a member whose last connection was there, `v app channel
/// token` for a channel left without subscribers (each with the webhook hold placed for it),
/// `o app user` for a user whose last signed-in connection was there.
const SWEEP: &str = r#"
local prefix, node = ARGV[1], ARGV[2]
local held = 0
local function hold(key)
  held = held + 1
  local token = ARGV[4] .. held
  redis.call('SET', prefix .. ':hold:' .. key, token, 'PX', ARGV[5])
  return token
end
local score = redis.call('ZSCORE', KEYS[1], node)
if score and tonumber(score) > tonumber(ARGV[3]) then return {} end
redis.call('ZREM', KEYS[1], node)
local function split(s)
  local parts = {}
  for p in string.gmatch(s, '([^\31]+)') do table.insert(parts, p) end
  return parts
end
local out = {}
local pres = prefix .. ':node:' .. node .. ':pres'
for _, e in ipairs(redis.call('SMEMBERS', pres)) do
  local p = split(e)
  local app, ch, user, sock = p[1], p[2], p[3], p[4]
  local base = ':' .. app .. ':' .. ch
  if redis.call('HDEL', prefix .. ':pconn' .. base, user .. '\31' .. sock) == 1 then
    local counts = prefix .. ':pcount' .. base
    local n = redis.call('HINCRBY', counts, user, -1)
    if n <= 0 then
      redis.call('HDEL', counts, user)
      redis.call('HDEL', prefix .. ':pres' .. base, user)
      local token = hold('r\31' .. app .. '\31' .. ch .. '\31' .. user)
      for _, v in ipairs({'m', app, ch, user, token}) do table.insert(out, v) end
    end
  end
end
redis.call('DEL', pres)
local subs = prefix .. ':node:' .. node .. ':subs'
local flat = redis.call('HGETALL', subs)
for i = 1, #flat, 2 do
  local p = split(flat[i])
  local app, ch = p[1], p[2]
  local key = prefix .. ':subs:' .. app
  local total = redis.call('HINCRBY', key, ch, 0 - tonumber(flat[i + 1]))
  if total <= 0 then
    redis.call('HDEL', key, ch)
    local token = hold('v\31' .. app .. '\31' .. ch)
    for _, v in ipairs({'v', app, ch, token}) do table.insert(out, v) end
  end
end
redis.call('DEL', subs)
local users = prefix .. ':node:' .. node .. ':users'
for _, e in ipairs(redis.call('SMEMBERS', users)) do
  local p = split(e)
  local app, user, sock = p[1], p[2], p[3]
  if redis.call('HDEL', prefix .. ':uconn:' .. app, user .. '\31' .. sock) == 1 then
    local online = prefix .. ':users:' .. app
    if redis.call('HINCRBY', online, user, -1) <= 0 then
      redis.call('HDEL', online, user)
      table.insert(out, 'o'); table.insert(out, app); table.insert(out, user)
    end
  end
end
redis.call('DEL', users)
local conns = prefix .. ':node:' .. node .. ':conns'
flat = redis.call('HGETALL', conns)
for i = 1, #flat, 2 do
  if redis.call('HINCRBY', prefix .. ':conns', flat[i], 0 - tonumber(flat[i + 1])) <= 0 then
    redis.call('HDEL', prefix .. ':conns', flat[i])
  end
end
redis.call('DEL', conns)
redis.call('DEL', prefix .. ':node:' .. node .. ':registered')
if ARGV[6] == '1' then redis.call('SET', prefix .. ':node:' .. node .. ':swept', '1', 'EX', 86400) end
return out
"#;

/// KEYS: the nodes set, the node's registration, its tombstone. ARGV: now (ms), node id.
/// Answers 2 when the node was swept, 1 when its registration was missing, else 0.
const BEAT: &str = r#"
local fresh = redis.call('SET', KEYS[2], '1', 'NX')
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if redis.call('DEL', KEYS[3]) == 1 then return 2 end
if fresh then return 1 end
return 0
"#;

pub struct RedisNodes {
    link: Rc<Link>,
    keys: Rc<Keys>,
    heartbeat: Duration,
    timeout: Duration,
    /// How long the webhook holds the sweep places last if nobody releases them.
    hold: Duration,
    /// Since when this node's beats have been reaching Redis without a failure.
    in_touch_since: Cell<Option<Instant>>,
    /// Whether this node judges the others now (logged when it starts again).
    watching: Cell<bool>,
    /// The live nodes at the last sweep.
    known: RefCell<BTreeSet<String>>,
    counters: Arc<ClusterCounters>,
}

impl RedisNodes {
    pub fn new(
        link: Rc<Link>,
        keys: Rc<Keys>,
        heartbeat: Duration,
        timeout: Duration,
        hold: Duration,
        counters: Arc<ClusterCounters>,
    ) -> Self {
        RedisNodes {
            link,
            keys,
            heartbeat,
            timeout,
            hold,
            in_touch_since: Cell::new(None),
            watching: Cell::new(false),
            known: RefCell::default(),
            counters,
        }
    }

    fn set(&self) -> String {
        format!("{}:nodes", self.keys.prefix)
    }

    /// One log line per node that joined, and per node that left without being declared dead
    /// here (gracefully, or swept by another node).
    fn log_changes(&self, live: Vec<String>, dead: &[String]) {
        let live: BTreeSet<String> = live.into_iter().collect();
        let known = self.known.replace(live.clone());
        if known.is_empty() {
            let all: Vec<&str> = live.iter().map(String::as_str).collect();
            return log::info!("cluster: live nodes: {}", all.join(", "));
        }
        for joined in live.difference(&known) {
            log::info!("cluster: node {joined} joined");
        }
        for left in known.difference(&live).filter(|n| !dead.contains(n)) {
            log::info!("cluster: node {left} left");
        }
    }

    async fn sweep_node(
        &self,
        node: &str,
        cutoff_ms: u64,
        tombstone: bool,
    ) -> Result<Vec<Departure>, ClusterError> {
        let cutoff = cutoff_ms.to_string();
        let set = self.set();
        // Unique: this node sweeps a node once per moment.
        let tokens = format!("{}-sweep-{}-", self.keys.node, crate::clock::unix_us());
        let hold_ms = self.hold.as_millis().max(1).to_string();
        let tombstone = if tombstone { "1" } else { "0" };
        let args = [
            &*self.keys.prefix,
            node,
            &*cutoff,
            &*tokens,
            &*hold_ms,
            tombstone,
        ];
        let flat: Vec<String> = super::eval(&self.link, SWEEP, &[&set], &args).await?;
        Ok(departures(&flat))
    }
}

/// The sweep's flat answer as departures.
fn departures(flat: &[String]) -> Vec<Departure> {
    let mut out = Vec::new();
    let mut rest = flat;
    loop {
        match rest {
            [kind, app, ch, user, hold, tail @ ..] if kind == "m" => {
                out.push(Departure::Member {
                    app_id: app.clone(),
                    channel: ch.clone(),
                    user_id: user.clone(),
                    hold: hold.as_str().into(),
                });
                rest = tail;
            }
            [kind, app, ch, hold, tail @ ..] if kind == "v" => {
                out.push(Departure::Vacated {
                    app_id: app.clone(),
                    channel: ch.clone(),
                    hold: hold.as_str().into(),
                });
                rest = tail;
            }
            [kind, app, user, tail @ ..] if kind == "o" => {
                out.push(Departure::Offline {
                    app_id: app.clone(),
                    user_id: user.clone(),
                });
                rest = tail;
            }
            _ => return out,
        }
    }
}

impl Nodes for RedisNodes {
    fn heartbeat(&self) -> Option<Duration> {
        Some(self.heartbeat)
    }

    fn start(&self) -> StateFuture<'_, Vec<Departure>> {
        // What a node of this id held before it restarted is gone.
        let now = crate::clock::unix_ms();
        Box::pin(async move { self.sweep_node(&self.keys.node, now, false).await })
    }

    fn leave(&self) -> StateFuture<'_, Vec<Departure>> {
        let now = crate::clock::unix_ms();
        Box::pin(async move {
            let gone = self.sweep_node(&self.keys.node, now, false).await?;
            log::info!("cluster: node {} leaves the cluster", self.keys.node);
            Ok(gone)
        })
    }

    fn beat(&self) -> StateFuture<'_, Beat> {
        Box::pin(async move {
            let (set, registered) = (self.set(), self.keys.node("registered"));
            let swept = self.keys.node("swept");
            let now = crate::clock::unix_ms().to_string();
            let args = [&*now, &*self.keys.node];
            let keys = [&*set, &*registered, &*swept];
            let answer = super::eval::<i64>(&self.link, BEAT, &keys, &args).await;
            let Ok(answer) = answer else {
                self.in_touch_since.set(None);
                self.watching.set(false);
                return answer.map(|_| Beat::Registered);
            };
            if self.in_touch_since.get().is_none() {
                self.in_touch_since.set(Some(Instant::now()));
            }
            Ok(match answer {
                2 => Beat::Swept,
                1 => Beat::Lost,
                _ => Beat::Registered,
            })
        })
    }

    fn sweep(&self) -> StateFuture<'_, Vec<Departure>> {
        Box::pin(async move {
            // Judge others only after a whole timeout in touch: after an outage they need
            // that long to beat again.
            let in_touch = self.in_touch_since.get().map(|t| t.elapsed());
            if in_touch.is_none_or(|t| t < self.timeout) {
                return Ok(Vec::new());
            }
            if !self.watching.replace(true) {
                log::info!(
                    "cluster: watching the other nodes (in touch with Redis for {} s)",
                    self.timeout.as_secs()
                );
            }
            let timeout = self.timeout.as_millis() as u64;
            let cutoff = crate::clock::unix_ms().saturating_sub(timeout);
            let mut cmd = redis::cmd("ZRANGEBYSCORE");
            cmd.arg(self.set()).arg("-inf").arg(cutoff);
            let dead: Vec<String> = super::query(&self.link, cmd).await?;
            let mut live = redis::cmd("ZRANGEBYSCORE");
            live.arg(self.set()).arg(format!("({cutoff}")).arg("+inf");
            let live: Vec<String> = super::query(&self.link, live).await?;
            let count = i64::try_from(live.len()).unwrap_or(i64::MAX);
            self.counters.live_nodes.store(count, Ordering::Relaxed);
            self.log_changes(live, &dead);
            let up = i64::from(self.link.connected());
            self.counters.connected.store(up, Ordering::Relaxed);
            let mut out = Vec::new();
            for node in dead.iter().filter(|n| **n != self.keys.node) {
                let gone = self.sweep_node(node, cutoff, true).await?;
                log::warn!(
                    "cluster: node {node} is dead (silent over {} s); {} departures",
                    self.timeout.as_secs(),
                    gone.len()
                );
                out.extend(gone);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departures_are_read_from_the_flat_answer() {
        let flat: Vec<String> = [
            "m",
            "a",
            "presence-x",
            "u1",
            "t1",
            "v",
            "a",
            "news",
            "t2",
            "o",
            "a",
            "u2",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            departures(&flat),
            [
                Departure::Member {
                    app_id: "a".into(),
                    channel: "presence-x".into(),
                    user_id: "u1".into(),
                    hold: "t1".into()
                },
                Departure::Vacated {
                    app_id: "a".into(),
                    channel: "news".into(),
                    hold: "t2".into()
                },
                Departure::Offline {
                    app_id: "a".into(),
                    user_id: "u2".into()
                }
            ]
        );
    }
}
