//! Several ringcast nodes joined through a real `redis-server`: what any node accepts reaches
//! the matching connections on every node, exactly once and in order.

mod common;

use common::Ws;
use common::cluster::*;
use common::metrics::metric_reaches;
use common::redis::{Redis, node};
use serde_json::{Value, json};

#[test]
fn a_publish_on_any_node_reaches_every_node_once_and_in_order() {
    let redis = Redis::start();
    let nodes = three_nodes(&redis);
    let mut subs: Vec<Ws> = nodes.iter().map(|n| n.ws()).collect();
    for s in &mut subs {
        s.subscribe("news");
    }
    // Publishes accepted by two different nodes.
    let mut a = nodes[0].api();
    let mut b = nodes[1].api();
    for i in 0..30 {
        a.trigger("news", "lg", &format!("a{i}"));
        b.trigger("news", "lg", &format!("b{i}"));
    }
    a.trigger("news", "done", "a");
    b.trigger("news", "done", "b");
    let want = |p: char| -> Vec<String> { (0..30).map(|i| format!("{p}{i}")).collect() };
    for s in &mut subs {
        let seen = until_done_from(s, &["a", "b"]);
        let from = |p: char| -> Vec<String> {
            seen.iter().filter(|d| d.starts_with(p)).cloned().collect()
        };
        assert_eq!(
            from('a'),
            want('a'),
            "node A's events once each, in A's order"
        );
        assert_eq!(
            from('b'),
            want('b'),
            "node B's events once each, in B's order"
        );
        assert_eq!(seen.len(), 60);
    }
}

#[test]
fn the_publishers_socket_is_excluded_on_its_own_node() {
    let redis = Redis::start();
    let nodes = three_nodes(&redis);
    let mut on_b = nodes[1].ws();
    let mut on_c = nodes[2].ws();
    on_b.subscribe("news");
    on_c.subscribe("news");
    let mut api = nodes[0].api();
    let body = json!({"name":"lg","channel":"news","data":"x","socket_id": on_b.socket_id});
    assert_eq!(api.post("/events", &body).status, 200);
    api.trigger("news", "done", "");
    assert_eq!(
        until(&mut on_b, "done"),
        Vec::<String>::new(),
        "excluded on node B"
    );
    assert_eq!(until(&mut on_c, "done"), ["x"]);
}

#[test]
fn client_events_cross_nodes_and_skip_their_sender() {
    let redis = Redis::start();
    let nodes = three_nodes(&redis);
    let mut sender = nodes[0].ws();
    let mut peer = nodes[1].ws();
    sender.subscribe_private("private-room");
    peer.subscribe_private("private-room");
    sender.send_json(json!({"event":"client-hi","channel":"private-room","data":{"n":1}}));
    let got = peer.expect("client-hi");
    assert_eq!(got["data"], json!({"n":1}));
    sender.ping();
    nodes[2].api().trigger("private-room", "done", "");
    assert_eq!(until(&mut sender, "done"), Vec::<String>::new());
}

#[test]
fn terminate_connections_on_one_node_closes_the_user_everywhere() {
    let redis = Redis::start();
    let nodes = three_nodes(&redis);
    let mut on_b = nodes[1].ws();
    let mut on_c = nodes[2].ws();
    sign_in(&mut on_b, "u1");
    sign_in(&mut on_c, "u2");
    let r = nodes[0]
        .api()
        .post("/users/u1/terminate_connections", &json!({}));
    assert_eq!(r.status, 200);
    let ev = on_b.expect_error(4009);
    assert!(ev["data"]["message"].is_string());
    on_b.expect_close(4009);
    on_c.ping();
}

#[test]
fn clusters_with_different_prefixes_do_not_see_each_other() {
    let redis = Redis::start();
    let blue = node(&redis, "blue", &[]);
    let green = node(&redis, "green", &[]);
    let blue2 = node(&redis, "blue", &[]);
    let mut g = green.ws();
    let mut b = blue2.ws();
    g.subscribe("news");
    b.subscribe("news");
    blue.api().trigger("news", "lg", "blue only");
    blue.api().trigger("news", "done", "");
    assert_eq!(until(&mut b, "done"), ["blue only"]);
    green.api().trigger("news", "done", "");
    assert_eq!(until(&mut g, "done"), Vec::<String>::new());
}

#[test]
fn without_redis_a_publish_answers_503_and_connections_stay_open() {
    let mut redis = Redis::start();
    let a = node(&redis, "t", &[]);
    let b = node(&redis, "t", &[]);
    let mut sub = b.ws();
    sub.subscribe("news");
    redis.kill();
    let r = a.api().post(
        "/events",
        &json!({"name":"lg","channel":"news","data":"lost"}),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert!(body["error"].is_string(), "{body}");
    sub.ping();
    // Redis comes back empty: the nodes subscribe again, and publishing works.
    redis.restart();
    a.wait_log("reconnected to Redis");
    b.wait_log("reconnected to Redis");
    // A's command connection comes back on its next publish; until then it answers 503.
    let mut api = a.api();
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let r = api.post(
            "/events",
            &json!({"name":"lg","channel":"news","data":"after"}),
        );
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "publishing never worked again"
        );
    }
    a.api().trigger("news", "done", "");
    assert_eq!(until(&mut sub, "done"), ["after"]);
}

#[test]
fn presence_is_one_membership_across_nodes() {
    let redis = Redis::start();
    let nodes = three_nodes(&redis);
    let ch = "presence-room";
    let mut u1_a = nodes[0].ws();
    let mut u2_b = nodes[1].ws();
    let mut u1_c = nodes[2].ws();
    let first = join(&mut u1_a, ch, "u1");
    assert_eq!(first["presence"]["ids"], json!(["u1"]));
    let second = join(&mut u2_b, ch, "u2");
    assert_eq!(
        second["presence"]["ids"],
        json!(["u1", "u2"]),
        "members on other nodes"
    );
    assert_eq!(second["presence"]["count"], 2);
    let again = join(&mut u1_c, ch, "u1");
    assert_eq!(
        again["presence"]["count"], 2,
        "u1's second connection is no new member"
    );
    let mut api = nodes[2].api();
    assert_eq!(
        member_events(&mut u1_a, &mut api, ch),
        ["pusher_internal:member_added u2"]
    );
    assert_eq!(member_events(&mut u2_b, &mut api, ch), Vec::<String>::new());

    // Any node lists the members and counts them.
    converge(
        &mut nodes[1].api(),
        &format!("/channels/{ch}/users"),
        &[],
        &json!({"users":[{"id":"u1"},{"id":"u2"}]}),
    );
    converge(
        &mut nodes[0].api(),
        &format!("/channels/{ch}"),
        &[("info", "user_count,subscription_count")],
        &json!({"occupied":true,"user_count":2,"subscription_count":3}),
    );

    // u1 leaves on A but is still on C; then its last connection goes: one member_removed.
    u1_a.close();
    u1_c.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":ch}}));
    let seen = until_removed(&mut u2_b, &mut api, ch);
    assert_eq!(seen, ["pusher_internal:member_removed u1"]);
    converge(
        &mut nodes[2].api(),
        &format!("/channels/{ch}/users"),
        &[],
        &json!({"users":[{"id":"u2"}]}),
    );
}

#[test]
fn channel_counts_are_summed_over_nodes() {
    let redis = Redis::start();
    let nodes = three_nodes(&redis);
    let mut subs: Vec<Ws> = nodes[..2].iter().map(|n| n.ws()).collect();
    for s in &mut subs {
        s.subscribe("news");
    }
    let mut api = nodes[2].api();
    converge(
        &mut api,
        "/channels",
        &[("info", "subscription_count")],
        &json!({"channels":{"news":{"subscription_count":2}}}),
    );
    subs.pop().unwrap().close();
    converge(
        &mut api,
        "/channels/news",
        &[("info", "subscription_count")],
        &json!({"occupied":true,"subscription_count":1}),
    );
    subs.pop().unwrap().close();
    converge(&mut api, "/channels", &[], &json!({"channels":{}}));
}

#[test]
fn a_killed_nodes_members_and_counts_are_removed_once() {
    let redis = Redis::start();
    let nodes = three_nodes_with(&redis, &FAST);
    let ch = "presence-room";
    let mut u2_a = nodes[0].ws();
    let mut u3_b = nodes[1].ws();
    let mut u1_c = nodes[2].ws();
    join(&mut u2_a, ch, "u2");
    join(&mut u3_b, ch, "u3");
    join(&mut u1_c, ch, "u1");
    u1_c.subscribe("news");
    let mut api = nodes[0].api();
    converge(
        &mut api,
        "/channels",
        &[("info", "subscription_count")],
        &json!({"channels":{"news":{"subscription_count":1},"presence-room":{"subscription_count":3}}}),
    );
    nodes[2].signal(libc::SIGKILL);
    // Within the timeout a survivor sweeps it: u1 leaves, once, for the members on A and B.
    for member in [&mut u2_a, &mut u3_b] {
        let seen = until_removed(member, &mut api, ch);
        let removed: Vec<&String> = seen.iter().filter(|e| e.contains("removed")).collect();
        assert_eq!(removed, ["pusher_internal:member_removed u1"], "{seen:?}");
    }
    converge(
        &mut api,
        "/channels",
        &[("info", "subscription_count")],
        &json!({"channels":{"presence-room":{"subscription_count":2}}}),
    );
    converge(
        &mut nodes[1].api(),
        &format!("/channels/{ch}/users"),
        &[],
        &json!({"users":[{"id":"u2"},{"id":"u3"}]}),
    );
}

#[test]
fn a_node_restarted_under_its_id_leaves_no_ghosts() {
    let redis = Redis::start();
    let a = node(&redis, "t", &[]);
    let same = [("RINGCAST_CLUSTER_NODE_ID", "node-b")];
    let b = node(&redis, "t", &same);
    let ch = "presence-room";
    let mut u2_a = a.ws();
    join(&mut u2_a, ch, "u2");
    let mut u1_b = b.ws();
    join(&mut u1_b, ch, "u1");
    b.signal(libc::SIGKILL);
    drop(u1_b);
    // Back at once, long before node-b would time out: it clears what it held.
    let b = node(&redis, "t", &same);
    let mut api = b.api();
    converge(
        &mut api,
        &format!("/channels/{ch}/users"),
        &[],
        &json!({"users":[{"id":"u2"}]}),
    );
    let seen = until_removed(&mut u2_a, &mut api, ch);
    assert_eq!(
        seen,
        [
            "pusher_internal:member_added u1",
            "pusher_internal:member_removed u1"
        ]
    );
}

#[test]
fn metrics_show_the_cluster_and_its_bus() {
    let redis = Redis::start();
    let (pa, pb) = (common::free_port(), common::free_port());
    let (pa_s, pb_s) = (pa.to_string(), pb.to_string());
    let beat = ("RINGCAST_CLUSTER_HEARTBEAT_S", "1");
    let a = node(&redis, "t", &[("RINGCAST_METRICS_PORT", &pa_s), beat]);
    let b = node(&redis, "t", &[("RINGCAST_METRICS_PORT", &pb_s), beat]);
    let mut sub = b.ws();
    sub.subscribe("news");
    a.api().trigger("news", "lg", "x");
    sub.expect("lg");
    metric_reaches(pa, "ringcast_bus_messages_sent_total", 1.0);
    metric_reaches(pb, "ringcast_bus_messages_received_total", 1.0);
    metric_reaches(pb, "ringcast_bus_bytes_received_total", 1.0);
    metric_reaches(pb, "ringcast_bus_latency_seconds_count", 1.0);
    metric_reaches(pa, "ringcast_cluster_live_nodes", 2.0);
    metric_reaches(pb, "ringcast_cluster_connected", 1.0);
}

#[test]
fn after_redis_restarts_empty_the_nodes_register_their_state_again() {
    let mut redis = Redis::start();
    let beat = [("RINGCAST_CLUSTER_HEARTBEAT_S", "1")];
    let a = node(&redis, "t", &beat);
    let b = node(&redis, "t", &beat);
    let ch = "presence-room";
    let mut u1_a = a.ws();
    join(&mut u1_a, ch, "u1");
    let mut sub_b = b.ws();
    sub_b.subscribe("news");
    let mut api = b.api();
    let before = json!({"channels":{"news":{"subscription_count":1},"presence-room":{"subscription_count":1}}});
    converge(
        &mut api,
        "/channels",
        &[("info", "subscription_count")],
        &before,
    );
    redis.kill();
    redis.restart();
    a.wait_log("registered this node's state");
    b.wait_log("registered this node's state");
    converge(
        &mut api,
        "/channels",
        &[("info", "subscription_count")],
        &before,
    );
    converge(
        &mut api,
        &format!("/channels/{ch}/users"),
        &[],
        &json!({"users":[{"id":"u1"}]}),
    );
    // And the bus works again: a publish on A reaches B's subscriber.
    let mut api_a = a.api();
    let deadline = std::time::Instant::now() + common::WAIT;
    while api_a
        .post(
            "/events",
            &json!({"name":"lg","channel":"news","data":"back"}),
        )
        .status
        != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "publishing never worked again"
        );
    }
    assert_eq!(sub_b.expect("lg")["data"], "back");
}

#[test]
fn an_idempotency_key_is_honoured_by_every_node() {
    let redis = Redis::start();
    let nodes = three_nodes(&redis);
    let mut sub = nodes[2].ws();
    sub.subscribe("news");
    let body = json!({"name":"lg","channel":"news","data":"once","info":"subscription_count",
                      "idempotency_key":"k-1"});
    let first = nodes[0].api().post("/events", &body);
    assert_eq!(first.status, 200, "{}", first.body);
    let again = nodes[1].api().post("/events", &body);
    assert_eq!(
        (again.status, &again.body),
        (200, &first.body),
        "the first answer"
    );
    nodes[1].api().trigger("news", "done", "b");
    nodes[0].api().trigger("news", "done", "a");
    assert_eq!(
        until_done_from(&mut sub, &["a", "b"]),
        ["once"],
        "delivered once"
    );
}

#[test]
fn max_connections_counts_the_whole_cluster() {
    let redis = Redis::start();
    let toml = common::dev_app_toml("max_connections = 2");
    let nodes: Vec<_> = (0..3)
        .map(|_| common::redis::node_with(&redis, "t", Some(&toml), &[]))
        .collect();
    let mut on_a = nodes[0].ws();
    let mut on_b = nodes[1].ws();
    let path = "/app/app-key?protocol=7";
    let mut third = Ws::connect_raw(nodes[2].addr, path);
    third.expect_error(4004);
    third.expect_close(4004);
    on_a.ping();
    on_b.ping();
    // A place frees up when a connection anywhere closes.
    on_a.close();
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let mut ws = Ws::connect_raw(nodes[2].addr, path);
        match ws.event()["event"].as_str() {
            Some("pusher:connection_established") => break,
            Some("pusher:error") => ws.expect_close(4004),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place never freed up"
        );
    }
}
