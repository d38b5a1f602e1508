//! Slow consumers, graceful shutdown and configuration errors, against the real binary.

mod common;
use common::*;

#[test]
fn slow_consumer_is_closed_4100_and_others_keep_receiving() {
    let server = Server::start(&[
        ("RINGCAST_OUTBOUND_BUFFER_KB", "256"),
        ("RUST_LOG", "info,ringcast::shard::hub=debug"),
    ]);
    // A client with a tiny receive buffer that stops reading after subscribing.
    let mut slow = server.ws_with_receive_buffer(4096);
    slow.subscribe("firehose");
    let mut healthy = server.ws();
    healthy.subscribe("firehose");

    let reader = std::thread::spawn(move || {
        let mut n = 0;
        loop {
            let ev = healthy.event();
            if ev["event"] == "done" {
                return n;
            }
            n += 1;
        }
    });
    let mut api = server.api();
    let data = "x".repeat(90 * 1024);
    for i in 0..300 {
        api.trigger("firehose", &format!("e{i}"), &data);
    }
    api.trigger("firehose", "done", "");
    assert_eq!(
        reader.join().unwrap(),
        300,
        "the healthy subscriber got every event"
    );

    // The server reports dropping the slow one (and only it); then it reads what the kernel
    // still held for it, and the 4100 close.
    let line = server.wait_log("closing with 4100");
    assert!(line.contains(&slow.socket_id), "{line}");
    loop {
        match slow.next() {
            Got::Event(_) => continue,
            Got::Close(code) => {
                assert_eq!(code, Some(4100));
                break;
            }
            Got::Other(m) => panic!("unexpected {m:?}"),
        }
    }
}

#[test]
fn sigterm_closes_clients_with_4200_and_exits_0() {
    let mut server = Server::start(&[("RINGCAST_SHUTDOWN_GRACE_S", "5")]);
    let mut clients: Vec<Ws> = (0..20).map(|_| server.ws()).collect();
    for c in &mut clients {
        c.subscribe("x");
    }
    server.signal(SIGTERM);
    for c in &mut clients {
        c.expect_error(4200);
        c.expect_close(4200);
    }
    assert_eq!(server.wait_exit(), Some(0));
}

#[test]
fn shutdown_ends_within_the_grace_with_a_client_and_a_webhook_that_hang() {
    // A webhook endpoint that accepts and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = hung.local_addr().unwrap();
    std::thread::spawn(move || {
        let held: Vec<_> = hung.incoming().collect();
        drop(held);
    });
    let toml = dev_app_toml(&format!(
        "[[apps.webhooks]]\nurl = \"http://{hook}/hooks\"\n"
    ));
    let mut server = Server::with_config_env(&toml, &[("RINGCAST_SHUTDOWN_GRACE_S", "2")]);
    // Subscribed (its webhook is stuck at the endpoint), then it never reads again, so it
    // never answers the server's close.
    let mut ws = server.ws();
    ws.subscribe("stuck");
    let signalled = std::time::Instant::now();
    server.signal(SIGTERM);
    assert_eq!(server.wait_exit(), Some(0));
    let took = signalled.elapsed();
    // The grace is the promise; the rest is the 50 ms signal check and process exit.
    assert!(took < std::time::Duration::from_millis(2500), "{took:?}");
    drop(ws);
}

#[test]
fn sigint_with_no_clients_exits_0() {
    let mut server = Server::start(&[]);
    server.ws().ping();
    server.signal(SIGINT);
    assert_eq!(server.wait_exit(), Some(0));
}

fn start_error(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = binary();
    cmd.args(args).env("RINGCAST_PORT", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_configuration_fails_with_one_line_naming_the_key() {
    let dir = temp_dir();
    let cases = [
        (
            "[server]\nactivity_timeout = \"high\"\n[[apps]]\nid='a'\nkey='b'\nsecret='c'\n",
            "server.activity_timeout",
        ),
        ("[server]\nmystery = 1\n", "mystery"),
        ("[[apps]]\nid='a'\nkey='b'\nsecret=''\n", "apps[0].secret"),
        (
            "[[apps]]\nid='a'\nkey='b'\nsecret='c'\n[[apps]]\nid='a'\nkey='d'\nsecret='e'\n",
            "apps[1].id",
        ),
        (
            "[[apps]]\nid='a'\nkey='b'\nsecret='c'\nmax_connections = -1\n",
            "max_connections",
        ),
        ("this is not toml", "ringcast.toml"),
        // Durations past their range (they would overflow a clock or be cut to 32 bits).
        (
            "[[apps]]\nid='a'\nkey='b'\nsecret='c'\nidempotency_ttl_s = 9223372036854775807\n",
            "apps[0].idempotency_ttl_s",
        ),
        (
            "[[apps]]\nid='a'\nkey='b'\nsecret='c'\ncache_ttl_s = 4294967301\n",
            "apps[0].cache_ttl_s",
        ),
        (
            "[server]\nwebhook_hold_ms = 9223372036854775807\n[[apps]]\nid='a'\nkey='b'\nsecret='c'\n",
            "server.webhook_hold_ms",
        ),
    ];
    for (toml, key) in cases {
        let path = dir.0.join("ringcast.toml");
        std::fs::write(&path, toml).unwrap();
        let (code, stderr) = start_error(&["--config", path.to_str().unwrap()], &[]);
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(key), "names {key}: {stderr}");
    }
    let (code, stderr) = start_error(&[], &[("RINGCAST_SHARDS", "lots")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("server.shards"), "{stderr}");
    let (code, stderr) = start_error(&["--config", "/nonexistent/ringcast.toml"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent/ringcast.toml"), "{stderr}");
}

#[test]
fn help_lists_environment_variables() {
    let out = binary().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for var in [
        "RINGCAST_CONFIG",
        "RINGCAST_PORT",
        "RINGCAST_HOST",
        "RINGCAST_SHARDS",
        "RINGCAST_APP_ID",
        "RINGCAST_APP_KEY",
        "RINGCAST_APP_SECRET",
        "RINGCAST_OUTBOUND_BUFFER_KB",
    ] {
        assert!(text.contains(var), "--help lists {var}");
    }
}

#[test]
fn second_server_on_the_same_port_is_refused() {
    let first = Server::start(&[]);
    let port = first.addr.port().to_string();
    let (code, stderr) = start_error(
        &[],
        &[("RINGCAST_HOST", "127.0.0.1"), ("RINGCAST_PORT", &port)],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
    first.ws().ping();
}

#[test]
fn port_in_use_fails_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, stderr) = start_error(
        &[],
        &[("RINGCAST_HOST", "127.0.0.1"), ("RINGCAST_PORT", &port)],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
}

#[test]
fn single_cpu_affinity_places_one_shard_and_the_api_core_on_it() {
    use std::os::unix::process::CommandExt;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = cpus - 1;
    let mut cmd = binary();
    cmd.env("RINGCAST_HOST", "127.0.0.1")
        .env("RINGCAST_PORT", "0");
    // SAFETY: pre_exec runs in the child between fork and exec; sched_setaffinity is
    // async-signal-safe and only touches the child.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = Server::spawn_command(cmd);
    let line = server.wait_log("");
    let _ = line;
    // The start line names the placement: one shard, on the allowed CPU only.
    assert!(
        server
            .start_line
            .contains(&format!("1 shards on cpus [{cpu}], API core on cpu {cpu}")),
        "{}",
        server.start_line
    );
    let mut sub = server.ws();
    sub.subscribe("solo");
    server.api().trigger("solo", "e", "d");
    assert_eq!(sub.expect("e")["data"], "d");
}

#[test]
fn one_shard_serves_websockets_and_the_api() {
    let server = Server::start(&[("RINGCAST_SHARDS", "1")]);
    assert!(
        server.start_line.contains("; 1 shards on"),
        "{}",
        server.start_line
    );
    let mut clients: Vec<Ws> = (0..20).map(|_| server.ws()).collect();
    for c in &mut clients {
        c.subscribe("one");
    }
    server.api().trigger("one", "e", "x");
    for c in &mut clients {
        c.expect("e");
    }
}

#[test]
fn the_server_runs_without_transparent_huge_pages() {
    // mimalloc asks for huge pages on its arenas; each would hold 2 MiB resident for a few
    // connections' bytes. The process turns them off for itself at start.
    let server = Server::start(&[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .expect("the kernel reports THP_enabled");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
