//! Environment overrides: `RINGCAST_{SERVER KEY}`, `RINGCAST_TLS_{TLS KEY}` (`[server.tls]`),
//! `RINGCAST_CLUSTER_{CLUSTER KEY}` and, for the first (or only) app, `RINGCAST_APP_{APP KEY}`, typed like the key's default and merged
//! into the TOML tree before it is deserialized.

use super::{AppConfig, ClusterConfig, ConfigError, ServerConfig, TlsConfig};

/// Where a variable's key lands in the tree.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Server,
    Tls,
    Cluster,
    App,
}

impl Section {
    /// The variable prefix after `RINGCAST_`, most specific first.
    const ALL: [(Section, &'static str); 4] = [
        (Section::App, "APP_"),
        (Section::Cluster, "CLUSTER_"),
        (Section::Tls, "TLS_"),
        (Section::Server, ""),
    ];

    fn defaults(self) -> toml::Table {
        let table = match self {
            Section::Server => toml::Table::try_from(ServerConfig::default()),
            Section::Tls => toml::Table::try_from(TlsConfig::default()),
            Section::Cluster => toml::Table::try_from(ClusterConfig::default()),
            Section::App => toml::Table::try_from(AppConfig::default()),
        };
        let mut table = table.unwrap_or_default();
        table.remove("webhooks");
        table
    }

    fn path(self, key: &str) -> String {
        match self {
            Section::Server => format!("server.{key}"),
            Section::Tls => format!("server.tls.{key}"),
            Section::Cluster => format!("cluster.{key}"),
            Section::App => format!("apps[0].{key}"),
        }
    }
}

/// Environment variables and the keys they set. Kept as a table so `--help` lists exactly
/// what is read.
pub fn env_vars() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for section in [
        Section::Server,
        Section::Tls,
        Section::Cluster,
        Section::App,
    ] {
        let prefix = Section::ALL
            .iter()
            .find(|(s, _)| *s == section)
            .map_or("", |(_, p)| *p);
        for key in section.defaults().keys() {
            let var = format!("RINGCAST_{prefix}{}", key.to_uppercase());
            out.push((var, section.path(key)));
        }
    }
    out
}

/// The section and key a `RINGCAST_*` variable sets, if it names one.
fn target(name: &str) -> Option<(Section, String)> {
    let rest = name.strip_prefix("RINGCAST_")?;
    Section::ALL.iter().find_map(|(section, prefix)| {
        let key = rest.strip_prefix(prefix)?.to_lowercase();
        section
            .defaults()
            .contains_key(&key)
            .then_some((*section, key))
    })
}

/// Writes each recognised `RINGCAST_*` variable into the tree, typed like the key's default
/// (so `RINGCAST_APP_ID=12345` stays a string and `RINGCAST_PORT=x` fails naming `server.port`).
pub(super) fn apply_env(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    from_file: bool,
) -> Result<(), ConfigError> {
    let mut app_overrides = toml::Table::new();
    for (name, raw) in env {
        let Some((section, key)) = target(&name) else {
            continue;
        };
        let defaults = section.defaults();
        let Some(default) = defaults.get(&key) else {
            continue;
        };
        let value = typed_like(default, &raw).ok_or_else(|| {
            let reason = format!(
                "`{raw}` (from {name}) is not a valid {}",
                default.type_str()
            );
            ConfigError::new(section.path(&key), reason)
        })?;
        let table = match section {
            Section::App => {
                app_overrides.insert(key, value);
                continue;
            }
            Section::Server => &["server"][..],
            Section::Tls => &["server", "tls"][..],
            Section::Cluster => &["cluster"][..],
        };
        if let Some(t) = table_at(tree, table) {
            t.insert(key, value);
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

/// The table at `path` in the tree, created if missing; `None` if a value of another type is
/// in the way (deserializing then reports it).
fn table_at<'t>(tree: &'t mut toml::Table, path: &[&str]) -> Option<&'t mut toml::Table> {
    let mut table = tree;
    for name in path {
        let entry = table
            .entry(*name)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut()?;
    }
    Some(table)
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
