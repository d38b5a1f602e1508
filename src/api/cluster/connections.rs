//! Open WebSocket connections per app over the whole cluster, for `max_connections` (4004).
//!
//! A single node needs nothing here: each app's own counter (`App::try_acquire_connection`)
//! sees every connection. In a cluster each node also asks this shared count, and only for
//! apps that set a limit, so unlimited apps cost nothing per connection.

use super::{StateFuture, ready};
use crate::app::AppIdx;

pub trait Connections {
    /// Counts a new connection of `app` unless the cluster already has `max`; `false` means
    /// refuse it (4004).
    fn acquire(&self, app: AppIdx, max: usize) -> StateFuture<'_, bool>;
    /// A counted connection closed.
    fn release(&self, app: AppIdx) -> StateFuture<'_, ()>;
    /// Registers this node's share again (after the backend lost it): the connections it
    /// counted and has not released.
    fn restore(&self) -> StateFuture<'_, ()>;
}

/// A single node: the apps' own counters are the whole truth.
pub struct Uncounted;

impl Connections for Uncounted {
    fn acquire(&self, _app: AppIdx, _max: usize) -> StateFuture<'_, bool> {
        ready(true)
    }

    fn release(&self, _app: AppIdx) -> StateFuture<'_, ()> {
        ready(())
    }

    fn restore(&self) -> StateFuture<'_, ()> {
        ready(())
    }
}
