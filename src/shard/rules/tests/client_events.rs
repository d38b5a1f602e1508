//! Client events: every rule of docs/protocol.md.

use super::*;

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

    let mut w = World::hooked("client_event");
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
