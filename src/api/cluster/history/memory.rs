//! History in the API core's memory (a single node): each channel's recent published events,
//! numbered by a serial that grows by one per event inside a stream.
//!
//! The API core owns it: every publish already passes through there, so recording one costs a
//! hash lookup and a reference count (the stored bytes are the very broadcast the shards are
//! sending), and fan-out never waits for it.
//!
//! Retention is bounded three ways: per channel by the app's `history_max_messages` and
//! `history_ttl_s`, and for the whole node by `server.history_max_events` and
//! `server.history_max_mb`, shared fairly ([`crate::fair_share`]): past either, the app holding
//! the most loses its oldest event, so one app's flood never erases another's history. A
//! channel whose events have all gone is forgotten, so its next publish starts a new stream (a
//! new `stream_id`, serial 1).

use super::{Ask, Direction, Edge, HistoryStore, Retained, Retention, Window};
use crate::api::cluster::{StateFuture, ready};
use crate::app::AppIdx;
use crate::bus::Broadcast;
use crate::fair_share::{Cap, Usage};
use ahash::AHashMap;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

/// One retained event.
pub struct Stored {
    pub serial: u64,
    pub published_at_ms: u64,
    /// The `{"event","channel","data"}` text subscribers received.
    pub event: Arc<Broadcast>,
    pub name: Rc<str>,
    /// Bytes of `data` as delivered.
    pub data_len: usize,
}

/// A channel's retained events: serials are contiguous, oldest first.
pub struct Stream {
    pub id: Rc<str>,
    name: Rc<str>,
    next_serial: u64,
    pub events: VecDeque<Stored>,
    pub bytes: usize,
}

impl Stream {
    pub fn oldest(&self) -> Option<&Stored> {
        self.events.front()
    }

    pub fn newest(&self) -> Option<&Stored> {
        self.events.back()
    }
}

pub struct History {
    apps: AHashMap<AppIdx, AHashMap<Box<str>, Stream>>,
    /// Each app's retained events in publish order (entries for events already gone are
    /// skipped).
    order: AHashMap<AppIdx, VecDeque<(Rc<str>, u64)>>,
    /// Retained events and their payload bytes, per app.
    usage: Usage,
    cap: Cap,
    streams_made: u64,
    seed: u64,
}

impl History {
    /// A history of at most `cap` events and payload bytes; `seed` makes stream ids differ
    /// from run to run.
    pub fn new(seed: u64, cap: Cap) -> History {
        History {
            apps: AHashMap::new(),
            order: AHashMap::new(),
            usage: Usage::default(),
            cap,
            streams_made: 0,
            seed,
        }
    }

    /// Appends a published event to its channel's stream; returns its serial.
    pub fn record(
        &mut self,
        event: Arc<Broadcast>,
        name: &str,
        data_len: usize,
        now_ms: u64,
        keep: Retention,
    ) -> u64 {
        let app = event.app;
        let channels = self.apps.entry(app).or_default();
        let stream = match channels.get_mut(&*event.channel) {
            Some(s) => s,
            None => {
                self.streams_made += 1;
                let id = super::stream_id(self.seed, self.streams_made);
                channels.entry(event.channel.clone()).or_insert(Stream {
                    id: id.into(),
                    name: Rc::from(&*event.channel),
                    next_serial: 1,
                    events: VecDeque::new(),
                    bytes: 0,
                })
            }
        };
        let serial = stream.next_serial;
        stream.next_serial += 1;
        // Published times never go backwards inside a stream, so time bounds are serial ranges.
        let published_at_ms = stream
            .newest()
            .map_or(now_ms, |e| e.published_at_ms.max(now_ms));
        let size = event.payload.len();
        stream.bytes += size;
        self.usage.add(app, size);
        let channel = stream.name.clone();
        stream.events.push_back(Stored {
            serial,
            published_at_ms,
            event,
            name: name.into(),
            data_len,
        });
        let order = self.order.entry(app).or_default();
        order.push_back((channel.clone(), serial));
        self.trim(app, &channel, now_ms, keep);
        while let Some(heaviest) = self.usage.over(self.cap) {
            if !self.drop_oldest_of(heaviest) {
                break;
            }
        }
        serial
    }

    /// The channel's stream after dropping what its app no longer retains.
    pub fn stream(
        &mut self,
        app: AppIdx,
        channel: &str,
        now_ms: u64,
        keep: Retention,
    ) -> Option<&Stream> {
        self.trim(app, channel, now_ms, keep);
        self.apps.get(&app)?.get(channel)
    }

    /// Drops a channel's events beyond its app's count and age limits.
    fn trim(&mut self, app: AppIdx, channel: &str, now_ms: u64, keep: Retention) {
        let Some(channels) = self.apps.get_mut(&app) else {
            return;
        };
        let Some(stream) = channels.get_mut(channel) else {
            return;
        };
        while let Some(oldest) = stream.events.front() {
            let expired = oldest.published_at_ms + keep.ttl_ms <= now_ms;
            if stream.events.len() <= keep.max_messages && !expired {
                break;
            }
            let size = oldest.event.payload.len();
            stream.events.pop_front();
            stream.bytes -= size;
            self.usage.remove(app, size);
        }
        if stream.events.is_empty() {
            channels.remove(channel);
        }
    }

    /// Drops `app`'s oldest retained event (skipping entries for events already gone);
    /// `false` if it has none.
    fn drop_oldest_of(&mut self, app: AppIdx) -> bool {
        while let Some((channel, serial)) = self.order.get_mut(&app).and_then(|q| q.pop_front()) {
            let Some(channels) = self.apps.get_mut(&app) else {
                continue;
            };
            let Some(stream) = channels.get_mut(&*channel) else {
                continue;
            };
            if stream.oldest().map(|e| e.serial) != Some(serial) {
                continue;
            }
            if let Some(gone) = stream.events.pop_front() {
                stream.bytes -= gone.event.payload.len();
                self.usage.remove(app, gone.event.payload.len());
            }
            if stream.events.is_empty() {
                channels.remove(&*channel);
            }
            return true;
        }
        false
    }

    /// Drops expired events everywhere (a periodic sweep; reads trim their channel anyway).
    fn purge(&mut self, now_ms: u64, keep: &dyn Fn(AppIdx) -> Retention) {
        let channels: Vec<(AppIdx, Rc<str>)> = self
            .apps
            .iter()
            .flat_map(|(app, chans)| chans.values().map(move |s| (*app, s.name.clone())))
            .collect();
        for (app, channel) in channels {
            self.trim(app, &channel, now_ms, keep(app));
        }
        // Forget order entries for events that are gone, from the front.
        let apps = &self.apps;
        self.order.retain(|app, queue| {
            while let Some((channel, serial)) = queue.front() {
                let alive = apps
                    .get(app)
                    .and_then(|c| c.get(&**channel))
                    .and_then(|s| s.oldest())
                    .is_some_and(|e| e.serial <= *serial);
                if alive {
                    break;
                }
                queue.pop_front();
            }
            !queue.is_empty()
        });
    }
}

/// The history of a single node.
pub struct MemoryHistory(RefCell<History>);

impl MemoryHistory {
    /// At most `cap` events and payload bytes; `seed` makes stream ids differ from run to run.
    pub fn new(seed: u64, cap: Cap) -> MemoryHistory {
        MemoryHistory(RefCell::new(History::new(seed, cap)))
    }
}

impl HistoryStore for MemoryHistory {
    fn record<'a>(
        &'a self,
        keep: Retention,
        event: &'a Arc<Broadcast>,
        name: &'a str,
        data_len: usize,
    ) -> StateFuture<'a, ()> {
        let now = crate::clock::unix_ms();
        self.0
            .borrow_mut()
            .record(event.clone(), name, data_len, now, keep);
        ready(())
    }

    fn window<'a>(
        &'a self,
        app: AppIdx,
        channel: &'a str,
        keep: Retention,
        ask: Ask,
    ) -> StateFuture<'a, Option<Window>> {
        let now = crate::clock::unix_ms();
        let mut history = self.0.borrow_mut();
        let window = history.stream(app, channel, now, keep).and_then(|s| {
            let edge = |e: &Stored| Edge {
                serial: e.serial,
                published_at_ms: e.published_at_ms,
            };
            Some(Window {
                stream_id: s.id.to_string(),
                oldest: edge(s.oldest()?),
                newest: edge(s.newest()?),
                messages: s.events.len(),
                bytes: s.bytes,
                items: walk(s, ask).take(ask.count).map(retained).collect(),
            })
        });
        ready(window)
    }

    fn purge(&self, keep: &dyn Fn(AppIdx) -> Retention) {
        self.0.borrow_mut().purge(crate::clock::unix_ms(), keep);
    }
}

fn retained(e: &Stored) -> Retained {
    Retained {
        serial: e.serial,
        published_at_ms: e.published_at_ms,
        name: (*e.name).into(),
        data_len: e.data_len,
        message: e.event.payload.clone(),
    }
}

/// The retained events a page may show, in the page's order, starting at the cursor.
fn walk(stream: &Stream, ask: Ask) -> Box<dyn Iterator<Item = &Stored> + '_> {
    let admitted = move |e: &&Stored| ask.bounds.admits(e.serial, e.published_at_ms);
    match ask.direction {
        Direction::NewestFirst => {
            let from = ask.from.unwrap_or(u64::MAX);
            let events = stream.events.iter().rev();
            Box::new(events.skip_while(move |e| e.serial > from).filter(admitted))
        }
        Direction::OldestFirst => {
            let from = ask.from.unwrap_or(0);
            let events = stream.events.iter();
            Box::new(events.skip_while(move |e| e.serial < from).filter(admitted))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(h: &mut History, channel: &str, at: u64, keep: Retention) -> u64 {
        let b = Arc::new(Broadcast::event(AppIdx(0), channel, "e", "{}", None));
        h.record(b, "e", 0, at, keep)
    }

    const ROOMY: Cap = Cap {
        entries: usize::MAX,
        bytes: usize::MAX,
    };

    const KEEP: Retention = Retention {
        max_messages: 3,
        ttl_ms: 1000,
    };

    #[test]
    fn the_memory_backend_keeps_the_contract() {
        let h = MemoryHistory::new(3, ROOMY);
        futures_lite::future::block_on(super::super::super::contract::history(&h));
    }

    #[test]
    fn serials_grow_per_channel_and_retention_trims_the_oldest() {
        let mut h = History::new(7, ROOMY);
        for i in 1..=5 {
            assert_eq!(publish(&mut h, "a", i, KEEP), i);
        }
        assert_eq!(publish(&mut h, "b", 5, KEEP), 1);
        let a = h.stream(AppIdx(0), "a", 5, KEEP).unwrap();
        let serials: Vec<u64> = a.events.iter().map(|e| e.serial).collect();
        assert_eq!(serials, [3, 4, 5]);
        let id = a.id.clone();
        // Everything expires; the next publish starts a new stream.
        assert!(h.stream(AppIdx(0), "a", 2000, KEEP).is_none());
        assert_eq!(publish(&mut h, "a", 2000, KEEP), 1);
        assert_ne!(h.stream(AppIdx(0), "a", 2000, KEEP).unwrap().id, id);
        h.purge(10_000, &|_| KEEP);
        assert!(h.order.is_empty());
        assert_eq!(h.usage.bytes(), 0);
    }

    #[test]
    fn over_the_cap_the_app_holding_the_most_loses_its_oldest() {
        let cap = Cap {
            entries: 10,
            bytes: usize::MAX,
        };
        let mut h = History::new(1, cap);
        let roomy = Retention {
            max_messages: 100,
            ttl_ms: 1000,
        };
        let record = |h: &mut History, app: u16, channel: &str| {
            let b = Arc::new(Broadcast::event(AppIdx(app), channel, "e", "{}", None));
            h.record(b, "e", 0, 1, roomy)
        };
        for _ in 0..3 {
            record(&mut h, 0, "quiet");
        }
        for _ in 0..50 {
            record(&mut h, 1, "flood");
        }
        let quiet = h.stream(AppIdx(0), "quiet", 1, roomy).unwrap();
        assert_eq!(quiet.events.len(), 3, "the quiet app kept its history");
        let flood = h.stream(AppIdx(1), "flood", 1, roomy).unwrap();
        assert_eq!(flood.events.len(), 7);
        assert_eq!(flood.oldest().map(|e| e.serial), Some(44));
    }
}
