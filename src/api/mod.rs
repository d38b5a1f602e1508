//! The API core: one executor that serves the HTTP API (requests arrive from the shards over
//! the bus), verifies signatures, owns cluster-wide state, and sends broadcasts to the shards
//! — one message per shard.
//!
//! - [`routes`]: HTTP routing, signatures and the channel queries; [`request`]: what a
//!   handler receives;
//! - [`publish`]: the publish service (validation → idempotency → history and cache →
//!   broadcast); [`history`]: channel history;
//! - [`cluster`]: the cluster-wide state behind fallible, asynchronous interfaces;
//!   [`membership`], [`watchlists`], [`subscription_count`]: what the shards' reports change;
//! - [`webhooks`]: what the API core reports to app backends; [`metrics_port`]: `/metrics`
//!   and the web [`console`].

pub mod channel_info;
pub mod cluster;
pub mod console;
pub mod history;
pub mod interest;
pub mod membership;
mod metrics_port;
mod node_life;
pub mod publish;
pub mod request;
pub mod routes;
pub mod shards;
pub mod subscription_count;
mod unfinished;
pub mod watchlists;
pub mod webhooks;

use crate::app::{AppIdx, AppsView, LiveApps};
use crate::bus::{
    Answer, ApiCommand, ApiQueue, Broadcast, Question, ReplyTo, ShardCommand, UnconnectedSender,
};
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::protocol::ErrorCode;
use crate::protocol::errors::SubscriptionRefusal;
use cluster::{Cluster, ClusterError, NodeEvent};
use glommio::channels::shared_channel::SharedReceiver;
use glommio::timer::Timer;
use publish::Publisher;
use shards::Shards;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use subscription_count::Announcements;
use webhooks::{Event, Kind, Webhooks};

pub use routes::route;

/// Everything the API executor needs to start.
pub struct ApiSetup {
    /// The apps as reloads leave them.
    pub apps: Arc<LiveApps>,
    pub config: ServerConfig,
    /// The link to the other nodes, in a cluster.
    pub cluster: Option<cluster::RedisNode>,
    pub to_shards: Vec<UnconnectedSender>,
    pub from_shards: Vec<SharedReceiver<ApiCommand>>,
    /// Set by SIGTERM/SIGINT.
    pub stop: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// Bound to `metrics_port` (none when it is 0).
    pub metrics_listener: Option<std::net::TcpListener>,
}

/// The API core's services. Each keeps its own state behind methods; none holds a borrow
/// across an await.
pub struct ApiCore {
    /// The API core's copy of the apps, brought up to date after a reload.
    pub apps: AppsView,
    pub config: ServerConfig,
    pub shards: Shards,
    pub cluster: Cluster,
    pub publisher: Publisher,
    pub webhooks: Rc<Webhooks>,
    /// The web console's access and live event log.
    pub console: console::Console,
    announcements: Announcements,
    interest: interest::Interest,
    /// In a cluster: this node's presence connections, to register again after Redis lost them.
    local_members: membership::LocalMembers,
    /// This node's signed-in connections and who they watch.
    watchers: watchlists::Watchers,
    /// Departures Redis missed while unreachable.
    unfinished: unfinished::Unfinished,
    /// Each app's signed API requests this second (`max_api_requests_per_second`).
    pub api_requests: RefCell<crate::rate::PerKey<AppIdx>>,
    stopped_shards: Cell<usize>,
}

impl ApiCore {
    /// Sends an event to every node that serves its channel and to this node's shards.
    /// Without a cluster it cannot fail; in one, the other nodes come first, so an event
    /// that cannot reach them is not delivered here either (the publisher hears 503).
    pub async fn distribute(&self, b: Arc<Broadcast>) -> Result<(), ClusterError> {
        let transport = &self.cluster.transport;
        if transport.has_peers() {
            let event = NodeEvent::Broadcast {
                app_id: self.apps.now().get(b.app).id().into(),
                channel: b.channel.clone(),
                payload: b.payload.clone(),
                except: b.except,
                cacheable: b.cacheable,
            };
            transport.send(&event).await?;
        }
        self.deliver_here(b).await;
        Ok(())
    }

    /// Hands a broadcast to this node's shards (and shows it to the console).
    pub async fn deliver_here(&self, b: Arc<Broadcast>) {
        self.console.broadcast(&b);
        self.shards.broadcast(b).await;
    }

    /// [`ApiCore::distribute`] of an event the server decided (membership, counts) or a
    /// client event: when the other nodes cannot be reached it is still delivered here.
    pub async fn broadcast(&self, b: Broadcast) {
        let b = Arc::new(b);
        if let Err(e) = self.distribute(b.clone()).await {
            log::warn!(
                "cluster: {} on {} reached this node only: {e}",
                event_name(&b),
                b.channel
            );
            self.deliver_here(b).await;
        }
    }

    /// Answers a shard's question.
    pub async fn answer(&self, to: ReplyTo, answer: Answer) {
        let cmd = ShardCommand::Answer {
            request: to.request,
            answer,
        };
        self.shards.send_to(to.shard, cmd).await;
    }

    /// Closes every connection of a signed-in user, on every shard of every node.
    pub async fn terminate_user(&self, app: AppIdx, user_id: &str) -> Result<(), ClusterError> {
        let transport = &self.cluster.transport;
        if transport.has_peers() {
            let event = NodeEvent::TerminateUser {
                app_id: self.apps.now().get(app).id().into(),
                user_id: user_id.into(),
            };
            transport.send(&event).await?;
        }
        let cmd = || ShardCommand::TerminateUser {
            app,
            user_id: user_id.into(),
        };
        self.shards.send_all(cmd).await;
        Ok(())
    }
}

/// The event name of a broadcast, for logs.
fn event_name(b: &Broadcast) -> &str {
    #[derive(serde::Deserialize)]
    struct Name<'a> {
        #[serde(borrow)]
        event: &'a str,
    }
    serde_json::from_slice::<Name>(&b.payload).map_or("an event", |n| n.event)
}

/// A seed that differs from run to run and node to node (stream ids must change after a
/// restart, and two nodes never make the same one).
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
    let cluster = match setup.cluster {
        Some(node) => Cluster::on_redis(node, setup.apps.clone(), seed()),
        None => Cluster::single_node(seed(), &setup.config),
    };
    let hold = Duration::from_millis(setup.config.webhook_hold_ms);
    let webhooks = match Webhooks::start(&setup.apps, hold, cluster.holds.clone(), seed()) {
        Ok(w) => w,
        Err(e) => {
            log::error!("cannot start webhook senders: {e}");
            setup.stop.store(true, Ordering::Relaxed);
            return;
        }
    };
    setup.metrics.set_webhooks(webhooks.counters.clone());
    let max_keys = setup.config.idempotency_max_keys;
    let core = Rc::new(ApiCore {
        webhooks,
        console: console::Console::new(&setup.config.console_token),
        apps: AppsView::new(setup.apps),
        config: setup.config,
        shards: Shards::new(shards),
        cluster,
        publisher: Publisher::new(max_keys),
        announcements: Announcements::default(),
        interest: interest::Interest::default(),
        local_members: membership::LocalMembers::default(),
        watchers: watchlists::Watchers::default(),
        unfinished: unfinished::Unfinished::default(),
        api_requests: RefCell::default(),
        stopped_shards: Cell::new(0),
    });
    if let Some(listener) = setup.metrics_listener {
        let serve = metrics_port::serve(listener, core.clone(), setup.metrics.clone());
        glommio::spawn_local(serve).detach();
    }
    // A node restarting under its old id clears what it held before, before it holds anything.
    match core.cluster.nodes.start().await {
        Ok(gone) => node_life::departed(&core, gone).await,
        Err(e) => log::warn!("cluster: clearing this node's earlier state: {e}"),
    }
    for rx in receivers {
        let rx = rx.await;
        glommio::spawn_local(serve_shard(core.clone(), rx)).detach();
    }
    if core.cluster.transport.has_peers() {
        glommio::spawn_local(node_life::from_other_nodes(core.clone())).detach();
    }
    if let Some(every) = core.cluster.nodes.heartbeat() {
        glommio::spawn_local(node_life::watch_nodes(core.clone(), every)).detach();
    }
    until_stopped(&core, &setup.stop).await;
    shut_down(&core).await;
}

/// Waits for SIGTERM/SIGINT, sweeping expired cache and history entries once a minute. A
/// signal handler may not touch the executor, so it only sets a flag we look at here.
async fn until_stopped(core: &ApiCore, stop: &AtomicBool) {
    let mut purged = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        Timer::new(Duration::from_millis(50)).await;
        // A reload's apps: the webhook endpoints follow them here.
        let apps = core.apps.now().clone();
        core.webhooks.follow(&apps, core.apps.epoch());
        if purged.elapsed() >= Duration::from_secs(60) {
            purged = Instant::now();
            core.publisher.purge(core);
            let second = crate::clock::unix_s() as crate::clock::Tick;
            core.api_requests.borrow_mut().purge(second);
        }
    }
}

/// Closes every client with 4200, hears their departures, leaves the cluster and flushes the
/// webhooks, all within `shutdown_grace_s`: the clients get most of it, and the last quarter
/// (two seconds at most) is kept for what their departures cause.
async fn shut_down(core: &ApiCore) {
    log::info!("shutting down: closing connections with 4200");
    let start = Instant::now();
    let grace = Duration::from_secs(core.config.shutdown_grace_s);
    let reserve = (grace / 4).min(Duration::from_secs(2));
    let deadline = start + grace;
    let clients_by = deadline - reserve;
    let done_by = deadline - reserve / 2;
    let stop = || ShardCommand::Shutdown {
        clients_by,
        done_by,
    };
    core.shards.send_all(stop).await;
    while core.stopped_shards.get() < core.shards.len() && Instant::now() < done_by {
        Timer::new(Duration::from_millis(10)).await;
    }
    let leave = async {
        match core.cluster.nodes.leave().await {
            Ok(gone) => node_life::departed(core, gone).await,
            Err(e) => log::warn!("cluster: leaving: {e}"),
        }
        Ok(())
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if glommio::timer::timeout(left, leave).await.is_err() {
        log::warn!("cluster: leaving took longer than the shutdown grace; left as it was");
    }
    core.webhooks
        .close(deadline.saturating_duration_since(Instant::now()))
        .await;
}

/// Whether the cluster takes one more connection of `app` (which limits its connections).
async fn admit_connection(core: &ApiCore, app: AppIdx) -> Result<(), (ErrorCode, String)> {
    let max = core.apps.now().get(app).config.max_connections;
    match core.cluster.connections.acquire(app, max).await {
        Ok(true) => Ok(()),
        Ok(false) => Err((
            ErrorCode::OverQuota,
            ErrorCode::OverQuota.close_reason().into(),
        )),
        // Unknown: the client comes back later (4100 asks it to wait before reconnecting).
        Err(e) => {
            log::warn!("cluster: counting a new connection: {e}");
            let why = "Connection quota cannot be checked now; reconnect later";
            Err((ErrorCode::OverCapacity, why.into()))
        }
    }
}

/// Handles one shard's commands, in the order that shard sent them.
async fn serve_shard(core: Rc<ApiCore>, rx: ApiQueue) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            ApiCommand::Ask {
                from,
                question: Question::Http(http),
            } => {
                // Requests run concurrently: an idempotent repeat may wait for its first.
                let core = core.clone();
                glommio::spawn_local(async move {
                    let response = route(&core, http).await;
                    core.answer(from, Answer::Http(response)).await;
                })
                .detach();
            }
            ApiCommand::Ask {
                from,
                question: Question::PresenceJoin(join),
            } => membership::join(&core, from, join).await,
            ApiCommand::Ask {
                from,
                question: Question::Subscribe { app, channel },
            } => {
                let verdict = match core.interest.ensure(&core, app, &channel).await {
                    Ok(()) => Ok("{}".to_string()),
                    Err(e) => {
                        log::warn!("cluster: subscribing {channel}: {e}");
                        Err(SubscriptionRefusal::Unavailable)
                    }
                };
                core.answer(from, Answer::Join(verdict)).await
            }
            ApiCommand::Ask {
                from,
                question: Question::Connect { app },
            } => {
                let verdict = admit_connection(&core, app).await;
                core.answer(from, Answer::Admit(verdict)).await
            }
            ApiCommand::Disconnected { app } => {
                if let Err(e) = core.cluster.connections.release(app).await {
                    log::warn!("cluster: counting a closed connection: {e}");
                }
            }
            ApiCommand::Connection(event) => core.console.connection(event),
            ApiCommand::ShardStopped { .. } => {
                core.stopped_shards.set(core.stopped_shards.get() + 1)
            }
            ApiCommand::ClientEvent(e) => {
                if let Some(report) = &e.report
                    && core.webhooks.wants(e.broadcast.app, Kind::ClientEvent)
                {
                    let event = Event::client_event(&e.broadcast.channel, report, e.sender);
                    core.webhooks.emit(e.broadcast.app, &event);
                }
                core.broadcast(e.broadcast).await
            }
            ApiCommand::CacheMiss { app, channel } => {
                core.webhooks.emit(app, &Event::CacheMiss { channel })
            }
            ApiCommand::UserOnline {
                conn,
                app,
                user_id,
                watchlist,
            } => watchlists::online(&core, conn, app, &user_id, watchlist).await,
            ApiCommand::UserOffline {
                app,
                user_id,
                socket,
            } => watchlists::offline(&core, app, &user_id, socket).await,
            ApiCommand::Subscriptions {
                app,
                channel,
                delta,
                socket,
            } => {
                core.console.subscription(app, &channel, socket, delta);
                core.interest.changed(&core, app, &channel, delta);
                subscription_count::changed(&core, app, &channel, delta).await
            }
            ApiCommand::PresenceLeave {
                app,
                channel,
                user_id,
                socket,
            } => membership::leave(&core, app, &channel, &user_id, socket).await,
        }
    }
}
