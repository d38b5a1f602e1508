//! The web console (docs/console.md): one page at `/console` on `metrics_port`, never on the
//! public port, and only when `server.console_token` is set. It shows each app's live
//! figures, a live event log, the channels with a drill-down, and a form to publish a test
//! event.
//!
//! - [`access`]: the token, as a Bearer header or the login form's cookie;
//! - [`feed`]: who watches the event log and what each has not been sent (bounded, counted
//!   drops); [`events`]: the Server-Sent Events stream that sends it;
//! - [`figures`]: the overview's figures, asked of every shard ([`crate::bus::inspect`]);
//! - [`routes`]: the console's requests. Its JSON API under `/console/api/apps/{id}/` is the
//!   HTTP API itself ([`crate::api::routes::handle`]), without the app's signature.
//!
//! The API core taps what passes through it into the feed: every broadcast it hands to the
//! shards (publishes, client events, member added and removed), the shards' subscription
//! reports, and the connection events shards send only for watched apps. No secret ever
//! reaches the page.

pub mod access;
pub mod events;
pub mod feed;
pub mod figures;
pub mod routes;

use crate::app::AppIdx;
use crate::bus::Broadcast;
use crate::bus::inspect::ConnectionEvent;
use crate::protocol::SocketId;
use access::Access;
use feed::{Feed, shown_data};
use serde_json::{Value, json};
use std::cell::RefCell;

/// The console's state on the API core.
pub struct Console {
    /// `None`: no token is configured and the console answers 404.
    pub access: Option<Access>,
    pub feed: Feed,
    /// Events broadcast on this node, by app index: publishes, client events and the
    /// server's own (`pusher_internal:*`).
    events: RefCell<Vec<u64>>,
}

impl Console {
    pub fn new(token: &str) -> Console {
        Console {
            access: Access::new(token),
            feed: Feed::default(),
            events: RefCell::default(),
        }
    }

    pub fn events(&self, app: AppIdx) -> u64 {
        self.events
            .borrow()
            .get(app.0 as usize)
            .copied()
            .unwrap_or(0)
    }

    /// A broadcast the API core hands to this node's shards.
    pub fn broadcast(&self, b: &Broadcast) {
        {
            let mut events = self.events.borrow_mut();
            let at = b.app.0 as usize;
            if events.len() <= at {
                events.resize(at + 1, 0);
            }
            events[at] += 1;
        }
        // Rendered only when someone watches.
        self.feed
            .offer(b.app, Some(&b.channel), || event_entry(b).to_string());
    }

    /// A shard's subscription report.
    pub fn subscription(&self, app: AppIdx, channel: &str, socket: SocketId, delta: i64) {
        let kind = if delta > 0 {
            "subscribed"
        } else {
            "unsubscribed"
        };
        self.feed.offer(app, Some(channel), || {
            entry(kind, channel, json!({ "socket": socket.to_string() })).to_string()
        });
    }

    /// A connection of a watched app opened or closed.
    pub fn connection(&self, event: ConnectionEvent) {
        let (kind, socket, code) = match event {
            ConnectionEvent::Opened { socket, .. } => ("connected", socket, None),
            ConnectionEvent::Closed { socket, code, .. } => ("closed", socket, code),
        };
        self.feed.offer(event.app(), None, || {
            let mut fields = json!({ "socket": socket.to_string() });
            if kind == "closed" {
                fields["code"] = code.map_or(Value::Null, |c| json!(c));
            }
            entry(kind, "", fields).to_string()
        });
    }
}

/// One log entry: when, what kind, which channel (`""` for none), and the kind's fields.
fn entry(kind: &str, channel: &str, fields: Value) -> Value {
    let mut out = json!({ "at": crate::clock::unix_ms(), "kind": kind });
    if !channel.is_empty() {
        out["channel"] = json!(channel);
    }
    if let (Value::Object(out), Value::Object(fields)) = (&mut out, fields) {
        out.extend(fields);
    }
    out
}

/// The entry of a broadcast: a publish, a client event (with its sender's socket), a member
/// added or removed (with the user id), or another event of the server's own.
fn event_entry(b: &Broadcast) -> Value {
    let sent: Value = serde_json::from_slice(&b.payload).unwrap_or(Value::Null);
    let name = sent["event"].as_str().unwrap_or("");
    // `data` is a JSON string for every event but a malformed one; show its text.
    let data = match &sent["data"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let kind = match name {
        "pusher_internal:member_added" => "member_added",
        "pusher_internal:member_removed" => "member_removed",
        n if n.starts_with("client-") => "client_event",
        n if n.starts_with("pusher_internal:") || n.starts_with("pusher:") => "internal",
        _ => "publish",
    };
    let mut fields = json!({ "event": name });
    match kind {
        "member_added" | "member_removed" => {
            let member: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            fields["user_id"] = member["user_id"].clone();
        }
        _ => fields["data"] = json!(shown_data(&data)),
    }
    if kind == "client_event"
        && let Some(sender) = b.except
    {
        fields["socket"] = json!(sender.to_string());
    }
    if let Some(user) = sent["user_id"].as_str() {
        fields["user_id"] = json!(user);
    }
    entry(kind, &b.channel, fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_of(b: Broadcast) -> Value {
        let mut e = event_entry(&b);
        e.as_object_mut().unwrap().remove("at");
        e
    }

    #[test]
    fn broadcasts_are_told_apart_by_their_event() {
        let publish = Broadcast::event(AppIdx(0), "c", "greet", "\"hi\"", None);
        assert_eq!(
            entry_of(publish),
            json!({"kind":"publish","channel":"c","event":"greet","data":"hi"})
        );
        let sender: SocketId = "1.2".parse().unwrap();
        let whisper = Broadcast::event(AppIdx(0), "private-c", "client-x", "{\"a\":1}", None)
            .except(Some(sender));
        assert_eq!(
            entry_of(whisper),
            json!({"kind":"client_event","channel":"private-c","event":"client-x",
                   "data":"{\"a\":1}","socket":"1.2"})
        );
        let added = Broadcast::internal(
            AppIdx(0),
            "presence-c",
            "pusher_internal:member_added",
            "{\"user_id\":\"u1\",\"user_info\":{}}",
        );
        assert_eq!(
            entry_of(added),
            json!({"kind":"member_added","channel":"presence-c",
                   "event":"pusher_internal:member_added","user_id":"u1"})
        );
        let count = Broadcast::internal(
            AppIdx(0),
            "c",
            "pusher_internal:subscription_count",
            "{\"subscription_count\":2}",
        );
        assert_eq!(entry_of(count)["kind"], "internal");
    }
}
