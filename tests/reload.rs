//! Reloading the configuration while clients stay connected: `ringcast reload --pid-file`
//! sends SIGHUP; a bad file is refused as a whole and the running configuration keeps
//! serving; an app's settings apply live to its connected clients (their socket ids
//! unchanged), and disabling it closes them with 4003; changes that need a restart are named in
//! one line and left as they were. (The TLS certificate's live reload is in `tests/tls.rs`.)

mod common;

use common::*;
use std::path::{Path, PathBuf};

struct Running {
    server: Server,
    config: PathBuf,
    pid_file: PathBuf,
    _dir: TempDir,
}

fn start(extra_server: &str) -> Running {
    start_with(extra_server, "")
}

/// A server on its own config file, with extra `[server]` and app lines.
fn start_with(extra_server: &str, extra_app: &str) -> Running {
    start_env(extra_server, extra_app, &[])
}

/// The same, with extra environment.
fn start_env(extra_server: &str, extra_app: &str, env: &[(&str, &str)]) -> Running {
    let dir = temp_dir();
    let config = dir.0.join("ringcast.toml");
    let pid_file = dir.0.join("ringcast.pid");
    std::fs::write(&config, toml(&pid_file, extra_server, extra_app)).unwrap();
    let mut cmd = binary();
    cmd.arg("--config")
        .arg(&config)
        .env("RINGCAST_HOST", "127.0.0.1")
        .env("RINGCAST_PORT", "0")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied());
    let server = Server::spawn_command(cmd);
    Running {
        server,
        config,
        pid_file,
        _dir: dir,
    }
}

fn toml(pid_file: &Path, extra_server: &str, extra_app: &str) -> String {
    format!(
        "[server]\npid_file = {:?}\n{extra_server}\n{}",
        pid_file.display().to_string(),
        dev_app_toml(extra_app)
    )
}

/// Writes `config` over the server's file, then `ringcast reload --pid-file`, which must
/// succeed.
fn reload(r: &Running, config: &str) {
    std::fs::write(&r.config, config).unwrap();
    let out = binary()
        .arg("reload")
        .arg("--pid-file")
        .arg(&r.pid_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bad_file_is_refused_and_the_running_configuration_keeps_serving() {
    let r = start("");
    let pid: u32 = std::fs::read_to_string(&r.pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, r.server.pid());
    let mut sub = r.server.ws();
    sub.subscribe("news");

    reload(&r, &toml(&r.pid_file, "activity_timeout = \"soon\"", ""));
    let line = r.server.wait_log("reload refused");
    assert!(
        line.contains("config error: server.activity_timeout"),
        "{line}"
    );

    // Still serving, with the same connection and a new one.
    r.server.api().trigger("news", "after", "{}");
    assert_eq!(sub.expect("after")["channel"], "news");
    r.server.ws();
}

#[test]
fn changes_that_need_a_restart_are_named_and_kept() {
    let r = start("activity_timeout = 120");
    let mut sub = r.server.ws();
    sub.subscribe("news");
    let socket_id = sub.socket_id.clone();

    reload(
        &r,
        &toml(&r.pid_file, "activity_timeout = 60", "max_connections = 5"),
    );
    let line = r.server.wait_log("not applied until a restart");
    assert!(line.contains("server.activity_timeout"), "{line}");
    assert!(
        !line.contains("apps[app-id]"),
        "app settings apply live: {line}"
    );

    r.server.api().trigger("news", "after", "{}");
    assert_eq!(sub.expect("after")["channel"], "news");
    assert_eq!(sub.socket_id, socket_id);

    // The same file as at start: the app's settings go back, nothing else to report.
    reload(&r, &toml(&r.pid_file, "activity_timeout = 120", ""));
    r.server.wait_log("nothing else changed");
    // A new key is not applied (clients connect with the old one until a restart).
    reload(
        &r,
        &toml(&r.pid_file, "activity_timeout = 120", "").replace(APP_KEY, "new-key"),
    );
    let line = r.server.wait_log("not applied until a restart");
    assert!(line.contains("apps[app-id].key"), "{line}");
    r.server.ws();
}

/// Reloads `app` settings and waits until the (single) shard uses them.
fn reload_app(r: &Running, app: &str) {
    reload(r, &toml(&r.pid_file, "shards = 1", app));
    r.server.wait_log("app settings applied");
    r.server.wait_log("shard 0: reloaded app settings in use");
}

#[test]
fn app_switches_and_limits_apply_to_connected_clients() {
    let r = start("shards = 1");
    let mut a = r.server.ws();
    let mut b = r.server.ws();
    // The dev app (`dev_app_toml`) keeps the defaults: no client events.
    a.subscribe_private("private-room");
    b.subscribe_private("private-room");
    let whisper = serde_json::json!({"event":"client-typing","channel":"private-room","data":{}});
    a.send_json(whisper.clone());
    a.expect_error(4301);

    reload_app(&r, "enable_client_messages = true\nmax_connections = 3");
    let before = a.socket_id.clone();
    a.send_json(whisper);
    assert_eq!(b.expect("client-typing")["channel"], "private-room");
    assert_eq!(a.socket_id, before);

    // Three connections are allowed now: a and b, and one more.
    let _c = r.server.ws();
    let mut d = Ws::connect_raw(r.server.addr, &format!("/app/{APP_KEY}?protocol=7"));
    d.expect_error(4004);
}

#[test]
fn disabling_an_app_closes_its_connections_with_4003() {
    let r = start("shards = 1");
    let mut a = r.server.ws();
    a.subscribe("news");
    reload_app(&r, "enabled = false");
    a.expect_error(4003);
    a.expect_close(4003);
    let mut late = Ws::connect_raw(r.server.addr, &format!("/app/{APP_KEY}?protocol=7"));
    late.expect_error(4003);
    let mut api = r.server.api();
    let answer = api.post(
        "/events",
        &serde_json::json!({"name":"e","channel":"news","data":"{}"}),
    );
    assert_eq!(answer.status, 403, "{}", answer.body);

    // Enabled again: clients connect and the API publishes.
    reload_app(&r, "enabled = true");
    let mut back = r.server.ws();
    back.subscribe("news");
    api.trigger("news", "again", "{}");
    assert_eq!(back.expect("again")["channel"], "news");
}

#[test]
fn reload_without_a_server_fails_with_one_line() {
    let dir = temp_dir();
    let out = binary()
        .arg("reload")
        .arg("--pid-file")
        .arg(dir.0.join("missing.pid"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("missing.pid"), "{stderr}");
}

#[test]
fn the_pid_file_is_removed_at_exit() {
    let mut r = start("");
    assert!(r.pid_file.exists());
    r.server.signal(SIGTERM);
    assert_eq!(r.server.wait_exit(), Some(0));
    assert!(!r.pid_file.exists());
}

#[test]
fn a_new_secret_applies_and_the_old_one_is_accepted_for_the_grace() {
    let r = start("shards = 1");
    let mut sub = r.server.ws();
    let secret_file = |secret: &str, grace: u64| {
        toml(
            &r.pid_file,
            &format!("shards = 1\nsecret_grace_s = {grace}"),
            "",
        )
        .replace(APP_SECRET, secret)
    };
    reload(&r, &secret_file("second-secret", 300));
    r.server.wait_log("app settings applied");
    r.server.wait_log("shard 0: reloaded app settings in use");

    // Both secrets sign API requests and channel authorizations during the grace.
    for secret in [APP_SECRET, "second-secret"] {
        let mut api = r.server.api();
        api.secret = secret.into();
        api.trigger("news", "e", "{}");
        let channel = format!("private-{secret}");
        let auth = format!(
            "{APP_KEY}:{}",
            hmac_hex(secret, &format!("{}:{channel}", sub.socket_id))
        );
        sub.send_json(
            serde_json::json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth}}),
        );
        assert_eq!(
            sub.expect("pusher_internal:subscription_succeeded")["channel"],
            channel
        );
    }

    // Without grace, a replaced secret is refused at once.
    reload(&r, &secret_file("third-secret", 0));
    r.server.wait_log("app settings applied");
    let mut old = r.server.api();
    old.secret = "second-secret".into();
    let answer = old.post(
        "/events",
        &serde_json::json!({"name":"e","channel":"news","data":"{}"}),
    );
    assert_eq!(answer.status, 401, "{}", answer.body);
    let mut new = r.server.api();
    new.secret = "third-secret".into();
    new.trigger("news", "e", "{}");
}

#[test]
fn webhooks_are_signed_with_the_new_secret_after_a_reload() {
    let receiver = common::receiver::Receiver::start(APP_KEY, "second-secret", &[]);
    let hook = format!(
        "[[apps.webhooks]]\nurl = \"{}\"\nevent_types = [\"channel_occupied\"]",
        receiver.url()
    );
    let r = start_with("shards = 1", &hook);
    reload(
        &r,
        &toml(&r.pid_file, "shards = 1", &hook).replace(APP_SECRET, "second-secret"),
    );
    r.server.wait_log("app settings applied");
    let mut sub = r.server.ws();
    sub.subscribe("fresh");
    // The receiver checks the signature with the new secret.
    let delivery = receiver.delivery();
    assert_eq!(delivery.events()[0]["channel"], "fresh");
}

#[test]
fn apps_are_added_and_removed_live() {
    let r = start("shards = 1");
    let mut dev = r.server.ws();
    dev.subscribe("news");
    let dev_socket = dev.socket_id.clone();

    // Added: served at once, beside the dev app.
    reload(
        &r,
        &toml(&r.pid_file, "shards = 1", &app_toml("second", "")),
    );
    r.server.wait_log("app settings applied");
    let mut second = Ws::connect(r.server.addr, "/app/second-key?protocol=7");
    second.subscribe("news");
    r.server
        .api_for("second")
        .trigger("news", "for-second", "{}");
    assert_eq!(second.expect("for-second")["channel"], "news");
    r.server.api().trigger("news", "for-dev", "{}");
    assert_eq!(dev.expect("for-dev")["channel"], "news");
    assert_eq!(dev.socket_id, dev_socket);

    // Removed: its connections are closed with 4001, new ones refused, its API is gone.
    let only_second = format!(
        "[server]\npid_file = {:?}\nshards = 1\n{}",
        r.pid_file.display().to_string(),
        app_toml("second", "")
    );
    reload(&r, &only_second);
    r.server.wait_log("shard 0: reloaded app settings in use");
    dev.expect_error(4001);
    dev.expect_close(4001);
    let mut late = Ws::connect_raw(r.server.addr, &format!("/app/{APP_KEY}?protocol=7"));
    late.expect_error(4001);
    let gone = r.server.api().post(
        "/events",
        &serde_json::json!({"name":"e","channel":"news","data":"{}"}),
    );
    assert_eq!(gone.status, 404, "{}", gone.body);
    r.server.api_for("second").trigger("news", "still", "{}");
    assert_eq!(second.expect("still")["channel"], "news");
}

#[test]
fn webhook_endpoints_follow_a_reload() {
    let first = common::receiver::Receiver::start(APP_KEY, APP_SECRET, &[]);
    let second = common::receiver::Receiver::start(APP_KEY, APP_SECRET, &[]);
    let hook = |url: String| {
        format!("[[apps.webhooks]]\nurl = \"{url}\"\nevent_types = [\"channel_occupied\"]")
    };
    let r = start_with("shards = 1", &hook(first.url()));
    let mut sub = r.server.ws();
    sub.subscribe("before");
    assert_eq!(first.delivery().events()[0]["channel"], "before");

    reload(&r, &toml(&r.pid_file, "shards = 1", &hook(second.url())));
    let added = r.server.wait_log("endpoint added");
    assert!(added.contains(&second.url()), "{added}");
    let removed = r.server.wait_log("endpoint removed by a reload");
    assert!(removed.contains(&first.url()), "{removed}");
    r.server
        .wait_log("removed by a reload; dropped 0 queued events");

    sub.subscribe("after");
    assert_eq!(second.delivery().events()[0]["channel"], "after");
}

#[test]
fn an_app_added_to_every_node_of_a_cluster_is_served_across_them() {
    let redis = common::redis::Redis::start();
    let url = redis.url();
    let env = [
        ("RINGCAST_CLUSTER_REDIS_URL", url.as_str()),
        ("RINGCAST_CLUSTER_PREFIX", "reload"),
    ];
    let nodes = [start_env("", "", &env), start_env("", "", &env)];
    for node in &nodes {
        node.server.wait_log("connected to Redis");
        reload(node, &toml(&node.pid_file, "", &app_toml("second", "")));
        node.server.wait_log("app settings applied");
    }
    let mut sub = Ws::connect(nodes[1].server.addr, "/app/second-key?protocol=7");
    sub.subscribe("news");
    // Published on the other node, for the new app: the bus carries it by the app's id.
    let mut api = nodes[0].server.api_for("second");
    common::cluster::converge(
        &mut api,
        "/channels/news",
        &[("info", "subscription_count")],
        &serde_json::json!({"occupied": true, "subscription_count": 1}),
    );
    api.trigger("news", "across", "{}");
    assert_eq!(sub.expect("across")["channel"], "news");
}
