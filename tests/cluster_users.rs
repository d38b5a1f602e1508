//! Signed-in users over several nodes on a real `redis-server`: a user is online from its
//! first connection anywhere to its last, and watchers on any node hear it once.

mod common;

use common::cluster::*;
use common::redis::{Redis, node};
use serde_json::json;

#[test]
fn watchers_hear_users_on_other_nodes_once() {
    let redis = Redis::start();
    let nodes = three_nodes(&redis);
    let mut watcher = nodes[0].ws();
    sign_in_as(&mut watcher, r#"{"id":"w","watchlist":["u1","u2"]}"#);
    let mut u1_b = nodes[1].ws();
    sign_in(&mut u1_b, "u1");
    assert_eq!(watch_event(&mut watcher), watched("online", "u1"));
    // u1's second connection, on another node, is not news; u2 is.
    let mut u1_c = nodes[2].ws();
    sign_in(&mut u1_c, "u1");
    let mut u2_c = nodes[2].ws();
    sign_in(&mut u2_c, "u2");
    assert_eq!(watch_event(&mut watcher), watched("online", "u2"));
    // A watcher signing in on any node learns who is online anywhere.
    let mut late = nodes[1].ws();
    sign_in_as(&mut late, r#"{"id":"w2","watchlist":["u1","u2","u3"]}"#);
    let (name, mut ids) = watch_event(&mut late);
    ids.sort();
    assert_eq!(
        (name.as_str(), ids),
        ("online", vec!["u1".into(), "u2".into()])
    );
    // u1 leaves B but is still on C; then its last connection goes: offline once.
    u1_b.close();
    u1_c.close();
    assert_eq!(watch_event(&mut watcher), watched("offline", "u1"));
    assert_eq!(watch_event(&mut late), watched("offline", "u1"));
    u2_c.close();
    assert_eq!(watch_event(&mut watcher), watched("offline", "u2"));
    assert_eq!(watch_event(&mut late), watched("offline", "u2"));
}

#[test]
fn a_replayed_sign_in_is_announced_once() {
    let redis = Redis::start();
    let a = node(&redis, "t", &[]);
    let b = node(&redis, "t", &[]);
    let mut watcher = a.ws();
    sign_in_as(&mut watcher, r#"{"id":"w","watchlist":["u1","u2"]}"#);
    let mut u1 = b.ws();
    for _ in 0..5 {
        sign_in(&mut u1, "u1");
    }
    assert_eq!(watch_event(&mut watcher), watched("online", "u1"));
    let mut u2 = b.ws();
    sign_in(&mut u2, "u2");
    assert_eq!(
        watch_event(&mut watcher),
        watched("online", "u2"),
        "no second online for u1"
    );
    u1.close();
    assert_eq!(watch_event(&mut watcher), watched("offline", "u1"));
}

#[test]
fn a_killed_nodes_users_go_offline_once() {
    let redis = Redis::start();
    let nodes = three_nodes_with(&redis, &FAST);
    let mut watcher = nodes[0].ws();
    sign_in_as(&mut watcher, r#"{"id":"w","watchlist":["u1","u2"]}"#);
    let mut u1 = nodes[2].ws();
    sign_in(&mut u1, "u1");
    assert_eq!(watch_event(&mut watcher), watched("online", "u1"));
    nodes[2].signal(libc::SIGKILL);
    assert_eq!(watch_event(&mut watcher), watched("offline", "u1"));
    // Nothing more of u1 follows: the next event is u2's.
    let mut u2 = nodes[1].ws();
    sign_in(&mut u2, "u2");
    assert_eq!(watch_event(&mut watcher), watched("online", "u2"));
}

#[test]
fn after_redis_restarts_empty_signed_in_users_are_online_again() {
    let mut redis = Redis::start();
    let beat = [("RINGCAST_CLUSTER_HEARTBEAT_S", "1")];
    let a = node(&redis, "t", &beat);
    let b = node(&redis, "t", &beat);
    let mut u1 = a.ws();
    sign_in(&mut u1, "u1");
    redis.kill();
    redis.restart();
    // (Each node also registers once at start, with nothing signed in yet.)
    a.wait_log("1 signed-in connections");
    b.wait_log("reconnected to Redis");
    let mut watcher = b.ws();
    sign_in_as(
        &mut watcher,
        &json!({"id":"w","watchlist":["u1"]}).to_string(),
    );
    assert_eq!(watch_event(&mut watcher), watched("online", "u1"));
    u1.close();
    assert_eq!(watch_event(&mut watcher), watched("offline", "u1"));
}
