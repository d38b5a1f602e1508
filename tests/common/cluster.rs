//! What the cluster tests share: nodes on one Redis, and waiting for what they announce.

use super::redis::{Redis, node};
use super::{Server, Ws};
use serde_json::{Value, json};

/// Reads events until one named `name`, returning the `data` of each `lg` event before it.
pub fn until(ws: &mut Ws, name: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let ev = ws.event();
        if ev["event"] == name {
            return seen;
        }
        if ev["event"] == "lg" {
            seen.push(ev["data"].as_str().unwrap().to_string());
        }
    }
}

pub fn three_nodes(redis: &Redis) -> [Server; 3] {
    three_nodes_with(redis, &[])
}

/// Three nodes of the cluster `t`, each with the environment `env`.
pub fn three_nodes_with(redis: &Redis, env: &[(&str, &str)]) -> [Server; 3] {
    [
        node(redis, "t", env),
        node(redis, "t", env),
        node(redis, "t", env),
    ]
}

/// The `lg` events a subscriber gets until it has seen a `done` from each of `origins`; a
/// node's own events come before its `done`, so nothing of theirs is still under way.
pub fn until_done_from(ws: &mut Ws, origins: &[&str]) -> Vec<String> {
    let mut seen = Vec::new();
    let mut done = Vec::new();
    while done.len() < origins.len() {
        let ev = ws.event();
        match ev["event"].as_str() {
            Some("lg") => seen.push(ev["data"].as_str().unwrap().to_string()),
            Some("done") => done.push(ev["data"].as_str().unwrap().to_string()),
            _ => {}
        }
    }
    done.sort();
    assert_eq!(done, origins, "each done once");
    seen
}

/// Signs in as `user`.
pub fn sign_in(ws: &mut Ws, user: &str) {
    sign_in_as(ws, &json!({ "id": user }).to_string());
}

/// Signs in with `user_data` (e.g. with a watchlist).
pub fn sign_in_as(ws: &mut Ws, user_data: &str) {
    let auth = format!(
        "{}:{}",
        super::APP_KEY,
        super::hmac_hex(
            super::APP_SECRET,
            &format!("{}::user::{user_data}", ws.socket_id)
        )
    );
    ws.send_json(json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}}));
    ws.expect("pusher:signin_success");
}

/// Joins a presence channel as `user`; returns the presence data of `subscription_succeeded`.
pub fn join(ws: &mut Ws, channel: &str, user: &str) -> Value {
    ws.send_presence_subscribe(channel, &json!({ "user_id": user }).to_string());
    let ev = ws.expect("pusher_internal:subscription_succeeded");
    serde_json::from_str(ev["data"].as_str().unwrap()).unwrap()
}

/// The presence events a member gets before the marker published next.
pub fn member_events(ws: &mut Ws, api: &mut super::Api, channel: &str) -> Vec<String> {
    api.trigger(channel, "marker", "");
    let mut out = Vec::new();
    loop {
        let ev = ws.event();
        match ev["event"].as_str() {
            Some("marker") => return out,
            Some(e) if e.starts_with("pusher_internal:member_") => {
                let data: Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
                out.push(format!("{e} {}", data["user_id"].as_str().unwrap()));
            }
            _ => {}
        }
    }
}

/// A member's presence events up to and including the first `member_removed`, and any that
/// follow it before one more marker (a second removal would show there).
pub fn until_removed(ws: &mut Ws, api: &mut super::Api, channel: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + super::WAIT;
    while !seen.iter().any(|e: &String| e.contains("member_removed")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no member_removed: {seen:?}"
        );
        seen.extend(member_events(ws, api, channel));
    }
    seen.extend(member_events(ws, api, channel));
    seen
}

/// Waits (bounded) until `GET path` on `api` answers `expected`: counts change a moment after
/// `subscription_succeeded`.
pub fn converge(api: &mut super::Api, path: &str, params: &[(&str, &str)], expected: &Value) {
    let deadline = std::time::Instant::now() + super::WAIT;
    loop {
        let r = api.get(path, params);
        assert_eq!(r.status, 200, "{}", r.body);
        if &r.json() == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never converged: {} != {expected}",
            r.body
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Nodes that beat every second and declare a node dead after two silent seconds.
pub const FAST: [(&str, &str); 2] = [
    ("RINGCAST_CLUSTER_HEARTBEAT_S", "1"),
    ("RINGCAST_CLUSTER_NODE_TIMEOUT_S", "2"),
];

/// The next event, which must be a watchlist event: its name and user ids.
pub fn watch_event(ws: &mut Ws) -> (String, Vec<String>) {
    watchlist_event(&ws.event())
}

/// A watchlist event's name and user ids.
pub fn watchlist_event(ev: &Value) -> (String, Vec<String>) {
    assert_eq!(ev["event"], "pusher_internal:watchlist_events", "{ev}");
    let data: Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
    let e = &data["events"][0];
    let ids = e["user_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    (e["name"].as_str().unwrap().to_string(), ids)
}

/// `(name, [user])` as [`watch_event`] answers it.
pub fn watched(name: &str, user: &str) -> (String, Vec<String>) {
    (name.to_string(), vec![user.to_string()])
}
