//! The checks a configuration passes before the server starts, each failure naming its key.

use super::{AppConfig, ClusterConfig, Config, ConfigError, ServerConfig, WebhookConfig};
use crate::webhook_kind::Kind;

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.cluster.validate()?;
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

/// The first of `fields` (key, value, most) above its most, as an error. Durations are capped
/// so that adding them to a clock or a counter can never overflow.
fn all_at_most(fields: &[(String, u64, u64)]) -> Result<(), ConfigError> {
    match fields.iter().find(|(_, v, most)| v > most) {
        Some((key, _, most)) => Err(ConfigError::new(key.clone(), format!("at most {most}"))),
        None => Ok(()),
    }
}

const HOUR_S: u64 = 3600;
const YEAR_S: u64 = 365 * 24 * HOUR_S;

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        all_positive(&[
            (
                "server.activity_timeout".into(),
                self.activity_timeout as usize,
            ),
            ("server.pong_timeout_s".into(), self.pong_timeout_s as usize),
            ("server.max_message_kb".into(), self.max_message_kb),
            ("server.outbound_buffer_kb".into(), self.outbound_buffer_kb),
            (
                "server.max_http_connections".into(),
                self.max_http_connections,
            ),
            (
                "server.idempotency_max_keys".into(),
                self.idempotency_max_keys,
            ),
            ("server.history_max_events".into(), self.history_max_events),
            ("server.history_max_mb".into(), self.history_max_mb),
            ("server.cache_max_channels".into(), self.cache_max_channels),
            ("server.cache_max_mb".into(), self.cache_max_mb),
        ])?;
        if self.shards > 256 {
            return Err(ConfigError::new("server.shards", "at most 256"));
        }
        all_at_most(&[
            (
                "server.activity_timeout".into(),
                self.activity_timeout,
                HOUR_S,
            ),
            ("server.pong_timeout_s".into(), self.pong_timeout_s, HOUR_S),
            (
                "server.webhook_hold_ms".into(),
                self.webhook_hold_ms,
                HOUR_S * 1000,
            ),
            (
                "server.shutdown_grace_s".into(),
                self.shutdown_grace_s,
                HOUR_S,
            ),
            (
                "server.secret_grace_s".into(),
                self.secret_grace_s,
                24 * HOUR_S,
            ),
        ])?;
        if self.max_message_kb > 16 * 1024 {
            return Err(ConfigError::new("server.max_message_kb", "at most 16384"));
        }
        if self.host.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::new(
                "server.host",
                format!("`{}` is not an IP address", self.host),
            ));
        }
        if crate::logging::LogFormat::parse(&self.log_format).is_none() {
            return Err(ConfigError::new(
                "server.log_format",
                format!("`{}` is not one of text, json", self.log_format),
            ));
        }
        if let Some(tls) = &self.tls {
            for (key, file) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
                if file.is_empty() {
                    let reason = "required with [server.tls] (a PEM file)";
                    return Err(ConfigError::new(format!("server.tls.{key}"), reason));
                }
            }
            if tls.plain_port != 0 && tls.plain_port == self.port {
                return Err(ConfigError::new(
                    "server.tls.plain_port",
                    "must differ from server.port",
                ));
            }
        }
        Ok(())
    }
}

impl ClusterConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        if !(self.redis_url.starts_with("redis://") || self.redis_url.starts_with("rediss://")) {
            return Err(ConfigError::new(
                "cluster.redis_url",
                "must start with redis:// or rediss://",
            ));
        }
        let clean = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if self.prefix.is_empty() || !clean(&self.prefix) {
            return Err(ConfigError::new(
                "cluster.prefix",
                "must be 1 or more of A-Z a-z 0-9 - _ .",
            ));
        }
        if !clean(&self.node_id) {
            return Err(ConfigError::new(
                "cluster.node_id",
                "may only contain A-Z a-z 0-9 - _ .",
            ));
        }
        if self.heartbeat_s == 0 {
            return Err(ConfigError::new(
                "cluster.heartbeat_s",
                "must be greater than 0",
            ));
        }
        if self.node_timeout_s <= self.heartbeat_s {
            return Err(ConfigError::new(
                "cluster.node_timeout_s",
                "must be greater than heartbeat_s",
            ));
        }
        Ok(())
    }
}

impl AppConfig {
    /// Checks the app at `apps[i]` on its own (uniqueness is checked across apps).
    pub(super) fn validate(&self, i: usize) -> Result<(), ConfigError> {
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
            (
                k("max_channels_per_connection"),
                self.max_channels_per_connection,
            ),
        ])?;
        if self.max_channel_name_length > 200 {
            return Err(ConfigError::new(
                k("max_channel_name_length"),
                "at most 200",
            ));
        }
        all_at_most(&[
            (
                k("user_authentication_timeout_s"),
                self.user_authentication_timeout_s,
                24 * HOUR_S,
            ),
            (k("cache_ttl_s"), self.cache_ttl_s, YEAR_S),
            (k("history_ttl_s"), self.history_ttl_s, 10 * YEAR_S),
            (k("idempotency_ttl_s"), self.idempotency_ttl_s, YEAR_S),
        ])?;
        for (w, hook) in self.webhooks.iter().enumerate() {
            hook.validate(&format!("apps[{i}].webhooks[{w}]"))?;
        }
        Ok(())
    }
}

impl WebhookConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
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
