//! How broadcasts reach sockets, against the real binary: the shard writes them straight to a
//! socket that takes them, and once a socket is full the connection's own task takes over.
//! Either way every event arrives, in order, and nothing follows a close frame.

mod common;
use common::*;
use std::io::Read;

/// 90 KiB events: a few hundred back up far beyond any socket buffer here (4 MiB at most).
fn big_data() -> String {
    "x".repeat(90 * 1024)
}

/// A server, a subscriber of "firehose" with a 4 KiB receive buffer that has not read yet, and
/// `count` 90 KiB events named `{prefix}{i}` published to it: its socket is full and the rest
/// waits in its outbox.
fn backed_up_subscriber(prefix: &str, count: usize) -> (Server, Ws, Api, String) {
    let (server, client) = late_subscriber();
    let (api, data) = publish_big(&server, prefix, count);
    (server, client, api, data)
}

/// A server and a subscriber of "firehose" with a 4 KiB receive buffer that has not read yet.
fn late_subscriber() -> (Server, Ws) {
    let server = Server::start(&[("RINGCAST_OUTBOUND_BUFFER_KB", "65536")]);
    let mut client = server.ws_with_receive_buffer(4096);
    client.subscribe("firehose");
    (server, client)
}

/// Publishes `count` 90 KiB events named `{prefix}{i}` to "firehose".
fn publish_big(server: &Server, prefix: &str, count: usize) -> (Api, String) {
    let mut api = server.api();
    let data = big_data();
    for i in 0..count {
        api.trigger("firehose", &format!("{prefix}{i}"), &data);
    }
    (api, data)
}

#[test]
fn a_subscriber_that_reads_late_gets_every_event_in_order() {
    // ~27 MB while it does not read.
    let (_server, mut late, mut api, data) = backed_up_subscriber("e", 300);
    for i in 0..300 {
        let ev = late.expect(&format!("e{i}"));
        assert_eq!(ev["data"].as_str().map(str::len), Some(data.len()));
    }
    // Back to writing straight to the socket once the backlog is out.
    api.trigger("firehose", "after", "1");
    late.expect("after");
}

/// The server's frames in `bytes` as (opcode, payload length).
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, header) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        assert!(bytes.len() >= header + len, "a frame was cut short");
        frames.push((opcode, len));
        bytes = &bytes[header + len..];
    }
    assert!(bytes.is_empty(), "trailing bytes after the last frame");
    frames
}

#[test]
fn nothing_follows_a_close_frame() {
    // Events wait in its outbox when it asks to close: the close frame queues behind them.
    let (server, client) = late_subscriber();
    // A publish is answered once the API core has handed it to the shards, which may not have
    // taken it yet: a subscriber on the same shard that reads shows when they have.
    let mut witness = server.ws_on_shard(client.shard());
    witness.subscribe("firehose");
    let (mut api, _) = publish_big(&server, "before", 100);
    for i in 0..100 {
        witness.expect(&format!("before{i}"));
    }
    let mut raw = client.raw();
    std::io::Write::write_all(&mut raw, &masked_frame(0x8, &1000u16.to_be_bytes())).unwrap();
    // Published after the close was sent: none of them may follow the close frame (most are
    // handled after the server has read it).
    for i in 0..50 {
        api.trigger("firehose", &format!("after{i}"), "small");
    }
    // Everything up to the end of the stream (the server ends it after its close frame).
    let mut bytes = Vec::new();
    raw.read_to_end(&mut bytes).unwrap();
    let frames = server_frames(&bytes);
    let closes: Vec<usize> = (0..frames.len()).filter(|&i| frames[i].0 == 0x8).collect();
    assert_eq!(closes, vec![frames.len() - 1], "one close frame, the last");
    let texts = frames.iter().filter(|f| f.0 == 0x1).count();
    assert!(
        texts >= 100,
        "every event published before the close arrived: {texts}"
    );
}
