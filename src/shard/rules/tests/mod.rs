//! The rules of docs/protocol.md as a shard applies them, driven without sockets: a connection in a
//! real hub, real signatures, and the effects each message asks for.

mod client_events;
mod presence_join;
mod signin;

use super::{Effects, Outgoing, on_disconnect, on_message};
use crate::app::Apps;
use crate::auth;
use crate::bus::{ApiCommand, Question, RequestId};
use crate::config::{AppConfig, WebhookConfig};
use crate::protocol::errors::SubscriptionRefusal;
use crate::protocol::{ClientMessage, ErrorCode, SocketId};
use crate::shard::hub::ConnKey;
use crate::shard::state::{ShardState, Waiter};
use serde_json::Value;
use std::sync::Arc;

const KEY: &str = "app-key";
const SECRET: &str = "app-secret";

struct World {
    apps: Arc<Apps>,
    state: ShardState,
    made: u64,
}

impl World {
    fn new() -> World {
        Self::with(|_| {})
    }

    fn with(tweak: impl FnOnce(&mut AppConfig)) -> World {
        let mut app = AppConfig {
            id: "app-id".into(),
            key: KEY.into(),
            secret: SECRET.into(),
            enable_client_messages: true,
            ..AppConfig::default()
        };
        tweak(&mut app);
        World {
            apps: Apps::new(&[app]),
            state: ShardState::new(
                0,
                1,
                64 * 1024,
                crate::fair_share::Cap {
                    entries: 100,
                    bytes: 1 << 20,
                },
            ),
            made: 0,
        }
    }

    /// An app with one webhook endpoint that wants `kind`.
    fn hooked(kind: &str) -> World {
        Self::with(|a| {
            a.webhooks = vec![WebhookConfig {
                url: "http://127.0.0.1:1/".into(),
                event_types: vec![kind.into()],
                channel_prefix: String::new(),
                headers: Default::default(),
            }]
        })
    }

    fn connect(&mut self) -> ConnKey {
        self.made += 1;
        let socket = SocketId::new(0, self.made, 1000 + self.made as u32);
        self.state.hub.add(socket, self.apps.get(app()).idx, 0)
    }

    fn socket(&self, key: ConnKey) -> String {
        self.state.hub.conn(key).unwrap().socket_id().to_string()
    }

    fn send(&mut self, key: ConnKey, json: &str) -> Effects {
        let mut parsed = json.as_bytes().to_vec();
        let mut buffers = simd_json::Buffers::default();
        let message = ClientMessage::parse(&mut parsed, &mut buffers).unwrap();
        let app = self.apps.get(app()).clone();
        on_message(&mut self.state, &app, key, message, json.as_bytes())
    }

    fn subscribe(&mut self, key: ConnKey, channel: &str, auth: Option<&str>) -> Effects {
        let data = match auth {
            Some(a) => serde_json::json!({ "channel": channel, "auth": a }),
            None => serde_json::json!({ "channel": channel }),
        };
        let msg = serde_json::json!({ "event": "pusher:subscribe", "data": data });
        self.send(key, &msg.to_string())
    }

    fn channel_token(&self, key: ConnKey, channel: &str, data: Option<&str>) -> String {
        let message = auth::channel_auth_message(&self.socket(key), channel, data);
        format!("{KEY}:{}", auth::sign(SECRET, message.as_bytes()))
    }

    fn subscribe_private(&mut self, key: ConnKey, channel: &str) -> Effects {
        let token = self.channel_token(key, channel, None);
        self.subscribe(key, channel, Some(&token))
    }

    fn join_presence(&mut self, key: ConnKey, channel: &str, channel_data: &str) -> Effects {
        let token = self.channel_token(key, channel, Some(channel_data));
        let data =
            serde_json::json!({ "channel": channel, "auth": token, "channel_data": channel_data });
        let msg = serde_json::json!({ "event": "pusher:subscribe", "data": data });
        self.send(key, &msg.to_string())
    }

    fn signin(&mut self, key: ConnKey, user_data: &str) -> Effects {
        let message = format!("{}::user::{user_data}", self.socket(key));
        let token = format!("{KEY}:{}", auth::sign(SECRET, message.as_bytes()));
        let data = serde_json::json!({ "auth": token, "user_data": user_data });
        let msg = serde_json::json!({ "event": "pusher:signin", "data": data });
        self.send(key, &msg.to_string())
    }

    /// Answers the presence join a report asked for, as the API core would.
    fn answer(
        &mut self,
        request: RequestId,
        verdict: Result<String, SubscriptionRefusal>,
    ) -> Option<Effects> {
        let Some(Waiter::Join(conn)) = self.state.outstanding.answered(request) else {
            panic!("no presence join waits for {request:?}");
        };
        super::join::answered(&mut self.state, &self.apps, conn, request, verdict).map(|(_, e)| e)
    }

    fn subscribed(&self, key: ConnKey, channel: &str) -> bool {
        self.state.hub.is_subscribed(key, channel)
    }
}

fn app() -> crate::app::AppIdx {
    crate::app::AppIdx(0)
}

/// The JSON of every frame, in order (a pre-encoded frame's WebSocket header stripped).
fn frames(e: &Effects) -> Vec<Value> {
    e.frames
        .iter()
        .map(|f| match f {
            Outgoing::Json(s) => serde_json::from_str(s).unwrap(),
            Outgoing::Static(s) => serde_json::from_str(s).unwrap(),
            Outgoing::Frame(f) => serde_json::from_slice(&f[2..]).unwrap(),
        })
        .collect()
}

fn events(e: &Effects) -> Vec<String> {
    frames(e)
        .iter()
        .map(|f| f["event"].as_str().unwrap().to_string())
        .collect()
}

/// The code of the only frame, a `pusher:error`.
fn error_code(e: &Effects) -> u64 {
    let f = frames(e);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["event"], "pusher:error", "{f:?}");
    f[0]["data"]["code"].as_u64().unwrap()
}

/// The status of the only frame, a `pusher:subscription_error`.
fn refusal_status(e: &Effects) -> u64 {
    let f = frames(e);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["event"], "pusher:subscription_error", "{f:?}");
    f[0]["data"]["status"].as_u64().unwrap()
}

/// The request id of the presence join among the reports.
fn join_request(e: &Effects) -> RequestId {
    e.reports
        .iter()
        .find_map(|r| match r {
            ApiCommand::Ask {
                from,
                question: Question::PresenceJoin(_),
            } => Some(from.request),
            _ => None,
        })
        .expect("a presence join was asked")
}

fn report_kinds(e: &Effects) -> Vec<&'static str> {
    e.reports
        .iter()
        .map(|r| match r {
            ApiCommand::Ask { .. } => "join",
            ApiCommand::PresenceLeave { .. } => "leave",
            ApiCommand::Subscriptions { delta: 1, .. } => "+1",
            ApiCommand::Subscriptions { .. } => "-1",
            ApiCommand::UserOnline { .. } => "online",
            ApiCommand::UserOffline { .. } => "offline",
            ApiCommand::CacheMiss { .. } => "cache_miss",
            _ => "other",
        })
        .collect()
}

#[test]
fn ping_is_answered_and_unknown_events_are_ignored() {
    let mut w = World::new();
    let c = w.connect();
    assert_eq!(
        events(&w.send(c, r#"{"event":"pusher:ping","data":{}}"#)),
        ["pusher:pong"]
    );
    let other = w.send(c, r#"{"event":"pusher:whatever","data":{}}"#);
    assert!(other.frames.is_empty() && other.reports.is_empty() && other.close.is_none());
}

#[test]
fn public_subscribe_is_counted_and_a_repeat_refused() {
    let mut w = World::new();
    let c = w.connect();
    let e = w.subscribe(c, "news", None);
    assert_eq!(events(&e), ["pusher_internal:subscription_succeeded"]);
    assert_eq!(frames(&e)[0]["channel"], "news");
    assert_eq!(report_kinds(&e), ["+1"]);
    assert!(w.subscribed(c, "news"));
    assert!(!w.state.hub.conn(c).unwrap().is_authenticated());
    let again = w.subscribe(c, "news", None);
    assert_eq!(error_code(&again), 4300);
    assert!(again.reports.is_empty());
}

#[test]
fn bad_channel_names_are_refused_with_4300() {
    let mut w = World::new();
    let c = w.connect();
    assert_eq!(error_code(&w.subscribe(c, "a b", None)), 4300);
    assert_eq!(error_code(&w.subscribe(c, &"x".repeat(201), None)), 4300);
    assert!(w.state.hub.conn(c).unwrap().channel_count() == 0);
}

#[test]
fn private_channels_need_a_valid_signature() {
    let mut w = World::new();
    let c = w.connect();
    for channel in ["private-a", "private-encrypted-a"] {
        assert_eq!(refusal_status(&w.subscribe(c, channel, None)), 401);
        let wrong = format!("{KEY}:{}", "0".repeat(64));
        assert_eq!(refusal_status(&w.subscribe(c, channel, Some(&wrong))), 401);
        // Another connection's token does not fit this socket id.
        let other = w.connect();
        let theirs = w.channel_token(other, channel, None);
        assert_eq!(refusal_status(&w.subscribe(c, channel, Some(&theirs))), 401);
        assert!(!w.subscribed(c, channel));
        let e = w.subscribe_private(c, channel);
        assert_eq!(events(&e), ["pusher_internal:subscription_succeeded"]);
        assert!(w.subscribed(c, channel));
    }
    assert!(w.state.hub.conn(c).unwrap().is_authenticated());
}

#[test]
fn server_to_user_channels_are_for_that_user_only() {
    let mut w = World::new();
    let c = w.connect();
    assert_eq!(
        refusal_status(&w.subscribe(c, "#server-to-user-42", None)),
        403
    );
    w.signin(c, r#"{"id":"42"}"#);
    assert_eq!(
        refusal_status(&w.subscribe(c, "#server-to-user-43", None)),
        403
    );
    let e = w.subscribe(c, "#server-to-user-42", None);
    assert_eq!(events(&e), ["pusher_internal:subscription_succeeded"]);
}

#[test]
fn unsubscribe_leaves_the_index_and_is_counted() {
    let mut w = World::new();
    let c = w.connect();
    w.subscribe(c, "news", None);
    let e = w.send(
        c,
        r#"{"event":"pusher:unsubscribe","data":{"channel":"news"}}"#,
    );
    assert!(e.frames.is_empty());
    assert_eq!(report_kinds(&e), ["-1"]);
    assert!(!w.subscribed(c, "news"));
}

#[test]
fn cache_channels_replay_the_last_event_or_say_miss() {
    let mut w = World::new();
    let c = w.connect();
    let e = w.subscribe(c, "cache-a", None);
    assert_eq!(
        events(&e),
        [
            "pusher_internal:subscription_succeeded",
            "pusher:cache_miss"
        ]
    );
    assert_eq!(report_kinds(&e), ["+1"], "no webhook wants cache_miss");
    let event = br#"{"event":"e","channel":"cache-b","data":"1"}"#;
    let frame: crate::shard::outbox::Frame = crate::ws::frame::text(event).into();
    w.state.last_events.store(app(), "cache-b", frame, 10);
    let hit = w.subscribe(c, "cache-b", None);
    assert_eq!(
        events(&hit),
        ["pusher_internal:subscription_succeeded", "e"]
    );

    let mut hooked = World::hooked("cache_miss");
    let c = hooked.connect();
    let e = hooked.subscribe(c, "cache-a", None);
    assert_eq!(report_kinds(&e), ["+1", "cache_miss"]);
}

#[test]
fn in_a_cluster_a_subscription_waits_for_the_nodes_interest() {
    let mut w = World::new();
    w.state.clustered = true;
    let c = w.connect();
    let e = w.subscribe(c, "news", None);
    assert!(e.frames.is_empty(), "nothing until the API core answers");
    let ApiCommand::Ask {
        question: Question::Subscribe { channel, .. },
        from,
    } = &e.reports[0]
    else {
        panic!("{:?}", e.reports)
    };
    assert_eq!(&**channel, "news");
    assert!(!w.subscribed(c, "news"));
    assert_eq!(
        error_code(&w.subscribe(c, "news", None)),
        4300,
        "pending counts"
    );
    let done = w.answer(from.request, Ok("{}".into())).unwrap();
    assert_eq!(events(&done), ["pusher_internal:subscription_succeeded"]);
    assert_eq!(report_kinds(&done), ["+1"]);
    assert!(w.subscribed(c, "news"));
    assert!(
        w.state
            .hub
            .conn(c)
            .unwrap()
            .joins()
            .presence()
            .next()
            .is_none()
    );

    // Given up while pending: no error, nothing to report, and the late answer is dropped.
    let e = w.subscribe(c, "sport", None);
    let left = w.send(
        c,
        r#"{"event":"pusher:unsubscribe","data":{"channel":"sport"}}"#,
    );
    assert!(
        left.frames.is_empty() && left.reports.is_empty(),
        "{left:?}"
    );
    let Some(ApiCommand::Ask { from, .. }) = e.reports.first() else {
        unreachable!()
    };
    assert!(w.answer(from.request, Ok("{}".into())).is_none());
    assert!(!w.subscribed(c, "sport"));
}
