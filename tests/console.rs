//! The web console (docs/console.md) over real HTTP on `metrics_port`, with real WebSocket
//! clients: who may use it, its figures, the live event log (Server-Sent Events) and its
//! bounded drops, the channel drill-down, and publishing from it.

mod common;
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

const TOKEN: &str = "console-t0ken";

fn console_server(extra_env: &[(&str, &str)]) -> (Server, u16) {
    let port = free_port();
    let port_text = port.to_string();
    let mut env = vec![
        ("RINGCAST_METRICS_PORT", port_text.as_str()),
        ("RINGCAST_CONSOLE_TOKEN", TOKEN),
        ("RINGCAST_SHARDS", "2"),
        ("RINGCAST_APP_ENABLE_CLIENT_MESSAGES", "true"),
        ("RINGCAST_APP_HISTORY_MAX_MESSAGES", "10"),
    ];
    env.extend_from_slice(extra_env);
    (Server::start(&env), port)
}

fn console(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut http = Http::connect(([127, 0, 0, 1], port).into());
    http.request(method, path, headers, body)
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn get(port: u16, path: &str) -> Value {
    let r = console(port, "GET", path, &[("Authorization", &bearer())], b"");
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

/// An open event stream of the console.
struct Stream {
    reader: BufReader<TcpStream>,
}

/// One item of the stream: an entry, or a report of dropped entries.
#[derive(Debug)]
enum Item {
    Entry(Value),
    Dropped(Value),
}

impl Stream {
    fn open(port: u16, query: &str) -> Stream {
        Self::open_with(TcpStream::connect(("127.0.0.1", port)).unwrap(), query)
    }

    fn open_with(mut socket: TcpStream, query: &str) -> Stream {
        socket.set_read_timeout(Some(WAIT)).unwrap();
        let req = format!(
            "GET /console/api/events?{query} HTTP/1.1\r\nHost: t\r\nAuthorization: {}\r\n\r\n",
            bearer()
        );
        socket.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(socket);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut stream = Stream { reader };
        // The headers, then the stream's first comment: from here on the shards watch.
        assert!(
            stream
                .lines_until_blank()
                .iter()
                .any(|h| h == "Content-Type: text/event-stream")
        );
        assert_eq!(stream.lines_until_blank(), [": ringcast console"]);
        stream
    }

    fn lines_until_blank(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("stream read");
            assert!(n > 0, "the stream ended");
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            if line.is_empty() {
                return lines;
            }
            lines.push(line);
        }
    }

    fn next(&mut self) -> Item {
        loop {
            let lines = self.lines_until_blank();
            let data = lines.iter().find_map(|l| l.strip_prefix("data: "));
            let Some(data) = data else { continue };
            let value: Value = serde_json::from_str(data).unwrap();
            return if lines.iter().any(|l| l == "event: dropped") {
                Item::Dropped(value)
            } else {
                Item::Entry(value)
            };
        }
    }

    /// The next entry; there must be no drop report before it.
    fn entry(&mut self) -> Value {
        match self.next() {
            Item::Entry(v) => v,
            other => panic!("expected an entry, got {other:?}"),
        }
    }

    /// The next entry of `kind`, skipping others.
    fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let e = self.entry();
            if e["kind"] == kind {
                return e;
            }
        }
    }
}

#[test]
fn the_console_is_off_without_a_token_and_never_on_the_public_port() {
    let port = free_port();
    let server = Server::start(&[("RINGCAST_METRICS_PORT", &port.to_string())]);
    let r = console(port, "GET", "/console", &[], b"");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("console_token"), "{}", r.body);
    let (server_on, _) = console_server(&[]);
    for s in [&server, &server_on] {
        let r = s.http().request("GET", "/console", &[], b"");
        assert_eq!(r.status, 404, "{}", r.body);
    }
    // /metrics is still served beside it.
    assert!(common::metrics::scrape(port).contains("ringcast_connections"));
}

#[test]
fn only_the_token_or_the_login_cookie_opens_it() {
    let (_server, port) = console_server(&[]);
    // Without credentials: the login form, with 401.
    let r = console(port, "GET", "/console", &[], b"");
    assert_eq!(r.status, 401);
    assert!(r.body.contains("action=\"/console/login\""), "{}", r.body);
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Basic Y29uc29sZS10MGtlbg==")],
        vec![("Cookie", "ringcast_console=00ff")],
    ] {
        let r = console(port, "GET", "/console/api/overview", &headers, b"");
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
    }
    let wrong = console(port, "POST", "/console/login", &[], b"token=nope");
    assert_eq!(wrong.status, 401);
    assert!(!wrong.headers.iter().any(|(k, _)| k == "set-cookie"));

    // The form sets a cookie that opens the page and the API, and holds no token.
    let form = format!("token={TOKEN}");
    let r = console(port, "POST", "/console/login", &[], form.as_bytes());
    assert_eq!(r.status, 303);
    let header = |name: &str| r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    assert_eq!(header("location").map(String::as_str), Some("/console"));
    let cookie = header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains(TOKEN));
    let pair = cookie.split(';').next().unwrap();
    let page = console(port, "GET", "/console", &[("Cookie", pair)], b"");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("ringcast console") && page.body.contains("EventSource"));
    let csp = page
        .headers
        .iter()
        .find(|(k, _)| k == "content-security-policy");
    assert!(csp.is_some_and(|(_, v)| v.contains("frame-ancestors 'none'")));
    let r = console(
        port,
        "GET",
        "/console/api/overview",
        &[("Cookie", pair)],
        b"",
    );
    assert_eq!(r.status, 200);
    // Logging out clears it.
    let out = console(port, "POST", "/console/logout", &[("Cookie", pair)], b"");
    let cleared = out.headers.iter().find(|(k, _)| k == "set-cookie").unwrap();
    assert!(cleared.1.contains("Max-Age=0"));
}

#[test]
fn the_overview_counts_each_app_per_shard_and_never_shows_a_secret() {
    let (server, port) = console_server(&[]);
    let mut clients = server.clients_on_both_shards(2);
    for ws in &mut clients {
        ws.subscribe("news");
        ws.send(r#"{"event":"pusher:ping","data":{}}"#);
        ws.expect("pusher:pong");
    }
    let join_data = r#"{"user_id":"u1","user_info":{}}"#;
    clients[0].send_presence_subscribe("presence-room", join_data);
    clients[0].expect("pusher_internal:subscription_succeeded");
    server.api().trigger("news", "e", "x");
    for ws in &mut clients {
        ws.expect("e");
    }
    let n = clients.len() as u64;
    let overview = get(port, "/console/api/overview");
    assert!(!overview.to_string().contains(APP_SECRET), "{overview}");
    assert_eq!(overview["shards"], 2);
    let app = &overview["apps"][0];
    assert_eq!(
        (app["id"].as_str(), app["key"].as_str()),
        (Some(APP_ID), Some(APP_KEY))
    );
    let per_shard: Vec<u64> = app["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(per_shard.len(), 2);
    assert!(per_shard.iter().all(|c| *c > 0), "{app}");
    assert_eq!(per_shard.iter().sum::<u64>(), n);
    assert_eq!(app["channels"], 2);
    assert_eq!(app["presence_members"], 1);
    // A ping and a subscribe each; one presence subscribe more.
    assert_eq!(app["messages_in"].as_u64(), Some(2 * n + 1));
    assert!(app["messages_out"].as_u64().unwrap() >= n, "{app}");
    assert!(app["events"].as_u64().unwrap() >= 1, "{app}");
    assert_eq!(app["webhook_queue"], 0);
}

#[test]
fn the_event_log_shows_connections_subscriptions_events_members_and_closes() {
    let (server, port) = console_server(&[]);
    let mut log = Stream::open(port, &format!("app={APP_ID}"));
    let mut a = server.ws();
    let opened = log.next_of("connected");
    assert_eq!(opened["socket"], a.socket_id.as_str());
    a.subscribe_private("private-chat");
    let sub = log.next_of("subscribed");
    assert_eq!(
        (&sub["channel"], &sub["socket"]),
        (&json!("private-chat"), &json!(a.socket_id))
    );

    server
        .api()
        .trigger("private-chat", "greeting", "{\"hi\":1}");
    a.expect("greeting");
    let publish = log.next_of("publish");
    assert_eq!(publish["event"], "greeting");
    assert_eq!(publish["data"], "{\"hi\":1}");

    let mut b = server.ws();
    b.subscribe_private("private-chat");
    let whisper = json!({"event":"client-typing","channel":"private-chat","data":{"who":"b"}});
    b.send_json(whisper);
    a.expect("client-typing");
    let client_event = log.next_of("client_event");
    assert_eq!(client_event["socket"], b.socket_id.as_str());
    assert_eq!(client_event["data"], "{\"who\":\"b\"}");

    let join_data = r#"{"user_id":"ada","user_info":{}}"#;
    b.send_presence_subscribe("presence-room", join_data);
    b.expect("pusher_internal:subscription_succeeded");
    assert_eq!(log.next_of("member_added")["user_id"], "ada");
    b.send_json(json!({"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}));
    let removed = log.next_of("member_removed");
    assert_eq!(
        (&removed["channel"], &removed["user_id"]),
        (&json!("presence-room"), &json!("ada"))
    );

    // A client's close is echoed with its code; a connection the server closes has its code.
    let b_id = b.socket_id.clone();
    b.close();
    let closed = log.next_of("closed");
    assert_eq!(
        (&closed["socket"], &closed["code"]),
        (&json!(b_id), &json!(1000))
    );
    let mut c = server.ws();
    c.send(&"x".repeat(70 * 1024));
    c.expect_close(1009);
    assert_eq!(log.next_of("connected")["socket"], c.socket_id.as_str());
    let closed = log.next_of("closed");
    assert_eq!(
        (&closed["socket"], &closed["code"]),
        (&json!(c.socket_id), &json!(1009))
    );
}

#[test]
fn a_channel_filter_shows_only_that_channel() {
    let (server, port) = console_server(&[]);
    let mut log = Stream::open(port, &format!("app={APP_ID}&channel=wanted"));
    let mut ws = server.ws();
    ws.subscribe("other");
    ws.subscribe("wanted");
    let mut api = server.api();
    api.trigger("other", "skip", "1");
    api.trigger("wanted", "keep", "2");
    ws.expect("skip");
    ws.expect("keep");
    // Neither the connection nor anything on "other" comes first.
    let first = log.entry();
    assert_eq!(
        (&first["kind"], &first["channel"]),
        (&json!("subscribed"), &json!("wanted"))
    );
    let second = log.entry();
    assert_eq!(
        (&second["kind"], &second["event"]),
        (&json!("publish"), &json!("keep"))
    );
}

#[test]
fn a_watcher_that_reads_nothing_loses_entries_counted_while_every_client_gets_everything() {
    let (server, port) = console_server(&[]);
    // A stream with a small receive window that is not read while the events flow.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut log = Stream::open_with(socket.into(), &format!("app={APP_ID}"));
    let mut ws = server.ws();
    ws.subscribe("flood");
    let (batches, per_batch) = (300, 10);
    // The subscriber reads as fast as it can.
    let reader = std::thread::spawn(move || {
        for _ in 0..batches * per_batch {
            ws.expect("e");
        }
    });
    let mut api = server.api();
    let data = "d".repeat(1900);
    for _ in 0..batches {
        let batch: Vec<Value> = (0..per_batch)
            .map(|_| json!({"name":"e","channel":"flood","data":data}))
            .collect();
        let r = api.post("/batch_events", &json!({ "batch": batch }));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    reader.join().unwrap();
    // The stream shows what it could hold, then how many it lost.
    let mut publishes = 0;
    let dropped = loop {
        match log.next() {
            Item::Entry(e) if e["kind"] == "publish" => publishes += 1,
            Item::Entry(_) => {}
            Item::Dropped(d) => break d,
        }
    };
    let lost = dropped["dropped"].as_u64().unwrap();
    assert!(lost > 0, "{dropped}");
    assert!(publishes + lost <= (batches * per_batch) as u64);
    // The console is still served, and counts its stream.
    assert_eq!(get(port, "/console/api/overview")["console"]["watchers"], 1);
}

#[test]
fn the_drill_down_lists_subscribers_members_and_history_and_the_form_publishes() {
    let (server, port) = console_server(&[]);
    let mut a = server.ws();
    let mut b = server.ws();
    a.subscribe("room");
    b.subscribe("room");
    let sockets = get(
        port,
        &format!("/console/api/apps/{APP_ID}/channels/room/sockets"),
    );
    let mut listed: Vec<&str> = sockets["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    listed.sort();
    let mut expected = vec![a.socket_id.as_str(), b.socket_id.as_str()];
    expected.sort();
    assert_eq!(listed, expected);

    // The HTTP API without a signature, behind the console's token.
    let list = get(
        port,
        &format!("/console/api/apps/{APP_ID}/channels?info=subscription_count"),
    );
    assert_eq!(list["channels"]["room"]["subscription_count"], 2);
    let body = json!({"name":"test-event","channel":"room","data":"{\"from\":\"console\"}"});
    let path = format!("/console/api/apps/{APP_ID}/events");
    let auth = bearer();
    let r = console(
        port,
        "POST",
        &path,
        &[("Authorization", &auth)],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for ws in [&mut a, &mut b] {
        let ev = ws.expect("test-event");
        assert_eq!(ev["data"], "{\"from\":\"console\"}");
    }
    let history = get(
        port,
        &format!("/console/api/apps/{APP_ID}/channels/room/history?limit=5"),
    );
    assert_eq!(history["items"][0]["event_name"], "test-event");
    // Without the token, the same publish is refused.
    let r = console(port, "POST", &path, &[], body.to_string().as_bytes());
    assert_eq!(r.status, 401);
    let r = console(
        port,
        "GET",
        "/console/api/apps/nope/channels",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 404);
}

#[test]
fn a_disabled_app_is_listed_without_its_secret_and_its_api_answers_403() {
    let port = free_port();
    let toml = format!("{}{}", dev_app_toml(""), app_toml("off", "enabled = false"));
    let env = [
        ("RINGCAST_METRICS_PORT", port.to_string()),
        ("RINGCAST_CONSOLE_TOKEN", TOKEN.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _server = Server::with_config_env(&toml, &env);
    let overview = get(port, "/console/api/overview");
    let off = &overview["apps"][1];
    assert_eq!(
        (&off["id"], &off["enabled"]),
        (&json!("off"), &json!(false))
    );
    assert!(!overview.to_string().contains("off-secret"), "{overview}");
    // Named, one app gets the counts that ask the cluster's state; the others get null.
    let one = get(port, &format!("/console/api/overview?app={APP_ID}"));
    assert_eq!(
        (&one["apps"][0]["channels"], &one["apps"][1]["channels"]),
        (&json!(0), &Value::Null)
    );
    assert_eq!(overview["apps"][1]["channels"], 0);
    let body = json!({"name":"e","channel":"c","data":"x"}).to_string();
    let auth = bearer();
    let headers = [("Authorization", auth.as_str())];
    let r = console(
        port,
        "POST",
        "/console/api/apps/off/events",
        &headers,
        body.as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.body);
}

#[test]
fn event_streams_are_bounded_and_a_closed_one_frees_its_place() {
    let (server, port) = console_server(&[]);
    let query = format!("app={APP_ID}");
    let mut open: Vec<Stream> = (0..16).map(|_| Stream::open(port, &query)).collect();
    let auth = bearer();
    let path = format!("/console/api/events?{query}");
    let r = console(port, "GET", &path, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        get(port, "/console/api/overview")["console"]["watchers"],
        16
    );
    // A browser that goes is noticed when the stream's writes fail: new connections make
    // entries to write. Its place is then free again.
    drop(open.pop());
    let deadline = std::time::Instant::now() + WAIT;
    while get(port, "/console/api/overview")["console"]["watchers"] != 15 {
        assert!(
            std::time::Instant::now() < deadline,
            "the closed stream kept its place"
        );
        server.ws().close();
    }
    open.push(Stream::open(port, &query));
}
