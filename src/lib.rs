//! ringcast: a Pusher-compatible realtime WebSocket server on io_uring, thread-per-core.
//!
//! Data flows one way: socket → [`shard`] → [`api`] core → shards, over the queues of
//! [`bus`]. Start at [`server::run`].

pub mod api;
pub mod app;
pub mod auth;
pub mod bus;
pub mod cache;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod history;
pub mod http;
pub mod metrics;
pub mod placement;
pub mod protocol;
pub mod server;
pub mod shard;
pub mod webhooks;
pub mod ws;
