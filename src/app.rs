//! Apps: credentials, limits and feature switches, and the lookups by key (WebSocket path)
//! and by id (HTTP API path). Built at start; a reload publishes new settings through
//! [`LiveApps`], and each core keeps its own copy ([`AppsView`]), picked up at its next look,
//! so that no reference count or lock is shared between cores on the message path.

use crate::config::AppConfig;
use crate::webhook_kind::Kinds;
use ahash::AHashMap;
use std::cell::{Cell, Ref, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Index of an app in [`Apps`]; small and `Copy`, so per-connection and per-message state
/// carries this rather than strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppIdx(pub u16);

/// An app. A clone has its own allocations (a copy for another core) and shares the
/// connection counter.
#[derive(Debug, Clone)]
pub struct App {
    pub idx: AppIdx,
    pub config: AppConfig,
    /// Open WebSocket connections across all shards, for `max_connections` (4004). Touched on
    /// connect and disconnect only, never per message; shared by every copy of the app.
    connections: Arc<AtomicUsize>,
    /// Every webhook event kind some endpoint of the app wants.
    pub webhook_kinds: Kinds,
    /// The secret a reload replaced, still accepted until the instant given.
    previous_secret: Option<(String, Instant)>,
    /// A reload removed the app: it keeps its index (state elsewhere is indexed by it) but is
    /// found by neither key nor id, and its connections are closed (4001).
    pub removed: bool,
}

impl App {
    pub fn id(&self) -> &str {
        &self.config.id
    }
    pub fn key(&self) -> &str {
        &self.config.key
    }
    pub fn secret(&self) -> &str {
        &self.config.secret
    }

    /// The secrets a signature may be made with: the current one, then the one a reload
    /// replaced while its grace lasts.
    pub fn accepted_secrets(&self) -> impl Iterator<Item = &str> {
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(s, _)| s.as_str());
        std::iter::once(self.secret()).chain(previous)
    }

    /// `check` with each accepted secret: the first success, or the current secret's error.
    pub fn verify_with<E>(&self, check: impl Fn(&str) -> Result<(), E>) -> Result<(), E> {
        let mut first = None;
        for secret in self.accepted_secrets() {
            match check(secret) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Counts a new connection unless the app is at its quota; `false` means refuse (4004).
    pub fn try_acquire_connection(&self) -> bool {
        let max = self.config.max_connections;
        let mut current = self.connections.load(Ordering::Relaxed);
        loop {
            if max != 0 && current >= max {
                return false;
            }
            match self.connections.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    pub fn release_connection(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// All configured apps.
#[derive(Debug)]
pub struct Apps {
    list: Vec<Arc<App>>,
    by_key: AHashMap<String, AppIdx>,
    by_id: AHashMap<String, AppIdx>,
}

impl App {
    fn new(idx: AppIdx, config: AppConfig, connections: Arc<AtomicUsize>) -> App {
        Self::with_previous(idx, config, connections, None)
    }

    fn with_previous(
        idx: AppIdx,
        config: AppConfig,
        connections: Arc<AtomicUsize>,
        previous_secret: Option<(String, Instant)>,
    ) -> App {
        let webhook_kinds = config
            .webhooks
            .iter()
            .map(|w| Kinds::from_names(w.event_types.iter().map(String::as_str)))
            .fold(Kinds::default(), Kinds::union);
        App {
            idx,
            config,
            connections,
            webhook_kinds,
            previous_secret,
            removed: false,
        }
    }
}

impl Apps {
    pub fn new(configs: &[AppConfig]) -> Arc<Apps> {
        let list = configs
            .iter()
            .enumerate()
            .map(|(i, c)| App::new(AppIdx(i as u16), c.clone(), Arc::default()))
            .collect();
        Self::of(list)
    }

    fn of(list: Vec<App>) -> Arc<Apps> {
        let list: Vec<Arc<App>> = list.into_iter().map(Arc::new).collect();
        let present = || list.iter().filter(|a| !a.removed);
        let by_key = present().map(|a| (a.config.key.clone(), a.idx)).collect();
        let by_id = present().map(|a| (a.config.id.clone(), a.idx)).collect();
        Arc::new(Apps {
            list,
            by_key,
            by_id,
        })
    }

    /// A copy for one core: its own allocations (so its reference counts are its own), the
    /// same connection counters.
    pub fn local_copy(&self) -> Arc<Apps> {
        Self::of(self.list.iter().map(|a| (**a).clone()).collect())
    }

    /// The apps with `configs` applied: each existing app's limits, switches, webhooks and
    /// secret (the replaced secret stays accepted for `secret_grace`), apps added (at new
    /// indexes) and removed (kept as `removed`, so indexes stay valid). A changed key is not
    /// applied (clients and backends hold it): it is kept and named in the second value.
    /// `None` when nothing changed.
    pub fn with_settings(
        &self,
        configs: &[AppConfig],
        secret_grace: Duration,
    ) -> (Option<Arc<Apps>>, Vec<String>) {
        let mut not_applied = Vec::new();
        let mut changed = false;
        let mut list = Vec::with_capacity(self.list.len());
        for app in &self.list {
            let Some(new) = configs.iter().find(|c| c.id == app.config.id) else {
                let mut kept = (**app).clone();
                changed |= !app.removed;
                kept.removed = true;
                list.push(kept);
                continue;
            };
            let mut config = new.clone();
            if config.key != app.config.key {
                not_applied.push(format!("apps[{}].key", app.config.id));
                config.key.clone_from(&app.config.key);
            }
            let previous = if config.secret == app.config.secret {
                app.previous_secret.clone()
            } else {
                Some((app.config.secret.clone(), Instant::now() + secret_grace))
            };
            changed |= app.removed
                || toml::Value::try_from(&config).ok() != toml::Value::try_from(&app.config).ok();
            list.push(App::with_previous(
                app.idx,
                config,
                app.connections.clone(),
                previous,
            ));
        }
        for new in configs {
            if self.list.iter().any(|a| a.config.id == new.id) {
                continue;
            }
            let Ok(idx) = u16::try_from(list.len()) else {
                not_applied.push(format!("apps[{}] (added: too many apps)", new.id));
                continue;
            };
            list.push(App::new(AppIdx(idx), new.clone(), Arc::default()));
            changed = true;
        }
        (changed.then(|| Self::of(list)), not_applied)
    }

    pub fn get(&self, idx: AppIdx) -> &Arc<App> {
        &self.list[idx.0 as usize]
    }

    /// The app at `idx`, if this set has it (one a reload added is not in older copies).
    pub fn find(&self, idx: AppIdx) -> Option<&Arc<App>> {
        self.list.get(idx.0 as usize)
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key).map(|i| self.get(*i))
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id).map(|i| self.get(*i))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The apps as the last reload left them, shared by every core. Written only by a reload; each
/// core compares [`LiveApps::epoch`] with the one it copied and takes a copy when it moved.
#[derive(Debug)]
pub struct LiveApps {
    epoch: AtomicU64,
    apps: Mutex<Arc<Apps>>,
}

impl LiveApps {
    pub fn new(apps: Arc<Apps>) -> Arc<LiveApps> {
        Arc::new(LiveApps {
            epoch: AtomicU64::new(0),
            apps: Mutex::new(apps),
        })
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn load(&self) -> Arc<Apps> {
        // A poisoned lock only means a panic elsewhere while swapping; the value is whole.
        self.apps.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `apps` the current apps for every core.
    pub fn publish(&self, apps: Arc<Apps>) {
        *self.apps.lock().unwrap_or_else(|e| e.into_inner()) = apps;
        self.epoch.fetch_add(1, Ordering::Release);
    }
}

/// An app's secret as reloads leave it, for the threads that sign with it (webhook senders).
#[derive(Debug, Clone)]
pub struct CurrentSecret {
    live: Arc<LiveApps>,
    app: AppIdx,
}

impl CurrentSecret {
    pub fn new(live: Arc<LiveApps>, app: AppIdx) -> CurrentSecret {
        CurrentSecret { live, app }
    }

    pub fn get(&self) -> String {
        self.live.load().get(self.app).secret().to_string()
    }
}

/// One core's copy of the apps, brought up to date with [`LiveApps`] when it is looked at.
#[derive(Debug)]
pub struct AppsView {
    live: Arc<LiveApps>,
    epoch: Cell<u64>,
    local: RefCell<Arc<Apps>>,
}

impl AppsView {
    pub fn new(live: Arc<LiveApps>) -> AppsView {
        let epoch = live.epoch();
        let local = live.load().local_copy();
        AppsView {
            live,
            epoch: Cell::new(epoch),
            local: RefCell::new(local),
        }
    }

    /// The current apps (not to be held across an await).
    pub fn now(&self) -> Ref<'_, Arc<Apps>> {
        self.refresh();
        self.local.borrow()
    }

    /// Takes the reloaded apps if there are new ones; `true` when it did.
    pub fn refresh(&self) -> bool {
        let epoch = self.live.epoch();
        if epoch == self.epoch.get() {
            return false;
        }
        // Looked at again while a caller still holds the current copy (a reload landed in
        // between): that caller keeps it, and the next look takes the new one.
        let Ok(mut local) = self.local.try_borrow_mut() else {
            return false;
        };
        *local = self.live.load().local_copy();
        self.epoch.set(epoch);
        true
    }

    /// How many reloads this copy reflects: a holder of one app compares it with its own.
    pub fn epoch(&self) -> u64 {
        self.epoch.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, key: &str) -> AppConfig {
        AppConfig {
            id: id.into(),
            key: key.into(),
            secret: "s".into(),
            ..AppConfig::default()
        }
    }

    #[test]
    fn settings_apply_and_the_rest_is_named() {
        let apps = Apps::new(&[app("a", "ka"), app("b", "kb")]);
        assert!(apps.get(AppIdx(0)).try_acquire_connection());
        let mut a = app("a", "ka");
        a.enable_client_messages = true;
        let mut b = app("b", "other-key");
        b.max_connections = 3;
        b.secret = "s2".into();
        let grace = Duration::from_secs(60);
        let (new, not_applied) = apps.with_settings(&[a, b, app("c", "kc")], grace);
        let new = new.expect("settings changed");
        assert!(new.get(AppIdx(0)).config.enable_client_messages);
        assert_eq!(new.get(AppIdx(1)).config.max_connections, 3);
        assert_eq!(new.get(AppIdx(1)).key(), "kb", "the key stays");
        let b = new.get(AppIdx(1));
        assert_eq!(b.accepted_secrets().collect::<Vec<_>>(), ["s2", "s"]);
        assert!(
            b.verify_with(|s| if s == "s" { Ok(()) } else { Err(s.to_string()) })
                .is_ok()
        );
        assert_eq!(
            b.verify_with(|s| Err::<(), _>(s.to_string())),
            Err("s2".to_string())
        );
        // Without grace the replaced secret is refused at once.
        let mut b0 = app("b", "kb");
        b0.secret = "s3".into();
        let (none, _) = apps.with_settings(&[app("a", "ka"), b0], Duration::ZERO);
        let b0 = none.unwrap();
        assert_eq!(
            b0.get(AppIdx(1)).accepted_secrets().collect::<Vec<_>>(),
            ["s3"]
        );
        assert_eq!(not_applied, ["apps[b].key"]);
        assert!(new.by_key("kb").is_some() && new.by_key("other-key").is_none());
        // The connection counter is the same one.
        new.get(AppIdx(0)).release_connection();
        assert!(apps.get(AppIdx(0)).try_acquire_connection());
        let same = apps.with_settings(&[app("a", "ka"), app("b", "kb")], grace);
        assert_eq!(same.0.map(|_| ()), None);
    }

    #[test]
    fn apps_are_added_and_removed() {
        let apps = Apps::new(&[app("a", "ka"), app("b", "kb")]);
        let mut c = app("c", "kc");
        c.webhooks = vec![crate::config::WebhookConfig {
            url: "http://h/".into(),
            event_types: Vec::new(),
            channel_prefix: String::new(),
            headers: Default::default(),
        }];
        let (new, not_applied) = apps.with_settings(&[app("b", "kb"), c], Duration::ZERO);
        let new = new.unwrap();
        assert!(not_applied.is_empty(), "{not_applied:?}");
        assert!(new.get(AppIdx(0)).removed && new.by_key("ka").is_none());
        assert!(new.by_id("a").is_none());
        assert_eq!(new.by_key("kc").map(|a| a.idx), Some(AppIdx(2)));
        assert_eq!(new.get(AppIdx(2)).config.webhooks.len(), 1);
        // Back again: the same index.
        let (back, _) = new.with_settings(&[app("a", "ka"), app("b", "kb")], Duration::ZERO);
        let back = back.unwrap();
        assert_eq!(back.by_key("ka").map(|a| a.idx), Some(AppIdx(0)));
        assert!(back.get(AppIdx(2)).removed);
    }

    #[test]
    fn a_view_picks_up_what_is_published() {
        let live = LiveApps::new(Apps::new(&[app("a", "ka")]));
        let view = AppsView::new(live.clone());
        assert!(!view.refresh());
        let mut a = app("a", "ka");
        a.max_connections = 7;
        live.publish(live.load().with_settings(&[a], Duration::ZERO).0.unwrap());
        assert_eq!(view.now().get(AppIdx(0)).config.max_connections, 7);
        assert_eq!(view.epoch(), 1);
        // A reload while a copy is held: the holder keeps it; the next look takes the new one.
        let held = view.now();
        let mut a = app("a", "ka");
        a.max_connections = 8;
        live.publish(live.load().with_settings(&[a], Duration::ZERO).0.unwrap());
        assert_eq!(view.now().get(AppIdx(0)).config.max_connections, 7);
        drop(held);
        assert_eq!(view.now().get(AppIdx(0)).config.max_connections, 8);
    }
}
