//! The WebSocket protocol (docs/protocol.md) against the real binary: handshake outcomes, heartbeat,
//! subscriptions, and every bad input, after each of which the connection (or the server)
//! keeps serving.

mod common;
use common::*;
use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameHeader};

fn established_data(ev: &Value) -> Value {
    serde_json::from_str(ev["data"].as_str().expect("data must be a JSON string")).unwrap()
}

#[test]
fn connection_established_and_unique_socket_ids() {
    let server = Server::start(&[]);
    let mut ids = std::collections::HashSet::new();
    for _ in 0..50 {
        let mut ws = Ws::connect_raw(
            server.addr,
            "/app/app-key?protocol=7&client=js&version=8.4.0&flash=false",
        );
        let ev = ws.expect("pusher:connection_established");
        let data = established_data(&ev);
        assert_eq!(data["activity_timeout"], 120);
        let id = data["socket_id"].as_str().unwrap().to_string();
        let (a, b) = id.split_once('.').unwrap();
        assert!(
            !a.is_empty()
                && !b.is_empty()
                && (a.to_string() + b).bytes().all(|c| c.is_ascii_digit()),
            "{id}"
        );
        assert!(ids.insert(id));
    }
}

#[test]
fn ping_pong_both_levels() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    ws.ping();
    ws.ws.send(Message::Ping(b"abc".to_vec().into())).unwrap();
    // tungstenite hands Pong frames to the reader: the very next message is our pong.
    match ws.ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"abc"),
        other => panic!("expected a pong frame, got {other:?}"),
    }
    ws.ping();
}

#[test]
fn subscribe_unsubscribe_and_channel_errors_keep_connection_open() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    ws.subscribe("room-1");
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"room-1"}}));
    ws.expect_error(4300);
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"bad name!"}}));
    ws.expect_error(4300);
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"x".repeat(201)}}));
    ws.expect_error(4300);
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"#not-server-to-user"}}));
    ws.expect_error(4300);
    ws.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":"room-2"}}));
    ws.expect_error(4300);
    ws.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":"room-1"}}));
    ws.ping(); // no reply to unsubscribe: the next thing we get is the pong
    ws.subscribe("room-1"); // and it can subscribe again
}

#[test]
fn malformed_messages_get_4000_and_connection_stays_open() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    for bad in [
        "not json",
        "[1,2,3]",
        r#"{"data":{}}"#,
        r#"{"event":42}"#,
        r#"{"event":"pusher:subscribe","data":{}}"#,
        "",
    ] {
        ws.send(bad);
        let ev = ws.expect_error(4000);
        assert!(
            ev["data"]["message"].is_string(),
            "pusher:error data is an object with a message"
        );
    }
    ws.ws.send(Message::Binary(vec![1, 2, 3].into())).unwrap();
    ws.expect_error(4000);
    ws.send(r#"{"event":"some-unknown-event","data":{}}"#);
    ws.ping();
}

#[test]
fn fragmented_message_is_reassembled() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    let text = r#"{"event":"pusher:subscribe","data":{"channel":"frag"}}"#.as_bytes();
    let (a, b) = text.split_at(20);
    ws.ws
        .send(Message::Frame(Frame::message(
            a.to_vec(),
            OpCode::Data(Data::Text),
            false,
        )))
        .unwrap();
    ws.ws
        .send(Message::Frame(Frame::message(
            b.to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .unwrap();
    let ev = ws.expect("pusher_internal:subscription_succeeded");
    assert_eq!(ev["channel"], "frag");
}

#[test]
fn oversize_message_closes_1009_and_server_keeps_serving() {
    let server = Server::start(&[("RINGCAST_MAX_MESSAGE_KB", "1")]);
    let mut other = server.ws();
    let mut ws = server.ws();
    let big = format!(
        r#"{{"event":"client-x","channel":"private-a","data":"{}"}}"#,
        "x".repeat(2000)
    );
    ws.send(&big);
    ws.expect_close(1009);
    other.ping();
    let mut fresh = server.ws();
    fresh.ping();
}

#[test]
fn protocol_violations_close_1002() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    // A continuation frame with no message to continue.
    ws.ws
        .send(Message::Frame(Frame::message(
            b"x".to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .unwrap();
    ws.expect_close(1002);
    server.ws().ping();
}

#[test]
fn unmasked_frame_closes_1002() {
    use std::io::Write;
    let server = Server::start(&[]);
    let mut ws = server.ws();
    let mut raw = Vec::new();
    FrameHeader {
        is_final: true,
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    }
    .format(2, &mut raw)
    .unwrap();
    raw.extend_from_slice(b"{}");
    match ws.ws.get_mut() {
        tungstenite::stream::MaybeTlsStream::Plain(s) => s.write_all(&raw).unwrap(),
        _ => unreachable!(),
    }
    ws.expect_close(1002);
}

#[test]
fn app_refusals() {
    let server = Server::with_config(&format!(
        "{}{}",
        dev_app_toml("max_connections = 1"),
        app_toml("off", "enabled = false")
    ));
    let refused = |path: &str, code: u16| {
        let mut ws = Ws::connect_raw(server.addr, path);
        ws.expect_error(code as u64);
        ws.expect_close(code);
    };
    refused("/app/nope?protocol=7", 4001);
    refused("/app/off-key?protocol=7", 4003);
    refused("/app/app-key?protocol=4", 4007);
    refused("/app/app-key?protocol=abc", 4007);
    let mut first = server.ws_path("/app/app-key"); // no protocol parameter: accepted as 7
    refused("/app/app-key?protocol=7", 4004);
    first.ping();
    first.close();
    // The quota frees up once the first connection is gone.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut ws = Ws::connect_raw(server.addr, "/app/app-key?protocol=7");
        match ws.event()["event"].as_str() {
            Some("pusher:connection_established") => break,
            _ => assert!(std::time::Instant::now() < deadline, "quota never freed"),
        }
    }
}

#[test]
fn other_paths_are_404_and_up_answers() {
    let server = Server::start(&[]);
    let mut http = server.http();
    assert_eq!(http.request("GET", "/nope", &[], b"").status, 404);
    let up = http.request("GET", "/up", &[], b"");
    assert_eq!((up.status, up.body.as_str()), (200, "OK"));
    assert_eq!(http.request("GET", "/up/app-id", &[], b"").status, 200);
    assert_eq!(http.request("GET", "/up/unknown", &[], b"").status, 404);
    // A WebSocket upgrade to another path is refused with 404 too.
    let r = http.request(
        "GET",
        "/socket",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    );
    assert_eq!(r.status, 404);
}

#[test]
fn server_pings_idle_clients_and_closes_silent_ones_4201() {
    let server = Server::start(&[
        ("RINGCAST_ACTIVITY_TIMEOUT", "1"),
        ("RINGCAST_PONG_TIMEOUT_S", "1"),
    ]);
    let mut ws = server.ws();
    ws.expect("pusher:ping");
    ws.send(r#"{"event":"pusher:pong","data":{}}"#);
    // Answered: it is pinged again later rather than closed.
    ws.expect("pusher:ping");
    // Not answered this time.
    ws.expect_close(4201);
}

#[test]
fn private_channel_authorization() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    let sig = hmac_hex(APP_SECRET, &format!("{}:private-room", ws.socket_id));
    ws.send_json(json!({"event":"pusher:subscribe","data":{"channel":"private-room","auth":format!("app-key:{sig}")}}));
    ws.expect("pusher_internal:subscription_succeeded");
    for auth in [
        json!(null),
        json!("app-key:deadbeef"),
        json!(format!("other-key:{sig}")),
        json!("garbage"),
    ] {
        ws.send_json(
            json!({"event":"pusher:subscribe","data":{"channel":"private-other","auth":auth}}),
        );
        let ev = ws.expect("pusher:subscription_error");
        assert_eq!(ev["channel"], "private-other");
        assert_eq!(ev["data"]["type"], "AuthError");
        assert_eq!(ev["data"]["status"], 401);
    }
    ws.ping();
}
