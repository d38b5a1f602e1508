//! The API core: one executor that serves the HTTP API (requests arrive from the shards over
//! the bus), verifies signatures, owns cluster-wide state, and sends broadcasts to the shards
//! — one message per shard.

mod channels;
mod counts;
mod events;
mod presence;
mod router;
mod users;

use crate::app::{AppIdx, Apps};
use crate::bus::{ApiCommand, Broadcast, ShardCommand};
use crate::cluster::{
    LocalPresence, LocalSubscriptions, LocalUsers, Presence, Subscriptions, Users, Watcher,
};
use crate::config::ServerConfig;
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
}

/// The API core's state.
pub struct ApiCore {
    pub apps: Arc<Apps>,
    pub config: ServerConfig,
    shards: Vec<ConnectedSender<ShardCommand>>,
    stopped_shards: Cell<usize>,
    pub presence: RefCell<Box<dyn Presence>>,
    pub subscriptions: RefCell<Box<dyn Subscriptions>>,
    pub users: RefCell<Box<dyn Users>>,
    /// Per occupied channel: when its subscription count was last announced.
    count_events: RefCell<AHashMap<(AppIdx, Box<str>), Instant>>,
    /// Channels with a deferred count announcement scheduled.
    count_timers: RefCell<AHashSet<(AppIdx, Box<str>)>>,
}

impl ApiCore {
    /// Sends one broadcast to every shard. Waits while a shard's queue is full, so a flood of
    /// publishes slows the publishers instead of growing memory.
    /// Closes every connection of a signed-in user, on every shard.
    pub async fn terminate_user(&self, app: AppIdx, user_id: &str) {
        for shard in &self.shards {
            let _ = shard
                .send(ShardCommand::TerminateUser {
                    app,
                    user_id: user_id.into(),
                })
                .await;
        }
    }

    /// Sends a command to one shard.
    pub async fn send_to(&self, shard: usize, cmd: ShardCommand) {
        if let Some(tx) = self.shards.get(shard) {
            let _ = tx.send(cmd).await;
        }
    }

    pub async fn broadcast(&self, b: Broadcast) {
        let b = Arc::new(b);
        for shard in &self.shards {
            let _ = shard.send(ShardCommand::Broadcast(b.clone())).await;
        }
    }
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
    let core = Rc::new(ApiCore {
        apps: setup.apps,
        config: setup.config,
        shards,
        stopped_shards: Cell::new(0),
        presence: RefCell::new(Box::new(LocalPresence::default())),
        subscriptions: RefCell::new(Box::new(LocalSubscriptions::default())),
        users: RefCell::new(Box::new(LocalUsers::default())),
        count_events: RefCell::new(AHashMap::new()),
        count_timers: RefCell::new(AHashSet::new()),
    });
    for rx in receivers {
        let rx = rx.await;
        glommio::spawn_local(serve_shard(core.clone(), rx)).detach();
    }
    // A signal handler may not touch the executor, so it only sets a flag we look at here.
    while !setup.stop.load(Ordering::Relaxed) {
        Timer::new(Duration::from_millis(50)).await;
    }
    log::info!("shutting down: closing connections with 4200");
    for shard in &core.shards {
        let _ = shard.send(ShardCommand::Shutdown).await;
    }
    let deadline = Instant::now() + Duration::from_secs(core.config.shutdown_grace_s + 1);
    while core.stopped_shards.get() < core.shards.len() && Instant::now() < deadline {
        Timer::new(Duration::from_millis(10)).await;
    }
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
                    let _ = core.shards[shard]
                        .send(ShardCommand::HttpResponse { request, response })
                        .await;
                })
                .detach();
            }
            ApiCommand::ShardStopped { .. } => {
                core.stopped_shards.set(core.stopped_shards.get() + 1)
            }
            ApiCommand::ClientEvent(b) => core.broadcast(b).await,
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
