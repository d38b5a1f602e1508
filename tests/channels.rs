//! Channel features beyond public channels (docs/protocol.md): user sign-in, `#server-to-user-*`
//! channels, and client events with each of their refusals, with connections on every shard.

mod common;
use common::*;
use serde_json::json;

fn signin(ws: &mut Ws, user_data: &str) -> serde_json::Value {
    let sig = hmac_hex(APP_SECRET, &format!("{}::user::{user_data}", ws.socket_id));
    ws.send_json(json!({"event":"pusher:signin","data":{"auth":format!("{APP_KEY}:{sig}"),"user_data":user_data}}));
    ws.event()
}

/// Connections on both shards, each signed in with `user_data`.
fn signed_in_on_both_shards(server: &Server, user_data: &str) -> Vec<Ws> {
    let mut clients = server.clients_on_both_shards(2);
    for ws in &mut clients {
        assert_eq!(signin(ws, user_data)["event"], "pusher:signin_success");
    }
    clients
}

#[test]
fn signin_success_and_refusals() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    let user_data = r#"{"id":"u1","user_info":{"name":"Ann"}}"#;
    let ev = signin(&mut ws, user_data);
    assert_eq!(ev["event"], "pusher:signin_success");
    assert_eq!(
        ev["data"]["user_data"], user_data,
        "data is an object holding the user_data string"
    );

    let mut bad = server.ws();
    bad.send_json(
        json!({"event":"pusher:signin","data":{"auth":"app-key:00","user_data":user_data}}),
    );
    bad.expect_error(4009);
    bad.expect_close(4009);

    let mut no_id = server.ws();
    let ev = signin(&mut no_id, r#"{"name":"x"}"#);
    assert_eq!(ev["event"], "pusher:error");
    assert_eq!(ev["data"]["code"], 4009);
    no_id.expect_close(4009);
    ws.ping();
}

#[test]
fn server_to_user_channel_reaches_every_connection_of_that_user_only() {
    let server = Server::start(&[]);
    let mut mine = signed_in_on_both_shards(&server, r#"{"id":"42"}"#);
    for ws in &mut mine {
        ws.subscribe("#server-to-user-42");
    }
    let mut other = server.ws();
    assert_eq!(
        signin(&mut other, r#"{"id":"7"}"#)["event"],
        "pusher:signin_success"
    );
    other.send_json(json!({"event":"pusher:subscribe","data":{"channel":"#server-to-user-42"}}));
    let ev = other.expect("pusher:subscription_error");
    assert_eq!(ev["data"]["status"], 403);
    let mut anonymous = server.ws();
    anonymous
        .send_json(json!({"event":"pusher:subscribe","data":{"channel":"#server-to-user-42"}}));
    anonymous.expect("pusher:subscription_error");

    server
        .api()
        .trigger("#server-to-user-42", "note", "for you");
    for ws in &mut mine {
        assert_eq!(ws.expect("note")["data"], "for you");
    }
    other.ping();
}

#[test]
fn client_events_reach_other_subscribers_on_every_shard_and_never_echo() {
    let server = Server::start(&[]);
    let mut clients = server.clients_on_both_shards(3);
    for ws in &mut clients {
        ws.subscribe_private("private-chat");
    }
    let (sender, others) = clients.split_first_mut().unwrap();
    let data = r#"{"text":"hi","n":1.50,"u":"\u00e9"}"#;
    sender.send(&format!(
        r#"{{"event":"client-typing","channel":"private-chat","data":{data}}}"#
    ));
    for ws in others.iter_mut() {
        let ev = ws.expect("client-typing");
        assert_eq!(ev["channel"], "private-chat");
        assert_eq!(
            ev["data"],
            serde_json::from_str::<serde_json::Value>(data).unwrap()
        );
        assert!(
            ev.get("user_id").is_none(),
            "no user_id outside presence channels"
        );
    }
    // The sender gets no echo: the next thing it sees is the answer to its ping.
    sender.ping();
}

#[test]
fn client_event_data_is_relayed_byte_for_byte() {
    let server = Server::start(&[]);
    let mut a = server.ws();
    let mut b = server.ws();
    a.subscribe_private("private-raw");
    b.subscribe_private("private-raw");
    let data = r#"{ "b" : 1.50 , "a":[1e2, "\u00e9"] }"#;
    a.send(&format!(
        r#"{{"event":"client-x","channel":"private-raw","data":{data}}}"#
    ));
    let text = loop {
        match b.ws.read().unwrap() {
            tungstenite::Message::Text(t) => break t.to_string(),
            _ => continue,
        }
    };
    assert!(text.contains(&format!(r#""data":{data}"#)), "{text}");
}

#[test]
fn client_event_refusals_are_4301_and_keep_the_connection() {
    let server = Server::with_config(&format!(
        "{}{}",
        dev_app_toml(
            "enable_client_messages = true\nmax_client_events_per_second = 3\nmax_event_payload_kb = 1\nmax_event_name_length = 20"
        ),
        app_toml("quiet", "enable_client_messages = false")
    ));
    let mut ws = server.ws();
    ws.subscribe_private("private-a");
    ws.subscribe_private("private-encrypted-a");
    ws.subscribe("public-a");
    let refused = [
        json!({"event":"client-x","channel":"public-a","data":{}}),
        json!({"event":"client-x","channel":"private-encrypted-a","data":{}}),
        json!({"event":"client-x","channel":"private-not-mine","data":{}}),
        json!({"event":"client-xxxxxxxxxxxxxxxxxxxxxxxxx","channel":"private-a","data":{}}),
        json!({"event":"client-x","channel":"private-a","data":"x".repeat(2000)}),
    ];
    for msg in refused {
        ws.send_json(msg.clone());
        ws.expect_error(4301);
    }
    // Rate limit: 3 a second pass, the rest of that second is refused. Count refusals rather
    // than assume which second the burst falls in.
    let mut receiver = server.ws();
    receiver.subscribe_private("private-a");
    for _ in 0..10 {
        ws.send_json(json!({"event":"client-burst","channel":"private-a","data":{}}));
    }
    // The pong marks the end of the answers to the burst.
    ws.send(r#"{"event":"pusher:ping","data":{}}"#);
    let mut errors = 0;
    loop {
        let ev = ws.event();
        match ev["event"].as_str() {
            Some("pusher:error") => {
                assert_eq!(ev["data"]["code"], 4301);
                errors += 1;
            }
            Some("pusher:pong") => break,
            _ => panic!("unexpected {ev}"),
        }
    }
    assert!(
        (4..=7).contains(&errors),
        "3 per second allowed, 10 sent within at most 2 seconds: {errors} refused"
    );
    // Exactly the accepted ones reached the other subscriber.
    receiver.send(r#"{"event":"pusher:ping","data":{}}"#);
    let (mut relayed, mut pongs) = (0, 0);
    loop {
        let ev = receiver.event();
        match ev["event"].as_str() {
            Some("client-burst") => relayed += 1,
            Some("pusher:pong") if relayed + errors == 10 => break,
            // The relay crosses to the API core and back; the pong can overtake it.
            Some("pusher:pong") => {
                pongs += 1;
                assert!(
                    pongs < 200,
                    "only {relayed} of {} accepted events arrived",
                    10 - errors
                );
                receiver.send(r#"{"event":"pusher:ping","data":{}}"#)
            }
            _ => panic!("unexpected {ev}"),
        }
    }
    assert_eq!(relayed + errors, 10);

    // An app with client events off.
    let mut quiet = Ws::connect(server.addr, "/app/quiet-key?protocol=7");
    let sig = hmac_hex("quiet-secret", &format!("{}:private-q", quiet.socket_id));
    quiet.send_json(json!({"event":"pusher:subscribe","data":{"channel":"private-q","auth":format!("quiet-key:{sig}")}}));
    quiet.expect("pusher_internal:subscription_succeeded");
    quiet.send_json(json!({"event":"client-x","channel":"private-q","data":{}}));
    quiet.expect_error(4301);
    quiet.ping();
}

#[test]
fn terminate_connections_closes_every_connection_of_the_user_4009() {
    let server = Server::start(&[]);
    let mut targets = signed_in_on_both_shards(&server, r#"{"id":"42"}"#);
    let mut bystander = server.ws();
    assert_eq!(
        signin(&mut bystander, r#"{"id":"43"}"#)["event"],
        "pusher:signin_success"
    );
    let mut api = server.api();
    let r = api.post("/users/42/terminate_connections", &json!({}));
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    for ws in &mut targets {
        ws.expect_error(4009);
        ws.expect_close(4009);
    }
    bystander.ping();

    // The Python SDK's path, without the /apps/{id} prefix: the app comes from auth_key.
    let mut again = server.ws();
    assert_eq!(
        signin(&mut again, r#"{"id":"42"}"#)["event"],
        "pusher:signin_success"
    );
    let body = b"{}";
    let target = signed_target(
        APP_KEY,
        APP_SECRET,
        "POST",
        "/users/42/terminate_connections",
        body,
        &[],
        unix_now(),
    );
    assert_eq!(
        server.http().request("POST", &target, &[], body).status,
        200
    );
    again.expect_error(4009);
    again.expect_close(4009);
    let stranger = signed_target(
        "nobody",
        APP_SECRET,
        "POST",
        "/users/42/terminate_connections",
        body,
        &[],
        unix_now(),
    );
    assert_eq!(
        server.http().request("POST", &stranger, &[], body).status,
        401
    );
    bystander.ping();
}

#[test]
fn required_signin_closes_unauthenticated_connections_4009() {
    let server = Server::with_config(&dev_app_toml(
        "require_user_authentication = true\nuser_authentication_timeout_s = 1",
    ));
    // Opened together: one signs in, one subscribes to a private channel, one does neither.
    let mut idle = server.ws();
    let mut signed = server.ws();
    let mut private = server.ws();
    assert_eq!(
        signin(&mut signed, r#"{"id":"9"}"#)["event"],
        "pusher:signin_success"
    );
    private.subscribe_private("private-ok");
    idle.subscribe("public-only");
    idle.expect_error(4009);
    idle.expect_close(4009);
    // Opened after the other two: once it is closed, their deadline has passed as well.
    let mut later = server.ws();
    later.expect_error(4009);
    later.expect_close(4009);
    signed.ping();
    private.ping();
}

#[test]
fn watchlist_online_and_offline_across_shards() {
    let server = Server::start(&[("RINGCAST_SHARDS", "2")]);
    let mut a = server.ws();
    assert_eq!(
        signin(&mut a, r#"{"id":"u-a"}"#)["event"],
        "pusher:signin_success"
    );
    let mut w = server.ws();
    assert_eq!(
        signin(&mut w, r#"{"id":"w","watchlist":["u-a","u-b"]}"#)["event"],
        "pusher:signin_success"
    );
    assert_eq!(
        cluster::watchlist_event(&w.event()),
        ("online".into(), vec!["u-a".into()])
    );

    // u-b signs in twice, on the shard the watcher is not on: online once; offline when the
    // last connection goes. (Both on one shard: each shard reports in order, while reports
    // from different shards may interleave, e.g. one connection's whole visit before the
    // other's sign-in, which watchers then see as offline and online again.)
    let other = 1 - w.shard();
    let mut b = vec![server.ws_on_shard(other), server.ws_on_shard(other)];
    for ws in &mut b {
        assert_eq!(
            signin(ws, r#"{"id":"u-b"}"#)["event"],
            "pusher:signin_success"
        );
    }
    for ws in b {
        ws.close();
    }
    assert_eq!(
        cluster::watchlist_event(&w.event()),
        ("online".into(), vec!["u-b".into()])
    );
    assert_eq!(
        cluster::watchlist_event(&w.event()),
        ("offline".into(), vec!["u-b".into()])
    );

    // Over 100 watched users: 4302, and the sign-in still succeeds.
    let mut big = server.ws();
    let list: Vec<String> = (0..101).map(|i| format!("x{i}")).collect();
    let ev = signin(&mut big, &json!({"id":"big","watchlist":list}).to_string());
    assert_eq!(ev["event"], "pusher:signin_success");
    big.expect_error(4302);
    big.ping();
    w.ping();
}
