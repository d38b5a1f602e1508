//! Hostile requests over real sockets: each is refused with the status or close code the
//! protocol names, and the server keeps serving everyone else.

mod common;
use common::*;

#[test]
fn two_content_lengths_that_disagree_are_refused_with_400() {
    let server = Server::start(&[]);
    let mut http = server.http();
    http.send_raw(
        b"POST /apps/app-id/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
    );
    let r = http.read_response();
    assert_eq!(r.status, 400, "{}", r.body);
    // Everyone else is still served.
    let mut api = server.api();
    api.trigger("still", "e", "served");
}

#[test]
fn a_websocket_upgrade_below_an_app_path_is_404() {
    let server = Server::start(&[]);
    for path in ["/app/app-key/extra", "/app/", "/app/app-key/"] {
        let mut http = server.http();
        let r = http.request(
            "GET",
            path,
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ],
            b"",
        );
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    server.ws().ping();
}

#[test]
fn a_head_trickled_a_byte_at_a_time_is_cut_off_with_408() {
    use std::io::{Read, Write};
    let server = Server::start(&[]);
    let mut slow = std::net::TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(WAIT)).unwrap();
    let mut writer = slow.try_clone().unwrap();
    // Each byte comes well inside the idle timeout; the head as a whole never ends.
    std::thread::spawn(move || {
        for b in b"POST /apps/app-id/events HTTP/1.1\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    });
    // Everyone else is served meanwhile.
    server.api().trigger("other", "e", "x");
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

fn signin(ws: &mut Ws, user_data: &str) {
    let sig = hmac_hex(APP_SECRET, &format!("{}::user::{user_data}", ws.socket_id));
    ws.send_json(serde_json::json!({"event":"pusher:signin","data":{"auth":format!("{APP_KEY}:{sig}"),"user_data":user_data}}));
    ws.expect("pusher:signin_success");
}

#[test]
fn replayed_sign_ins_are_announced_once_and_a_new_user_replaces_the_old() {
    use common::cluster::{watch_event, watched};
    let server = Server::start(&[]);
    let mut watcher = server.ws();
    for _ in 0..50 {
        signin(&mut watcher, r#"{"id":"w","watchlist":["u1","u2"]}"#);
    }
    let mut ws = server.ws();
    for _ in 0..200 {
        signin(&mut ws, r#"{"id":"u1"}"#);
    }
    assert_eq!(watch_event(&mut watcher), watched("online", "u1"));
    // Signed in as u2 on the same connection: u1 is gone.
    signin(&mut ws, r#"{"id":"u2"}"#);
    assert_eq!(watch_event(&mut watcher), watched("offline", "u1"));
    assert_eq!(watch_event(&mut watcher), watched("online", "u2"));
    ws.close();
    assert_eq!(watch_event(&mut watcher), watched("offline", "u2"));
}

#[test]
fn an_extreme_auth_timestamp_is_stale_not_a_crash() {
    let server = Server::start(&[]);
    let mut http = server.http();
    for ts in ["-9223372036854775808", "9223372036854775807"] {
        let target = format!(
            "/apps/{APP_ID}/channels?auth_key={APP_KEY}&auth_timestamp={ts}&auth_version=1.0&auth_signature=00"
        );
        let r = http.request("GET", &target, &[], b"");
        assert_eq!(r.status, 401, "{ts}: {}", r.body);
    }
    server.api().trigger("still", "e", "served");
}

/// Writes a masked close frame with `payload` straight to the socket.
fn send_close_payload(ws: &mut Ws, payload: &[u8]) {
    use std::io::Write;
    ws.raw().write_all(&masked_frame(0x8, payload)).unwrap();
}

#[test]
fn a_close_code_that_may_not_be_sent_is_a_protocol_error_not_echoed() {
    let server = Server::start(&[]);
    for code in [1005u16, 1006, 2000] {
        let mut ws = server.ws();
        send_close_payload(&mut ws, &code.to_be_bytes());
        ws.expect_close(1002);
    }
    // A valid one is echoed.
    let mut ws = server.ws();
    send_close_payload(&mut ws, &4321u16.to_be_bytes());
    ws.expect_close(4321);
}

#[test]
fn a_body_sent_to_up_does_not_break_keep_alive() {
    let server = Server::start(&[]);
    let mut http = server.http();
    let first = http.request("GET", "/up", &[], b"ignored body");
    assert_eq!((first.status, first.body.as_str()), (200, "OK"));
    let second = http.request("GET", "/up", &[], b"");
    assert_eq!((second.status, second.body.as_str()), (200, "OK"));
}

#[test]
fn only_the_dev_apps_secret_is_logged() {
    let dev = Server::start(&[]);
    assert!(dev.wait_log("app id=app-id").contains("secret=app-secret"));
    let configured = Server::with_config(&app_toml("real", ""));
    let line = configured.wait_log("app id=real");
    assert!(!line.contains("real-secret"), "{line}");
}

#[test]
fn the_sign_in_deadline_never_fires_early() {
    let toml =
        dev_app_toml("require_user_authentication = true\nuser_authentication_timeout_s = 2");
    let server = Server::with_config(&toml);
    // Opened at different points within the server's one-second tick.
    let mut opened = Vec::new();
    for _ in 0..5 {
        opened.push((std::time::Instant::now(), server.ws()));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for (at, mut ws) in opened {
        ws.expect_error(4009);
        ws.expect_close(4009);
        let waited = at.elapsed();
        assert!(
            waited >= std::time::Duration::from_secs(2),
            "closed after {waited:?}"
        );
    }
}

#[test]
fn a_connection_is_limited_in_its_channels_and_stays_open() {
    let server = Server::with_config(&dev_app_toml("max_channels_per_connection = 3"));
    let mut ws = server.ws();
    for ch in ["a", "b", "c"] {
        ws.subscribe(ch);
    }
    ws.send_json(serde_json::json!({"event":"pusher:subscribe","data":{"channel":"d"}}));
    let refused = ws.expect("pusher:subscription_error");
    assert_eq!(refused["channel"], "d");
    let data = &refused["data"];
    assert_eq!(data["status"], 403, "{refused}");
    ws.ping();
    // Room again after leaving one; the refused channel was never counted.
    ws.send_json(serde_json::json!({"event":"pusher:unsubscribe","data":{"channel":"a"}}));
    ws.subscribe("d");
    let mut api = server.api();
    let r = api.get("/channels", &[]);
    let channels = r.json()["channels"].clone();
    assert!(
        channels.get("d").is_some() && channels.get("a").is_none(),
        "{channels}"
    );
}

#[test]
fn out_of_file_descriptors_clients_are_refused_and_the_log_stays_quiet() {
    use std::io::Read;
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -n 96 && exec {}",
            env!("CARGO_BIN_EXE_ringcast")
        ))
        .env("RINGCAST_METRICS_PORT", "0")
        .env("RINGCAST_HOST", "127.0.0.1")
        .env("RINGCAST_PORT", "0")
        .env("RINGCAST_SHARDS", "2")
        .env("RUST_LOG", "info");
    let server = Server::spawn_command(cmd);
    let started = std::time::Instant::now();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..130 {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(150)))
            .unwrap();
        // A refused client is closed at once; an accepted one waits for its request.
        match s.read(&mut [0u8; 1]) {
            Ok(0) => refused += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => refused += 1,
            _ => held.push(s),
        }
    }
    assert!(refused > 0, "{} held, none refused", held.len());
    // Once descriptors are free again, clients are served.
    drop(held);
    let up = || -> Option<String> {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(server.addr).ok()?;
        s.set_read_timeout(Some(WAIT)).ok()?;
        s.write_all(b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        Some(answer)
    };
    let deadline = std::time::Instant::now() + WAIT;
    while !up().is_some_and(|a| a.starts_with("HTTP/1.1 200")) {
        assert!(std::time::Instant::now() < deadline, "never served again");
    }
    let warnings = std::iter::from_fn(|| server.log.try_recv().ok())
        .filter(|l| l.contains("accepts failed"))
        .count();
    // At most one line per shard every five seconds, however many accepts failed.
    let most = 2 * (started.elapsed().as_secs() as usize / 5 + 1);
    assert!((1..=most).contains(&warnings), "{warnings} warning lines");
}

#[test]
fn the_open_files_soft_limit_is_raised_to_the_hard_one() {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -S -n 200 && exec {}",
            env!("CARGO_BIN_EXE_ringcast")
        ))
        .env("RINGCAST_METRICS_PORT", "0")
        .env("RINGCAST_HOST", "127.0.0.1")
        .env("RINGCAST_PORT", "0")
        .env("RUST_LOG", "info");
    let server = Server::spawn_command(cmd);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "soft = hard: {line}");
    assert_ne!(numbers[0], "200", "{line}");
}

#[test]
fn http_connections_beyond_the_cap_get_503_and_websockets_do_not_count() {
    use std::io::{Read, Write};
    let server = Server::start(&[
        ("RINGCAST_SHARDS", "1"),
        ("RINGCAST_MAX_HTTP_CONNECTIONS", "4"),
    ]);
    // Upgraded connections leave the HTTP phase.
    let mut sockets: Vec<Ws> = (0..6).map(|_| server.ws()).collect();
    // Four connections that never send a request hold the four places.
    let mut idle: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(server.addr).unwrap())
        .collect();
    let get_up = || {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let _ = s.write_all(b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    };
    let answer = get_up();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // A place comes free when one of them goes.
    idle.pop();
    let deadline = std::time::Instant::now() + WAIT;
    while !get_up().starts_with("HTTP/1.1 200") {
        assert!(std::time::Instant::now() < deadline, "never served again");
    }
    sockets[0].ping();
}

#[test]
fn a_flood_while_the_api_core_is_behind_is_held_back_not_queued() {
    use common::metrics::metric;
    use common::redis::{Redis, node};
    use std::io::Write;
    let redis = Redis::start();
    let port = free_port();
    let server = node(
        &redis,
        "flood",
        &[
            ("RINGCAST_SHARDS", "1"),
            ("RINGCAST_METRICS_PORT", &port.to_string()),
            ("RINGCAST_APP_MAX_SUBSCRIBES_PER_SECOND", "0"),
        ],
    );
    let mut ws = server.ws();
    // The API core waits on Redis for every subscription now.
    redis.pause(true);
    let subscribe = masked_frame(
        0x1,
        br#"{"event":"pusher:subscribe","data":{"channel":"x"}}"#,
    );
    let unsubscribe = masked_frame(
        0x1,
        br#"{"event":"pusher:unsubscribe","data":{"channel":"x"}}"#,
    );
    let chunk: Vec<u8> = std::iter::repeat_n([subscribe, unsubscribe].concat(), 1000)
        .flatten()
        .collect();
    // 250,000 pairs: far more than the shard holds back plus what the sockets buffer.
    let mut stream = ws.raw();
    let writer = std::thread::spawn(move || {
        for _ in 0..250 {
            if stream.write_all(&chunk).is_err() {
                return None;
            }
        }
        Some(stream)
    });
    let series = "ringcast_shard_reports_queued{shard=\"0\"}";
    let mut most = 0.0f64;
    // The shard fills its backlog, then stops reading: the queue never grows past it (plus
    // one read's messages).
    while most < 16_384.0 {
        most = most.max(metric(port, series).unwrap_or(0.0));
        assert!(!writer.is_finished(), "the server read the whole flood");
    }
    for _ in 0..50 {
        most = most.max(metric(port, series).unwrap_or(0.0));
    }
    assert!(most <= 16_384.0 + 2_000.0, "{most} reports queued");
    redis.pause(false);
    writer.join().unwrap().expect("the connection stayed open");
    ws.ping();
}

#[test]
fn a_burst_of_a_thousand_messages_in_one_write_is_answered_in_full_and_in_order() {
    use std::io::Write;
    let server = Server::start(&[]);
    let mut ws = server.ws();
    // More than one turn's budget: the rest waits in the connection for its next turns.
    let burst: Vec<u8> = (0..1000)
        .flat_map(|i| {
            let channel = format!("burst-{i}");
            let msg = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"}}}}"#);
            masked_frame(0x1, msg.as_bytes())
        })
        .collect();
    ws.raw().write_all(&burst).unwrap();
    for i in 0..1000 {
        let ev = ws.expect("pusher_internal:subscription_succeeded");
        assert_eq!(ev["channel"], format!("burst-{i}"));
    }
    ws.ping();
}
