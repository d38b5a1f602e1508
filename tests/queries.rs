//! Channel queries (docs/http-api.md) with subscribers on every shard: `GET /channels`,
//! `/channels/{channel}`, `/channels/{channel}/users`, `info` on publish, and the 400 rules.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn subscribe_presence(ws: &mut Ws, channel: &str, user: &str) {
    ws.send_presence_subscribe(channel, &json!({ "user_id": user }).to_string());
    ws.expect("pusher_internal:subscription_succeeded");
}

/// Counts reach the API core a moment after `subscription_succeeded`: wait (bounded) until
/// the listing shows `expected`.
fn converge(api: &mut Api, params: &[(&str, &str)], expected: &Value) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = api.get("/channels", params);
        assert_eq!(r.status, 200, "{}", r.body);
        let body = r.json();
        if &body == expected {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "counts never converged: {body} != {expected}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn channel_queries_are_exact_across_shards() {
    let server = Server::start(&[("RINGCAST_SHARDS", "2")]);
    let mut news: Vec<Ws> = (0..6).map(|_| server.ws()).collect();
    for ws in &mut news {
        ws.subscribe("news");
    }
    let mut p1 = server.ws();
    let mut p2 = server.ws();
    let mut p3 = server.ws();
    subscribe_presence(&mut p1, "presence-room", "u1");
    subscribe_presence(&mut p2, "presence-room", "u1");
    subscribe_presence(&mut p3, "presence-room", "u2");
    let mut api = server.api();

    let all = json!({"channels":{"news":{"subscription_count":6},"presence-room":{"subscription_count":3}}});
    converge(&mut api, &[("info", "subscription_count")], &all);
    assert_eq!(
        api.get("/channels", &[]).json(),
        json!({"channels":{"news":{},"presence-room":{}}})
    );
    assert_eq!(
        api.get(
            "/channels",
            &[
                ("filter_by_prefix", "presence-"),
                ("info", "user_count,subscription_count")
            ]
        )
        .json(),
        json!({"channels":{"presence-room":{"user_count":2,"subscription_count":3}}})
    );
    assert_eq!(api.get("/channels", &[("info", "user_count")]).status, 400);
    assert_eq!(
        api.get(
            "/channels",
            &[("filter_by_prefix", "news"), ("info", "user_count")]
        )
        .status,
        400
    );

    assert_eq!(
        api.get("/channels/news", &[("info", "subscription_count")])
            .json(),
        json!({"occupied":true,"subscription_count":6})
    );
    assert_eq!(
        api.get("/channels/news", &[]).json(),
        json!({"occupied":true})
    );
    assert_eq!(
        api.get("/channels/nobody-here", &[]).json(),
        json!({"occupied":false})
    );
    assert_eq!(
        api.get("/channels/news", &[("info", "user_count")]).status,
        400
    );
    assert_eq!(
        api.get(
            "/channels/presence-room",
            &[("info", "user_count,subscription_count")]
        )
        .json(),
        json!({"occupied":true,"user_count":2,"subscription_count":3})
    );
    assert_eq!(
        api.get("/channels/presence-room/users", &[]).json(),
        json!({"users":[{"id":"u1"},{"id":"u2"}]})
    );
    assert_eq!(api.get("/channels/news/users", &[]).status, 400);
    assert_eq!(api.get("/channels/bad%20name", &[]).status, 400);

    // info on publish and on batch items.
    let r = api.post("/events", &json!({"name":"e","channels":["news","presence-room"],"data":"x","info":"subscription_count,user_count"}));
    assert_eq!(
        r.json(),
        json!({"channels":{"news":{"subscription_count":6},"presence-room":{"user_count":2,"subscription_count":3}}})
    );
    let r = api.post(
        "/batch_events",
        &json!({"batch":[{"name":"e","channel":"news","data":"x","info":"subscription_count"},{"name":"e","channel":"presence-room","data":"x","info":"user_count"}]}),
    );
    assert_eq!(
        r.json(),
        json!({"batch":[{"subscription_count":6},{"user_count":2}]})
    );

    // Leaving: an unsubscribe and a disconnect on the presence channel, all of news.
    p1.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}));
    p3.close();
    for ws in news {
        ws.close();
    }
    let left = json!({"channels":{"presence-room":{"subscription_count":1}}});
    converge(&mut api, &[("info", "subscription_count")], &left);
    assert_eq!(
        api.get("/channels/presence-room/users", &[]).json(),
        json!({"users":[{"id":"u1"}]})
    );
    // What u1's remaining connection saw: u2 come, both publishes, u2 go (u1's other
    // connection leaving changed nothing for the membership).
    p2.expect("pusher_internal:member_added");
    p2.expect("e");
    p2.expect("e");
    let removed = p2.expect("pusher_internal:member_removed");
    assert_eq!(removed["data"], r#"{"user_id":"u2"}"#);
    p2.ping();
}

fn count_of(ev: &Value) -> u64 {
    assert_eq!(ev["event"], "pusher_internal:subscription_count", "{ev}");
    let data: Value = serde_json::from_str(ev["data"].as_str().expect("data is a string")).unwrap();
    data["subscription_count"].as_u64().unwrap()
}

#[test]
fn subscription_count_events_follow_every_change_when_enabled() {
    let server = Server::with_config(&format!(
        "{}{}",
        dev_app_toml("subscription_count_events = true"),
        app_toml("plain", "")
    ));
    let mut a = server.ws();
    a.subscribe("room");
    assert_eq!(count_of(&a.event()), 1);
    let mut b = server.ws();
    b.subscribe("room");
    assert_eq!(count_of(&a.event()), 2);
    assert_eq!(count_of(&b.event()), 2);
    b.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":"room"}}));
    assert_eq!(count_of(&a.event()), 1);
    b.close();

    // Presence channels have member events instead.
    let mut p = server.ws();
    subscribe_presence(&mut p, "presence-x", "u1");
    let mut api = server.api();
    converge(
        &mut api,
        &[("filter_by_prefix", "presence-")],
        &json!({"channels":{"presence-x":{}}}),
    );
    api.trigger("presence-x", "marker", "m");
    p.expect("marker");

    // An app without the setting gets none.
    let mut q = Ws::connect(server.addr, "/app/plain-key?protocol=7");
    q.subscribe("room");
    let mut plain = server.api_for("plain");
    converge(&mut plain, &[], &json!({"channels":{"room":{}}}));
    plain.trigger("room", "marker", "m");
    q.expect("marker");
}
