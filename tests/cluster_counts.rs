//! `subscription_count` over several nodes on a real `redis-server`: the counts are the
//! cluster's, and a busy channel's count is announced at most once per interval over the
//! whole cluster, the latest count always in the end.

mod common;

use common::Ws;
use common::redis::{Redis, node_with};
use serde_json::Value;

fn count_of(ev: &Value) -> Option<u64> {
    if ev["event"] != "pusher_internal:subscription_count" {
        return None;
    }
    let data: Value = serde_json::from_str(ev["data"].as_str()?).ok()?;
    data["subscription_count"].as_u64()
}

#[test]
fn a_busy_channels_count_is_announced_once_per_interval_over_the_cluster() {
    let redis = Redis::start();
    let toml = common::dev_app_toml("subscription_count_events = true");
    let nodes: Vec<_> = (0..3)
        .map(|_| node_with(&redis, "t", Some(&toml), &[]))
        .collect();
    let mut watcher = nodes[0].ws();
    watcher.subscribe("busy");
    // 100 subscribers: each change is announced once, with the count when it is announced
    // (two nodes announcing at once may both say the later count).
    let mut subs: Vec<Ws> = Vec::new();
    for i in 0..99 {
        let mut ws = nodes[i % 3].ws();
        ws.subscribe("busy");
        subs.push(ws);
    }
    let mut seen = Vec::new();
    while seen.len() < 100 {
        if let Some(n) = count_of(&watcher.event()) {
            seen.push(n);
        }
    }
    assert_eq!(seen.iter().max(), Some(&100), "{seen:?}");
    // 50 more, spread over the three nodes: announced at most once per interval, whichever
    // node announces, and the last count comes in the end.
    for i in 0..50 {
        let mut ws = nodes[i % 3].ws();
        ws.subscribe("busy");
        subs.push(ws);
    }
    let mut above = Vec::new();
    while above.last() != Some(&150) {
        if let Some(n) = count_of(&watcher.event()).filter(|n| *n > 100) {
            above.push(n);
        }
    }
    assert!(above.len() <= 2, "one per interval: {above:?}");
}
