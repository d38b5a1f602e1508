//! Environment overrides: `RINGCAST_{SERVER KEY}` and, for the first (or only) app,
//! `RINGCAST_APP_{APP KEY}`, typed like the key's default and merged into the TOML tree before
//! it is deserialized.

use super::{AppConfig, ConfigError, ServerConfig};

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

/// Writes each recognised `RINGCAST_*` variable into the tree, typed like the key's default
/// (so `RINGCAST_APP_ID=12345` stays a string and `RINGCAST_PORT=x` fails naming `server.port`).
pub(super) fn apply_env(
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
