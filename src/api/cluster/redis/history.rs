//! Channel history in Redis: one stream per channel for the whole cluster. Per channel a list
//! of entries, oldest first, and a hash with the stream's id, next serial, newest time and
//! bytes. Recording and reading are Lua scripts, so serials are assigned once whatever node
//! publishes, and every node trims and reads the same stream. Both keys expire with the newest
//! event, so a channel whose events are all gone is forgotten and its next publish starts a new
//! stream.
//!
//! An entry is `serial time data_len name_len frame_len ` followed by the event name and the
//! frame, so the scripts read the numbers without parsing JSON and never touch the frame.

use super::link::Link;
use super::{Keys, eval, unavailable};
use crate::api::cluster::history::{
    Ask, Direction, Edge, HistoryStore, Retained, Retention, Window,
};
use crate::api::cluster::{ClusterError, StateFuture};
use crate::app::AppIdx;
use crate::bus::Broadcast;
use std::rc::Rc;
use std::sync::{Arc, LazyLock};

/// Drops expired entries from the front. KEYS: entries, meta; ARGV[1] now, ARGV[2] ttl (ms).
const TRIM: &str = r#"
local function head(e)
  local s, t, _, _, f = string.match(e, '^(%d+) (%d+) (%d+) (%d+) (%d+) ')
  return tonumber(s), tonumber(t), tonumber(f)
end
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
while true do
  local e = redis.call('LINDEX', KEYS[1], 0)
  if not e then break end
  local _, t, f = head(e)
  if t + ttl > now then break end
  redis.call('LPOP', KEYS[1])
  redis.call('HINCRBY', KEYS[2], 'bytes', 0 - f)
end
"#;

/// [`TRIM`], then appends. ARGV: now, ttl, max, new stream id, data_len, name, frame.
/// Answers the serial.
const RECORD: &str = r#"
local max = tonumber(ARGV[3])
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'id', ARGV[4], 'next', 1, 'last', 0, 'bytes', 0)
end
local serial = tonumber(redis.call('HGET', KEYS[2], 'next'))
local t = math.max(now, tonumber(redis.call('HGET', KEYS[2], 'last')))
local name, frame = ARGV[6], ARGV[7]
local e = string.format('%d %d %d %d %d ', serial, t, tonumber(ARGV[5]), #name, #frame)
redis.call('RPUSH', KEYS[1], e .. name .. frame)
redis.call('HSET', KEYS[2], 'next', serial + 1, 'last', t)
redis.call('HINCRBY', KEYS[2], 'bytes', #frame)
while redis.call('LLEN', KEYS[1]) > max do
  local _, _, f = head(redis.call('LPOP', KEYS[1]))
  redis.call('HINCRBY', KEYS[2], 'bytes', 0 - f)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return serial
"#;

/// [`TRIM`], then reads a window. ARGV: now, ttl, direction (`n`/`o`), lowest and highest
/// serial, earliest and latest time, count. Answers `{}` for no stream, else `{id, bytes,
/// oldest entry, newest entry, entries…}` with up to `count` admitted entries in order.
const READ: &str = r#"
local n = redis.call('LLEN', KEYS[1])
if n == 0 then return {} end
local first, last = redis.call('LINDEX', KEYS[1], 0), redis.call('LINDEX', KEYS[1], -1)
local out = {redis.call('HGET', KEYS[2], 'id') or '', redis.call('HGET', KEYS[2], 'bytes') or '0', first, last}
local o = head(first)
local lo = math.max(tonumber(ARGV[4]), o) - o
local hi = math.min(tonumber(ARGV[5]), o + n - 1) - o
local t0, t1, want = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local got, step = 0, 100
local function take(e)
  local _, t = head(e)
  if ARGV[3] == 'o' and t > t1 or ARGV[3] == 'n' and t < t0 then return false end
  if t >= t0 and t <= t1 then table.insert(out, e); got = got + 1 end
  return got < want
end
if ARGV[3] == 'o' then
  local i = lo
  while i <= hi do
    local chunk = redis.call('LRANGE', KEYS[1], i, math.min(i + step - 1, hi))
    for _, e in ipairs(chunk) do if not take(e) then return out end end
    i = i + step
  end
else
  local i = hi
  while i >= lo do
    local chunk = redis.call('LRANGE', KEYS[1], math.max(i - step + 1, lo), i)
    for k = #chunk, 1, -1 do if not take(chunk[k]) then return out end end
    i = i - step
  end
end
return out
"#;

/// The scripts as Redis runs them.
static RECORD_SCRIPT: LazyLock<String> = LazyLock::new(|| format!("{TRIM}{RECORD}"));
static READ_SCRIPT: LazyLock<String> = LazyLock::new(|| format!("{TRIM}{READ}"));

pub struct RedisHistory {
    link: Rc<Link>,
    keys: Rc<Keys>,
    /// Source of new stream ids (their uniqueness across nodes comes from the seed).
    seed: u64,
    streams: std::cell::Cell<u64>,
}

impl RedisHistory {
    pub fn new(link: Rc<Link>, keys: Rc<Keys>, seed: u64) -> RedisHistory {
        RedisHistory {
            link,
            keys,
            seed,
            streams: std::cell::Cell::new(0),
        }
    }

    fn names(&self, app: AppIdx, channel: &str) -> [String; 2] {
        let app_id = &self.keys.app_id(app);
        [
            self.keys.channel("h", app_id, channel),
            self.keys.channel("hm", app_id, channel),
        ]
    }
}

/// An entry as the scripts store it.
fn parse(entry: &[u8]) -> Option<Retained> {
    let mut numbers = [0u64; 5];
    let mut rest = entry;
    for n in &mut numbers {
        let space = rest.iter().position(|b| *b == b' ')?;
        *n = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        rest = &rest[space + 1..];
    }
    let [serial, published_at_ms, data_len, name_len, frame_len] = numbers;
    let name_len = usize::try_from(name_len).ok()?;
    let (name, frame) = rest.split_at_checked(name_len)?;
    if frame.len() as u64 != frame_len {
        return None;
    }
    Some(Retained {
        serial,
        published_at_ms,
        name: std::str::from_utf8(name).ok()?.into(),
        data_len: usize::try_from(data_len).ok()?,
        message: frame.into(),
    })
}

fn bad_entry() -> ClusterError {
    unavailable("a history entry in Redis is not ringcast's".into())
}

fn edge(entry: &[u8]) -> Result<Edge, ClusterError> {
    let e = parse(entry).ok_or_else(bad_entry)?;
    Ok(Edge {
        serial: e.serial,
        published_at_ms: e.published_at_ms,
    })
}

fn window(answer: Vec<Vec<u8>>) -> Result<Option<Window>, ClusterError> {
    let mut parts = answer.into_iter();
    let (Some(id), Some(bytes), Some(first), Some(last)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    let (oldest, newest) = (edge(&first)?, edge(&last)?);
    let items = parts
        .map(|e| parse(&e).ok_or_else(bad_entry))
        .collect::<Result<Vec<_>, _>>()?;
    let number = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<usize>().ok();
    Ok(Some(Window {
        stream_id: String::from_utf8(id).map_err(|_| bad_entry())?,
        messages: usize::try_from(newest.serial.saturating_sub(oldest.serial))
            .unwrap_or(usize::MAX)
            .saturating_add(1),
        bytes: number(&bytes).unwrap_or(0),
        oldest,
        newest,
        items,
    }))
}

impl HistoryStore for RedisHistory {
    fn record<'a>(
        &'a self,
        keep: Retention,
        event: &'a Arc<Broadcast>,
        name: &'a str,
        data_len: usize,
    ) -> StateFuture<'a, ()> {
        Box::pin(async move {
            let [list, meta] = self.names(event.app, &event.channel);
            let n = self.streams.get() + 1;
            self.streams.set(n);
            let id = crate::api::cluster::history::stream_id(self.seed, n);
            let script: &'static str = &RECORD_SCRIPT;
            let mut cmd = super::script_cmd(script);
            cmd.arg(2).arg(&list).arg(&meta);
            cmd.arg(crate::clock::unix_ms())
                .arg(keep.ttl_ms.max(1))
                .arg(keep.max_messages)
                .arg(id)
                .arg(data_len)
                .arg(name)
                .arg(&*event.payload);
            let _: i64 = super::run_script(&self.link, cmd, script).await?;
            Ok(())
        })
    }

    fn window<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        keep: Retention,
        ask: Ask,
    ) -> StateFuture<'a, Option<Window>> {
        Box::pin(async move {
            let [list, meta] = self.names(app, channel);
            let b = ask.bounds;
            let (mut lo, mut hi) = (
                b.start_serial.unwrap_or(0),
                b.end_serial.unwrap_or(u64::MAX),
            );
            match (ask.direction, ask.from) {
                (Direction::NewestFirst, Some(from)) => hi = hi.min(from),
                (Direction::OldestFirst, Some(from)) => lo = lo.max(from),
                (_, None) => {}
            }
            // Lua numbers are doubles: serials and times stay far below 2^53.
            const LIMIT: u64 = 1 << 52;
            let dir = match ask.direction {
                Direction::NewestFirst => "n",
                Direction::OldestFirst => "o",
            };
            let args = [
                crate::clock::unix_ms().to_string(),
                keep.ttl_ms.max(1).to_string(),
                dir.to_string(),
                lo.min(LIMIT).to_string(),
                hi.min(LIMIT).to_string(),
                b.start_time_ms.unwrap_or(0).min(LIMIT).to_string(),
                b.end_time_ms.unwrap_or(LIMIT).min(LIMIT).to_string(),
                ask.count.to_string(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let answer: Vec<Vec<u8>> =
                eval(&self.link, &READ_SCRIPT, &[&list, &meta], &args).await?;
            window(answer)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_garbage_does_not() {
        let e = parse(b"7 1700000000000 3 2 9 hi{\"a\":\"b\"}").unwrap();
        assert_eq!(
            (e.serial, e.published_at_ms, e.data_len, &*e.name),
            (7, 1_700_000_000_000, 3, "hi")
        );
        assert_eq!(&*e.message, b"{\"a\":\"b\"}");
        for bad in [
            &b""[..],
            b"1 2 3",
            b"1 2 3 9 1 ab",
            b"x 2 3 0 0 ",
            b"1 2 3 0 5 abc",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
