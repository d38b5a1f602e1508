//! History and cache channels over several nodes on a real `redis-server`: one stream per
//! channel with serials assigned once, the same pages and cursors from any node, and a cache
//! channel's last event for subscribers on any node, also one started after the publish.

mod common;

use common::cluster::*;
use common::redis::{Redis, node, node_with};
use serde_json::{Value, json};

fn history(api: &mut common::Api, channel: &str, params: &[(&str, &str)]) -> Value {
    let r = api.get(&format!("/channels/{channel}/history"), params);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// `(serial, data)` of a page's items.
fn items(page: &Value) -> Vec<(u64, String)> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let message = &i["message"];
            (
                i["serial"].as_u64().unwrap(),
                message["data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn history_is_one_stream_with_the_same_pages_on_every_node() {
    let redis = Redis::start();
    let nodes = three_nodes(&redis);
    let mut apis: Vec<common::Api> = nodes.iter().map(|n| n.api()).collect();
    for i in 0..5 {
        apis[0].trigger("news", "lg", &format!("a{i}"));
        apis[1].trigger("news", "lg", &format!("b{i}"));
    }
    let want: Vec<(u64, String)> = (0..5)
        .flat_map(|i| [format!("a{i}"), format!("b{i}")])
        .zip(1..)
        .map(|(d, s)| (s, d))
        .collect();
    let oldest = [("direction", "oldest_first"), ("limit", "100")];
    let page = history(&mut apis[2], "news", &oldest);
    assert_eq!(
        items(&page),
        want,
        "serials assigned once, in publish order"
    );
    assert_eq!(page["continuity"]["retained_messages"], 10);
    for api in &mut apis[..2] {
        assert_eq!(
            history(api, "news", &oldest),
            page,
            "the same page from any node"
        );
    }
    // Cursors made by one node work on the others.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for turn in 0.. {
        let mut params = vec![("limit", "3")];
        if let Some(c) = &cursor {
            params.push(("cursor", c));
        }
        let page = history(&mut apis[turn % 3], "news", &params);
        seen.extend(items(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let newest_first: Vec<_> = want.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
}

#[test]
fn history_keeps_the_apps_count_limit_across_nodes() {
    let redis = Redis::start();
    let toml = common::dev_app_toml("history_max_messages = 3");
    let a = node_with(&redis, "t", Some(&toml), &[]);
    let b = node_with(&redis, "t", Some(&toml), &[]);
    for i in 1..=4 {
        let mut api = if i % 2 == 0 { a.api() } else { b.api() };
        api.trigger("news", "lg", &format!("e{i}"));
    }
    let page = history(&mut a.api(), "news", &[]);
    let got: Vec<u64> = items(&page).iter().map(|(s, _)| *s).collect();
    assert_eq!(got, [4, 3, 2]);
    assert_eq!(page["continuity"]["truncated_by_retention"], true);
}

#[test]
fn a_cache_channels_last_event_reaches_subscribers_on_any_node() {
    let redis = Redis::start();
    let a = node(&redis, "t", &[]);
    let b = node(&redis, "t", &[]);
    // Nobody subscribes anywhere when it is published.
    a.api().trigger("cache-news", "headline", "first");
    a.api().trigger("cache-news", "headline", "latest");
    let mut on_b = b.ws();
    on_b.subscribe("cache-news");
    assert_eq!(on_b.expect("headline")["data"], "latest");
    // A node started after the publish has it too.
    let late = node(&redis, "t", &[]);
    let mut on_late = late.ws();
    on_late.subscribe("cache-news");
    assert_eq!(on_late.expect("headline")["data"], "latest");
    let r = late.api().get("/channels/cache-news", &[("info", "cache")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let cache = &r.json()["cache"];
    assert_eq!(
        (&cache["event"], &cache["data"]),
        (&json!("headline"), &json!("latest"))
    );
    // A channel never published to is a miss on every node.
    let mut miss = late.ws();
    miss.subscribe("cache-empty");
    assert_eq!(miss.expect("pusher:cache_miss")["channel"], "cache-empty");
}
