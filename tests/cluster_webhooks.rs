//! Webhooks over several nodes on a real `redis-server`, every node configured with the same
//! endpoint: each event is sent once per cluster, and a channel or member that comes back on
//! another node within the hold cancels `channel_vacated` / `member_removed`.

mod common;

use common::receiver::Receiver;
use common::redis::{Redis, node_with};
use common::{APP_KEY, APP_SECRET, Ws};
use serde_json::{Value, json};

fn unsubscribe(ws: &mut Ws, channel: &str) {
    ws.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":channel}}));
    ws.ping();
}

fn join(ws: &mut Ws, channel: &str, user: &str) {
    ws.send_presence_subscribe(channel, &json!({ "user_id": user }).to_string());
    ws.expect("pusher_internal:subscription_succeeded");
}

/// `name user_id` (or just `name`) of the events on `channel` whose name starts with `kind`,
/// up to and including `until`.
fn events_on(hooks: &mut Receiver, channel: &str, kind: &str, until: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let e: Value = hooks.event_where(|e| {
            e["channel"] == channel && e["name"].as_str().is_some_and(|n| n.starts_with(kind))
        });
        let name = e["name"].as_str().unwrap().to_string();
        seen.push(match e["user_id"].as_str() {
            Some(user) => format!("{name} {user}"),
            None => name.clone(),
        });
        if seen.last().is_some_and(|s| s == until) {
            return seen;
        }
    }
}

#[test]
fn webhooks_are_sent_once_per_cluster_and_holds_cancel_across_nodes() {
    let redis = Redis::start();
    let mut hooks = Receiver::start(APP_KEY, APP_SECRET, &[]);
    let kinds = r#"["channel_occupied","channel_vacated","member_added","member_removed"]"#;
    let toml = common::dev_app_toml(&format!(
        "[[apps.webhooks]]\nurl = \"{}\"\nevent_types = {kinds}\n",
        hooks.url()
    ));
    let hold = [("RINGCAST_WEBHOOK_HOLD_MS", "1500")];
    let nodes: Vec<_> = (0..3)
        .map(|_| node_with(&redis, "t", Some(&toml), &hold))
        .collect();
    // Occupied from two nodes: one channel_occupied.
    let mut on_a = nodes[0].ws();
    let mut on_c = nodes[2].ws();
    on_a.subscribe("flap");
    on_c.subscribe("flap");
    unsubscribe(&mut on_c, "flap");
    // Leaves on A, comes back on B within the hold: nothing.
    unsubscribe(&mut on_a, "flap");
    let mut on_b = nodes[1].ws();
    on_b.subscribe("flap");
    // The same for a presence member (and a second connection of it elsewhere).
    join(&mut on_a, "presence-flap", "u1");
    join(&mut on_c, "presence-flap", "u1");
    unsubscribe(&mut on_c, "presence-flap");
    unsubscribe(&mut on_a, "presence-flap");
    join(&mut on_b, "presence-flap", "u1");
    // Now everything leaves for good: what was held and not cancelled would come first.
    on_b.close();
    let occupancy = ["channel_occupied", "channel_vacated"];
    for channel in ["flap", "presence-flap"] {
        let seen = events_on(&mut hooks, channel, "channel_", "channel_vacated");
        assert_eq!(seen, occupancy, "{channel}");
    }
    assert_eq!(
        events_on(&mut hooks, "presence-flap", "member_", "member_removed u1"),
        ["member_added u1", "member_removed u1"]
    );
}
