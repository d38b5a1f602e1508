//! Webhooks (SPEC §5): the API core decides *what* happened (it sees the whole cluster's
//! occupancy and membership), this module filters it per endpoint, holds `channel_vacated` and
//! `member_removed` for a moment in case the channel or user comes right back, and hands the
//! rest to each endpoint's sender thread ([`sender`]) over a bounded queue. A full queue drops
//! the event (counted), so nothing on the message path ever waits for a webhook.

pub mod sender;

use crate::app::{AppIdx, Apps};
use crate::bus::ClientEventReport;
use crate::protocol::SocketId;
pub use crate::webhook_kind::{Kind, Kinds};
use ahash::AHashMap;
use crossbeam_channel::{Sender, TrySendError};
use glommio::timer::Timer;
use sender::{Counters, Target};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

/// Events queued for one endpoint before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 10_000;

/// Something a webhook reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ChannelOccupied {
        channel: Box<str>,
    },
    ChannelVacated {
        channel: Box<str>,
    },
    MemberAdded {
        channel: Box<str>,
        user_id: Box<str>,
    },
    MemberRemoved {
        channel: Box<str>,
        user_id: Box<str>,
    },
    ClientEvent {
        channel: Box<str>,
        event: Box<str>,
        data: Box<str>,
        socket_id: Box<str>,
        user_id: Option<Box<str>>,
    },
    CacheMiss {
        channel: Box<str>,
    },
    SubscriptionCount {
        channel: Box<str>,
        count: u64,
    },
}

impl Event {
    pub fn kind(&self) -> Kind {
        match self {
            Event::ChannelOccupied { .. } => Kind::ChannelOccupied,
            Event::ChannelVacated { .. } => Kind::ChannelVacated,
            Event::MemberAdded { .. } => Kind::MemberAdded,
            Event::MemberRemoved { .. } => Kind::MemberRemoved,
            Event::ClientEvent { .. } => Kind::ClientEvent,
            Event::CacheMiss { .. } => Kind::CacheMiss,
            Event::SubscriptionCount { .. } => Kind::SubscriptionCount,
        }
    }

    pub fn channel(&self) -> &str {
        match self {
            Event::ChannelOccupied { channel }
            | Event::ChannelVacated { channel }
            | Event::MemberAdded { channel, .. }
            | Event::MemberRemoved { channel, .. }
            | Event::ClientEvent { channel, .. }
            | Event::CacheMiss { channel }
            | Event::SubscriptionCount { channel, .. } => channel,
        }
    }

    /// The `client_event` of a relayed client event, from what its shard reported.
    pub fn client_event(channel: &str, report: &ClientEventReport, sender: SocketId) -> Event {
        // `data` as the client sent it: a JSON string's contents, or the JSON text of anything
        // else.
        let raw = &*report.data;
        let data = serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string());
        Event::ClientEvent {
            channel: channel.into(),
            event: report.event.clone(),
            data: data.into(),
            socket_id: sender.to_string().into(),
            user_id: report.user_id.clone(),
        }
    }

    /// The event's JSON object in a webhook body.
    pub fn to_json(&self) -> String {
        let name = self.kind().name();
        let channel = self.channel();
        let value = match self {
            Event::MemberAdded { user_id, .. } | Event::MemberRemoved { user_id, .. } => {
                json!({ "name": name, "channel": channel, "user_id": &**user_id })
            }
            Event::ClientEvent {
                event,
                data,
                socket_id,
                user_id,
                ..
            } => {
                let mut v = json!({ "name": name, "channel": channel, "event": &**event,
                                    "data": &**data, "socket_id": &**socket_id });
                if let Some(u) = user_id {
                    v["user_id"] = json!(&**u);
                }
                v
            }
            Event::SubscriptionCount { count, .. } => {
                json!({ "name": name, "channel": channel, "subscription_count": count })
            }
            _ => json!({ "name": name, "channel": channel }),
        };
        value.to_string()
    }
}

/// One configured endpoint, as the API core sees it.
struct Endpoint {
    kinds: Kinds,
    channel_prefix: Box<str>,
    queue: RefCell<Option<Sender<String>>>,
}

/// What a held event waits on: the channel coming back, or the user coming back to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Hold {
    Vacated(AppIdx, Box<str>),
    Removed(AppIdx, Box<str>, Box<str>),
}

/// The API core's webhook dispatcher.
pub struct Webhooks {
    apps: Arc<Apps>,
    /// Endpoints by app index.
    endpoints: Vec<Vec<Endpoint>>,
    hold_for: Duration,
    /// Held events by what would cancel them, with the generation of their timer.
    held: RefCell<AHashMap<Hold, (u64, Event)>>,
    generation: Cell<u64>,
    threads: RefCell<Vec<JoinHandle<()>>>,
    pub counters: Arc<Counters>,
}

impl Webhooks {
    /// Starts one sender thread per configured endpoint.
    pub fn start(apps: &Arc<Apps>, hold_for: Duration) -> std::io::Result<Rc<Webhooks>> {
        let counters = Arc::new(Counters::default());
        let mut endpoints = Vec::new();
        let mut threads = Vec::new();
        for app in apps.iter() {
            let mut mine = Vec::new();
            for hook in &app.config.webhooks {
                let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
                let target = Target {
                    url: hook.url.clone(),
                    app_key: app.key().to_string(),
                    app_secret: app.secret().to_string(),
                    headers: hook.headers.clone().into_iter().collect(),
                };
                threads.push(sender::spawn(target, rx, counters.clone())?);
                let kinds = Kinds::from_names(hook.event_types.iter().map(String::as_str));
                mine.push(Endpoint {
                    kinds,
                    channel_prefix: hook.channel_prefix.as_str().into(),
                    queue: RefCell::new(Some(tx)),
                });
            }
            endpoints.push(mine);
        }
        Ok(Rc::new(Webhooks {
            apps: apps.clone(),
            endpoints,
            hold_for,
            held: RefCell::new(AHashMap::new()),
            generation: Cell::new(0),
            threads: RefCell::new(threads),
            counters,
        }))
    }

    /// Whether any endpoint of `app` wants `kind` (cheap; check before building an event).
    pub fn wants(&self, app: AppIdx, kind: Kind) -> bool {
        self.apps.get(app).webhook_kinds.contains(kind)
    }

    /// Queues `event` for every endpoint of `app` that wants it.
    pub fn emit(&self, app: AppIdx, event: &Event) {
        let Some(endpoints) = self.endpoints.get(app.0 as usize) else {
            return;
        };
        let kind = event.kind();
        let mut json = None;
        for e in endpoints {
            if !e.kinds.contains(kind) || !event.channel().starts_with(&*e.channel_prefix) {
                continue;
            }
            let json = json.get_or_insert_with(|| event.to_json()).clone();
            if let Some(queue) = &*e.queue.borrow()
                && let Err(TrySendError::Full(_)) = queue.try_send(json)
            {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A channel got its first subscriber anywhere: `channel_occupied`, unless it is coming
    /// back within the hold, which cancels the pending `channel_vacated` instead.
    pub fn occupied(&self, app: AppIdx, channel: &str) {
        if !self.involved(app, Kind::ChannelOccupied) {
            return;
        }
        if !self.cancel(&Hold::Vacated(app, channel.into()))
            && self.wants(app, Kind::ChannelOccupied)
        {
            self.emit(
                app,
                &Event::ChannelOccupied {
                    channel: channel.into(),
                },
            );
        }
    }

    /// A channel lost its last subscriber anywhere: `channel_vacated` after the hold.
    pub fn vacated(self: &Rc<Self>, app: AppIdx, channel: &str) {
        self.hold(
            app,
            Hold::Vacated(app, channel.into()),
            Event::ChannelVacated {
                channel: channel.into(),
            },
        );
    }

    /// A user's first connection joined a presence channel.
    pub fn member_added(&self, app: AppIdx, channel: &str, user_id: &str) {
        if !self.involved(app, Kind::MemberAdded) {
            return;
        }
        if !self.cancel(&Hold::Removed(app, channel.into(), user_id.into()))
            && self.wants(app, Kind::MemberAdded)
        {
            let event = Event::MemberAdded {
                channel: channel.into(),
                user_id: user_id.into(),
            };
            self.emit(app, &event);
        }
    }

    /// A user's last connection left a presence channel: `member_removed` after the hold.
    pub fn member_removed(self: &Rc<Self>, app: AppIdx, channel: &str, user_id: &str) {
        let event = Event::MemberRemoved {
            channel: channel.into(),
            user_id: user_id.into(),
        };
        self.hold(
            app,
            Hold::Removed(app, channel.into(), user_id.into()),
            event,
        );
    }

    /// Whether `kind` or the held event it pairs with matters to some endpoint of `app`
    /// (so apps without webhooks cost nothing here).
    fn involved(&self, app: AppIdx, kind: Kind) -> bool {
        self.wants(app, kind) || self.wants(app, kind.counterpart())
    }

    fn hold(self: &Rc<Self>, app: AppIdx, key: Hold, event: Event) {
        if !self.involved(app, event.kind()) {
            return;
        }
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        self.held
            .borrow_mut()
            .insert(key.clone(), (generation, event));
        let me = self.clone();
        glommio::spawn_local(async move {
            Timer::new(me.hold_for).await;
            let due = {
                let mut held = me.held.borrow_mut();
                match held.get(&key) {
                    Some((g, _)) if *g == generation => held.remove(&key),
                    _ => None,
                }
            };
            if let Some((_, event)) = due {
                me.emit(app, &event);
            }
        })
        .detach();
    }

    /// Cancels a held event; `true` if there was one.
    fn cancel(&self, key: &Hold) -> bool {
        self.held.borrow_mut().remove(key).is_some()
    }

    /// Shutting down: sends what is held now, lets every sender flush its batch, and waits
    /// for them (at most `grace`).
    pub async fn close(&self, grace: Duration) {
        let held: Vec<(Hold, (u64, Event))> = self.held.borrow_mut().drain().collect();
        for (key, (_, event)) in held {
            let app = match key {
                Hold::Vacated(app, _) | Hold::Removed(app, ..) => app,
            };
            self.emit(app, &event);
        }
        for e in self.endpoints.iter().flatten() {
            e.queue.borrow_mut().take();
        }
        let deadline = std::time::Instant::now() + grace;
        let threads: Vec<JoinHandle<()>> = self.threads.borrow_mut().drain(..).collect();
        for t in threads {
            while !t.is_finished() && std::time::Instant::now() < deadline {
                Timer::new(Duration::from_millis(10)).await;
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_the_spec_says() {
        let e = Event::ClientEvent {
            channel: "private-a".into(),
            event: "client-x".into(),
            data: "{\"k\":1}".into(),
            socket_id: "1.2".into(),
            user_id: None,
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            v,
            json!({"name":"client_event","channel":"private-a","event":"client-x",
                   "data":"{\"k\":1}","socket_id":"1.2"})
        );
        let c = Event::SubscriptionCount {
            channel: "a".into(),
            count: 3,
        };
        assert_eq!(
            c.to_json(),
            r#"{"channel":"a","name":"subscription_count","subscription_count":3}"#
        );
    }
}
