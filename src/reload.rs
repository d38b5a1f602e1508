//! Live reconfiguration: on SIGHUP (`ringcast reload`, `systemctl reload`) the configuration
//! file is read again, with the environment applied as at start. A file that does not load is
//! refused as a whole, with the same one-line error as at start, and the running configuration
//! stays. Of a file that loads, what can change live is applied and what needs a restart is
//! named in one log line and left as it was.
//!
//! Applied live: the TLS certificate and key (the same or new paths); the apps' settings,
//! webhook endpoints, secrets (the replaced one accepted for `server.secret_grace_s`), and
//! apps added and removed, which every core takes at its next look at the apps
//! ([`crate::app::LiveApps`]; a disabled app's connections are closed with 4003, a removed
//! one's with 4001). Reported, not applied: the server's and the cluster's settings
//! (listeners, executors and caps are sized at start) and an app's key.
//!
//! [`plan`] is the rule, a plain function over the old and new configuration; [`Reloader`]
//! carries it out.

use crate::app::LiveApps;
use crate::config::{Config, TlsConfig};
use crate::tls::Certificates;
use std::path::PathBuf;
use std::sync::Arc;

/// What a new configuration changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The TLS files to load, when TLS is on and stays on.
    pub tls_files: Option<(String, String)>,
    /// Server and cluster settings that changed but are not applied until a restart, by key
    /// (`server.port`, …). Apps are compared by `Apps::with_settings`.
    pub not_applied: Vec<String>,
}

/// Compares two configurations key by key.
pub fn plan(old: &Config, new: &Config) -> Plan {
    let mut not_applied = Vec::new();
    let table = |v: toml::Value| match v {
        toml::Value::Table(t) => t,
        _ => toml::Table::new(),
    };
    let mut old_server =
        table(toml::Value::try_from(&old.server).unwrap_or(toml::Value::Boolean(false)));
    let mut new_server =
        table(toml::Value::try_from(&new.server).unwrap_or(toml::Value::Boolean(false)));
    // TLS is compared on its own below; the secrets' grace is read at every reload.
    for key in ["tls", "secret_grace_s"] {
        old_server.remove(key);
        new_server.remove(key);
    }
    changed_keys("server", &old_server, &new_server, &mut not_applied);
    let old_cluster =
        table(toml::Value::try_from(&old.cluster).unwrap_or(toml::Value::Boolean(false)));
    let new_cluster =
        table(toml::Value::try_from(&new.cluster).unwrap_or(toml::Value::Boolean(false)));
    changed_keys("cluster", &old_cluster, &new_cluster, &mut not_applied);

    let tls_files = match (&old.server.tls, &new.server.tls) {
        (Some(a), Some(b)) => {
            if a.plain_port != b.plain_port {
                not_applied.push("server.tls.plain_port".into());
            }
            Some((b.cert_file.clone(), b.key_file.clone()))
        }
        (None, None) => None,
        (_, _) => {
            not_applied.push("server.tls".into());
            None
        }
    };

    Plan {
        tls_files,
        not_applied,
    }
}

fn changed_keys(section: &str, old: &toml::Table, new: &toml::Table, out: &mut Vec<String>) {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        if old.get(key) != new.get(key) {
            out.push(format!("{section}.{key}"));
        }
    }
}

/// Re-reads the configuration file on request and applies what it may.
pub struct Reloader {
    path: Option<PathBuf>,
    running: Config,
    certs: Option<Arc<Certificates>>,
    apps: Arc<LiveApps>,
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        running: Config,
        certs: Option<Arc<Certificates>>,
        apps: Arc<LiveApps>,
    ) -> Self {
        Reloader {
            path,
            running,
            certs,
            apps,
        }
    }

    /// One reload: logs what happened, in a line or two.
    pub fn reload(&mut self) {
        let new = match Config::load(self.path.as_deref(), std::env::vars()) {
            Ok(c) => c,
            Err(e) => {
                return log::error!("reload refused, the running configuration stays: {e}");
            }
        };
        let mut plan = plan(&self.running, &new);
        if let (Some(certs), Some((cert, key))) = (&self.certs, &plan.tls_files) {
            match certs.reload_from(cert.as_ref(), key.as_ref()) {
                Ok(()) => log::info!("reload: TLS certificate reloaded"),
                Err(e) => log::error!("reload: TLS certificate kept: {e}"),
            }
        }
        let grace = std::time::Duration::from_secs(new.server.secret_grace_s);
        let (apps, not_applied) = self.apps.load().with_settings(&new.apps, grace);
        plan.not_applied.extend(not_applied);
        if let Some(apps) = apps {
            let ids: Vec<&str> = apps.iter().filter(|a| !a.removed).map(|a| a.id()).collect();
            self.apps.publish(apps.clone());
            log::info!("reload: app settings applied ({})", ids.join(", "));
        }
        if plan.not_applied.is_empty() {
            log::info!("reload: configuration re-read; nothing else changed");
        } else {
            log::warn!(
                "reload: not applied until a restart: {}",
                plan.not_applied.join(", ")
            );
        }
        // What was not applied is still what runs: the next reload compares against that
        // (the apps, against `LiveApps`).
        let mut running = self.running.clone();
        if let (Some(tls), Some(new_tls)) = (&mut running.server.tls, &new.server.tls) {
            *tls = TlsConfig {
                plain_port: tls.plain_port,
                ..new_tls.clone()
            };
        }
        self.running = running;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(Some(("t.toml".into(), text)), Vec::new()).unwrap()
    }

    const APP: &str = "[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"s\"\n";

    #[test]
    fn the_same_file_changes_nothing() {
        let c = config(APP);
        assert_eq!(plan(&c, &c), Plan::default());
    }

    #[test]
    fn server_and_cluster_changes_are_named() {
        let old = config(APP);
        let new = config(&format!(
            "[server]\nport = 7000\nactivity_timeout = 60\n[cluster]\nprefix = \"p\"\n{APP}\
             max_connections = 5\n[[apps]]\nid = \"b\"\nkey = \"k2\"\nsecret = \"s2\"\n"
        ));
        let p = plan(&old, &new);
        assert_eq!(
            p.not_applied,
            ["server.activity_timeout", "server.port", "cluster.prefix"]
        );
    }

    #[test]
    fn tls_files_reload_and_turning_tls_on_needs_a_restart() {
        let tls = |cert: &str, plain: u16| {
            config(&format!(
                "[server.tls]\ncert_file = \"{cert}\"\nkey_file = \"k.pem\"\nplain_port = {plain}\n{APP}"
            ))
        };
        let p = plan(&tls("a.pem", 0), &tls("b.pem", 0));
        assert_eq!(p.tls_files, Some(("b.pem".into(), "k.pem".into())));
        assert!(p.not_applied.is_empty(), "{p:?}");
        let p = plan(&tls("a.pem", 0), &tls("a.pem", 7001));
        assert_eq!(p.not_applied, ["server.tls.plain_port"]);
        let p = plan(&config(APP), &tls("a.pem", 0));
        assert_eq!(
            (p.tls_files, p.not_applied),
            (None, vec!["server.tls".to_string()])
        );
    }
}
