//! Keeps `docs/configuration.md` true to the code: every key of every section is in its
//! tables with the default the code has and the environment variable that sets it, and the
//! tables name no key the code lacks.

use super::{AppConfig, ClusterConfig, ServerConfig, TlsConfig, env_vars};
use std::collections::BTreeMap;

const DOC: &str = include_str!("../../docs/configuration.md");

/// A default as the reference writes it.
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) if s.is_empty() => "\"\"".into(),
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) if a.is_empty() => "[]".into(),
        toml::Value::Table(t) if t.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

/// Keys the code has: (documented path, default as written, environment variable or "—").
fn from_code() -> BTreeMap<String, (String, String)> {
    let env: BTreeMap<String, String> = env_vars().into_iter().map(|(v, k)| (k, v)).collect();
    let mut out = BTreeMap::new();
    let mut section = |prefix: &str, env_prefix: &str, table: toml::Table| {
        for (key, value) in table {
            let path = format!("{prefix}{key}");
            let var = env
                .get(&format!("{env_prefix}{key}"))
                .map_or("—".to_string(), |v| format!("`{v}`"));
            out.insert(path, (shown(&value), var));
        }
    };
    let table = |v: toml::Value| match v {
        toml::Value::Table(t) => t,
        _ => toml::Table::new(),
    };
    let server = table(toml::Value::try_from(ServerConfig::default()).unwrap());
    section("server.", "server.", server);
    let tls = table(toml::Value::try_from(TlsConfig::default()).unwrap());
    section("server.tls.", "server.tls.", tls);
    let cluster = table(toml::Value::try_from(ClusterConfig::default()).unwrap());
    section("cluster.", "cluster.", cluster);
    let app = table(toml::Value::try_from(AppConfig::default()).unwrap());
    section("apps[].", "apps[0].", app);
    let mut hook = toml::Table::new();
    hook.insert("url".into(), toml::Value::String(String::new()));
    hook.insert("event_types".into(), toml::Value::Array(Vec::new()));
    hook.insert("channel_prefix".into(), toml::Value::String(String::new()));
    hook.insert("headers".into(), toml::Value::Table(toml::Table::new()));
    section("apps[].webhooks[].", "-", hook);
    out
}

/// Rows of the reference's tables: (key, default, environment).
fn from_doc() -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for line in DOC.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
        let key = cells[0]
            .trim_start_matches("| ")
            .trim_matches('`')
            .to_string();
        let default = cells[1].trim_matches('`').to_string();
        out.insert(key, (default, cells[2].to_string()));
    }
    out
}

#[test]
fn the_configuration_reference_lists_every_key_with_its_default_and_variable() {
    let code = from_code();
    let doc = from_doc();
    // Required keys default to "" in the code and read "required" in the reference.
    let required = [
        "server.tls.cert_file",
        "server.tls.key_file",
        "apps[].id",
        "apps[].key",
        "apps[].secret",
        "apps[].webhooks[].url",
    ];
    for (key, (default, var)) in &code {
        let Some((doc_default, doc_var)) = doc.get(key) else {
            panic!("docs/configuration.md has no row for `{key}`");
        };
        let expected = if required.contains(&key.as_str()) {
            "required"
        } else {
            default.as_str()
        };
        assert_eq!(doc_default, expected, "default of `{key}`");
        assert_eq!(doc_var, var, "environment variable of `{key}`");
    }
    for key in doc.keys() {
        assert!(
            code.contains_key(key),
            "docs/configuration.md lists `{key}`, the code has no such key"
        );
    }
}

/// `debian/ringcast.toml`, the packaged configuration: every key of `[server]`, `[cluster]` and
/// `[[apps]]` is there commented out (`#key = value`) with the code's default, and it loads
/// both as shipped and with every setting uncommented.
#[test]
fn the_packaged_configuration_shows_every_default() {
    const PACKAGED: &str = include_str!("../../debian/ringcast.toml");
    let shipped = PACKAGED
        .replace("@APP_KEY@", "k")
        .replace("@APP_SECRET@", "s");
    let uncommented: String = shipped
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let load = |text: &str| super::Config::parse(Some(("ringcast.toml".into(), text)), Vec::new());
    load(&shipped).expect("the shipped file loads");
    let all = load(&uncommented).expect("the file with every setting uncommented loads");
    let as_toml = |v: toml::Value| toml::to_string(&v).unwrap();
    assert_eq!(
        as_toml(toml::Value::try_from(&all.server).unwrap()),
        as_toml(toml::Value::try_from(ServerConfig::default()).unwrap())
    );
    assert_eq!(
        as_toml(toml::Value::try_from(&all.cluster).unwrap()),
        as_toml(toml::Value::try_from(ClusterConfig::default()).unwrap())
    );
    let mut app = all.apps[0].clone();
    (app.id, app.key, app.secret) = Default::default();
    assert_eq!(
        as_toml(toml::Value::try_from(&app).unwrap()),
        as_toml(toml::Value::try_from(AppConfig::default()).unwrap())
    );
    let listed = |table: toml::Value, skip: &[&str]| {
        if let toml::Value::Table(t) = table {
            for key in t.keys().filter(|k| !skip.contains(&k.as_str())) {
                assert!(
                    PACKAGED.contains(&format!("\n#{key} = ")),
                    "debian/ringcast.toml does not show `{key}`"
                );
            }
        }
    };
    listed(toml::Value::try_from(ServerConfig::default()).unwrap(), &[]);
    listed(
        toml::Value::try_from(ClusterConfig::default()).unwrap(),
        &[],
    );
    listed(
        toml::Value::try_from(AppConfig::default()).unwrap(),
        &["id", "key", "secret", "webhooks"],
    );
}
