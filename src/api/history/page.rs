//! `GET /channels/{channel}/history` (docs/http-api.md): one page of a channel's retained events, in
//! either direction, within optional serial and time bounds, with a cursor to the next page.
//!
//! A cursor names the stream, the direction and the serial the next page starts at, so
//! following cursors visits every retained event exactly once even while new events arrive
//! (they get higher serials, which a `newest_first` walk has already passed and an
//! `oldest_first` walk reaches in order).

use crate::api::cluster::history::{Ask, Bounds, Direction, HistoryStore, Retention, Window};
use crate::api::request::Authed;
use crate::http::{ApiError, ApiResponse};
use serde::Serialize;
use serde_json::value::RawValue;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

fn tag(d: Direction) -> char {
    match d {
        Direction::NewestFirst => 'n',
        Direction::OldestFirst => 'o',
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
        format!("{}{}-{}", tag(self.direction), self.serial, self.stream_id)
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

fn continuity<'a>(w: &'a Window, bounds: &Bounds) -> Continuity<'a> {
    let truncated = w.oldest.serial > 1;
    // Events before the oldest retained one are gone; the bounds may not reach back there.
    let reaches_gone = bounds.start_serial.is_none_or(|s| s < w.oldest.serial)
        && bounds
            .start_time_ms
            .is_none_or(|t| t < w.oldest.published_at_ms);
    Continuity {
        stream_id: Some(&w.stream_id),
        oldest_available_serial: Some(w.oldest.serial),
        newest_available_serial: Some(w.newest.serial),
        oldest_available_published_at_ms: Some(w.oldest.published_at_ms),
        newest_available_published_at_ms: Some(w.newest.published_at_ms),
        retained_messages: w.messages,
        retained_bytes: w.bytes,
        complete: !(truncated && reaches_gone),
        truncated_by_retention: truncated,
    }
}

/// One page of `channel`'s history, as `req` asks for it.
pub async fn page(
    history: &dyn HistoryStore,
    req: &Authed<'_>,
    channel: &str,
) -> Result<ApiResponse, ApiError> {
    if req.app.config.history_max_messages == 0 {
        return Err(ApiError::NotFound(
            "history is off for this app (history_max_messages = 0)".into(),
        ));
    }
    let q = parse_query(req)?;
    // One more than the page, to know whether there is a next one.
    let ask = Ask {
        direction: q.direction,
        from: q.cursor.as_ref().map(|c| c.serial),
        bounds: q.bounds,
        count: q.limit + 1,
    };
    let window = history
        .window(req.app.idx, channel, Retention::of(req.app), ask)
        .await?;
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
    let Some(w) = window else {
        return Ok(json_page(&empty));
    };
    if q.cursor
        .as_ref()
        .is_some_and(|c| c.stream_id != w.stream_id)
    {
        return Err(bad(
            "the cursor belongs to a stream this channel no longer has; start again",
        ));
    }
    let mut items = Vec::with_capacity(q.limit.min(w.items.len()));
    for e in w.items.iter().take(q.limit) {
        let message: &RawValue =
            serde_json::from_slice(&e.message).map_err(|_| bad("stored event is not JSON"))?;
        items.push(Item {
            stream_id: &w.stream_id,
            serial: e.serial,
            published_at_ms: e.published_at_ms,
            message_id: format!("{}-{}", w.stream_id, e.serial),
            event_name: &e.name,
            operation_kind: "append",
            payload_size_bytes: e.data_len,
            message,
        });
    }
    let next = w.items.get(q.limit).map(|e| Cursor {
        direction: q.direction,
        serial: e.serial,
        stream_id: w.stream_id.clone(),
    });
    let page = Page {
        items,
        has_more: next.is_some(),
        next_cursor: next.map(|c| c.encode()),
        continuity: continuity(&w, &q.bounds),
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
