//! Configuration: the TOML file of docs/configuration.md, overridden by `RINGCAST_*` environment variables.
//!
//! Both sources are merged into one TOML tree *before* it is deserialized, so that a bad value
//! from either place produces the same one-line error naming the key (`server.port: …`).

mod env;
#[cfg(test)]
mod reference;
mod show;
mod validate;

pub use env::env_vars;

use env::apply_env;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A configuration problem, reported at start as one line: `config error: {key}: {reason}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    /// An error about `key`; control characters from the file (a newline inside a quoted
    /// value) are written as escapes, so the error stays one line.
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: printable(&key.into()),
            reason: printable(&reason.into()),
        }
    }
}

fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error: {}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// WebSocket shard cores; 0 = one per allowed core, minus the API core when cores > 2.
    pub shards: usize,
    /// Seconds of silence before the server pings a client; advertised to clients.
    pub activity_timeout: u64,
    /// Seconds a client has to answer the server's ping before it is closed with 4201.
    /// Not in Pusher's docs (Pusher uses 30 s); exposed so tests and operators can shorten it.
    pub pong_timeout_s: u64,
    pub max_message_kb: usize,
    pub outbound_buffer_kb: usize,
    pub shutdown_grace_s: u64,
    pub metrics_port: u16,
    /// Milliseconds `channel_vacated` and `member_removed` webhooks are held, and dropped if
    /// the channel or member comes back meanwhile (ringcast's addition; Pusher holds ~3 s).
    pub webhook_hold_ms: u64,
    /// Connections in their HTTP phase (API requests, upgrades not yet done) at once, over
    /// all shards (each takes an equal share); beyond it a new one gets 503 and is closed.
    pub max_http_connections: usize,
    /// WebSocket connections one shard serves at once; 0 = no limit but the open-files one.
    /// Beyond it a new connection is closed with 4100 (over capacity: reconnect later).
    pub max_connections_per_shard: usize,
    /// WebSocket upgrades one source address may make per second (0 = no limit); each shard
    /// counts its own share. Beyond it the upgrade answers 429 with `Retry-After: 1`.
    pub max_connects_per_ip_per_second: u32,
    /// Idempotency keys this node remembers at once over all apps; past it the app holding
    /// the most forgets its oldest.
    pub idempotency_max_keys: usize,
    /// Events and payload MiB this node's history keeps over all apps (without a cluster);
    /// past either, the app holding the most loses its oldest event.
    pub history_max_events: usize,
    pub history_max_mb: usize,
    /// Cache channels, and MiB of their last events, each shard and the API core remember;
    /// past either, the app holding the most forgets one.
    pub cache_max_channels: usize,
    pub cache_max_mb: usize,
    /// `text` (the default) or `json`: one JSON object per log line.
    pub log_format: String,
    /// Seconds an app's previous secret is still accepted after a reload changed it, so that
    /// deployed backends can roll over to the new one.
    pub secret_grace_s: u64,
    /// A file the server writes its process id to at start (and removes at exit), for
    /// `ringcast reload --pid-file`; empty = none.
    pub pid_file: String,
    /// The token that opens the web console at `/console` on `metrics_port`; empty = no
    /// console.
    pub console_token: String,
    /// `[server.tls]`: when present, the public port speaks TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: TLS on the public port (`wss://`, and `https://` for the HTTP API).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// A plain (non-TLS) listener beside the TLS one, e.g. for a local load balancer;
    /// 0 = none.
    pub plain_port: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 6001,
            shards: 0,
            activity_timeout: 120,
            pong_timeout_s: 30,
            max_message_kb: 64,
            outbound_buffer_kb: 512,
            shutdown_grace_s: 10,
            webhook_hold_ms: 3000,
            metrics_port: 9601,
            max_http_connections: 10_000,
            max_connections_per_shard: 0,
            max_connects_per_ip_per_second: 0,
            idempotency_max_keys: 2_000_000,
            history_max_events: 1_000_000,
            history_max_mb: 256,
            cache_max_channels: 100_000,
            cache_max_mb: 64,
            log_format: "text".into(),
            pid_file: String::new(),
            console_token: String::new(),
            secret_grace_s: 300,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    pub id: String,
    pub key: String,
    pub secret: String,
    pub enabled: bool,
    pub enable_client_messages: bool,
    pub enable_user_authentication: bool,
    /// Close (4009) connections that neither sign in nor subscribe to a private or presence
    /// channel within `user_authentication_timeout_s`. ringcast's name for the spec's
    /// "required" sign-in; off by default so public-only clients are never cut off.
    pub require_user_authentication: bool,
    pub user_authentication_timeout_s: u64,
    pub max_connections: usize,
    pub max_client_events_per_second: u32,
    pub max_event_payload_kb: usize,
    pub max_channel_name_length: usize,
    pub max_event_name_length: usize,
    pub max_event_channels_at_once: usize,
    pub max_event_batch_size: usize,
    pub max_presence_members_per_channel: usize,
    pub max_presence_member_size_kb: usize,
    /// Channels one connection may be subscribed to (or joining) at once; ringcast's
    /// addition, so one connection cannot grow the channel index without bound.
    pub max_channels_per_connection: usize,
    /// `pusher:subscribe` messages one connection may send per second (0 = no limit); beyond
    /// it a subscribe is refused with status 429 and the connection stays open.
    pub max_subscribes_per_second: u32,
    /// Signed HTTP API requests the app may make per second over the node (0 = no limit);
    /// beyond it they answer 429 with `Retry-After: 1`.
    pub max_api_requests_per_second: u32,
    pub subscription_count_events: bool,
    pub cache_ttl_s: u64,
    pub history_max_messages: usize,
    pub history_ttl_s: u64,
    pub idempotency_ttl_s: u64,
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            enabled: true,
            enable_client_messages: false,
            enable_user_authentication: false,
            require_user_authentication: false,
            user_authentication_timeout_s: 30,
            max_connections: 0,
            max_client_events_per_second: 10,
            max_event_payload_kb: 100,
            max_channel_name_length: 200,
            max_event_name_length: 200,
            max_event_channels_at_once: 100,
            max_event_batch_size: 10,
            max_presence_members_per_channel: 100,
            max_presence_member_size_kb: 2,
            max_channels_per_connection: 1000,
            max_subscribes_per_second: 1000,
            max_api_requests_per_second: 0,
            subscription_count_events: false,
            cache_ttl_s: 1800,
            history_max_messages: 100,
            history_ttl_s: 86400,
            idempotency_ttl_s: 120,
            webhooks: Vec::new(),
        }
    }
}

impl AppConfig {
    /// The app `ringcast` serves when nothing is configured: the dev app of docs/configuration.md.
    pub fn dev() -> Self {
        AppConfig {
            id: "app-id".into(),
            key: "app-key".into(),
            secret: "app-secret".into(),
            enable_client_messages: true,
            enable_user_authentication: true,
            ..AppConfig::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub channel_prefix: String,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub apps: Vec<AppConfig>,
}

/// `[cluster]`: several nodes joined through Redis. Without `redis_url` the node runs alone
/// and needs no Redis.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://host:port/db`; empty = a single node.
    pub redis_url: String,
    /// This node's name in the cluster; empty = a random one at start.
    pub node_id: String,
    /// Every key and channel in Redis starts with it, so deployments can share one Redis.
    pub prefix: String,
    pub heartbeat_s: u64,
    /// A node silent this long is dead.
    pub node_timeout_s: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: String::new(),
            node_id: String::new(),
            prefix: "ringcast".into(),
            heartbeat_s: 2,
            node_timeout_s: 10,
        }
    }
}

impl ClusterConfig {
    /// Whether this node joins a cluster.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }
}

impl Config {
    /// Loads the optional file, then applies environment overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                ConfigError::new(p.display().to_string(), format!("cannot read: {e}"))
            })?),
            None => None,
        };
        let named = path.map(|p| (p.display().to_string(), text.as_deref().unwrap_or_default()));
        Config::parse(named, env)
    }

    /// [`Config::load`] of a file's text (with the name errors give it), or of no file.
    pub fn parse(
        file: Option<(String, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match &file {
            Some((name, text)) => text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::new(name.clone(), one_line(e.message())))?,
            None => toml::Table::new(),
        };
        apply_env(&mut tree, env, file.is_some())?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|e| {
                let key = e.path().to_string();
                ConfigError::new(
                    if key == "." { "config".into() } else { key },
                    one_line(&e.inner().to_string()),
                )
            })?;
        config.validate()?;
        Ok(config)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn an_error_quoting_a_value_with_a_newline_stays_one_line() {
        // Found by the `config` fuzz target.
        let text = "[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"s\"\n\
                    [[apps.webhooks]]\nurl = \"http://h/\"\nevent_types = [\"x\\ny\"]\n";
        let e = Config::parse(Some(("f.toml".into(), text)), env(&[])).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(e.to_string().contains("x\\ny"), "{e}");
    }

    #[test]
    fn no_file_gives_dev_app() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.apps.len(), 1);
        assert_eq!(c.apps[0].key, "app-key");
        assert!(c.apps[0].enable_client_messages);
        assert_eq!(c.server.port, 6001);
    }

    #[test]
    fn env_overrides_and_keeps_string_ids() {
        let c = Config::load(
            None,
            env(&[("RINGCAST_PORT", "7000"), ("RINGCAST_APP_ID", "12345")]),
        )
        .unwrap();
        assert_eq!(c.server.port, 7000);
        assert_eq!(c.apps[0].id, "12345");
        assert_eq!(c.apps[0].key, "app-key");
    }

    #[test]
    fn cluster_settings_from_the_environment() {
        let c = Config::load(None, env(&[])).unwrap();
        assert!(!c.cluster.enabled(), "a single node by default");
        let c = Config::load(
            None,
            env(&[
                ("RINGCAST_CLUSTER_REDIS_URL", "redis://127.0.0.1:7000/0"),
                ("RINGCAST_CLUSTER_PREFIX", "blue"),
                ("RINGCAST_CLUSTER_NODE_TIMEOUT_S", "5"),
            ]),
        )
        .unwrap();
        assert!(c.cluster.enabled());
        assert_eq!(
            (c.cluster.prefix.as_str(), c.cluster.node_timeout_s),
            ("blue", 5)
        );
        let e = Config::load(None, env(&[("RINGCAST_CLUSTER_HEARTBEAT_S", "x")])).unwrap_err();
        assert_eq!(e.key, "cluster.heartbeat_s");
        let e = Config::load(None, env(&[("RINGCAST_CLUSTER_REDIS_URL", "http://x")])).unwrap_err();
        assert_eq!(e.key, "cluster.redis_url");
        let e = Config::load(
            None,
            env(&[
                ("RINGCAST_CLUSTER_REDIS_URL", "redis://x"),
                ("RINGCAST_CLUSTER_NODE_TIMEOUT_S", "2"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.key, "cluster.node_timeout_s");
    }

    #[test]
    fn bad_env_value_names_key() {
        let e = Config::load(None, env(&[("RINGCAST_PORT", "abc")])).unwrap_err();
        assert_eq!(e.key, "server.port");
    }

    #[test]
    fn unknown_and_bad_keys_name_the_key() {
        let load = |text: &str| Config::parse(Some(("a.toml".into(), text)), env(&[]));
        let e = load("[server]\nprot = 1\n").unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
        let e =
            load("[server]\nport = \"x\"\n[[apps]]\nid='a'\nkey='b'\nsecret='c'\n").unwrap_err();
        assert_eq!(e.key, "server.port");
        let e =
            load("[[apps]]\nid='a'\nkey='b'\nsecret='c'\nmax_event_batch_size = 0\n").unwrap_err();
        assert_eq!(e.key, "apps[0].max_event_batch_size");
        let e = load("[[apps]]\nid='a'\nkey='b'\nsecret='c'\n[[apps.webhooks]]\nurl='ftp://x'\n")
            .unwrap_err();
        assert_eq!(e.key, "apps[0].webhooks[0].url");
        assert!(!e.to_string().contains('\n'));
    }
}
