//! What an operator meets when deploying: `ringcast check-config`, JSON logs, and no secret
//! in any log line.

mod common;

use common::*;
use serde_json::Value;
use std::time::Instant;

fn check_config(toml: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = temp_dir();
    let file = dir.0.join("ringcast.toml");
    std::fs::write(&file, toml).unwrap();
    let mut cmd = binary();
    cmd.arg("check-config").arg(&file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_prints_the_effective_settings_without_secrets() {
    let toml = format!(
        "[server]\nport = 7100\n[cluster]\nredis_url = \"redis://:redis-pw@127.0.0.1:6379/0\"\n{}",
        app_toml(
            "a1",
            "[[apps.webhooks]]\nurl = \"https://hooks.example/in?token=hook-token\"\n\
             headers = { Authorization = \"Bearer header-secret\" }"
        )
    );
    let (code, stdout, stderr) = check_config(&toml, &[("RINGCAST_ACTIVITY_TIMEOUT", "33")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("port = 7100"), "{stdout}");
    // The environment applies, as at start; defaults are shown too.
    assert!(stdout.contains("activity_timeout = 33"), "{stdout}");
    assert!(stdout.contains("max_message_kb = 64"), "{stdout}");
    for secret in ["a1-secret", "redis-pw", "hook-token", "header-secret"] {
        assert!(!stdout.contains(secret), "{secret} shown:\n{stdout}");
    }
}

#[test]
fn check_config_refuses_a_bad_file_with_one_line() {
    let (code, stdout, stderr) = check_config("[server]\nport = \"x\"\n", &[]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("server.port"), "{stderr}");

    let toml = format!(
        "[server.tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n{}",
        dev_app_toml("")
    );
    let (code, _, stderr) = check_config(&toml, &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/cert.pem"), "{stderr}");
}

#[test]
fn json_logs_are_one_object_per_line_and_hold_no_secret() {
    let closed = free_port();
    let toml = app_toml(
        "j1",
        &format!(
            "[[apps.webhooks]]\nurl = \"http://127.0.0.1:{closed}/hook?token=hook-token\"\n\
             event_types = [\"channel_occupied\"]"
        ),
    );
    let mut server = Server::with_config_env(
        &toml,
        &[("RINGCAST_LOG_FORMAT", "json"), ("RUST_LOG", "debug")],
    );
    let start: Value = serde_json::from_str(&server.start_line).expect("a JSON line");
    assert_eq!(start["level"], "INFO");
    assert!(start["msg"].as_str().unwrap().contains("listening on"));
    assert!(start["ts"].as_str().unwrap().ends_with('Z'));

    // A subscription makes the webhook fire at a port where nothing listens: its failure is
    // logged, without the token in its URL.
    let mut ws = Ws::connect(server.addr, "/app/j1-key?protocol=7");
    ws.subscribe("news");
    let failed = server.wait_log("will retry");
    serde_json::from_str::<Value>(&failed).expect("a JSON line");
    assert!(
        failed.contains(&format!("127.0.0.1:{closed}/hook")),
        "{failed}"
    );

    server.signal(15);
    assert_eq!(server.wait_exit(), Some(0));
    let deadline = Instant::now() + WAIT;
    let mut lines = vec![server.start_line.clone(), failed];
    while let Ok(line) = server
        .log
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        lines.push(line);
    }
    assert!(lines.len() > 3, "{lines:?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["msg"].is_string(), "{line}");
        for secret in ["j1-secret", "hook-token"] {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
}

#[test]
fn the_redis_password_is_masked_in_the_log() {
    // No Redis listens there: the node starts anyway and keeps trying (as with an outage).
    let dead = free_port();
    let url = format!("redis://:redis-pw@127.0.0.1:{dead}/0");
    let server = Server::start(&[
        ("RINGCAST_CLUSTER_REDIS_URL", url.as_str()),
        ("RINGCAST_LOG_FORMAT", "json"),
    ]);
    let joins = server.wait_log("joins cluster");
    let v: Value = serde_json::from_str(&joins).expect("a JSON line");
    let msg = v["msg"].as_str().unwrap();
    assert!(
        msg.contains(&format!("redis://:***@127.0.0.1:{dead}/0")),
        "{msg}"
    );
    assert!(!joins.contains("redis-pw"), "{joins}");
}

/// The binary with its open-files limit (soft and hard) set to `n` before it starts.
fn with_open_files(n: u64) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = binary();
    cmd.env("RINGCAST_HOST", "127.0.0.1")
        .env("RINGCAST_PORT", "0")
        .env("RUST_LOG", "info");
    // SAFETY: pre_exec runs in the child between fork and exec; setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

#[test]
fn a_small_open_files_limit_is_reported_with_its_fix() {
    let server = Server::spawn_command(with_open_files(2048));
    let line = server.wait_log("open files: the limit is 2048");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("LimitNOFILE=1048576"), "{line}");
    // It still serves.
    Ws::connect(server.addr, &format!("/app/{APP_KEY}?protocol=7"));

    // With a per-shard cap the limit covers, nothing is said.
    let mut cmd = with_open_files(4096);
    cmd.env("RINGCAST_MAX_CONNECTIONS_PER_SHARD", "1000")
        .env("RINGCAST_SHARDS", "2");
    let server = Server::spawn_command(cmd);
    Ws::connect(server.addr, &format!("/app/{APP_KEY}?protocol=7"));
    let early = server.logged_before_start();
    assert!(
        early.iter().any(|l| l.contains("open files: at most 4096")),
        "{early:?}"
    );
    assert!(
        !early.iter().any(|l| l.contains("open files: the limit")),
        "{early:?}"
    );
}

#[test]
fn every_script_answers_help_without_running() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut scripts: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("scripts"))
        .unwrap()
        .chain(std::fs::read_dir(root.join("scripts/lib")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e == "py"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 7, "{scripts:?}");
    for script in scripts {
        let mut cmd = if script.extension().is_some_and(|e| e == "py") {
            let mut c = std::process::Command::new("python3");
            c.arg(&script);
            c
        } else {
            std::process::Command::new(&script)
        };
        // A script that ignored --help would start a benchmark or the test suite: bounded
        // by a deadline, it fails here instead.
        let mut child = cmd
            .arg("--help")
            .current_dir(root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT * 3;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} --help did not return", script.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            status.success(),
            "{} --help: {status}\n{stdout}{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.lines().count() >= 2,
            "{}: {stdout}",
            script.display()
        );
    }
}
