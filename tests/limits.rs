//! Rate limits and caps against the real binary: API requests per app per second (429 with
//! `Retry-After`, counted only once signed), WebSocket connects per source address per second,
//! subscribes per connection per second, connections per shard, and a large body refused from
//! its unsigned head before it is read.
//!
//! Every window is one wall-clock second, and a burst may straddle two: a test sends enough
//! that even two windows cannot admit all of it.

mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn api_requests_over_the_apps_rate_answer_429_and_only_signed_ones_count() {
    let server = Server::with_config(&dev_app_toml("max_api_requests_per_second = 1"));
    let mut http = server.http();
    // Unsigned requests are refused before they are counted: they cannot spend the budget.
    for _ in 0..20 {
        let r = http.request("POST", "/apps/app-id/events?auth_key=app-key", &[], b"{}");
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let mut api = server.api();
    let publish = json!({"name": "e", "channel": "c", "data": "x"});
    assert_eq!(api.post("/events", &publish).status, 200);
    // Two more within at most two seconds: one of them is over.
    let answers = [api.post("/events", &publish), api.post("/events", &publish)];
    let refused = answers
        .iter()
        .find(|r| r.status == 429)
        .expect("a request over the limit");
    assert_eq!(header(refused, "retry-after"), Some("1"));
    assert_eq!(refused.json()["code"], "too_many_requests");
}

/// Sends a WebSocket upgrade from `source` (a loopback address) and reads the answer's status.
fn upgrade_from(server: &Server, source: &str) -> u16 {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let request = format!(
        "GET /app/{APP_KEY}?protocol=7 HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    let line = String::from_utf8_lossy(&head);
    line[9..12].parse().unwrap()
}

#[test]
fn connects_over_the_rate_of_one_address_answer_429_and_other_addresses_are_served() {
    let server = Server::start(&[
        ("RINGCAST_SHARDS", "1"),
        ("RINGCAST_MAX_CONNECTS_PER_IP_PER_SECOND", "2"),
    ]);
    let statuses: Vec<u16> = (0..5).map(|_| upgrade_from(&server, "127.0.0.1")).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [101, 429].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(upgrade_from(&server, "127.0.0.2"), 101);
}

#[test]
fn subscribes_over_the_rate_are_refused_with_429_and_the_connection_stays() {
    let server = Server::with_config(&dev_app_toml("max_subscribes_per_second = 3"));
    let mut ws = server.ws();
    for i in 0..8 {
        ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":format!("s-{i}")}}));
    }
    let mut refused = 0;
    for _ in 0..8 {
        let ev = ws.event();
        match ev["event"].as_str() {
            Some("pusher_internal:subscription_succeeded") => {}
            Some("pusher:subscription_error") => {
                assert_eq!(ev["data"]["status"], 429, "{ev}");
                refused += 1;
            }
            _ => panic!("unexpected {ev}"),
        }
    }
    // Eight in at most two seconds of three each.
    assert!(refused >= 2, "{refused} refused");
    ws.ping();
}

#[test]
fn a_shard_at_its_connection_cap_closes_new_connections_with_4100() {
    let server = Server::start(&[
        ("RINGCAST_SHARDS", "1"),
        ("RINGCAST_MAX_CONNECTIONS_PER_SHARD", "2"),
    ]);
    let _kept = [server.ws(), server.ws()];
    let mut third = Ws::connect_raw(server.addr, &format!("/app/{APP_KEY}"));
    third.expect_close(4100);
}

#[test]
fn a_large_unsigned_body_is_refused_from_its_head_and_a_signed_one_is_read() {
    let server = Server::start(&[]);
    let mut http = server.http();
    // The head alone: the server answers without waiting for the 4 MiB it announces.
    http.send_raw(
        b"POST /apps/app-id/events?auth_key=app-key HTTP/1.1\r\nHost: t\r\n\
          Content-Length: 4000000\r\n\r\n",
    );
    let r = http.read_response();
    assert_eq!(r.status, 401, "{}", r.body);
    // A signed batch larger than what is read unsigned is served.
    let data = "x".repeat(9 * 1024);
    let batch: Vec<_> = (0..10)
        .map(|i| json!({"name":"e","channel":format!("c-{i}"),"data":data}))
        .collect();
    let body = json!({ "batch": batch }).to_string();
    assert!(body.len() > 64 * 1024);
    let r = server.api().call("POST", "/batch_events", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A server with two apps, `quiet` and `loud`, whose node-wide stores hold at most ten keys,
/// ten cache channels and twenty history events.
fn two_apps_with_small_caps() -> Server {
    let toml = format!("{}{}", app_toml("quiet", ""), app_toml("loud", ""));
    Server::with_config_env(
        &toml,
        &[
            ("RINGCAST_IDEMPOTENCY_MAX_KEYS", "10"),
            ("RINGCAST_HISTORY_MAX_EVENTS", "20"),
            ("RINGCAST_CACHE_MAX_CHANNELS", "10"),
        ],
    )
}

#[test]
fn one_apps_flood_never_evicts_another_apps_keys_history_or_cache() {
    let server = two_apps_with_small_caps();
    let (mut quiet, mut loud) = (server.api_for("quiet"), server.api_for("loud"));
    let mut watcher = Ws::connect(server.addr, "/app/quiet-key?protocol=7");
    watcher.subscribe("room");
    let event = |n: usize| json!({"name":"e","channel":"room","data":n.to_string()});
    let keyed = json!({"name":"e","channel":"room","data":"once","idempotency_key":"k-1"});
    assert_eq!(quiet.post("/events", &keyed).status, 200);
    assert_eq!(watcher.expect("e")["data"], "once");
    for n in 0..3 {
        assert_eq!(quiet.post("/events", &event(n)).status, 200);
        watcher.expect("e");
    }
    assert_eq!(
        quiet
            .post(
                "/events",
                &json!({"name":"e","channel":"cache-mine","data":"last"})
            )
            .status,
        200
    );
    // The loud app fills every store many times over.
    for n in 0..50 {
        let keyed =
            json!({"name":"e","channel":"room","data":"x","idempotency_key":format!("l-{n}")});
        assert_eq!(loud.post("/events", &keyed).status, 200);
        let cache = json!({"name":"e","channel":format!("cache-{n}"),"data":"x"});
        assert_eq!(loud.post("/events", &cache).status, 200);
    }
    // The quiet app's retry is still a repeat: nothing is delivered again.
    assert_eq!(quiet.post("/events", &keyed).status, 200);
    quiet.trigger("room", "marker", "m");
    assert_eq!(
        watcher.expect("marker")["data"],
        "m",
        "the retry was delivered again"
    );
    // Its history is whole (the keyed event, the three after it and the marker: within its
    // half of the twenty).
    let page = quiet.get("/channels/room/history", &[]).json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5), "{page}");
    // While the loud app kept only what the cap leaves it.
    let loud_page = loud.get("/channels/room/history", &[]).json();
    let kept = loud_page["continuity"]["retained_messages"].as_u64();
    assert!(kept.is_some_and(|n| n <= 14), "{loud_page}");
    // Its cache channel still has its last event.
    let mut late = Ws::connect(server.addr, "/app/quiet-key?protocol=7");
    late.subscribe("cache-mine");
    assert_eq!(late.expect("e")["data"], "last");
}
