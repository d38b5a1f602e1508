//! The server's log: one line per record on stderr, as text (env_logger's usual layout) or,
//! with `server.log_format = "json"`, one JSON object per line for log collectors:
//! `{"ts":"2026-01-01T00:00:00.000Z","level":"INFO","target":"ringcast::server","msg":"…"}`.
//!
//! Secrets never reach a record: app secrets are not logged, and URLs (Redis, webhooks) go
//! through [`redacted_url`] first.

use std::io::Write;

/// How log records are written (`server.log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(name: &str) -> Option<LogFormat> {
        match name {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Starts the logger; `RUST_LOG` filters as usual (default `info`).
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

/// `url` with any password and query string replaced by `***`: Redis URLs carry the password
/// as `redis://:password@host`, and webhook URLs may carry tokens in their query.
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (before_path, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match before_path.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => before_path.to_string(),
    };
    let path = match path.split_once('?') {
        Some((path, _query)) => format!("{path}?***"),
        None => path.to_string(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{path}"),
        None => format!("{authority}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn passwords_and_queries_are_masked() {
        assert_eq!(
            redacted_url("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redacted_url("rediss://user:pw@h/1"),
            "rediss://user:***@h/1"
        );
        assert_eq!(
            redacted_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redacted_url("https://hooks.example.com/in?token=abc"),
            "https://hooks.example.com/in?***"
        );
        assert_eq!(redacted_url("http://a@b:c@h/p"), "http://a@b:***@h/p");
    }
}
