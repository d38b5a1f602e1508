//! Idempotent publishing (docs/http-api.md): a repeated key returns the first answer and delivers
//! nothing again, concurrent repeats deliver once, batch items carry their own keys, failures
//! do not use up a key, and keys expire after `idempotency_ttl_s`.

mod common;
use common::*;
use serde_json::json;
use std::sync::{Arc, Barrier};

/// Publishes a marker without a key and returns the `data` of every event before it, so a
/// test sees exactly what was delivered in between.
fn delivered_until_marker(api: &mut Api, ws: &mut Ws, channel: &str) -> Vec<String> {
    api.trigger(channel, "marker", "end");
    let mut seen = Vec::new();
    loop {
        let ev = ws.event();
        if ev["event"] == "marker" {
            return seen;
        }
        seen.push(ev["data"].as_str().unwrap_or_default().to_string());
    }
}

#[test]
fn a_repeated_key_in_the_body_or_header_delivers_once_and_repeats_the_answer() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    ws.subscribe("orders");
    let mut api = server.api();

    let body = json!({"name":"e","channel":"orders","data":"one","idempotency_key":"k-1",
                      "info":"subscription_count"});
    let first = api.post("/events", &body);
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["channels"]["orders"]["subscription_count"], 1);
    // A second subscriber changes the count; the repeat still answers the first answer.
    let mut other = server.ws();
    other.subscribe("orders");
    let counted = |api: &mut Api| {
        api.get("/channels/orders", &[("info", "subscription_count")])
            .json()["subscription_count"]
            .as_u64()
    };
    while counted(&mut api) != Some(2) {
        other.ping();
    }
    let repeat = api.post("/events", &body);
    assert_eq!(
        (repeat.status, repeat.body.as_str()),
        (200, first.body.as_str())
    );

    let header = json!({"name":"e","channel":"orders","data":"two"});
    let bytes = header.to_string();
    for _ in 0..2 {
        let r = api.call_with(
            "POST",
            "/events",
            bytes.as_bytes(),
            &[("X-Idempotency-Key", "h-1")],
        );
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    }
    // The body's key wins over the header's: a new body key publishes again.
    let mut both = header.clone();
    both["idempotency_key"] = json!("k-2");
    let r = api.call_with(
        "POST",
        "/events",
        both.to_string().as_bytes(),
        &[("X-Idempotency-Key", "h-1")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        delivered_until_marker(&mut api, &mut ws, "orders"),
        ["one", "two", "two"]
    );
}

#[test]
fn two_concurrent_identical_requests_deliver_once() {
    let server = Server::start(&[("RINGCAST_SHARDS", "2")]);
    let mut subscribers = server.clients_on_both_shards(2);
    for ws in &mut subscribers {
        ws.subscribe("race");
    }
    for round in 0..20 {
        let key = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(2));
        let answers: Vec<_> = (0..2)
            .map(|_| {
                let mut api = server.api();
                let barrier = barrier.clone();
                let body = json!({"name":"e","channel":"race","data":key,"idempotency_key":key});
                std::thread::spawn(move || {
                    barrier.wait();
                    let r = api.post("/events", &body);
                    (r.status, r.body)
                })
            })
            .collect();
        for a in answers {
            assert_eq!(a.join().unwrap(), (200, "{}".to_string()));
        }
    }
    let mut api = server.api();
    let expected: Vec<String> = (0..20).map(|r| format!("race-{r}")).collect();
    for ws in &mut subscribers {
        assert_eq!(delivered_until_marker(&mut api, ws, "race"), expected);
    }
}

#[test]
fn batch_items_carry_their_own_keys_and_a_header_key_covers_the_batch() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    ws.subscribe("b");
    let mut api = server.api();
    let item =
        |data: &str, key: &str| json!({"channel":"b","name":"e","data":data,"idempotency_key":key});
    let r = api.post(
        "/batch_events",
        &json!({"batch":[item("a","i-a"), item("b","i-b")]}),
    );
    assert_eq!(r.status, 200);
    let r = api.post(
        "/batch_events",
        &json!({"batch":[item("a","i-a"), item("c","i-c")]}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        delivered_until_marker(&mut api, &mut ws, "b"),
        ["a", "b", "c"]
    );

    let batch = json!({"batch":[{"channel":"b","name":"e","data":"d"},{"channel":"b","name":"e","data":"e"}]});
    for _ in 0..3 {
        let r = api.call_with(
            "POST",
            "/batch_events",
            batch.to_string().as_bytes(),
            &[("X-Idempotency-Key", "whole-batch")],
        );
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    }
    assert_eq!(delivered_until_marker(&mut api, &mut ws, "b"), ["d", "e"]);
}

#[test]
fn a_failed_request_does_not_use_up_its_key_and_bad_keys_are_refused() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    ws.subscribe("f");
    let mut api = server.api();
    let bad = api.post(
        "/events",
        &json!({"name":"e","channel":"bad channel","data":"x","idempotency_key":"f-1"}),
    );
    assert_eq!(bad.status, 400);
    let good = api.post(
        "/events",
        &json!({"name":"e","channel":"f","data":"x","idempotency_key":"f-1"}),
    );
    assert_eq!(good.status, 200);
    for key in [String::new(), "k".repeat(129)] {
        let r = api.post(
            "/events",
            &json!({"name":"e","channel":"f","data":"y","idempotency_key":key}),
        );
        assert_eq!(r.status, 400, "key of {} characters", key.len());
    }
    assert_eq!(delivered_until_marker(&mut api, &mut ws, "f"), ["x"]);
}

#[test]
fn keys_expire_after_the_window() {
    let server = Server::with_config(&dev_app_toml("idempotency_ttl_s = 1"));
    let mut ws = server.ws();
    ws.subscribe("t");
    let mut api = server.api();
    let body = json!({"name":"e","channel":"t","data":"again","idempotency_key":"t-1"});
    assert_eq!(api.post("/events", &body).status, 200);
    assert_eq!(ws.expect("e")["data"], "again");
    // Repeat until the window has passed and the key publishes a second time.
    let mut repeats = 0;
    loop {
        assert_eq!(api.post("/events", &body).status, 200);
        let seen = delivered_until_marker(&mut api, &mut ws, "t");
        if seen == ["again"] {
            break;
        }
        assert!(seen.is_empty(), "{seen:?}");
        repeats += 1;
        assert!(repeats < 100, "the key never expired");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_key_used_twice_in_one_batch_is_refused_and_stays_usable() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    ws.subscribe("twice");
    let mut api = server.api();
    let item = |data: &str, key: &str| json!({"channel":"twice","name":"e","data":data,"idempotency_key":key});
    let r = api.post(
        "/batch_events",
        &json!({"batch":[item("a","k-1"), item("b","k-1")]}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // A header key equal to an item's key.
    let batch = json!({"batch":[item("c","k-2")]});
    let r = api.call_with(
        "POST",
        "/batch_events",
        batch.to_string().as_bytes(),
        &[("X-Idempotency-Key", "k-2")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // Neither key was used up.
    let r = api.post(
        "/batch_events",
        &json!({"batch":[item("d","k-1"), item("e","k-2")]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        delivered_until_marker(&mut api, &mut ws, "twice"),
        ["d", "e"]
    );
}
