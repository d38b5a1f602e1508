//! What a webhook reports: one [`Event`] per occurrence, rendered as the JSON object a webhook
//! body's `events` array carries (docs/webhooks.md).

use crate::bus::ClientEventReport;
use crate::protocol::SocketId;
use crate::webhook_kind::Kind;
use serde_json::json;

/// Something a webhook reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ChannelOccupied {
        channel: Box<str>,
    },
    ChannelVacated {
        channel: Box<str>,
    },
    MemberAdded {
        channel: Box<str>,
        user_id: Box<str>,
    },
    MemberRemoved {
        channel: Box<str>,
        user_id: Box<str>,
    },
    ClientEvent {
        channel: Box<str>,
        event: Box<str>,
        data: Box<str>,
        socket_id: Box<str>,
        user_id: Option<Box<str>>,
    },
    CacheMiss {
        channel: Box<str>,
    },
    SubscriptionCount {
        channel: Box<str>,
        count: u64,
    },
}

impl Event {
    pub fn kind(&self) -> Kind {
        match self {
            Event::ChannelOccupied { .. } => Kind::ChannelOccupied,
            Event::ChannelVacated { .. } => Kind::ChannelVacated,
            Event::MemberAdded { .. } => Kind::MemberAdded,
            Event::MemberRemoved { .. } => Kind::MemberRemoved,
            Event::ClientEvent { .. } => Kind::ClientEvent,
            Event::CacheMiss { .. } => Kind::CacheMiss,
            Event::SubscriptionCount { .. } => Kind::SubscriptionCount,
        }
    }

    pub fn channel(&self) -> &str {
        match self {
            Event::ChannelOccupied { channel }
            | Event::ChannelVacated { channel }
            | Event::MemberAdded { channel, .. }
            | Event::MemberRemoved { channel, .. }
            | Event::ClientEvent { channel, .. }
            | Event::CacheMiss { channel }
            | Event::SubscriptionCount { channel, .. } => channel,
        }
    }

    /// The `client_event` of a relayed client event, from what its shard reported.
    pub fn client_event(channel: &str, report: &ClientEventReport, sender: SocketId) -> Event {
        // `data` as the client sent it: a JSON string's contents, or the JSON text of anything
        // else.
        let raw = &*report.data;
        let data = serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string());
        Event::ClientEvent {
            channel: channel.into(),
            event: report.event.clone(),
            data: data.into(),
            socket_id: sender.to_string().into(),
            user_id: report.user_id.clone(),
        }
    }

    /// The event's JSON object in a webhook body.
    pub fn to_json(&self) -> String {
        let name = self.kind().name();
        let channel = self.channel();
        let value = match self {
            Event::MemberAdded { user_id, .. } | Event::MemberRemoved { user_id, .. } => {
                json!({ "name": name, "channel": channel, "user_id": &**user_id })
            }
            Event::ClientEvent {
                event,
                data,
                socket_id,
                user_id,
                ..
            } => {
                let mut v = json!({ "name": name, "channel": channel, "event": &**event,
                                    "data": &**data, "socket_id": &**socket_id });
                if let Some(u) = user_id {
                    v["user_id"] = json!(&**u);
                }
                v
            }
            Event::SubscriptionCount { count, .. } => {
                json!({ "name": name, "channel": channel, "subscription_count": count })
            }
            _ => json!({ "name": name, "channel": channel }),
        };
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_the_spec_says() {
        let e = Event::ClientEvent {
            channel: "private-a".into(),
            event: "client-x".into(),
            data: "{\"k\":1}".into(),
            socket_id: "1.2".into(),
            user_id: None,
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            v,
            json!({"name":"client_event","channel":"private-a","event":"client-x",
                   "data":"{\"k\":1}","socket_id":"1.2"})
        );
        let c = Event::SubscriptionCount {
            channel: "a".into(),
            count: 3,
        };
        assert_eq!(
            c.to_json(),
            r#"{"channel":"a","name":"subscription_count","subscription_count":3}"#
        );
    }
}
