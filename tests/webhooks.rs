//! Webhooks (docs/webhooks.md) against a real local receiver that verifies every signature: occupancy
//! and membership judged across shards, holds that cancel, client events, cache misses,
//! subscription counts, filters, extra headers, retries after a 500, a dead and a slow endpoint
//! that do not affect delivery, and the flush at shutdown.

mod common;
use common::cluster::join;
use common::metrics::metric_reaches;
use common::receiver::{Gate, Receiver};
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;

fn hook(url: &str, extra: &str) -> String {
    format!("[[apps.webhooks]]\nurl = \"{url}\"\n{extra}\n")
}

/// A two-shard server whose dev app has the given webhook tables.
fn server(app_extra: &str, hooks: &[String], hold_ms: &str) -> Server {
    server_with(app_extra, hooks, hold_ms, &[])
}

fn server_with(app_extra: &str, hooks: &[String], hold_ms: &str, env: &[(&str, &str)]) -> Server {
    let toml = dev_app_toml(&format!("{app_extra}\n{}", hooks.concat()));
    let mut all = vec![
        ("RINGCAST_SHARDS", "2"),
        ("RINGCAST_WEBHOOK_HOLD_MS", hold_ms),
    ];
    all.extend_from_slice(env);
    Server::with_config_env(&toml, &all)
}

/// A server like [`server`] with its metrics on the returned port.
fn server_with_metrics(app_extra: &str, hooks: &[String], hold_ms: &str) -> (Server, u16) {
    let port = free_port();
    let env = [("RINGCAST_METRICS_PORT", &*port.to_string())];
    (server_with(app_extra, hooks, hold_ms, &env), port)
}

/// The occupancy events of `channel`, up to the first `until`.
fn names_on(r: &mut Receiver, channel: &str, until: &str) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        let e = r.event_where(|e| {
            e["channel"] == channel
                && (e["name"] == "channel_occupied" || e["name"] == "channel_vacated")
        });
        let name = e["name"].as_str().unwrap_or_default().to_string();
        names.push(name.clone());
        if name == until {
            return names;
        }
    }
}

fn unsubscribe(ws: &mut Ws, channel: &str) {
    ws.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":channel}}));
    ws.ping();
}

#[test]
fn occupancy_and_membership_follow_the_whole_cluster() {
    let mut hooks = Receiver::start(APP_KEY, APP_SECRET, &[]);
    let server = server("", &[hook(&hooks.url(), "")], "200");
    let mut a = server.ws_on_shard(0);
    let mut b = server.ws_on_shard(1);
    a.subscribe("room");
    b.subscribe("room");
    unsubscribe(&mut a, "room");
    unsubscribe(&mut b, "room");
    assert_eq!(
        names_on(&mut hooks, "room", "channel_vacated"),
        ["channel_occupied", "channel_vacated"]
    );

    // One user with a connection on each shard, another with one.
    let mut u1_a = server.ws_on_shard(0);
    let mut u1_b = server.ws_on_shard(1);
    let mut u2 = server.ws_on_shard(1);
    for (ws, user) in [(&mut u1_a, "u1"), (&mut u1_b, "u1"), (&mut u2, "u2")] {
        ws.send_presence_subscribe("presence-room", &format!(r#"{{"user_id":"{user}"}}"#));
        ws.expect("pusher_internal:subscription_succeeded");
    }
    u1_a.close();
    u1_b.close();
    let mut members = Vec::new();
    while members.len() < 3 {
        let e = hooks.event_where(|e| e["name"].as_str().is_some_and(|n| n.starts_with("member_")));
        members.push((e["name"].clone(), e["user_id"].clone()));
    }
    assert_eq!(
        members,
        [
            (json!("member_added"), json!("u1")),
            (json!("member_added"), json!("u2")),
            (json!("member_removed"), json!("u1")),
        ]
    );
}

#[test]
fn a_return_within_the_hold_cancels_vacated_and_member_removed() {
    let mut hooks = Receiver::start(APP_KEY, APP_SECRET, &[]);
    let server = server("", &[hook(&hooks.url(), "")], "2000");
    let mut ws = server.ws();
    ws.subscribe("flap");
    unsubscribe(&mut ws, "flap");
    ws.subscribe("flap");
    ws.send_presence_subscribe("presence-flap", r#"{"user_id":"u1"}"#);
    ws.expect("pusher_internal:subscription_succeeded");
    unsubscribe(&mut ws, "presence-flap");
    ws.send_presence_subscribe("presence-flap", r#"{"user_id":"u1"}"#);
    ws.expect("pusher_internal:subscription_succeeded");
    // Now leave for good: a held event that was not cancelled would come before these.
    ws.close();
    assert_eq!(
        names_on(&mut hooks, "flap", "channel_vacated"),
        ["channel_occupied", "channel_vacated"]
    );
    let members: Vec<Value> = (0..2)
        .map(|_| {
            hooks.event_where(|e| {
                e["channel"] == "presence-flap"
                    && e["name"] != "channel_occupied"
                    && e["name"] != "channel_vacated"
            })["name"]
                .clone()
        })
        .collect();
    assert_eq!(members, ["member_added", "member_removed"]);
}

#[test]
fn client_events_cache_misses_counts_filters_and_headers() {
    let mut all = Receiver::start(APP_KEY, APP_SECRET, &[]);
    let mut presence_clients = Receiver::start(APP_KEY, APP_SECRET, &[]);
    let server = server(
        "enable_client_messages = true",
        &[
            hook(&all.url(), "headers = { \"X-Custom\" = \"yes\" }"),
            hook(
                &presence_clients.url(),
                "event_types = [\"client_event\"]\nchannel_prefix = \"presence-\"",
            ),
        ],
        "100",
    );
    let mut a = server.ws_on_shard(0);
    let mut b = server.ws_on_shard(1);
    a.subscribe_private("private-chat");
    b.subscribe_private("private-chat");
    a.send_json(json!({"event":"client-typing","channel":"private-chat","data":{"x":1}}));
    b.expect("client-typing");
    let e = all.event_where(|e| e["name"] == "client_event");
    assert_eq!(
        e,
        json!({"name":"client_event","channel":"private-chat","event":"client-typing",
               "data":"{\"x\":1}","socket_id":a.socket_id})
    );
    let counts: Vec<Value> = (0..2)
        .map(|_| {
            all.event_where(|e| e["name"] == "subscription_count")["subscription_count"].clone()
        })
        .collect();
    assert_eq!(counts, [1, 2]);

    b.send_presence_subscribe("presence-x", r#"{"user_id":"u7"}"#);
    b.expect("pusher_internal:subscription_succeeded");
    b.send_json(json!({"event":"client-hi","channel":"presence-x","data":"hello"}));
    let e = presence_clients.event();
    assert_eq!(
        e,
        json!({"name":"client_event","channel":"presence-x","event":"client-hi",
               "data":"hello","socket_id":b.socket_id,"user_id":"u7"})
    );

    a.subscribe("cache-quotes");
    a.expect("pusher:cache_miss");
    let e = all.event_where(|e| e["name"] == "cache_miss");
    assert_eq!(e, json!({"name":"cache_miss","channel":"cache-quotes"}));

    // Extra headers ride along; `time_ms` is the sending time.
    let before = unix_now() * 1000;
    a.subscribe("headers");
    let d = loop {
        let d = all.delivery();
        if d.events().iter().any(|e| e["channel"] == "headers") {
            break d;
        }
    };
    assert_eq!(d.header("X-Custom"), Some("yes"));
    assert!(d.body["time_ms"].as_u64().unwrap() >= before);
}

#[test]
fn a_failed_delivery_is_retried_with_a_fresh_signature() {
    let hooks = Receiver::start(APP_KEY, APP_SECRET, &[500, 503]);
    let server = server(
        "",
        &[hook(&hooks.url(), "event_types = [\"channel_occupied\"]")],
        "100",
    );
    let mut ws = server.ws();
    ws.subscribe("retry-me");
    let attempts: Vec<(u16, Vec<Value>)> = (0..3)
        .map(|_| {
            let d = hooks.delivery();
            (d.status, d.events())
        })
        .collect();
    let occupied = vec![json!({"name":"channel_occupied","channel":"retry-me"})];
    assert_eq!(
        attempts,
        [
            (500, occupied.clone()),
            (503, occupied.clone()),
            (200, occupied)
        ]
    );
}

#[test]
fn a_dead_and_a_slow_endpoint_do_not_affect_delivery_or_other_endpoints() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // Accepts connections and never answers.
    let slow = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_addr = slow.local_addr().unwrap();
    std::thread::spawn(move || {
        let held: Vec<_> = slow.incoming().collect();
        drop(held);
    });
    let mut good = Receiver::start(APP_KEY, APP_SECRET, &[]);
    let server = server(
        "",
        &[
            hook(&format!("http://{dead}/hooks"), ""),
            hook(&format!("http://{slow_addr}/hooks"), ""),
            hook(&good.url(), ""),
        ],
        "300",
    );
    let mut subscribers = server.clients_on_both_shards(6);
    for ws in &mut subscribers {
        ws.subscribe("live");
    }
    let mut churn = server.ws();
    let mut api = server.api();
    for i in 0..200 {
        let channel = format!("churn-{i}");
        churn.subscribe(&channel);
        unsubscribe(&mut churn, &channel);
        api.trigger("live", "tick", &i.to_string());
    }
    for ws in &mut subscribers {
        for i in 0..200 {
            let e = ws.expect("tick");
            assert_eq!(e["data"], i.to_string());
        }
    }
    assert_eq!(
        names_on(&mut good, "churn-199", "channel_vacated"),
        ["channel_occupied", "channel_vacated"]
    );
}

#[test]
fn shutdown_sends_held_webhooks() {
    let mut hooks = Receiver::start(APP_KEY, APP_SECRET, &[]);
    let mut server = server("", &[hook(&hooks.url(), "")], "60000");
    let mut ws = server.ws();
    ws.subscribe("last");
    assert_eq!(hooks.event_on("last")["name"], "channel_occupied");
    unsubscribe(&mut ws, "last");
    server.signal(libc::SIGTERM);
    hooks.event_where(|e| e["channel"] == "last" && e["name"] == "channel_vacated");
    assert_eq!(server.wait_exit(), Some(0));
}

#[test]
fn shutdown_reports_every_departure_of_the_closed_clients() {
    let mut hooks = Receiver::start(APP_KEY, APP_SECRET, &[]);
    let many = "max_channels_per_connection = 5000\nmax_subscribes_per_second = 0";
    let occupancy = r#"event_types = ["channel_occupied", "channel_vacated"]"#;
    let mut server = server(many, &[hook(&hooks.url(), occupancy)], "60000");
    // More departures per shard than its queue to the API core holds (and fewer in all than
    // an endpoint queues of one type), still subscribed when the server stops: its "stopped"
    // report must come after all of them.
    let mut clients = [server.ws_on_shard(0), server.ws_on_shard(1)];
    let per_client = 4500;
    for (i, ws) in clients.iter_mut().enumerate() {
        for n in 0..per_client {
            let channel = format!("stay-{i}-{n}");
            ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":channel}}));
        }
        for _ in 0..per_client {
            ws.expect("pusher_internal:subscription_succeeded");
        }
    }
    let count = clients.len() * per_client;
    for _ in 0..count {
        hooks.event_where(|e| e["name"] == "channel_occupied");
    }
    server.signal(libc::SIGTERM);
    for _ in 0..count {
        hooks.event_where(|e| e["name"] == "channel_vacated");
    }
    assert_eq!(server.wait_exit(), Some(0));
}

#[test]
fn a_flood_of_one_event_type_cannot_crowd_out_another() {
    // The endpoint holds its first request, so everything after it queues.
    let gate = Arc::new(Gate::default());
    let mut hooks = Receiver::start_gated(APP_KEY, APP_SECRET, &[], gate.clone());
    let flooded = "max_channels_per_connection = 20000\nmax_subscribes_per_second = 0";
    let (server, port) = server_with_metrics(flooded, &[hook(&hooks.url(), "")], "60000");
    // An anonymous client makes more `channel_occupied` than an endpoint queues of one type.
    let mut flood = server.ws();
    let n = 12_000;
    for i in 0..n {
        flood.send_json(json!({"event":"pusher:subscribe","data":{"channel":format!("f-{i}")}}));
    }
    for _ in 0..n {
        flood.expect("pusher_internal:subscription_succeeded");
    }
    let dropped = "ringcast_webhook_events_dropped_total{kind=\"channel_occupied\"}";
    metric_reaches(port, dropped, 1.0);
    let mut member = server.ws();
    join(&mut member, "presence-room", "u1");
    gate.open();
    let added = hooks.event_where(|e| e["name"] == "member_added");
    assert_eq!(added["channel"], "presence-room");
}

#[test]
fn a_channel_occupied_and_vacated_in_one_batch_cancel_out() {
    let gate = Arc::new(Gate::default());
    let mut hooks = Receiver::start_gated(APP_KEY, APP_SECRET, &[], gate.clone());
    let occupancy = r#"event_types = ["channel_occupied", "channel_vacated"]"#;
    let (server, port) = server_with_metrics("", &[hook(&hooks.url(), occupancy)], "0");
    let mut ws = server.ws();
    ws.subscribe("first");
    gate.until_waiting();
    // Both queue behind the held request, so the sender takes them into one batch.
    ws.subscribe("flash");
    unsubscribe(&mut ws, "flash");
    let queued = |kind: &str| format!("ringcast_webhook_events_queued{{kind=\"{kind}\"}}");
    metric_reaches(port, &queued("channel_occupied"), 1.0);
    metric_reaches(port, &queued("channel_vacated"), 1.0);
    gate.open();
    metric_reaches(port, "ringcast_webhook_events_coalesced_total", 2.0);
    ws.subscribe("marker");
    let next = hooks.event_where(|e| e["channel"] != "first");
    assert_eq!(next["channel"], "marker", "{next}");
}

#[test]
fn shutdown_retries_the_batches_that_failed() {
    let hooks = Receiver::start(APP_KEY, APP_SECRET, &[500]);
    let mut server = server("", &[hook(&hooks.url(), "")], "60000");
    let mut ws = server.ws();
    ws.subscribe("again");
    let failed = hooks.delivery();
    assert_eq!(failed.status, 500);
    ws.close();
    // Long before the retry is due (a second after the failure), the server stops.
    server.signal(libc::SIGTERM);
    let retried = hooks.delivery();
    assert_eq!(retried.status, 200);
    assert_eq!(retried.events(), failed.events());
    assert_eq!(server.wait_exit(), Some(0));
}
