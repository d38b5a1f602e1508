//! ringcast: a Pusher-compatible realtime WebSocket server on io_uring, thread-per-core.
//!
//! Data flows one way: socket → [`shard`] → [`api`] core → shards, over the queues of
//! [`bus`]. Start at [`server::run`]. The folders say which executor owns what: `shard/` runs
//! on every shard, `api/` on the API executor; the rest are shared, executor-free pieces
//! (protocol rules and codecs, configuration, apps, metrics).

pub mod api;
pub mod app;
pub mod auth;
pub mod bus;
pub mod clock;
pub mod config;
pub mod fair_share;
pub mod http;
pub mod last_events;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod placement;
pub mod protocol;
pub mod rate;
pub mod reload;
pub mod server;
pub mod shard;
pub mod tls;
pub mod webhook_kind;
pub mod ws;
