//! The Redis backends of the cluster state pass the same contract as the in-memory ones,
//! against a real `redis-server`.

mod common;

use common::redis::Redis;
use futures_lite::future::block_on;
use ringcast::api::cluster::{RedisNode, contract};

/// The contract's two apps, by index.
/// Two apps, ids `app` and `other`, as the server would hold them.
fn apps() -> std::sync::Arc<ringcast::app::LiveApps> {
    let config = |id: &str| ringcast::config::AppConfig {
        id: id.into(),
        key: format!("{id}-key"),
        secret: "s".into(),
        ..Default::default()
    };
    ringcast::app::LiveApps::new(ringcast::app::Apps::new(&[config("app"), config("other")]))
}

fn backends(redis: &Redis) -> RedisNode {
    RedisNode::start(&redis.url(), "contract", "n1").unwrap()
}

#[test]
fn redis_presence_keeps_the_contract() {
    let redis = Redis::start();
    let parts = backends(&redis).into_parts(apps(), 1);
    block_on(contract::presence(&parts.presence, &parts.holds));
}

#[test]
fn redis_occupancy_keeps_the_contract() {
    let redis = Redis::start();
    let parts = backends(&redis).into_parts(apps(), 1);
    block_on(contract::occupancy(&parts.occupancy, &parts.holds));
}

#[test]
fn redis_users_keep_the_contract() {
    let redis = Redis::start();
    let users = backends(&redis).into_parts(apps(), 1).users;
    block_on(contract::users(&users));
}

#[test]
fn redis_history_keeps_the_contract() {
    let redis = Redis::start();
    let history = backends(&redis).into_parts(apps(), 1).history;
    block_on(contract::history(&history));
}

#[test]
fn the_redis_cache_keeps_the_contract() {
    let redis = Redis::start();
    let cache = backends(&redis).into_parts(apps(), 1).cache;
    block_on(contract::cache(&cache));
}

#[test]
fn the_redis_bus_keeps_the_contract() {
    let redis = Redis::start();
    let nodes = ["n1", "n2", "n3"].map(|id| {
        RedisNode::start(&redis.url(), "contract", id)
            .unwrap()
            .into_parts(apps(), 1)
            .transport
    });
    // Pub/sub connects in the background; the contract starts once all three are up.
    let deadline = std::time::Instant::now() + common::WAIT;
    while !nodes.iter().all(|n| n.connected()) {
        assert!(std::time::Instant::now() < deadline, "never connected");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    block_on(contract::transport(&nodes));
}
