//! `GET /channels/{channel}/history` (SPEC §4.3): one page of a channel's retained events, in
//! either direction, within optional serial and time bounds, with a cursor to the next page.
//!
//! A cursor names the stream, the direction and the serial the next page starts at, so
//! following cursors visits every retained event exactly once even while new events arrive
//! (they get higher serials, which a `newest_first` walk has already passed and an
//! `oldest_first` walk reaches in order).

use super::retention;
use super::store::{History, Stored, Stream};
use crate::api::request::Authed;
use crate::http::{ApiError, ApiResponse};
use serde::Serialize;
use serde_json::value::RawValue;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Direction {
    NewestFirst,
    OldestFirst,
}

impl Direction {
    fn tag(self) -> char {
        match self {
            Direction::NewestFirst => 'n',
            Direction::OldestFirst => 'o',
        }
    }
}

/// Inclusive bounds asked for; echoed in the answer.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Bounds {
    start_serial: Option<u64>,
    end_serial: Option<u64>,
    start_time_ms: Option<u64>,
    end_time_ms: Option<u64>,
}

impl Bounds {
    fn admits(&self, e: &Stored) -> bool {
        self.start_serial.is_none_or(|s| e.serial >= s)
            && self.end_serial.is_none_or(|s| e.serial <= s)
            && self.start_time_ms.is_none_or(|t| e.published_at_ms >= t)
            && self.end_time_ms.is_none_or(|t| e.published_at_ms <= t)
    }
}

/// Where a page starts: `{n|o}{serial}-{stream_id}`, URL-safe as it is.
#[derive(Debug, PartialEq, Eq)]
struct Cursor {
    direction: Direction,
    serial: u64,
    stream_id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        format!("{}{}-{}", self.direction.tag(), self.serial, self.stream_id)
    }

    fn decode(s: &str) -> Option<Cursor> {
        let direction = match s.as_bytes().first()? {
            b'n' => Direction::NewestFirst,
            b'o' => Direction::OldestFirst,
            _ => return None,
        };
        let (serial, stream_id) = s.get(1..)?.split_once('-')?;
        if stream_id.is_empty() || !stream_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Cursor {
            direction,
            serial: serial.parse().ok()?,
            stream_id: stream_id.to_string(),
        })
    }
}

struct Query {
    limit: usize,
    direction: Direction,
    cursor: Option<Cursor>,
    bounds: Bounds,
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::BadRequest(m.into())
}

fn number(req: &Authed<'_>, name: &str) -> Result<Option<u64>, ApiError> {
    req.param(name)
        .map(|v| {
            v.parse()
                .map_err(|_| bad(format!("{name} must be a non-negative integer")))
        })
        .transpose()
}

fn parse_query(req: &Authed<'_>) -> Result<Query, ApiError> {
    let limit = match number(req, "limit")? {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
        Some(_) => return Err(bad(format!("limit must be 1 to {MAX_LIMIT}"))),
    };
    let direction = match req.param("direction") {
        None | Some("newest_first") => Direction::NewestFirst,
        Some("oldest_first") => Direction::OldestFirst,
        Some(d) => {
            return Err(bad(format!(
                "direction {d}: use newest_first or oldest_first"
            )));
        }
    };
    let cursor = match req.param("cursor") {
        None | Some("") => None,
        Some(c) => {
            let cursor = Cursor::decode(c).ok_or_else(|| bad("invalid cursor"))?;
            if cursor.direction != direction {
                return Err(bad("the cursor belongs to the other direction"));
            }
            Some(cursor)
        }
    };
    let bounds = Bounds {
        start_serial: number(req, "start_serial")?,
        end_serial: number(req, "end_serial")?,
        start_time_ms: number(req, "start_time_ms")?,
        end_time_ms: number(req, "end_time_ms")?,
    };
    if bounds.start_serial > bounds.end_serial && bounds.end_serial.is_some()
        || bounds.start_time_ms > bounds.end_time_ms && bounds.end_time_ms.is_some()
    {
        return Err(bad("a start bound is after its end bound"));
    }
    Ok(Query {
        limit,
        direction,
        cursor,
        bounds,
    })
}

#[derive(Serialize)]
struct Item<'a> {
    stream_id: &'a str,
    serial: u64,
    published_at_ms: u64,
    message_id: String,
    event_name: &'a str,
    operation_kind: &'static str,
    payload_size_bytes: usize,
    message: &'a RawValue,
}

#[derive(Serialize, Default)]
struct Continuity<'a> {
    stream_id: Option<&'a str>,
    oldest_available_serial: Option<u64>,
    newest_available_serial: Option<u64>,
    oldest_available_published_at_ms: Option<u64>,
    newest_available_published_at_ms: Option<u64>,
    retained_messages: usize,
    retained_bytes: usize,
    /// Every event the bounds ask for is still retained.
    complete: bool,
    /// Retention has dropped events of this stream.
    truncated_by_retention: bool,
}

#[derive(Serialize)]
struct Page<'a> {
    items: Vec<Item<'a>>,
    direction: Direction,
    limit: usize,
    has_more: bool,
    next_cursor: Option<String>,
    bounds: Bounds,
    continuity: Continuity<'a>,
}

fn continuity<'a>(stream: &'a Stream, bounds: &Bounds) -> Continuity<'a> {
    let (Some(oldest), Some(newest)) = (stream.oldest(), stream.newest()) else {
        return Continuity {
            complete: true,
            ..Continuity::default()
        };
    };
    let truncated = oldest.serial > 1;
    // Events before the oldest retained one are gone; the bounds may not reach back there.
    let reaches_gone = bounds.start_serial.is_none_or(|s| s < oldest.serial)
        && bounds
            .start_time_ms
            .is_none_or(|t| t < oldest.published_at_ms);
    Continuity {
        stream_id: Some(&stream.id),
        oldest_available_serial: Some(oldest.serial),
        newest_available_serial: Some(newest.serial),
        oldest_available_published_at_ms: Some(oldest.published_at_ms),
        newest_available_published_at_ms: Some(newest.published_at_ms),
        retained_messages: stream.events.len(),
        retained_bytes: stream.bytes,
        complete: !(truncated && reaches_gone),
        truncated_by_retention: truncated,
    }
}

/// The retained events a page may show, in the page's order, starting at the cursor.
fn walk<'a>(stream: &'a Stream, q: &'a Query) -> Box<dyn Iterator<Item = &'a Stored> + 'a> {
    let admitted = move |e: &&Stored| q.bounds.admits(e);
    match (q.direction, &q.cursor) {
        (Direction::NewestFirst, c) => {
            let from = c.as_ref().map_or(u64::MAX, |c| c.serial);
            Box::new(
                stream
                    .events
                    .iter()
                    .rev()
                    .skip_while(move |e| e.serial > from)
                    .filter(admitted),
            )
        }
        (Direction::OldestFirst, c) => {
            let from = c.as_ref().map_or(0, |c| c.serial);
            Box::new(
                stream
                    .events
                    .iter()
                    .skip_while(move |e| e.serial < from)
                    .filter(admitted),
            )
        }
    }
}

/// One page of `channel`'s history, as `req` asks for it.
pub fn page(
    history: &mut History,
    req: &Authed<'_>,
    channel: &str,
) -> Result<ApiResponse, ApiError> {
    if req.app.config.history_max_messages == 0 {
        return Err(ApiError::NotFound(
            "history is off for this app (history_max_messages = 0)".into(),
        ));
    }
    let q = parse_query(req)?;
    let stream = history.stream(
        req.app.idx,
        channel,
        crate::clock::unix_ms(),
        retention(req.app),
    );
    let empty = Page {
        items: Vec::new(),
        direction: q.direction,
        limit: q.limit,
        has_more: false,
        next_cursor: None,
        bounds: q.bounds,
        continuity: Continuity {
            complete: true,
            ..Continuity::default()
        },
    };
    let Some(stream) = stream else {
        return Ok(json_page(&empty));
    };
    if q.cursor
        .as_ref()
        .is_some_and(|c| *c.stream_id != *stream.id)
    {
        return Err(bad(
            "the cursor belongs to a stream this channel no longer has; start again",
        ));
    }
    let mut events = walk(stream, &q);
    let mut items = Vec::with_capacity(q.limit.min(stream.events.len()));
    for e in events.by_ref().take(q.limit) {
        let message: &RawValue = serde_json::from_slice(&e.event.payload)
            .map_err(|_| bad("stored event is not JSON"))?;
        items.push(Item {
            stream_id: &stream.id,
            serial: e.serial,
            published_at_ms: e.published_at_ms,
            message_id: format!("{}-{}", stream.id, e.serial),
            event_name: &e.name,
            operation_kind: "append",
            payload_size_bytes: e.data_len,
            message,
        });
    }
    let next = events.next().map(|e| Cursor {
        direction: q.direction,
        serial: e.serial,
        stream_id: stream.id.to_string(),
    });
    let page = Page {
        items,
        has_more: next.is_some(),
        next_cursor: next.map(|c| c.encode()),
        continuity: continuity(stream, &q.bounds),
        ..empty
    };
    Ok(json_page(&page))
}

fn json_page(page: &Page<'_>) -> ApiResponse {
    ApiResponse::json(
        200,
        serde_json::to_string(page).unwrap_or_else(|_| "{}".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            direction: Direction::OldestFirst,
            serial: 42,
            stream_id: "00ff".into(),
        };
        assert_eq!(c.encode(), "o42-00ff");
        assert_eq!(Cursor::decode("o42-00ff"), Some(c));
        for bad in ["", "x1-00", "n-00", "n1-", "n1-zz", "n1", "nfoo-00"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
