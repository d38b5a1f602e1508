//! Outages over several nodes on a real `redis-server`: a node cut off from Redis for longer
//! than the timeout is declared dead by the others and, once back, drops its clients so they
//! are announced again everywhere; Redis unreachable for everyone (its data kept) makes nobody
//! declare anybody dead; a node that Redis forgot registers its state again, at the next beat
//! when a step of that fails.

mod common;

use common::cluster::*;
use common::redis::{Cable, Redis, node, node_at};

#[test]
fn a_node_cut_off_past_the_timeout_drops_its_clients_and_they_come_back() {
    let redis = Redis::start();
    let cable = Cable::to(&redis);
    let a = node(&redis, "t", &FAST);
    let c = node_at(&cable.url(), "t", None, &FAST);
    let ch = "presence-room";
    let mut u2_a = a.ws();
    join(&mut u2_a, ch, "u2");
    let mut u1_c = c.ws();
    join(&mut u1_c, ch, "u1");
    let mut api = a.api();
    cable.cut();
    // The others declare C dead: u1 is gone for them.
    let seen = until_removed(&mut u2_a, &mut api, ch);
    assert_eq!(
        seen,
        [
            "pusher_internal:member_added u1",
            "pusher_internal:member_removed u1"
        ]
    );
    cable.mend();
    // C learns it was declared dead and closes its client, which reconnects and joins again.
    u1_c.expect_error(4200);
    u1_c.expect_close(4200);
    let mut again = c.ws();
    join(&mut again, ch, "u1");
    assert_eq!(
        member_events(&mut u2_a, &mut api, ch),
        ["pusher_internal:member_added u1"]
    );
}

#[test]
fn redis_unreachable_for_everyone_past_the_timeout_declares_nobody_dead() {
    let redis = Redis::start();
    let a = node(&redis, "t", &FAST);
    let b = node(&redis, "t", &FAST);
    for n in [&a, &b] {
        n.wait_log("watching the other nodes");
    }
    let ch = "presence-room";
    let mut u1_a = a.ws();
    join(&mut u1_a, ch, "u1");
    let mut u2_b = b.ws();
    join(&mut u2_b, ch, "u2");
    let mut api = a.api();
    assert_eq!(
        member_events(&mut u1_a, &mut api, ch),
        ["pusher_internal:member_added u2"]
    );
    redis.pause(true);
    for n in [&a, &b] {
        n.wait_log("cluster: heartbeat:");
    }
    // Longer than the 2 s timeout: every node's last beat is older than that when Redis
    // answers again.
    std::thread::sleep(std::time::Duration::from_secs(3));
    redis.pause(false);
    for n in [&a, &b] {
        n.wait_log("heartbeats reach Redis again");
        n.wait_log("watching the other nodes");
    }
    // Both judge again, and neither member was declared gone.
    assert_eq!(member_events(&mut u1_a, &mut api, ch), Vec::<String>::new());
    assert_eq!(member_events(&mut u2_b, &mut api, ch), Vec::<String>::new());
}

#[test]
fn a_node_that_shuts_down_leaves_the_cluster_and_its_members_leave_once() {
    let redis = Redis::start();
    let a = node(&redis, "t", &FAST);
    let b = node(
        &redis,
        "t",
        &[FAST[0], FAST[1], ("RINGCAST_CLUSTER_NODE_ID", "node-b")],
    );
    a.wait_log("watching the other nodes");
    let line = a.wait_log("cluster: live nodes:");
    assert!(line.contains("node-b"), "{line}");
    let ch = "presence-room";
    let mut u2_a = a.ws();
    join(&mut u2_a, ch, "u2");
    let mut u1_b = b.ws();
    join(&mut u1_b, ch, "u1");
    let mut api = a.api();
    b.signal(libc::SIGTERM);
    u1_b.expect_error(4200);
    u1_b.expect_close(4200);
    let seen = until_removed(&mut u2_a, &mut api, ch);
    assert_eq!(
        seen,
        [
            "pusher_internal:member_added u1",
            "pusher_internal:member_removed u1"
        ]
    );
    b.wait_log("node node-b leaves the cluster");
    a.wait_log("cluster: node node-b left");
}

#[test]
fn a_member_that_leaves_while_redis_is_unreachable_is_removed_once_it_answers() {
    let redis = Redis::start();
    let a = node(&redis, "t", &FAST);
    let b = node(&redis, "t", &FAST);
    let ch = "presence-room";
    let mut u1_a = a.ws();
    join(&mut u1_a, ch, "u1");
    let mut u2_b = b.ws();
    join(&mut u2_b, ch, "u2");
    let mut api = b.api();
    assert_eq!(
        member_events(&mut u1_a, &mut api, ch),
        ["pusher_internal:member_added u2"]
    );
    redis.pause(true);
    u1_a.close();
    a.wait_log("kept for when Redis is back");
    redis.pause(false);
    let seen = until_removed(&mut u2_b, &mut api, ch);
    assert_eq!(seen, ["pusher_internal:member_removed u1"]);
    converge(
        &mut api,
        &format!("/channels/{ch}/users"),
        &[],
        &serde_json::json!({"users":[{"id":"u2"}]}),
    );
}

#[test]
fn registering_again_is_retried_at_the_next_beat_when_a_step_fails() {
    let redis = Redis::start();
    let a = node(&redis, "t", &[("RINGCAST_CLUSTER_HEARTBEAT_S", "1")]);
    let mut u1 = a.ws();
    sign_in(&mut u1, "u1");
    let users = "t:users:app-id";
    // u1 is registered once the node has handled the sign-in.
    let deadline = std::time::Instant::now() + common::WAIT;
    while !redis.run(&[&["HGET", users, "u1"]]).starts_with("$1\r\n1") {
        assert!(std::time::Instant::now() < deadline, "u1 never registered");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Redis forgets everything, and the key the users' step writes first holds a string: that
    // step fails (WRONGTYPE, before it writes anything) when the node registers again.
    let connections = "t:uconn:app-id";
    redis.run(&[
        &["MULTI"],
        &["FLUSHALL"],
        &["SET", connections, "x"],
        &["EXEC"],
    ]);
    a.wait_log("cluster: registering this node again: ");
    redis.run(&[&["DEL", connections]]);
    a.wait_log("1 signed-in connections");
    assert!(redis.run(&[&["HGET", users, "u1"]]).starts_with("$1\r\n1"));
}
