//! Cache channels (docs/protocol.md): the last published event is replayed right after
//! `subscription_succeeded` on every shard, or `pusher:cache_miss` is sent; the private and
//! presence variants keep their authorization; client events are not cached; entries expire.

mod common;
use common::*;
use serde_json::json;

#[test]
fn last_event_is_replayed_on_every_shard_or_cache_miss() {
    let server = Server::start(&[("RINGCAST_SHARDS", "2")]);
    let mut first = server.ws();
    first.subscribe("cache-news");
    let miss = first.expect("pusher:cache_miss");
    assert_eq!(miss["channel"], "cache-news");

    let mut api = server.api();
    api.trigger("cache-news", "headline", "old");
    api.trigger("cache-news", "headline", "new");
    assert_eq!(first.expect("headline")["data"], "old");
    assert_eq!(first.expect("headline")["data"], "new");

    let mut shards = std::collections::HashSet::new();
    let mut tries = 0;
    while shards.len() < 2 {
        let mut ws = server.ws();
        shards.insert(ws.shard());
        ws.subscribe("cache-news");
        let ev = ws.expect("headline");
        assert_eq!(
            (ev["channel"].as_str(), ev["data"].as_str()),
            (Some("cache-news"), Some("new"))
        );
        ws.ping(); // and nothing else
        tries += 1;
        assert!(tries < 200, "connections never reached both shards");
    }

    // `cache-` only counts at the start of the name.
    let mut plain = server.ws();
    plain.subscribe("news-cache-x");
    plain.ping();
}

#[test]
fn private_and_presence_cache_channels_keep_their_authorization() {
    let server = Server::start(&[]);
    let mut api = server.api();
    api.trigger("private-cache-a", "e", "p");
    api.trigger("presence-cache-b", "e", "q");

    let mut ws = server.ws();
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"private-cache-a","auth":"app-key:00"}}));
    ws.expect("pusher:subscription_error");
    let auth = ws.channel_auth("private-cache-a", None);
    ws.send_json(
        json!({"event":"pusher:subscribe","data":{"channel":"private-cache-a","auth":auth}}),
    );
    ws.expect("pusher_internal:subscription_succeeded");
    assert_eq!(ws.expect("e")["data"], "p");

    ws.send_presence_subscribe("presence-cache-b", r#"{"user_id":"u1"}"#);
    ws.expect("pusher_internal:subscription_succeeded");
    assert_eq!(ws.expect("e")["data"], "q");
}

#[test]
fn client_events_are_not_cached() {
    let server = Server::start(&[]);
    let mut a = server.ws();
    let auth = a.channel_auth("private-cache-c", None);
    a.send_json(
        json!({"event":"pusher:subscribe","data":{"channel":"private-cache-c","auth":auth}}),
    );
    a.expect("pusher_internal:subscription_succeeded");
    a.expect("pusher:cache_miss");
    let mut b = server.ws();
    let auth = b.channel_auth("private-cache-c", None);
    b.send_json(
        json!({"event":"pusher:subscribe","data":{"channel":"private-cache-c","auth":auth}}),
    );
    b.expect("pusher_internal:subscription_succeeded");
    b.expect("pusher:cache_miss");
    a.send(r#"{"event":"client-x","channel":"private-cache-c","data":{}}"#);
    b.expect("client-x");
    let mut c = server.ws();
    let auth = c.channel_auth("private-cache-c", None);
    c.send_json(
        json!({"event":"pusher:subscribe","data":{"channel":"private-cache-c","auth":auth}}),
    );
    c.expect("pusher_internal:subscription_succeeded");
    c.expect("pusher:cache_miss");
}

#[test]
fn cached_events_expire_after_cache_ttl() {
    let server = Server::with_config(&dev_app_toml("cache_ttl_s = 1"));
    server.api().trigger("cache-short", "e", "x");
    // Subscribe until the entry has expired: first the event, later only cache_miss.
    let mut saw_event = false;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut ws = server.ws();
        ws.subscribe("cache-short");
        let ev = ws.event();
        match ev["event"].as_str() {
            Some("e") => saw_event = true,
            Some("pusher:cache_miss") => break,
            _ => panic!("unexpected {ev}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cached event never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(saw_event, "the event was cached before it expired");
}

#[test]
fn channel_query_shows_the_cached_event() {
    let server = Server::start(&[]);
    let mut api = server.api();
    let empty = api.get("/channels/cache-q", &[("info", "cache")]).json();
    assert_eq!(empty, json!({"occupied": false, "cache": null}));

    api.trigger("cache-q", "state", r#"{"v":1}"#);
    api.trigger("cache-q", "state", r#"{"v":2}"#);
    let body = api.get("/channels/cache-q", &[("info", "cache")]).json();
    assert_eq!(body["cache"]["event"], "state");
    assert_eq!(body["cache"]["data"], r#"{"v":2}"#);
    let ttl = body["cache"]["ttl_s"].as_u64().expect("ttl_s");
    assert!((1..=1800).contains(&ttl), "ttl_s {ttl}");

    // Without `info=cache` the answer has no `cache`; a plain channel has nothing cached.
    let plain = api.get("/channels/cache-q", &[]).json();
    assert_eq!(plain, json!({"occupied": false}));
    api.trigger("news", "state", "x");
    let body = api.get("/channels/news", &[("info", "cache")]).json();
    assert_eq!(body["cache"], json!(null));
}
