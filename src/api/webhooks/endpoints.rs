//! The configured endpoints of every app, each with its sender thread and queue, kept in step
//! with reloads: an endpoint whose configuration is unchanged keeps its thread and queue, a
//! new one gets a thread of its own, and a removed one's thread drops what it still holds
//! (logged) and ends.

use super::queue::{self, QueueTx};
use super::sender::{self, Target};
use crate::app::{App, AppIdx, Apps, CurrentSecret, LiveApps};
use crate::config::WebhookConfig;
use crate::logging::redacted_url;
use crate::metrics::WebhookCounters as Counters;
use crate::webhook_kind::{Kind, Kinds};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// One configured endpoint, as the API core sees it.
pub(super) struct Endpoint {
    config: WebhookConfig,
    pub kinds: Kinds,
    pub channel_prefix: Box<str>,
    pub queue: RefCell<Option<QueueTx>>,
    /// Set when a reload removed the endpoint: its sender drops what it still holds.
    discard: Arc<AtomicBool>,
}

/// Every app's endpoints, as of a reload of the apps.
pub(super) struct Endpoints {
    live: Arc<LiveApps>,
    counters: Arc<Counters>,
    /// The apps the endpoints follow, and their `LiveApps` epoch.
    apps: Arc<Apps>,
    epoch: u64,
    /// By app index.
    by_app: Vec<Vec<Endpoint>>,
    pub threads: Vec<JoinHandle<()>>,
}

impl Endpoints {
    pub fn start(live: Arc<LiveApps>, counters: Arc<Counters>) -> std::io::Result<Endpoints> {
        let apps = live.load();
        let mut endpoints = Endpoints {
            live,
            counters,
            apps: apps.clone(),
            epoch: 0,
            by_app: Vec::new(),
            threads: Vec::new(),
        };
        for app in apps.iter() {
            let mine = app
                .config
                .webhooks
                .iter()
                .map(|hook| endpoints.spawn(app, hook))
                .collect::<std::io::Result<Vec<_>>>()?;
            endpoints.by_app.push(mine);
        }
        Ok(endpoints)
    }

    fn spawn(&mut self, app: &App, hook: &WebhookConfig) -> std::io::Result<Endpoint> {
        let (tx, rx) = queue::new(&self.counters);
        let discard = Arc::new(AtomicBool::new(false));
        let target = Target {
            url: hook.url.clone(),
            app_key: app.key().to_string(),
            app_secret: CurrentSecret::new(self.live.clone(), app.idx),
            headers: hook.headers.clone().into_iter().collect(),
            discard: discard.clone(),
        };
        self.threads
            .push(sender::spawn(target, rx, self.counters.clone())?);
        Ok(Endpoint {
            config: hook.clone(),
            kinds: Kinds::from_names(hook.event_types.iter().map(String::as_str)),
            channel_prefix: hook.channel_prefix.as_str().into(),
            queue: RefCell::new(Some(tx)),
            discard,
        })
    }

    /// Whether any endpoint of `app` wants `kind`.
    pub fn wants(&self, app: AppIdx, kind: Kind) -> bool {
        self.apps
            .find(app)
            .is_some_and(|a| !a.removed && a.webhook_kinds.contains(kind))
    }

    pub fn of(&self, app: AppIdx) -> &[Endpoint] {
        self.by_app.get(app.0 as usize).map_or(&[], Vec::as_slice)
    }

    pub fn all(&self) -> impl Iterator<Item = &Endpoint> {
        self.by_app.iter().flatten()
    }

    /// Takes the endpoints of `apps` (as of `epoch`) if they are newer than those followed.
    pub fn follow(&mut self, apps: &Arc<Apps>, epoch: u64) {
        if epoch == self.epoch {
            return;
        }
        let mut by_app = Vec::with_capacity(apps.len());
        for app in apps.iter() {
            let mut old = std::mem::take(
                self.by_app
                    .get_mut(app.idx.0 as usize)
                    .unwrap_or(&mut Vec::new()),
            );
            let wanted: &[WebhookConfig] = if app.removed {
                &[]
            } else {
                &app.config.webhooks
            };
            let mut mine = Vec::with_capacity(wanted.len());
            for hook in wanted {
                if let Some(at) = old.iter().position(|e| e.config == *hook) {
                    mine.push(old.swap_remove(at));
                    continue;
                }
                match self.spawn(app, hook) {
                    Ok(endpoint) => {
                        log::info!("webhook {}: endpoint added", redacted_url(&hook.url));
                        mine.push(endpoint);
                    }
                    Err(e) => log::error!(
                        "webhook {}: cannot start its sender: {e}",
                        redacted_url(&hook.url)
                    ),
                }
            }
            for gone in old {
                // The sender sees the flag before its next event and drops what it holds.
                gone.discard.store(true, Ordering::Relaxed);
                gone.queue.borrow_mut().take();
                log::info!(
                    "webhook {}: endpoint removed by a reload; its queued events are dropped",
                    redacted_url(&gone.config.url)
                );
            }
            by_app.push(mine);
        }
        self.by_app = by_app;
        self.apps = apps.clone();
        self.epoch = epoch;
    }
}
