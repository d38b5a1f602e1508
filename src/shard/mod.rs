//! A shard: one glommio executor pinned to a core, accepting on the public port (SO_REUSEPORT)
//! and owning its connections and local channel index. It talks to the API core only through
//! the queues in [`crate::bus`].

pub mod connection;
pub mod hub;
pub mod outbox;
pub mod session;

use crate::app::Apps;
use crate::bus::{ApiCommand, Broadcast, ShardCommand, ShardId};
use crate::cache::{LastEvents, Tick};
use crate::config::ServerConfig;
use crate::http::ApiResponse;
use crate::metrics::{Metrics, ShardMetrics};
use crate::protocol::{ChannelName, ErrorCode, SocketId, frames};
use crate::webhooks::Kind;
use crate::ws;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::channels::shared_channel::{
    ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::net::TcpListener;
use glommio::timer::Timer;
use glommio::{Latency, Shares, TaskQueueHandle};
use hub::Hub;
use outbox::Frame;
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Bytes read from a socket at once into the shard's scratch buffer.
pub const READ_SCRATCH_BYTES: usize = 64 * 1024;
/// Most bytes gathered from an outbox into one write.
pub const WRITE_CHUNK_BYTES: usize = 64 * 1024;

/// Everything a shard's executor needs to start.
pub struct ShardSetup {
    pub id: ShardId,
    pub apps: Arc<Apps>,
    pub config: ServerConfig,
    pub listener: std::net::TcpListener,
    pub from_api: SharedReceiver<ShardCommand>,
    pub to_api: SharedSender<ApiCommand>,
    pub metrics: Arc<Metrics>,
}

/// A shard's state, shared by its tasks (single-threaded: `Rc` and `RefCell`).
pub struct Shard {
    pub id: ShardId,
    metrics: Arc<Metrics>,
    pub apps: Arc<Apps>,
    pub config: ServerConfig,
    pub hub: RefCell<Hub>,
    to_api: ConnectedSender<ApiCommand>,
    /// HTTP API requests forwarded to the API core and awaiting their answer.
    pending_http: RefCell<Slab<LocalSender<ApiResponse>>>,
    /// Read scratch memory shared by all connections: an idle connection holds no buffer.
    pub read_scratch: RefCell<Box<[u8]>>,
    pub write_scratch: RefCell<Vec<u8>>,
    pub json_buffers: RefCell<simd_json::Buffers>,
    /// The current client message before simd-json parses it in place: client events relay
    /// their `data` byte-for-byte from here.
    pub message_copy: RefCell<Vec<u8>>,
    api_ordered: LocalSender<ApiCommand>,
    /// The last event of every cache channel, for new subscribers.
    last_events: RefCell<LastEvents<Frame>>,
    connections_made: Cell<u64>,
    rng: Cell<u64>,
    started: Instant,
    now: Cell<Tick>,
    pub stopping: Cell<bool>,
    /// Where WebSocket sessions run: throughput work, preempted whenever control work waits.
    pub sessions_queue: TaskQueueHandle,
    /// Frames every connection may receive, encoded once.
    pub ping_frame: Frame,
}

impl Shard {
    /// This shard's figures for `/metrics`.
    pub fn stats(&self) -> &ShardMetrics {
        self.metrics.shard(self.id)
    }

    /// The coarse clock (seconds since start), advanced by the sweeper.
    pub fn now(&self) -> Tick {
        self.now.get()
    }

    fn tick(&self) {
        self.now.set(self.started.elapsed().as_secs() as Tick);
    }

    pub fn next_socket_id(&self) -> SocketId {
        let n = self.connections_made.get() + 1;
        self.connections_made.set(n);
        // xorshift64: unpredictable enough for an id suffix, free of syscalls.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        SocketId::new(self.id, n, (x % 1_000_000_000) as u32)
    }

    /// Forwards an HTTP API request to the API core and waits for its answer.
    pub async fn call_api(&self, http: crate::http::ApiRequest) -> ApiResponse {
        let (tx, rx) = local_channel::new_bounded(1);
        let request = self.pending_http.borrow_mut().insert(tx) as u64;
        let sent = self
            .to_api
            .send(ApiCommand::Http {
                shard: self.id,
                request,
                http,
            })
            .await;
        if sent.is_err() {
            self.pending_http.borrow_mut().try_remove(request as usize);
            return ApiResponse::error(503, "unavailable", "server is shutting down");
        }
        rx.recv()
            .await
            .unwrap_or_else(|| ApiResponse::error(503, "unavailable", "server is shutting down"))
    }

    /// Queues a message for the API core that must not be lost or reordered (presence joins
    /// and leaves): one task forwards them in order, waiting for room in the cross-core queue.
    /// The local queue holds at most one entry per pending membership change.
    pub fn send_api_ordered(&self, cmd: ApiCommand) {
        let _ = self.api_ordered.try_send(cmd);
    }

    /// Reports a subscription change to the API core, which keeps the cluster-wide counts.
    pub fn count_subscription(&self, app: crate::app::AppIdx, channel: &str, delta: i64) {
        self.send_api_ordered(ApiCommand::Subscriptions {
            app,
            channel: channel.into(),
            delta,
        });
    }

    /// The API core's answer to a presence join: subscribe and confirm (then replay a cache
    /// channel's last event), or report the refusal.
    fn presence_reply(
        &self,
        key: hub::ConnKey,
        socket_id: SocketId,
        channel: &str,
        result: Result<String, String>,
    ) {
        let mut hub = self.hub.borrow_mut();
        let Some(conn) = hub.conn_mut(key).filter(|c| c.socket_id == socket_id) else {
            return;
        };
        let Some(pos) = conn
            .presence
            .iter()
            .position(|p| &*p.channel == channel && !p.confirmed)
        else {
            return; // unsubscribed meanwhile: its leave is already on the way
        };
        let app = conn.app;
        let data = match result {
            Ok(data) => {
                conn.presence[pos].confirmed = true;
                conn.authenticated = true;
                data
            }
            Err(reason) => {
                conn.presence.swap_remove(pos);
                let refusal = frames::subscription_error(channel, &reason, 403);
                return hub.send(key, ws::frame::text(refusal.as_bytes()).into());
            }
        };
        if hub.subscribe(key, channel).is_ok() {
            self.count_subscription(app, channel, 1);
        }
        hub.send(
            key,
            ws::frame::text(frames::subscription_succeeded(channel, &data).as_bytes()).into(),
        );
        drop(hub);
        if ChannelName::classify(channel).is_some_and(|c| c.cache) {
            self.replay_cache(key, app, channel);
        }
    }

    /// Hands a message to the API core without waiting; `false` when its queue is full.
    pub fn try_send_api(&self, cmd: ApiCommand) -> bool {
        self.to_api.try_send(cmd).is_ok()
    }

    fn complete_http(&self, request: u64, response: ApiResponse) {
        if let Some(tx) = self.pending_http.borrow_mut().try_remove(request as usize) {
            let _ = tx.try_send(response);
        }
    }

    /// Encodes a broadcast's frame once and queues it for every local subscriber.
    fn deliver(&self, b: &Broadcast) -> usize {
        let mut hub = self.hub.borrow_mut();
        let subscribers = hub.subscribers(b.app, &b.channel);
        if subscribers == 0 && !b.cacheable {
            return 0;
        }
        let frame: Frame = ws::frame::text(&b.payload).into();
        if b.cacheable {
            let ttl = self.apps.get(b.app).config.cache_ttl_s as Tick;
            self.last_events
                .borrow_mut()
                .store(b.app, &b.channel, frame.clone(), self.now() + ttl);
        }
        if subscribers == 0 {
            return 0;
        }
        let queued = hub.publish(b.app, &b.channel, &frame, b.except);
        let stats = self.stats();
        ShardMetrics::add(&stats.messages_out, queued as u64);
        stats.broadcast_latency.record(b.accepted.elapsed());
        queued
    }

    /// Right after a cache channel's `subscription_succeeded`: its last event, or
    /// `pusher:cache_miss`.
    pub fn replay_cache(&self, key: hub::ConnKey, app: crate::app::AppIdx, channel: &str) {
        let cached = self.last_events.borrow().get(app, channel, self.now());
        let frame = match cached {
            Some((frame, _)) => frame,
            None => {
                if self.apps.get(app).webhook_kinds.contains(Kind::CacheMiss) {
                    self.send_api_ordered(ApiCommand::CacheMiss {
                        app,
                        channel: channel.into(),
                    });
                }
                ws::frame::text(frames::cache_miss(channel).as_bytes()).into()
            }
        };
        self.hub.borrow_mut().send(key, frame);
    }

    /// Closes every connection with 4200 and waits (at most the grace period) for them to go.
    async fn shut_down(&self) {
        self.stopping.set(true);
        {
            let mut hub = self.hub.borrow_mut();
            for key in hub.keys() {
                hub.request_close(key, ErrorCode::Reconnect);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(self.config.shutdown_grace_s);
        while !self.hub.borrow().is_empty() && Instant::now() < deadline {
            Timer::new(Duration::from_millis(10)).await;
        }
    }
}

/// Creates the shard's listening socket on `addr` with SO_REUSEPORT, so every shard accepts
/// on the same port and the kernel spreads connections among them.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// The shard's executor body: serves until told to shut down.
pub async fn run(setup: ShardSetup) {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // `connect` waits for the peer to connect its end: connect both ends at once, or the
    // shard and the API core would each wait for the other.
    let (to_api, from_api) =
        futures_lite::future::zip(setup.to_api.connect(), setup.from_api.connect()).await;
    let outbound_limit = setup.config.outbound_buffer_kb * 1024;
    // Two task queues, so that control work (cross-core commands, accepting, HTTP requests)
    // gets its share of the core at every preemption point (server::PREEMPT_TIMER) instead of
    // waiting behind thousands of flushing sessions; broadcasts queued meanwhile coalesce into
    // the sessions' next writes. Both are `NotImportant`: the short preemption timer is what
    // bounds the wait (benches/cross_core_hop.rs), and a `Latency::Matters` queue would only move
    // its I/O to glommio's separate latency ring.
    let executor = glommio::executor();
    let control = executor.create_task_queue(Shares::default(), Latency::NotImportant, "control");
    let sessions_queue =
        executor.create_task_queue(Shares::default(), Latency::NotImportant, "sessions");
    let (api_ordered, ordered_rx) = local_channel::new_unbounded();
    let shard = Rc::new(Shard {
        id: setup.id,
        metrics: setup.metrics,
        hub: RefCell::new(Hub::new(setup.apps.len(), outbound_limit)),
        apps: setup.apps,
        to_api,
        pending_http: RefCell::new(Slab::new()),
        read_scratch: RefCell::new(vec![0u8; READ_SCRATCH_BYTES].into_boxed_slice()),
        write_scratch: RefCell::new(Vec::with_capacity(WRITE_CHUNK_BYTES)),
        json_buffers: RefCell::new(simd_json::Buffers::new(4096)),
        message_copy: RefCell::new(Vec::with_capacity(4096)),
        api_ordered,
        last_events: RefCell::new(LastEvents::default()),
        connections_made: Cell::new(0),
        rng: Cell::new(seed(setup.id)),
        started: Instant::now(),
        now: Cell::new(0),
        stopping: Cell::new(false),
        sessions_queue,
        ping_frame: ws::frame::text(frames::PING.as_bytes()).into(),
        config: setup.config,
    });
    // SAFETY: the fd comes from a listening std socket whose ownership we hand over.
    let listener = unsafe { TcpListener::from_raw_fd(setup.listener.into_raw_fd()) };
    let spawn = |f| glommio::spawn_local_into(f, control).expect("the control queue exists");
    let accept =
        spawn(Box::pin(accept_loop(shard.clone(), listener)) as Pin<Box<dyn Future<Output = ()>>>);
    spawn(Box::pin(sweep_loop(shard.clone()))).detach();
    spawn(Box::pin(forward_ordered(shard.clone(), ordered_rx))).detach();
    spawn(Box::pin(command_loop(shard, from_api, accept))).await;
}

/// Carries out the API core's commands until shutdown.
async fn command_loop(
    shard: Rc<Shard>,
    from_api: ConnectedReceiver<ShardCommand>,
    accept: glommio::Task<()>,
) {
    while let Some(cmd) = from_api.recv().await {
        shard.stats().queue_depth.0.fetch_sub(1, Ordering::Relaxed);
        match cmd {
            ShardCommand::Broadcast(b) => {
                shard.deliver(&b);
            }
            ShardCommand::HttpResponse { request, response } => {
                shard.complete_http(request, response)
            }
            ShardCommand::ToConnection {
                conn,
                socket_id,
                payload,
            } => {
                let mut hub = shard.hub.borrow_mut();
                if hub.conn(conn).is_some_and(|c| c.socket_id == socket_id) {
                    hub.send(conn, ws::frame::text(&payload).into());
                }
            }
            ShardCommand::TerminateUser { app, user_id } => {
                shard
                    .hub
                    .borrow_mut()
                    .close_user(app, &user_id, ErrorCode::Unauthorized)
            }
            ShardCommand::PresenceReply {
                conn,
                socket_id,
                channel,
                result,
            } => shard.presence_reply(conn, socket_id, &channel, result),
            ShardCommand::Shutdown => {
                accept.cancel().await;
                shard.shut_down().await;
                let _ = shard
                    .to_api
                    .send(ApiCommand::ShardStopped { shard: shard.id })
                    .await;
                return;
            }
        }
    }
}

fn seed(id: ShardId) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    (t ^ ((id as u64 + 1) << 32) ^ (std::process::id() as u64)) | 1
}

async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if shard.stopping.get() {
                    continue;
                }
                let _ = stream.set_nodelay(true);
                glommio::spawn_local(connection::serve(shard.clone(), stream)).detach();
            }
            Err(e) => {
                // Out of file descriptors, typically: back off instead of spinning.
                log::warn!("shard {}: accept failed: {e}", shard.id);
                Timer::new(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn forward_ordered(
    shard: Rc<Shard>,
    rx: glommio::channels::local_channel::LocalReceiver<ApiCommand>,
) {
    while let Some(cmd) = rx.recv().await {
        if shard.to_api.send(cmd).await.is_err() {
            return;
        }
    }
}

async fn sweep_loop(shard: Rc<Shard>) {
    let activity = shard.config.activity_timeout as Tick;
    let pong = shard.config.pong_timeout_s as Tick;
    let signin_deadlines: Vec<Option<Tick>> = shard
        .apps
        .iter()
        .map(|a| {
            a.config
                .require_user_authentication
                .then_some(a.config.user_authentication_timeout_s as Tick)
        })
        .collect();
    loop {
        Timer::new(Duration::from_secs(1)).await;
        shard.tick();
        shard.hub.borrow_mut().sweep(
            shard.now(),
            activity,
            pong,
            &shard.ping_frame,
            &signin_deadlines,
        );
        if shard.now().is_multiple_of(60) {
            shard.last_events.borrow_mut().purge(shard.now());
        }
    }
}
