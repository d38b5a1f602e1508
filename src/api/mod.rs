//! The API core: one executor that serves the HTTP API (requests arrive from the shards over
//! the bus), verifies signatures, owns cluster-wide state, and sends broadcasts to the shards
//! — one message per shard.

mod channels;
mod counts;
mod events;
mod history;
mod idempotency;
mod metrics_endpoint;
mod presence;
mod router;
mod users;

use crate::app::{AppIdx, Apps};
use crate::bus::{ApiCommand, Broadcast, ShardCommand};
use crate::cache::{LastEvents, Tick};
use crate::cluster::{
    LocalPresence, LocalSubscriptions, LocalUsers, Presence, Subscriptions, Users, Watcher,
};
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::webhooks::{Event, Kind, Webhooks};
use ahash::{AHashMap, AHashSet};
use glommio::channels::shared_channel::{
    ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::timer::Timer;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use router::route;

/// Everything the API executor needs to start.
pub struct ApiSetup {
    pub apps: Arc<Apps>,
    pub config: ServerConfig,
    pub to_shards: Vec<SharedSender<ShardCommand>>,
    pub from_shards: Vec<SharedReceiver<ApiCommand>>,
    /// Set by SIGTERM/SIGINT.
    pub stop: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// Bound to `metrics_port` (none when it is 0).
    pub metrics_listener: Option<std::net::TcpListener>,
}

/// The API core's state.
pub struct ApiCore {
    pub apps: Arc<Apps>,
    pub config: ServerConfig,
    shards: Vec<ConnectedSender<ShardCommand>>,
    metrics: Arc<Metrics>,
    stopped_shards: Cell<usize>,
    pub presence: RefCell<Box<dyn Presence>>,
    pub subscriptions: RefCell<Box<dyn Subscriptions>>,
    pub users: RefCell<Box<dyn Users>>,
    pub webhooks: Rc<Webhooks>,
    /// Per occupied channel: when its subscription count was last announced.
    count_events: RefCell<AHashMap<(AppIdx, Box<str>), Instant>>,
    /// Channels with a deferred count announcement scheduled.
    count_timers: RefCell<AHashSet<(AppIdx, Box<str>)>>,
    /// Recent events of every channel, for history queries.
    pub history: RefCell<crate::history::History>,
    /// Keys of recent idempotent publishes.
    idempotency: RefCell<idempotency::Idempotency>,
    /// The last event of each cache channel, for `info=cache`.
    last_events: RefCell<LastEvents<CachedEvent>>,
    started: Instant,
}

/// A cache channel's last event as the channel query shows it.
#[derive(Clone)]
pub struct CachedEvent {
    pub event: Rc<str>,
    /// `data` as a JSON string literal.
    pub data: Rc<str>,
}

impl ApiCore {
    /// Seconds since the API core started.
    pub fn now(&self) -> Tick {
        self.started.elapsed().as_secs() as Tick
    }

    /// Keeps a cache channel's event for `info=cache` (the shards keep their own copy).
    pub fn remember(&self, app: &crate::app::App, channel: &str, event: &str, data: &str) {
        let expires = self.now() + app.config.cache_ttl_s as Tick;
        let cached = CachedEvent {
            event: event.into(),
            data: data.into(),
        };
        self.last_events
            .borrow_mut()
            .store(app.idx, channel, cached, expires);
    }

    /// A cache channel's last event and its seconds left, unless it has expired.
    pub fn cached(&self, app: AppIdx, channel: &str) -> Option<(CachedEvent, Tick)> {
        let now = self.now();
        let (event, expires) = self.last_events.borrow().get(app, channel, now)?;
        Some((event, expires - now))
    }

    /// Closes every connection of a signed-in user, on every shard.
    pub async fn terminate_user(&self, app: AppIdx, user_id: &str) {
        for shard in 0..self.shards.len() {
            let cmd = ShardCommand::TerminateUser {
                app,
                user_id: user_id.into(),
            };
            self.send_to(shard, cmd).await;
        }
    }

    /// Sends a command to one shard.
    pub async fn send_to(&self, shard: usize, cmd: ShardCommand) {
        if let Some(tx) = self.shards.get(shard) {
            let depth = &self.metrics.shard(shard).queue_depth.0;
            depth.fetch_add(1, Ordering::Relaxed);
            if tx.send(cmd).await.is_err() {
                depth.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends one broadcast to every shard. Waits while a shard's queue is full, so a flood of
    /// publishes slows the publishers instead of growing memory.
    pub async fn broadcast(&self, b: Broadcast) {
        self.broadcast_shared(Arc::new(b)).await
    }

    /// [`ApiCore::broadcast`] of an event someone else keeps a reference to (history).
    pub async fn broadcast_shared(&self, b: Arc<Broadcast>) {
        for shard in 0..self.shards.len() {
            self.send_to(shard, ShardCommand::Broadcast(b.clone()))
                .await;
        }
    }
}

/// A seed that differs from run to run (stream ids must change after a restart).
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

pub async fn run(setup: ApiSetup) {
    // `connect` waits for the peer, so every end connects in its own task, all at once.
    let senders: Vec<_> = setup
        .to_shards
        .into_iter()
        .map(|tx| glommio::spawn_local(tx.connect()))
        .collect();
    let receivers: Vec<_> = setup
        .from_shards
        .into_iter()
        .map(|rx| glommio::spawn_local(rx.connect()))
        .collect();
    let mut shards = Vec::with_capacity(senders.len());
    for tx in senders {
        shards.push(tx.await);
    }
    let hold = Duration::from_millis(setup.config.webhook_hold_ms);
    let webhooks = match Webhooks::start(&setup.apps, hold) {
        Ok(w) => w,
        Err(e) => {
            log::error!("cannot start webhook senders: {e}");
            setup.stop.store(true, Ordering::Relaxed);
            return;
        }
    };
    setup.metrics.set_webhooks(webhooks.counters.clone());
    if let Some(listener) = setup.metrics_listener {
        glommio::spawn_local(metrics_endpoint::serve(listener, setup.metrics.clone())).detach();
    }
    let core = Rc::new(ApiCore {
        metrics: setup.metrics,
        webhooks,
        apps: setup.apps,
        config: setup.config,
        shards,
        stopped_shards: Cell::new(0),
        presence: RefCell::new(Box::new(LocalPresence::default())),
        subscriptions: RefCell::new(Box::new(LocalSubscriptions::default())),
        users: RefCell::new(Box::new(LocalUsers::default())),
        count_events: RefCell::new(AHashMap::new()),
        count_timers: RefCell::new(AHashSet::new()),
        history: RefCell::new(crate::history::History::new(seed())),
        idempotency: RefCell::new(Default::default()),
        last_events: RefCell::new(LastEvents::default()),
        started: Instant::now(),
    });
    for rx in receivers {
        let rx = rx.await;
        glommio::spawn_local(serve_shard(core.clone(), rx)).detach();
    }
    // A signal handler may not touch the executor, so it only sets a flag we look at here.
    let mut purged = Instant::now();
    while !setup.stop.load(Ordering::Relaxed) {
        Timer::new(Duration::from_millis(50)).await;
        if purged.elapsed() >= Duration::from_secs(60) {
            purged = Instant::now();
            core.last_events.borrow_mut().purge(core.now());
            let apps = core.apps.clone();
            core.history
                .borrow_mut()
                .purge(crate::clock::unix_ms(), |app| {
                    history::retention(apps.get(app))
                });
        }
    }
    log::info!("shutting down: closing connections with 4200");
    for shard in 0..core.shards.len() {
        core.send_to(shard, ShardCommand::Shutdown).await;
    }
    let deadline = Instant::now() + Duration::from_secs(core.config.shutdown_grace_s + 1);
    while core.stopped_shards.get() < core.shards.len() && Instant::now() < deadline {
        Timer::new(Duration::from_millis(10)).await;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    core.webhooks.close(left).await;
}

async fn serve_shard(core: Rc<ApiCore>, rx: ConnectedReceiver<ApiCommand>) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            ApiCommand::Http {
                shard,
                request,
                http,
            } => {
                let core = core.clone();
                glommio::spawn_local(async move {
                    let response = route(&core, http).await;
                    core.send_to(shard, ShardCommand::HttpResponse { request, response })
                        .await;
                })
                .detach();
            }
            ApiCommand::ShardStopped { .. } => {
                core.stopped_shards.set(core.stopped_shards.get() + 1)
            }
            ApiCommand::ClientEvent(b) => {
                if core.webhooks.wants(b.app, Kind::ClientEvent)
                    && let Some(event) = Event::client_event(&b)
                {
                    core.webhooks.emit(b.app, &event);
                }
                core.broadcast(b).await
            }
            ApiCommand::CacheMiss { app, channel } => {
                core.webhooks.emit(app, &Event::CacheMiss { channel })
            }
            ApiCommand::PresenceJoin(join) => presence::join(&core, join).await,
            ApiCommand::UserOnline {
                shard,
                conn,
                socket_id,
                app,
                user_id,
                watchlist,
            } => {
                let me = Watcher {
                    shard,
                    conn,
                    socket: socket_id,
                };
                users::online(&core, me, app, &user_id, watchlist).await
            }
            ApiCommand::UserOffline {
                app,
                user_id,
                socket_id,
            } => users::offline(&core, app, &user_id, socket_id).await,
            ApiCommand::Subscriptions {
                app,
                channel,
                delta,
            } => counts::changed(&core, app, &channel, delta).await,
            ApiCommand::PresenceLeave {
                app,
                channel,
                user_id,
                socket_id,
            } => presence::leave(&core, app, &channel, &user_id, socket_id).await,
        }
    }
}
