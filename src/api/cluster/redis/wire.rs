//! How a [`NodeEvent`] travels through Redis: a small JSON envelope naming the sending node,
//! with the event's frame embedded as the JSON it already is (never re-encoded), and the
//! Redis channel each event goes to.

use crate::api::cluster::NodeEvent;
use crate::protocol::SocketId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    /// The sending node.
    #[serde(borrow)]
    o: Cow<'a, str>,
    #[serde(borrow)]
    a: Cow<'a, str>,
    /// When the sending node accepted it (µs since the Unix epoch), for the bus latency.
    #[serde(default)]
    t: u64,
    /// A broadcast: channel, frame, excluded socket, cache channel.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    c: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    p: Option<&'a RawValue>,
    /// A frame that is not JSON (never sent by ringcast itself), as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    h: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    cache: bool,
    /// A user: to terminate everywhere, or (with `on`) who came online or went offline.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    u: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on: Option<bool>,
}

impl<'a> Envelope<'a> {
    fn user(origin: &'a str, t: u64, app: &'a str, user: &'a str, on: Option<bool>) -> Self {
        Envelope {
            o: origin.into(),
            a: app.into(),
            t,
            c: None,
            p: None,
            h: None,
            x: None,
            cache: false,
            u: Some(user.into()),
            on,
        }
    }
}

/// The Redis channel that carries an app channel's broadcasts. Channel names cannot contain
/// `:`, so the last one separates them from the app id.
pub fn broadcast_channel(prefix: &str, app_id: &str, channel: &str) -> String {
    format!("{prefix}:b:{app_id}:{channel}")
}

/// The Redis channel every node listens to (cluster-wide commands).
pub fn all_channel(prefix: &str) -> String {
    format!("{prefix}:all")
}

/// The channel `event` goes to.
pub fn channel_for(prefix: &str, event: &NodeEvent) -> String {
    match event {
        NodeEvent::Broadcast {
            app_id, channel, ..
        } => broadcast_channel(prefix, app_id, channel),
        NodeEvent::TerminateUser { .. } | NodeEvent::UserStatus { .. } => all_channel(prefix),
    }
}

pub fn encode(origin: &str, sent_us: u64, event: &NodeEvent) -> Vec<u8> {
    let envelope = match event {
        NodeEvent::Broadcast {
            app_id,
            channel,
            payload,
            except,
            cacheable,
        } => {
            // The frame is the JSON text the API core encoded; embedded as it is.
            let raw = std::str::from_utf8(payload)
                .ok()
                .and_then(|text| serde_json::from_str::<&RawValue>(text).ok());
            Envelope {
                o: origin.into(),
                a: (**app_id).into(),
                t: sent_us,
                c: Some((**channel).into()),
                h: raw.is_none().then(|| hex::encode(payload)),
                p: raw,
                x: except.map(|s| s.to_string()),
                cache: *cacheable,
                u: None,
                on: None,
            }
        }
        NodeEvent::TerminateUser { app_id, user_id } => {
            Envelope::user(origin, sent_us, app_id, user_id, None)
        }
        NodeEvent::UserStatus {
            app_id,
            user_id,
            online,
        } => Envelope::user(origin, sent_us, app_id, user_id, Some(*online)),
    };
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// A message from the bus: who sent it, when, and what.
pub struct Received {
    pub origin: String,
    pub sent_us: u64,
    pub event: NodeEvent,
}

/// The message; `None` for one that is not ringcast's.
pub fn decode(bytes: &[u8]) -> Option<Received> {
    let e: Envelope = serde_json::from_slice(bytes).ok()?;
    let payload = match (e.p, &e.h) {
        (Some(raw), _) => Some(raw.get().as_bytes().into()),
        (None, Some(h)) => hex::decode(h).ok().map(Vec::into_boxed_slice),
        (None, None) => None,
    };
    let event = match (e.c, payload, e.u) {
        (Some(channel), Some(payload), None) => NodeEvent::Broadcast {
            app_id: e.a.as_ref().into(),
            channel: channel.as_ref().into(),
            payload,
            except: e.x.and_then(|s| s.parse::<SocketId>().ok()),
            cacheable: e.cache,
        },
        (None, None, Some(user_id)) => match e.on {
            None => NodeEvent::TerminateUser {
                app_id: e.a.as_ref().into(),
                user_id: user_id.as_ref().into(),
            },
            Some(online) => NodeEvent::UserStatus {
                app_id: e.a.as_ref().into(),
                user_id: user_id.as_ref().into(),
                online,
            },
        },
        _ => return None,
    };
    Some(Received {
        origin: e.o.to_string(),
        sent_us: e.t,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_with_the_frame_untouched() {
        let frame = br#"{"event":"e","channel":"c","data":"{\"a\": 1.50}"}"#;
        let b = NodeEvent::Broadcast {
            app_id: "app:1".into(),
            channel: "private-c".into(),
            payload: frame.to_vec().into_boxed_slice(),
            except: Some("12.34".parse().unwrap()),
            cacheable: true,
        };
        let back = decode(&encode("n1", 7, &b)).unwrap();
        assert_eq!(
            (back.origin.as_str(), back.sent_us, &back.event),
            ("n1", 7, &b)
        );
        let t = NodeEvent::TerminateUser {
            app_id: "a".into(),
            user_id: "u\"1".into(),
        };
        assert_eq!(decode(&encode("n2", 0, &t)).unwrap().event, t);
        let on = NodeEvent::UserStatus {
            app_id: "a".into(),
            user_id: "u1".into(),
            online: true,
        };
        assert_eq!(decode(&encode("n2", 0, &on)).unwrap().event, on);
        assert!(decode(b"not json").is_none());
        let bytes = NodeEvent::Broadcast {
            app_id: "a".into(),
            channel: "c".into(),
            payload: vec![0, 159, 1].into_boxed_slice(),
            except: None,
            cacheable: false,
        };
        assert_eq!(
            decode(&encode("n", 0, &bytes)).unwrap().event,
            bytes,
            "any bytes travel"
        );
        assert_eq!(
            broadcast_channel("rc", "app:1", "news"),
            "rc:b:app:1:news",
            "the last colon separates the channel"
        );
    }
}
