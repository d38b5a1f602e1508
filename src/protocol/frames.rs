//! The JSON text of every event the server sends (docs/protocol.md: `data` is a JSON
//! *string* everywhere except in `pusher:error` and `pusher:signin_success`, where it is an
//! object). These return the WebSocket payload only; `ws::frame` adds the frame header.

use super::socket_id::SocketId;
use std::fmt::Write;

/// `s` as a JSON string literal, quotes included.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

pub fn connection_established(socket_id: SocketId, activity_timeout: u64) -> String {
    let inner = format!(r#"{{"socket_id":"{socket_id}","activity_timeout":{activity_timeout}}}"#);
    format!(
        r#"{{"event":"pusher:connection_established","data":{}}}"#,
        json_string(&inner)
    )
}

/// `pusher:error` with a code of the error table (`protocol::errors`).
pub fn error(code: u16, message: &str) -> String {
    format!(
        r#"{{"event":"pusher:error","data":{{"code":{code},"message":{}}}}}"#,
        json_string(message)
    )
}

pub const PONG: &str = r#"{"event":"pusher:pong","data":{}}"#;
pub const PING: &str = r#"{"event":"pusher:ping","data":{}}"#;

/// `pusher_internal:subscription_succeeded`; `data_json` is the unencoded data (`{}` or the
/// presence payload) and is encoded into a string here.
pub fn subscription_succeeded(channel: &str, data_json: &str) -> String {
    format!(
        r#"{{"event":"pusher_internal:subscription_succeeded","channel":{},"data":{}}}"#,
        json_string(channel),
        json_string(data_json)
    )
}

/// `pusher:signin_success`: `data` is an object holding the `user_data` string.
pub fn signin_success(user_data: &str) -> String {
    format!(
        r#"{{"event":"pusher:signin_success","data":{{"user_data":{}}}}}"#,
        json_string(user_data)
    )
}

/// `pusher_internal:watchlist_events` with one event (`online` or `offline`).
pub fn watchlist_event(name: &str, user_ids: &[&str]) -> String {
    let data =
        serde_json::json!({ "events": [{ "name": name, "user_ids": user_ids }] }).to_string();
    format!(
        r#"{{"event":"pusher_internal:watchlist_events","data":{}}}"#,
        json_string(&data)
    )
}

/// `pusher:cache_miss`: a cache channel has no (unexpired) last event.
pub fn cache_miss(channel: &str) -> String {
    format!(
        r#"{{"event":"pusher:cache_miss","channel":{}}}"#,
        json_string(channel)
    )
}

/// `pusher:subscription_error`, which pusher-js and Laravel Echo report per channel.
pub fn subscription_error(channel: &str, error: &str, status: u16) -> String {
    format!(
        r#"{{"event":"pusher:subscription_error","channel":{},"data":{{"type":"AuthError","error":{},"status":{status}}}}}"#,
        json_string(channel),
        json_string(error)
    )
}

/// A channel event. `data_literal` is already a JSON value (normally a string literal taken
/// byte-for-byte from the publisher); it is embedded as is, never re-encoded.
pub fn channel_event(
    event: &str,
    channel: &str,
    data_literal: &str,
    user_id: Option<&str>,
) -> String {
    let mut out = String::with_capacity(40 + event.len() + channel.len() + data_literal.len());
    let _ = write!(
        out,
        r#"{{"event":{},"channel":{},"data":{}"#,
        json_string(event),
        json_string(channel),
        data_literal
    );
    if let Some(uid) = user_id {
        let _ = write!(out, r#","user_id":{}"#, json_string(uid));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_rule() {
        let id: SocketId = "123.456".parse().unwrap();
        assert_eq!(
            connection_established(id, 120),
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#
        );
        assert_eq!(
            error(4300, "x\"y"),
            r#"{"event":"pusher:error","data":{"code":4300,"message":"x\"y"}}"#
        );
        assert_eq!(
            subscription_succeeded("a", "{}"),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"a","data":"{}"}"#
        );
        assert_eq!(
            channel_event("e", "c", r#""{\"a\":1}""#, Some("u1")),
            r#"{"event":"e","channel":"c","data":"{\"a\":1}","user_id":"u1"}"#
        );
        let v: serde_json::Value =
            serde_json::from_str(&subscription_error("private-a", "bad", 401)).unwrap();
        assert_eq!(v["data"]["status"], 401);
        assert_eq!(v["data"]["type"], "AuthError");
    }
}
