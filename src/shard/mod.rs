//! A shard: one glommio executor pinned to a core, accepting on the public port (SO_REUSEPORT)
//! and owning its connections and local channel index. It talks to the API core only through
//! the queues in [`crate::bus`].
//!
//! - [`http_phase`]: a TCP connection's HTTP requests (`/up`, upgrades, API hand-off);
//! - [`session`]: an upgraded WebSocket connection's I/O; [`stream`]: its bytes, plain or TLS
//!   ([`tls_stream`]);
//! - [`rules`]: the client protocol as plain functions over [`state::ShardState`];
//! - [`hub`] and [`conn`]: the connections and the local channel index; [`outbox`]: a
//!   connection's queue of shared frames; [`write_list`] and [`writer`]: broadcasts written
//!   straight to idle sockets; [`joins`]: a connection's joins that wait for the
//!   API core (presence, and every subscription in a cluster);
//! - [`reports`]: what the shard tells the API core, in order, with backpressure on clients;
//! - [`tasks`]: the shard's control tasks (commands from the API core, accepting, the sweeper).

pub mod conn;
pub mod console;
pub mod http_phase;
pub mod hub;
pub mod joins;
pub mod outbox;
pub mod reports;
pub mod rules;
pub mod session;
pub mod state;
pub mod stream;
mod tasks;
pub mod tls_stream;
pub mod write_list;
mod writer;

use crate::app::{AppIdx, AppsView, LiveApps};
use crate::bus::inspect::ConnectionEvent;
use crate::bus::{
    Answer, ApiCommand, Broadcast, Question, RequestId, ShardCommand, ShardId, UnconnectedReceiver,
};
use crate::config::ServerConfig;
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::metrics::{Metrics, ShardMetrics};
use crate::protocol::{ErrorCode, SocketId, frames};
use crate::ws;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::channels::shared_channel::{ConnectedSender, SharedSender};
use glommio::timer::Timer;
use glommio::{Latency, Shares, TaskQueueHandle};
use hub::ConnKey;
use outbox::Frame;
use rules::{Close, Outgoing};
use state::{ShardState, Waiter};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes read from a socket at once into the shard's scratch buffer.
pub const READ_SCRATCH_BYTES: usize = 64 * 1024;
/// Most bytes gathered from an outbox into one write.
pub const WRITE_CHUNK_BYTES: usize = 64 * 1024;

/// Everything a shard's executor needs to start.
pub struct ShardSetup {
    pub id: ShardId,
    /// The apps as reloads leave them.
    pub apps: Arc<LiveApps>,
    pub config: ServerConfig,
    /// The public port, and `server.tls.plain_port` beside it when set.
    pub listeners: Vec<Listener>,
    pub from_api: UnconnectedReceiver,
    pub to_api: SharedSender<ApiCommand>,
    pub metrics: Arc<Metrics>,
    /// Part of a cluster (subscriptions wait for the node's interest in the channel).
    pub clustered: bool,
    /// This shard's share of `server.max_http_connections`.
    pub http_share: usize,
    /// This shard's share of `server.max_connects_per_ip_per_second` (0: no limit).
    pub connects_share: u32,
}

/// A shard's state, shared by its tasks (single-threaded: `Rc` and `RefCell`). The protocol
/// state is one `RefCell` ([`ShardState`]), borrowed once per message or command and never
/// across an await; the scratch buffers are separate because a read holds one while its
/// messages are handled.
pub struct Shard {
    pub id: ShardId,
    metrics: Arc<Metrics>,
    /// This shard's copy of the apps, brought up to date after a reload.
    pub apps: AppsView,
    pub config: ServerConfig,
    pub state: RefCell<ShardState>,
    to_api: ConnectedSender<ApiCommand>,
    /// Read scratch memory shared by all connections: an idle connection holds no buffer.
    pub read_scratch: RefCell<Box<[u8]>>,
    pub write_scratch: RefCell<Vec<u8>>,
    pub json_buffers: RefCell<simd_json::Buffers>,
    /// The current client message before simd-json parses it in place: client events relay
    /// their `data` byte-for-byte from here.
    pub message_copy: RefCell<Vec<u8>>,
    /// Reports for the API core that must not be lost or reordered, forwarded by one task.
    pub reports: reports::Reports,
    connections_made: Cell<u64>,
    rng: Cell<u64>,
    started: Instant,
    pub stopping: Cell<bool>,
    /// Connections in their HTTP phase now, and how many may be.
    pub http_connections: Cell<usize>,
    pub http_share: usize,
    pub connects_share: u32,
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

    /// Advances the coarse clock (seconds since start); the sweeper calls it once a second.
    fn tick(&self) -> crate::clock::Tick {
        let now = self.started.elapsed().as_secs() as crate::clock::Tick;
        self.state.borrow_mut().now = now;
        now
    }

    /// Whether the shard serves `server.max_connections_per_shard` WebSockets already.
    pub fn at_capacity(&self) -> bool {
        let max = self.config.max_connections_per_shard;
        max > 0 && self.state.borrow().hub.len() >= max
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

    /// Queues a JSON event for one connection.
    pub fn send(&self, key: ConnKey, json: &str) {
        self.send_frame(key, ws::frame::text(json.as_bytes()));
    }

    pub fn send_frame(&self, key: ConnKey, frame: Vec<u8>) {
        self.state.borrow_mut().hub.send(key, frame.into());
    }

    /// Asks the API core `question` and waits for its answer (`stopped()` if the API core
    /// has gone).
    async fn ask<T>(
        &self,
        question: Question,
        waiter: impl FnOnce(LocalSender<T>) -> Waiter,
        stopped: impl Fn() -> T,
    ) -> T {
        let (tx, rx) = local_channel::new_bounded(1);
        let from = self.state.borrow_mut().outstanding.ask(waiter(tx));
        if self
            .to_api
            .send(ApiCommand::Ask { from, question })
            .await
            .is_err()
        {
            self.state.borrow_mut().outstanding.answered(from.request);
            return stopped();
        }
        rx.recv().await.unwrap_or_else(stopped)
    }

    /// Forwards an HTTP API request to the API core and waits for its answer.
    pub async fn call_api(&self, http: ApiRequest) -> ApiResponse {
        let stopped = || ApiError::shutting_down().response();
        self.ask(Question::Http(http), Waiter::Http, stopped).await
    }

    /// In a cluster, whether a new connection of `app` (which limits its connections) fits
    /// the cluster-wide limit.
    pub async fn admit_in_cluster(&self, app: AppIdx) -> Result<(), (ErrorCode, String)> {
        let stopped = || Err((ErrorCode::Reconnect, "Server shutting down".to_string()));
        self.ask(Question::Connect { app }, Waiter::Admit, stopped)
            .await
    }

    /// Counts a connection of `app` opening or closing, and tells the console if it watches.
    pub fn connection_event(&self, event: ConnectionEvent) {
        let reported = {
            let mut state = self.state.borrow_mut();
            let (app, console) = (event.app(), &mut state.console);
            match event {
                ConnectionEvent::Opened { .. } => console.opened(app),
                ConnectionEvent::Closed { .. } => console.closed(app),
            }
            console.may_report(app, self.reports.queued())
        };
        if reported {
            self.reports.push(ApiCommand::Connection(event));
        }
    }

    /// A connection [`Shard::admit_in_cluster`] admitted closed.
    pub fn disconnected_in_cluster(&self, app: AppIdx) {
        self.reports.push(ApiCommand::Disconnected { app });
    }

    /// Carries out what the protocol rules decided for connection `key`: its frames, the
    /// reports, a client event to relay. Returns the close the caller's session must make.
    pub fn carry_out(&self, key: ConnKey, effects: rules::Effects) -> Option<Close> {
        if !effects.frames.is_empty() {
            let mut state = self.state.borrow_mut();
            for out in effects.frames {
                let frame: Frame = match out {
                    Outgoing::Json(json) => ws::frame::text(json.as_bytes()).into(),
                    Outgoing::Static(json) => ws::frame::text(json.as_bytes()).into(),
                    Outgoing::Frame(frame) => frame,
                };
                state.hub.send(key, frame);
            }
        }
        for report in effects.reports {
            self.reports.push(report);
        }
        if let Some(event) = effects.relay
            && self
                .to_api
                .try_send(ApiCommand::ClientEvent(event))
                .is_err()
        {
            let busy = ErrorCode::ClientEvent.event("Server busy, client event dropped");
            self.send(key, &busy);
        }
        effects.close
    }

    /// The API core answered a question of this shard.
    fn answered(&self, request: RequestId, answer: Answer) {
        let waiter = self.state.borrow_mut().outstanding.answered(request);
        match (waiter, answer) {
            (Some(Waiter::Http(tx)), Answer::Http(response)) => {
                let _ = tx.try_send(response);
            }
            (Some(Waiter::Admit(tx)), Answer::Admit(verdict)) => {
                let _ = tx.try_send(verdict);
            }
            (Some(Waiter::Join(conn)), Answer::Join(verdict)) => {
                let done = {
                    let mut state = self.state.borrow_mut();
                    rules::join::answered(&mut state, &self.apps.now(), conn, request, verdict)
                };
                if let Some((key, effects)) = done {
                    self.carry_out(key, effects);
                }
            }
            (waiter, answer) => log::warn!(
                "shard {}: answer {answer:?} to request {request:?} matches no waiter ({})",
                self.id,
                if waiter.is_some() {
                    "wrong kind"
                } else {
                    "none"
                }
            ),
        }
    }

    /// Encodes a broadcast's frame once, remembers it for a cache channel, and queues it for
    /// every local subscriber.
    fn fan_out(&self, b: &Broadcast) -> usize {
        let mut state = self.state.borrow_mut();
        let subscribers = state.hub.subscribers(b.app, &b.channel);
        if subscribers == 0 && !b.cacheable {
            return 0;
        }
        let frame: Frame = ws::frame::text(&b.payload).into();
        if b.cacheable {
            let ttl = self.apps.now().get(b.app).config.cache_ttl_s;
            let expires = state.now + ttl as crate::clock::Tick;
            state
                .last_events
                .store(b.app, &b.channel, frame.clone(), expires);
        }
        if subscribers == 0 {
            return 0;
        }
        let queued = state.hub.publish(b.app, &b.channel, &frame, b.except);
        state.console.delivered(b.app, queued);
        let stats = self.stats();
        ShardMetrics::add(&stats.messages_out, queued as u64);
        stats.broadcast_latency.record(b.accepted.elapsed());
        queued
    }

    /// Carries out one command of the API core (all but shutdown).
    fn command(&self, cmd: ShardCommand) {
        match cmd {
            ShardCommand::Broadcast(b) => {
                self.fan_out(&b);
            }
            ShardCommand::Answer { request, answer } => self.answered(request, answer),
            ShardCommand::ToConnection { conn, payload } => {
                let mut state = self.state.borrow_mut();
                if state.hub.conn_at(conn.slot(), conn.socket()).is_some() {
                    state
                        .hub
                        .send(conn.slot(), ws::frame::text(&payload).into());
                }
            }
            ShardCommand::TerminateUser { app, user_id } => {
                self.state
                    .borrow_mut()
                    .hub
                    .close_user(app, &user_id, ErrorCode::Unauthorized)
            }
            ShardCommand::Remember {
                app,
                channel,
                payload,
                ttl_s,
            } => {
                let mut state = self.state.borrow_mut();
                let ttl = crate::clock::Tick::try_from(ttl_s).unwrap_or(crate::clock::Tick::MAX);
                let (now, frame) = (state.now, ws::frame::text(&payload).into());
                let expires = now.saturating_add(ttl);
                state
                    .last_events
                    .store_if_absent(app, &channel, frame, expires, now);
            }
            ShardCommand::Forget { app, channel } => {
                self.state.borrow_mut().last_events.forget(app, &channel)
            }
            ShardCommand::Disown => {
                let mut state = self.state.borrow_mut();
                for key in state.hub.keys() {
                    state.hub.request_close(key, ErrorCode::Reconnect);
                }
            }
            ShardCommand::Watch(apps) => self.state.borrow_mut().console.watch(&apps),
            ShardCommand::Inspect(question) => {
                let state = self.state.borrow();
                state.console.answer(&state.hub, question)
            }
            ShardCommand::Shutdown { .. } => {}
        }
    }

    /// Closes every connection with 4200 and waits (until `by` at most) for them to go.
    async fn shut_down(&self, by: Instant) {
        self.stopping.set(true);
        {
            let mut state = self.state.borrow_mut();
            for key in state.hub.keys() {
                state.hub.request_close(key, ErrorCode::Reconnect);
            }
        }
        while !self.state.borrow().hub.is_empty() && Instant::now() < by {
            Timer::new(Duration::from_millis(10)).await;
        }
    }
}

/// A listening socket of the shard, and the TLS its connections start with, if any.
pub struct Listener {
    pub socket: std::net::TcpListener,
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

/// Creates the shard's listening socket on `addr` with SO_REUSEPORT, so every shard accepts
/// on the same port and the kernel spreads connections among them.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(crate::limits::LISTEN_BACKLOG as i32)?;
    Ok(socket.into())
}

fn seed(id: ShardId) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    (t ^ ((id as u64 + 1) << 32) ^ (std::process::id() as u64)) | 1
}

/// The shard's executor body: serves until told to shut down.
pub async fn run(setup: ShardSetup) {
    // `connect` waits for the peer to connect its end: connect both ends at once, or the
    // shard and the API core would each wait for the other.
    let (to_api, from_api) =
        futures_lite::future::zip(setup.to_api.connect(), setup.from_api.connect()).await;
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
    let (reports, reports_rx) = reports::Reports::new(setup.id, setup.metrics.clone());
    let outbound_limit = setup.config.outbound_buffer_kb * 1024;
    let cache_cap = crate::fair_share::Cap::cache(&setup.config);
    let apps = AppsView::new(setup.apps);
    let mut state = ShardState::new(setup.id, apps.now().len(), outbound_limit, cache_cap);
    state.clustered = setup.clustered;
    let shard = Rc::new(Shard {
        id: setup.id,
        metrics: setup.metrics,
        state: RefCell::new(state),
        apps,
        to_api,
        read_scratch: RefCell::new(vec![0u8; READ_SCRATCH_BYTES].into_boxed_slice()),
        write_scratch: RefCell::new(Vec::with_capacity(WRITE_CHUNK_BYTES)),
        json_buffers: RefCell::new(simd_json::Buffers::new(4096)),
        message_copy: RefCell::new(Vec::with_capacity(4096)),
        reports,
        connections_made: Cell::new(0),
        rng: Cell::new(seed(setup.id)),
        started: Instant::now(),
        stopping: Cell::new(false),
        http_connections: Cell::new(0),
        http_share: setup.http_share,
        connects_share: setup.connects_share,
        sessions_queue,
        ping_frame: ws::frame::text(frames::PING.as_bytes()).into(),
        config: setup.config,
    });
    tasks::start(shard, setup.listeners, from_api, reports_rx, control).await;
}
