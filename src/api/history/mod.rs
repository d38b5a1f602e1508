//! Channel history (SPEC §4.3): the API core records every publish of an app that keeps
//! history ([`store`]) and serves it page by page with cursors ([`page`]). Retention is bounded
//! per app (`history_max_messages`, `history_ttl_s`) and for the whole server.

pub mod page;
pub mod store;

pub use store::History;

use crate::app::App;

/// Retention limits of one app.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_messages: usize,
    pub ttl_ms: u64,
}

/// The app's retention limits.
pub fn retention(app: &App) -> Retention {
    Retention {
        max_messages: app.config.history_max_messages,
        ttl_ms: app.config.history_ttl_s.saturating_mul(1000),
    }
}
