//! The rules of SPEC §2–§3 as a shard applies them, driven without sockets: a connection in a
//! real hub, real signatures, and the effects each message asks for.

use super::{Effects, Outgoing, on_disconnect, on_message, presence};
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
            state: ShardState::new(0, 1, 64 * 1024),
            made: 0,
        }
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
        let Some(Waiter::PresenceJoin(conn)) = self.state.outstanding.answered(request) else {
            panic!("no presence join waits for {request:?}");
        };
        presence::answered(&mut self.state, &self.apps, conn, request, verdict).map(|(_, e)| e)
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
    assert!(w.state.hub.conn(c).unwrap().channels().is_empty());
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
fn presence_subscriptions_are_checked_before_asking() {
    let mut w = World::with(|a| a.max_presence_member_size_kb = 1);
    let c = w.connect();
    let missing = w.subscribe(c, "presence-a", Some("k:s"));
    assert_eq!(refusal_status(&missing), 400, "no channel_data");
    let data = r#"{"user_id":"u1"}"#;
    let msg = serde_json::json!({"event":"pusher:subscribe","data":{
        "channel":"presence-a","auth":format!("{KEY}:{}", "0".repeat(64)),"channel_data":data}});
    assert_eq!(refusal_status(&w.send(c, &msg.to_string())), 401);
    assert_eq!(
        refusal_status(&w.join_presence(c, "presence-a", "not json")),
        400
    );
    assert_eq!(
        refusal_status(&w.join_presence(c, "presence-a", r#"{"user_id":""}"#)),
        400
    );
    assert_eq!(
        refusal_status(&w.join_presence(c, "presence-a", r#"{"x":1}"#)),
        400
    );
    let big = format!(r#"{{"user_id":"u1","user_info":"{}"}}"#, "x".repeat(1100));
    assert_eq!(refusal_status(&w.join_presence(c, "presence-a", &big)), 403);
    assert!(w.state.outstanding.is_empty(), "nothing was asked");
}

#[test]
fn a_presence_join_is_pending_until_admitted() {
    let mut w = World::new();
    let c = w.connect();
    let e = w.join_presence(c, "presence-a", r#"{"user_id":7,"user_info":{"n":1}}"#);
    assert!(e.frames.is_empty(), "nothing until the API core answers");
    assert_eq!(report_kinds(&e), ["join"]);
    let ApiCommand::Ask {
        question: Question::PresenceJoin(j),
        ..
    } = &e.reports[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (&*j.user_id, &*j.user_info),
        ("7", r#"{"n":1}"#),
        "numbers become strings"
    );
    assert!(!w.subscribed(c, "presence-a"));
    let again = w.join_presence(c, "presence-a", r#"{"user_id":7}"#);
    assert_eq!(
        error_code(&again),
        4300,
        "a pending join counts as subscribed"
    );

    let data = r#"{"presence":{"ids":["7"],"hash":{"7":{"n":1}},"count":1}}"#;
    let done = w.answer(join_request(&e), Ok(data.into())).unwrap();
    assert_eq!(events(&done), ["pusher_internal:subscription_succeeded"]);
    assert_eq!(frames(&done)[0]["data"], data);
    assert_eq!(report_kinds(&done), ["+1"]);
    assert!(w.subscribed(c, "presence-a"));
    assert!(w.state.hub.conn(c).unwrap().is_authenticated());
}

#[test]
fn a_refused_presence_join_leaves_nothing() {
    let mut w = World::new();
    let c = w.connect();
    let e = w.join_presence(c, "presence-a", r#"{"user_id":"u1"}"#);
    let refused = w
        .answer(
            join_request(&e),
            Err(SubscriptionRefusal::ChannelFull { max: 1 }),
        )
        .unwrap();
    assert_eq!(refusal_status(&refused), 403);
    assert!(!w.subscribed(c, "presence-a"));
    assert!(
        w.state
            .hub
            .conn(c)
            .unwrap()
            .presence()
            .all()
            .next()
            .is_none()
    );
    let gone = on_disconnect(w.state.hub.conn(c).unwrap());
    assert!(gone.reports.is_empty(), "no leave for a refused join");
}

#[test]
fn subscribe_unsubscribe_subscribe_ends_subscribed_by_the_second_join() {
    let mut w = World::new();
    let c = w.connect();
    let data = r#"{"user_id":"u1"}"#;
    let first = w.join_presence(c, "presence-a", data);
    let left = w.send(
        c,
        r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-a"}}"#,
    );
    assert_eq!(report_kinds(&left), ["leave"], "a pending join is given up");
    let second = w.join_presence(c, "presence-a", data);
    assert_ne!(join_request(&first), join_request(&second));
    // The API core answers in order; the first answer belongs to a join that is gone.
    let stale = w.answer(join_request(&first), Ok("{}".into()));
    assert!(stale.is_none(), "{stale:?}");
    assert!(!w.subscribed(c, "presence-a"));
    let done = w
        .answer(join_request(&second), Ok(r#"{"presence":{}}"#.into()))
        .unwrap();
    assert_eq!(events(&done), ["pusher_internal:subscription_succeeded"]);
    assert_eq!(frames(&done)[0]["data"], r#"{"presence":{}}"#);
    assert!(w.subscribed(c, "presence-a"));
}

#[test]
fn unsubscribe_during_a_pending_join_drops_its_answer() {
    let mut w = World::new();
    let c = w.connect();
    let e = w.join_presence(c, "presence-a", r#"{"user_id":"u1"}"#);
    w.send(
        c,
        r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-a"}}"#,
    );
    assert!(w.answer(join_request(&e), Ok("{}".into())).is_none());
    assert!(!w.subscribed(c, "presence-a"));
    let not = w.send(
        c,
        r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-a"}}"#,
    );
    assert_eq!(error_code(&not), 4300);
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

fn client_event(channel: &str, data: &str) -> String {
    format!(r#"{{"event":"client-x","channel":"{channel}","data":{data}}}"#)
}

#[test]
fn client_events_follow_every_rule() {
    let mut w = World::with(|a| {
        a.max_client_events_per_second = 2;
        a.max_event_payload_kb = 1;
    });
    let c = w.connect();
    assert_eq!(
        error_code(&w.send(c, &client_event("news", "{}"))),
        4301,
        "public"
    );
    w.subscribe_private(c, "private-encrypted-a");
    let encrypted = w.send(c, &client_event("private-encrypted-a", "{}"));
    assert_eq!(error_code(&encrypted), 4301);
    assert_eq!(
        error_code(&w.send(c, &client_event("private-a", "{}"))),
        4301,
        "not subscribed"
    );
    w.subscribe_private(c, "private-a");
    let long = format!(
        r#"{{"event":"client-{}","channel":"private-a","data":{{}}}}"#,
        "x".repeat(200)
    );
    assert_eq!(error_code(&w.send(c, &long)), 4301, "event name too long");
    let big = client_event("private-a", &format!("\"{}\"", "x".repeat(1100)));
    assert_eq!(error_code(&w.send(c, &big)), 4301, "data too large");

    let raw = r#"{ "a" : 1.50 }"#;
    let ok = w.send(c, &client_event("private-a", raw));
    assert!(ok.frames.is_empty());
    let relay = ok.relay.expect("relayed");
    assert_eq!(
        relay.broadcast.except,
        w.state.hub.conn(c).map(|c| c.socket_id())
    );
    let payload = std::str::from_utf8(&relay.broadcast.payload).unwrap();
    assert!(payload.contains(raw), "data byte-for-byte: {payload}");
    assert!(relay.report.is_none(), "no webhook wants it");
    assert!(w.send(c, &client_event("private-a", "{}")).relay.is_some());
    let third = w.send(c, &client_event("private-a", "{}"));
    assert_eq!(error_code(&third), 4301, "over the rate");
    assert!(third.relay.is_none());
}

#[test]
fn client_events_need_the_app_switch_and_name_their_presence_sender() {
    let mut off = World::with(|a| a.enable_client_messages = false);
    let c = off.connect();
    off.subscribe_private(c, "private-a");
    assert_eq!(
        error_code(&off.send(c, &client_event("private-a", "{}"))),
        4301
    );

    let mut w = World::with(|a| {
        a.webhooks = vec![WebhookConfig {
            url: "http://127.0.0.1:1/".into(),
            event_types: vec!["client_event".into()],
            channel_prefix: String::new(),
            headers: Default::default(),
        }]
    });
    let c = w.connect();
    let e = w.join_presence(c, "presence-a", r#"{"user_id":"u9"}"#);
    w.answer(join_request(&e), Ok("{}".into()));
    let relay = w
        .send(c, &client_event("presence-a", r#""hi""#))
        .relay
        .unwrap();
    let payload: Value = serde_json::from_slice(&relay.broadcast.payload).unwrap();
    assert_eq!(payload["user_id"], "u9");
    let report = relay.report.expect("a webhook wants client events");
    assert_eq!((&*report.event, &*report.data), ("client-x", r#""hi""#));
}

#[test]
fn signin_checks_the_signature_and_the_user() {
    let mut w = World::new();
    let c = w.connect();
    let msg =
        r#"{"event":"pusher:signin","data":{"auth":"app-key:00","user_data":"{\"id\":\"1\"}"}}"#;
    let bad = w.send(c, msg);
    assert_eq!(bad.close.map(|c| c.code), Some(ErrorCode::Unauthorized));
    let no_id = w.signin(c, r#"{"name":"x"}"#);
    assert_eq!(no_id.close.map(|c| c.code), Some(ErrorCode::Unauthorized));
    assert!(!w.state.hub.conn(c).unwrap().is_authenticated());

    let ok = w.signin(c, r#"{"id":"u1","watchlist":["a","b"]}"#);
    assert_eq!(events(&ok), ["pusher:signin_success"]);
    assert_eq!(report_kinds(&ok), ["online"]);
    let ApiCommand::UserOnline { watchlist, .. } = &ok.reports[0] else {
        unreachable!()
    };
    assert_eq!(watchlist.len(), 2);
    let conn = w.state.hub.conn(c).unwrap();
    assert!(conn.is_authenticated());
    assert_eq!(conn.user_id().map(|u| &**u), Some("u1"));
}

#[test]
fn a_watchlist_over_100_is_cut_with_4302() {
    let mut w = World::new();
    let c = w.connect();
    let ids: Vec<String> = (0..150).map(|i| format!("w{i}")).collect();
    let data = serde_json::json!({ "id": "u1", "watchlist": ids }).to_string();
    let e = w.signin(c, &data);
    assert_eq!(events(&e), ["pusher:signin_success", "pusher:error"]);
    assert_eq!(frames(&e)[1]["data"]["code"], 4302);
    let ApiCommand::UserOnline { watchlist, .. } = &e.reports[0] else {
        unreachable!()
    };
    assert_eq!(watchlist.len(), 100);
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

    let mut hooked = World::with(|a| {
        a.webhooks = vec![WebhookConfig {
            url: "http://127.0.0.1:1/".into(),
            event_types: vec!["cache_miss".into()],
            channel_prefix: String::new(),
            headers: Default::default(),
        }]
    });
    let c = hooked.connect();
    let e = hooked.subscribe(c, "cache-a", None);
    assert_eq!(report_kinds(&e), ["+1", "cache_miss"]);
}

#[test]
fn a_departure_reports_subscriptions_presence_and_user() {
    let mut w = World::new();
    let c = w.connect();
    w.subscribe(c, "news", None);
    w.signin(c, r#"{"id":"u1"}"#);
    let joined = w.join_presence(c, "presence-a", r#"{"user_id":"u1"}"#);
    w.answer(join_request(&joined), Ok("{}".into()));
    w.join_presence(c, "presence-b", r#"{"user_id":"u1"}"#);
    let conn = w.state.hub.remove(c).unwrap();
    let mut kinds = report_kinds(&on_disconnect(&conn));
    kinds.sort();
    assert_eq!(kinds, ["-1", "-1", "leave", "leave", "offline"]);
}
