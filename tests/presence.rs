//! Presence channels across shards (docs/protocol.md): the member list on subscribe, `member_added` on a
//! user's first connection anywhere, `member_removed` on its last, numeric ids as strings,
//! limits, refusals, and `user_id` on client events.

mod common;
use common::*;
use serde_json::{Value, json};

/// Subscribes and returns the decoded presence payload of `subscription_succeeded`.
fn join(ws: &mut Ws, channel: &str, channel_data: &str) -> Value {
    ws.send_presence_subscribe(channel, channel_data);
    let ev = ws.expect("pusher_internal:subscription_succeeded");
    assert_eq!(ev["channel"], channel);
    let data: Value = serde_json::from_str(ev["data"].as_str().expect("data is a string")).unwrap();
    data["presence"].clone()
}

fn ids(presence: &Value) -> Vec<String> {
    let mut ids: Vec<String> = presence["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Publishes a marker and checks it is the next event of every client: nothing unexpected
/// (a stray member event) was delivered before it.
fn marker(server: &Server, channel: &str, clients: &mut [&mut Ws], n: u32) {
    server.api().trigger(channel, "marker", &n.to_string());
    for c in clients.iter_mut() {
        assert_eq!(c.expect("marker")["data"], n.to_string());
    }
}

fn member_data(ev: &Value) -> Value {
    serde_json::from_str(ev["data"].as_str().expect("member data is a string")).unwrap()
}

#[test]
fn members_across_shards_first_and_last_connection() {
    let server = Server::start(&[("RINGCAST_SHARDS", "2")]);
    let ch = "presence-room";
    let ann = r#"{"user_id":"u1","user_info":{"name":"Ann"}}"#;
    let bob = r#"{"user_id":7,"user_info":{"name":"Bob"}}"#;
    let mut a1 = server.ws_on_shard(0);
    let mut a2 = server.ws_on_shard(1);
    let mut b1 = server.ws_on_shard(1);
    let mut b2 = server.ws_on_shard(0);

    let p = join(&mut a1, ch, ann);
    assert_eq!(
        (ids(&p), p["count"].clone()),
        (vec!["u1".to_string()], json!(1))
    );
    assert_eq!(p["hash"]["u1"], json!({"name":"Ann"}));

    let p = join(&mut b1, ch, bob);
    assert_eq!(
        (ids(&p), p["count"].clone()),
        (vec!["7".to_string(), "u1".to_string()], json!(2))
    );
    assert_eq!(
        p["hash"]["7"],
        json!({"name":"Bob"}),
        "numeric user ids become strings"
    );
    let added = a1.expect("pusher_internal:member_added");
    assert_eq!(
        member_data(&added),
        json!({"user_id":"7","user_info":{"name":"Bob"}})
    );

    // Second connections of both users, on the other shards: no member_added.
    assert_eq!(join(&mut a2, ch, ann)["count"], 2);
    assert_eq!(join(&mut b2, ch, bob)["count"], 2);
    marker(&server, ch, &mut [&mut a1, &mut a2, &mut b1, &mut b2], 1);

    // Bob's first connection leaves by unsubscribing: he is still there through b2.
    b1.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":ch}}));
    b1.ping();
    marker(&server, ch, &mut [&mut a1, &mut a2, &mut b2], 2);

    // Client events on presence channels carry the sender's user_id.
    b2.send(&format!(
        r#"{{"event":"client-wave","channel":"{ch}","data":{{}}}}"#
    ));
    for c in [&mut a1, &mut a2] {
        let ev = c.expect("client-wave");
        assert_eq!(ev["user_id"], "7");
    }

    // Ann's connections go away one by one (one disconnects): member_removed only after the last.
    a1.close();
    marker(&server, ch, &mut [&mut a2, &mut b2], 3);
    a2.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":ch}}));
    let removed = b2.expect("pusher_internal:member_removed");
    assert_eq!(member_data(&removed), json!({"user_id":"u1"}));

    // A newcomer sees only Bob.
    let mut c = server.ws();
    let p = join(&mut c, ch, r#"{"user_id":"u3"}"#);
    assert_eq!(ids(&p), vec!["7".to_string(), "u3".to_string()]);
    assert_eq!(p["hash"]["u3"], Value::Null);
}

#[test]
fn presence_refusals_keep_the_connection() {
    let server = Server::with_config(&dev_app_toml(
        "max_presence_members_per_channel = 1\nmax_presence_member_size_kb = 1",
    ));
    let ch = "presence-small";
    let mut first = server.ws();
    join(&mut first, ch, r#"{"user_id":"u1"}"#);

    let mut ws = server.ws();
    let refuse = |ws: &mut Ws, channel: &str, status: u64| {
        let ev = ws.expect("pusher:subscription_error");
        assert_eq!(ev["channel"], channel);
        assert_eq!(ev["data"]["status"], status, "{ev}");
    };
    // Full: a second distinct user.
    ws.send_presence_subscribe(ch, r#"{"user_id":"u2"}"#);
    refuse(&mut ws, ch, 403);
    // user_info over max_presence_member_size_kb.
    let big = json!({"user_id":"u1","user_info":{"bio":"x".repeat(2000)}}).to_string();
    ws.send_presence_subscribe("presence-other", &big);
    refuse(&mut ws, "presence-other", 403);
    // No channel_data, no user_id, bad signature.
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":ch,"auth":"app-key:00"}}));
    refuse(&mut ws, ch, 400);
    ws.send_presence_subscribe(ch, r#"{"user_info":{}}"#);
    refuse(&mut ws, ch, 400);
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":ch,"auth":"app-key:00","channel_data":"{\"user_id\":\"u1\"}"}}));
    refuse(&mut ws, ch, 401);
    // The same user may add connections to a full channel.
    assert_eq!(join(&mut ws, ch, r#"{"user_id":"u1"}"#)["count"], 1);
    // Subscribing twice is a channel error.
    ws.send_presence_subscribe(ch, r#"{"user_id":"u1"}"#);
    ws.expect_error(4300);
    ws.ping();
    first.ping();
}
