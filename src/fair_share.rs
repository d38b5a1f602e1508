//! Server-wide caps shared fairly by the apps. A store that must stay under a cap (entries,
//! bytes) counts what each app holds here; when it is over, the app holding the most gives up
//! its own oldest entry. So an app that keeps within an equal share (the cap divided by the
//! apps using it) is never evicted by another: whoever is over the cap, someone is over their
//! share, and it is them.

use crate::app::AppIdx;
use crate::config::ServerConfig;
use ahash::AHashMap;

/// A cap on entries and on bytes (either may be `usize::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub entries: usize,
    pub bytes: usize,
}

impl Cap {
    /// The node's cap on retained history (without a cluster).
    pub fn history(server: &ServerConfig) -> Cap {
        Cap {
            entries: server.history_max_events,
            bytes: server.history_max_mb.saturating_mul(1 << 20),
        }
    }

    /// Each owner's cap on cache channels' last events.
    pub fn cache(server: &ServerConfig) -> Cap {
        Cap {
            entries: server.cache_max_channels,
            bytes: server.cache_max_mb.saturating_mul(1 << 20),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Held {
    entries: usize,
    bytes: usize,
}

/// What each app holds of one store.
#[derive(Debug, Default)]
pub struct Usage {
    per_app: AHashMap<AppIdx, Held>,
    total: Held,
}

impl Usage {
    pub fn add(&mut self, app: AppIdx, bytes: usize) {
        let held = self.per_app.entry(app).or_default();
        held.entries += 1;
        held.bytes += bytes;
        self.total.entries += 1;
        self.total.bytes += bytes;
    }

    pub fn remove(&mut self, app: AppIdx, bytes: usize) {
        if let Some(held) = self.per_app.get_mut(&app) {
            held.entries = held.entries.saturating_sub(1);
            held.bytes = held.bytes.saturating_sub(bytes);
            if held.entries == 0 {
                self.per_app.remove(&app);
            }
        }
        self.total.entries = self.total.entries.saturating_sub(1);
        self.total.bytes = self.total.bytes.saturating_sub(bytes);
    }

    pub fn entries(&self) -> usize {
        self.total.entries
    }

    pub fn bytes(&self) -> usize {
        self.total.bytes
    }

    /// Entries `app` holds.
    #[cfg(test)]
    fn entries_of(&self, app: AppIdx) -> usize {
        self.per_app.get(&app).map_or(0, |h| h.entries)
    }

    /// The app that must give up an entry for the store to come back under `cap`: the one
    /// holding the most of what is over (entries, else bytes). `None` when within the cap.
    pub fn over(&self, cap: Cap) -> Option<AppIdx> {
        let by: fn(&Held) -> usize = if self.total.entries > cap.entries {
            |h| h.entries
        } else if self.total.bytes > cap.bytes {
            |h| h.bytes
        } else {
            return None;
        };
        self.per_app
            .iter()
            .max_by_key(|(app, held)| (by(held), std::cmp::Reverse(app.0)))
            .map(|(app, _)| *app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_over_its_share_gives_way() {
        let cap = Cap {
            entries: 10,
            bytes: 1000,
        };
        let mut u = Usage::default();
        for _ in 0..3 {
            u.add(AppIdx(0), 10);
        }
        assert_eq!(u.over(cap), None);
        for _ in 0..8 {
            u.add(AppIdx(1), 10);
        }
        // 11 entries: app 1 holds 8 of them.
        assert_eq!(u.over(cap), Some(AppIdx(1)));
        u.remove(AppIdx(1), 10);
        assert_eq!(u.over(cap), None);
        // Over in bytes: the app with the most bytes, though it has fewer entries.
        u.remove(AppIdx(0), 10);
        u.add(AppIdx(0), 990);
        assert_eq!(u.over(cap), Some(AppIdx(0)));
        assert_eq!(u.entries_of(AppIdx(1)), 7);
    }
}
