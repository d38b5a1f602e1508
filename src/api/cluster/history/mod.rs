//! Channel history as the cluster keeps it: every publish of an app that keeps history is
//! recorded in its channel's stream, numbered by a serial that grows by one per event, and
//! read back a window at a time for a history page (`api::history::page`).
//!
//! A single node keeps its streams in the API core's memory ([`MemoryHistory`]); a cluster keeps
//! one stream per channel in Redis (`redis::RedisHistory`), so serials are assigned once and
//! every node serves the same pages.

mod memory;

pub use memory::{History, MemoryHistory};

use super::StateFuture;
use crate::app::{App, AppIdx};
use crate::bus::Broadcast;
use serde::Serialize;
use std::sync::Arc;

/// Retention limits of one app.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_messages: usize,
    pub ttl_ms: u64,
}

impl Retention {
    /// The app's limits (`history_max_messages`, `history_ttl_s`).
    pub fn of(app: &App) -> Retention {
        Retention {
            max_messages: app.config.history_max_messages,
            ttl_ms: app.config.history_ttl_s.saturating_mul(1000),
        }
    }
}

/// Which way a page walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    NewestFirst,
    OldestFirst,
}

/// Inclusive bounds a page asks for.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Bounds {
    pub start_serial: Option<u64>,
    pub end_serial: Option<u64>,
    pub start_time_ms: Option<u64>,
    pub end_time_ms: Option<u64>,
}

impl Bounds {
    pub fn admits(&self, serial: u64, published_at_ms: u64) -> bool {
        self.start_serial.is_none_or(|s| serial >= s)
            && self.end_serial.is_none_or(|s| serial <= s)
            && self.start_time_ms.is_none_or(|t| published_at_ms >= t)
            && self.end_time_ms.is_none_or(|t| published_at_ms <= t)
    }
}

/// What a page needs from a stream: up to `count` admitted events in `direction`, starting
/// at serial `from` (a cursor) when given.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub direction: Direction,
    pub from: Option<u64>,
    pub bounds: Bounds,
    pub count: usize,
}

/// One retained event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    pub serial: u64,
    pub published_at_ms: u64,
    pub name: Box<str>,
    /// Bytes of `data` as delivered.
    pub data_len: usize,
    /// The `{"event","channel","data"}` text subscribers received.
    pub message: Box<[u8]>,
}

/// A stream's oldest or newest retained event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub serial: u64,
    pub published_at_ms: u64,
}

/// A window onto a channel's stream: what it retains, and the events a page asked for, in the
/// page's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub stream_id: String,
    pub oldest: Edge,
    pub newest: Edge,
    pub messages: usize,
    pub bytes: usize,
    pub items: Vec<Retained>,
}

/// Where channel history is kept.
pub trait HistoryStore {
    /// Appends a published event to its channel's stream (a new stream if the channel has
    /// none), then drops what the app no longer retains.
    fn record<'a>(
        &'a self,
        keep: Retention,
        event: &'a Arc<Broadcast>,
        name: &'a str,
        data_len: usize,
    ) -> StateFuture<'a, ()>;
    /// The events `ask` wants of the channel's stream; `None` when the channel has no
    /// retained events.
    fn window<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        keep: Retention,
        ask: Ask,
    ) -> StateFuture<'a, Option<Window>>;
    /// Drops expired events everywhere (a periodic sweep; a backend whose entries expire by
    /// themselves has nothing to do).
    fn purge(&self, _keep: &dyn Fn(AppIdx) -> Retention) {}
}

/// A stream id: opaque, URL-safe, different for every stream of this process and (through
/// the seed) of every run and every node.
pub fn stream_id(seed: u64, n: u64) -> String {
    let mut x = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser: spreads consecutive counters over the whole range.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("{x:016x}")
}
