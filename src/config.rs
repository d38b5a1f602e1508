//! Configuration: the TOML file of SPEC §1, overridden by `RINGCAST_*` environment variables.
//!
//! Both sources are merged into one TOML tree *before* it is deserialized, so that a bad value
//! from either place produces the same one-line error naming the key (`server.port: …`).

use crate::webhook_kind::Kind;
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
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
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
    /// the channel or member comes back meanwhile (ringcast's addition; SPEC §5 says ~3 s).
    pub webhook_hold_ms: u64,
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
    /// The app `ringcast` serves when nothing is configured: SPEC §1's dev app.
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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
    pub apps: Vec<AppConfig>,
}

/// Environment variables: `RINGCAST_{SERVER KEY}` and, for the first (or only) app,
/// `RINGCAST_APP_{APP KEY}`. Kept as a table so `--help` lists exactly what is read.
pub fn env_vars() -> Vec<(String, String)> {
    let server = toml::Table::try_from(ServerConfig::default()).unwrap_or_default();
    let app = toml::Table::try_from(AppConfig::default()).unwrap_or_default();
    let mut out: Vec<(String, String)> = server
        .keys()
        .map(|k| {
            (
                format!("RINGCAST_{}", k.to_uppercase()),
                format!("server.{k}"),
            )
        })
        .collect();
    out.extend(app.keys().filter(|k| *k != "webhooks").map(|k| {
        (
            format!("RINGCAST_APP_{}", k.to_uppercase()),
            format!("apps[0].{k}"),
        )
    }));
    out
}

impl Config {
    /// Loads the optional file, then applies environment overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ConfigError::new(p.display().to_string(), format!("cannot read: {e}"))
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::new(p.display().to_string(), one_line(e.message())))?
            }
            None => toml::Table::new(),
        };
        let from_file = path.is_some();
        apply_env(&mut tree, env, from_file)?;
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

    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        if self.apps.is_empty() {
            return Err(ConfigError::new("apps", "no app configured"));
        }
        for (i, app) in self.apps.iter().enumerate() {
            app.validate(i)?;
            for (j, other) in self.apps[..i].iter().enumerate() {
                if other.id == app.id {
                    let key = format!("apps[{i}].id");
                    return Err(ConfigError::new(key, format!("same as apps[{j}].id")));
                }
                if other.key == app.key {
                    let key = format!("apps[{i}].key");
                    return Err(ConfigError::new(key, format!("same as apps[{j}].key")));
                }
            }
        }
        Ok(())
    }
}

/// The first of `fields` (key, value) that is zero, as an error.
fn all_positive(fields: &[(String, usize)]) -> Result<(), ConfigError> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(ConfigError::new(key.clone(), "must be greater than 0")),
        None => Ok(()),
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        all_positive(&[
            (
                "server.activity_timeout".into(),
                self.activity_timeout as usize,
            ),
            ("server.pong_timeout_s".into(), self.pong_timeout_s as usize),
            ("server.max_message_kb".into(), self.max_message_kb),
            ("server.outbound_buffer_kb".into(), self.outbound_buffer_kb),
        ])?;
        if self.shards > 256 {
            return Err(ConfigError::new("server.shards", "at most 256"));
        }
        if self.max_message_kb > 16 * 1024 {
            return Err(ConfigError::new("server.max_message_kb", "at most 16384"));
        }
        if self.host.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::new(
                "server.host",
                format!("`{}` is not an IP address", self.host),
            ));
        }
        Ok(())
    }
}

impl AppConfig {
    /// Checks the app at `apps[i]` on its own (uniqueness is checked across apps).
    fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let k = |f: &str| format!("apps[{i}].{f}");
        for (field, v) in [
            ("id", &self.id),
            ("key", &self.key),
            ("secret", &self.secret),
        ] {
            if v.is_empty() {
                return Err(ConfigError::new(k(field), "must not be empty"));
            }
        }
        if self.key.contains(':') || self.key.contains('/') {
            return Err(ConfigError::new(k("key"), "must not contain ':' or '/'"));
        }
        all_positive(&[
            (k("max_event_payload_kb"), self.max_event_payload_kb),
            (k("max_channel_name_length"), self.max_channel_name_length),
            (k("max_event_name_length"), self.max_event_name_length),
            (
                k("max_event_channels_at_once"),
                self.max_event_channels_at_once,
            ),
            (k("max_event_batch_size"), self.max_event_batch_size),
            (
                k("max_presence_members_per_channel"),
                self.max_presence_members_per_channel,
            ),
            (
                k("max_presence_member_size_kb"),
                self.max_presence_member_size_kb,
            ),
            (
                k("user_authentication_timeout_s"),
                self.user_authentication_timeout_s as usize,
            ),
        ])?;
        if self.max_channel_name_length > 200 {
            return Err(ConfigError::new(
                k("max_channel_name_length"),
                "at most 200",
            ));
        }
        for (w, hook) in self.webhooks.iter().enumerate() {
            hook.validate(&format!("apps[{i}].webhooks[{w}]"))?;
        }
        Ok(())
    }
}

impl WebhookConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(ConfigError::new(
                format!("{at}.url"),
                "must start with http:// or https://",
            ));
        }
        if let Some(bad) = self.event_types.iter().find(|t| Kind::parse(t).is_none()) {
            return Err(ConfigError::new(
                format!("{at}.event_types"),
                format!("unknown type `{bad}`"),
            ));
        }
        Ok(())
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes each recognised `RINGCAST_*` variable into the tree, typed like the key's default
/// (so `RINGCAST_APP_ID=12345` stays a string and `RINGCAST_PORT=x` fails naming `server.port`).
fn apply_env(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    from_file: bool,
) -> Result<(), ConfigError> {
    let server_defaults = toml::Table::try_from(ServerConfig::default()).unwrap_or_default();
    let app_defaults = toml::Table::try_from(AppConfig::default()).unwrap_or_default();
    let mut app_overrides = toml::Table::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("RINGCAST_") else {
            continue;
        };
        let (defaults, key, is_app) = match rest.strip_prefix("APP_") {
            Some(k) => (&app_defaults, k.to_lowercase(), true),
            None => (&server_defaults, rest.to_lowercase(), false),
        };
        let Some(default) = defaults.get(&key) else {
            continue;
        };
        if key == "webhooks" {
            continue;
        }
        let value = typed_like(default, &raw).ok_or_else(|| {
            let path = if is_app {
                format!("apps[0].{key}")
            } else {
                format!("server.{key}")
            };
            ConfigError::new(
                path,
                format!(
                    "`{raw}` (from {name}) is not a valid {}",
                    default.type_str()
                ),
            )
        })?;
        if is_app {
            app_overrides.insert(key, value);
        } else {
            let server = tree
                .entry("server")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = server {
                t.insert(key, value);
            }
        }
    }
    let apps = tree
        .entry("apps")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    if let toml::Value::Array(list) = apps {
        if list.is_empty() && !from_file {
            // No file: the dev app, possibly with other credentials from the environment.
            let dev = toml::Table::try_from(AppConfig::dev()).unwrap_or_default();
            list.push(toml::Value::Table(dev));
        }
        if !app_overrides.is_empty() {
            if list.is_empty() {
                list.push(toml::Value::Table(toml::Table::new()));
            }
            if let Some(toml::Value::Table(first)) = list.first_mut() {
                first.extend(app_overrides);
            }
        }
    }
    Ok(())
}

fn typed_like(default: &toml::Value, raw: &str) -> Option<toml::Value> {
    match default {
        toml::Value::Integer(_) => raw.trim().parse::<i64>().ok().map(toml::Value::Integer),
        toml::Value::Boolean(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Some(toml::Value::Boolean(false)),
            _ => None,
        },
        _ => Some(toml::Value::String(raw.to_string())),
    }
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
    fn bad_env_value_names_key() {
        let e = Config::load(None, env(&[("RINGCAST_PORT", "abc")])).unwrap_err();
        assert_eq!(e.key, "server.port");
    }

    #[test]
    fn unknown_and_bad_keys_name_the_key() {
        let dir = std::env::temp_dir().join(format!("ringcast-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.toml");
        std::fs::write(&p, "[server]\nprot = 1\n").unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
        std::fs::write(
            &p,
            "[server]\nport = \"x\"\n[[apps]]\nid='a'\nkey='b'\nsecret='c'\n",
        )
        .unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err();
        assert_eq!(e.key, "server.port");
        std::fs::write(
            &p,
            "[[apps]]\nid='a'\nkey='b'\nsecret='c'\nmax_event_batch_size = 0\n",
        )
        .unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err();
        assert_eq!(e.key, "apps[0].max_event_batch_size");
        std::fs::write(
            &p,
            "[[apps]]\nid='a'\nkey='b'\nsecret='c'\n[[apps.webhooks]]\nurl='ftp://x'\n",
        )
        .unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err();
        assert_eq!(e.key, "apps[0].webhooks[0].url");
        assert!(!e.to_string().contains('\n'));
    }
}
