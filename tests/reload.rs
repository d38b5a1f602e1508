//! Reloading the configuration while clients stay connected: `ringcast reload --pid-file`
//! sends SIGHUP; a bad file is refused as a whole and the running configuration keeps
//! serving; changes that need a restart are named in one line and left as they were. (The TLS
//! certificate's live reload is in `tests/tls.rs`.)

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
    let dir = temp_dir();
    let config = dir.0.join("ringcast.toml");
    let pid_file = dir.0.join("ringcast.pid");
    std::fs::write(&config, toml(&pid_file, extra_server, "")).unwrap();
    let mut cmd = binary();
    cmd.arg("--config")
        .arg(&config)
        .env("RINGCAST_HOST", "127.0.0.1")
        .env("RINGCAST_PORT", "0")
        .env("RUST_LOG", "info");
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

/// `ringcast reload --pid-file`, which must succeed.
fn reload(r: &Running) {
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

    std::fs::write(
        &r.config,
        toml(&r.pid_file, "activity_timeout = \"soon\"", ""),
    )
    .unwrap();
    reload(&r);
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

    std::fs::write(
        &r.config,
        toml(&r.pid_file, "activity_timeout = 60", "max_connections = 5"),
    )
    .unwrap();
    reload(&r);
    let line = r.server.wait_log("not applied until a restart");
    assert!(line.contains("server.activity_timeout"), "{line}");
    assert!(line.contains("apps[app-id]"), "{line}");

    r.server.api().trigger("news", "after", "{}");
    assert_eq!(sub.expect("after")["channel"], "news");
    assert_eq!(sub.socket_id, socket_id);

    // The same file again: nothing new to report.
    std::fs::write(&r.config, toml(&r.pid_file, "activity_timeout = 120", "")).unwrap();
    reload(&r);
    r.server.wait_log("nothing else changed");
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
