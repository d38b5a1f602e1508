//! Apps: credentials, limits and feature switches, and the lookups by key (WebSocket path)
//! and by id (HTTP API path). Built once at start and shared read-only by every core.

use crate::config::AppConfig;
use crate::webhook_kind::Kinds;
use ahash::AHashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Index of an app in [`Apps`]; small and `Copy`, so per-connection and per-message state
/// carries this rather than strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppIdx(pub u16);

#[derive(Debug)]
pub struct App {
    pub idx: AppIdx,
    pub config: AppConfig,
    /// Open WebSocket connections across all shards, for `max_connections` (4004). Touched on
    /// connect and disconnect only, never per message.
    connections: AtomicUsize,
    /// Every webhook event kind some endpoint of the app wants.
    pub webhook_kinds: Kinds,
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

impl Apps {
    pub fn new(configs: &[AppConfig]) -> Arc<Apps> {
        let list: Vec<Arc<App>> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Arc::new(App {
                    idx: AppIdx(i as u16),
                    config: c.clone(),
                    connections: AtomicUsize::new(0),
                    webhook_kinds: c
                        .webhooks
                        .iter()
                        .map(|w| Kinds::from_names(w.event_types.iter().map(String::as_str)))
                        .fold(Kinds::default(), Kinds::union),
                })
            })
            .collect();
        let by_key = list.iter().map(|a| (a.config.key.clone(), a.idx)).collect();
        let by_id = list.iter().map(|a| (a.config.id.clone(), a.idx)).collect();
        Arc::new(Apps {
            list,
            by_key,
            by_id,
        })
    }

    pub fn get(&self, idx: AppIdx) -> &Arc<App> {
        &self.list[idx.0 as usize]
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
