//! Webhooks (SPEC §5): the API core decides *what* happened (it sees the whole cluster's
//! occupancy and membership), this module filters it per endpoint, holds `channel_vacated` and
//! `member_removed` for a moment in case the channel or user comes right back, and hands the
//! rest to each endpoint's sender thread ([`sender`]) over a bounded queue. A full queue drops
//! the event (counted), so nothing on the message path ever waits for a webhook.
//!
//! A hold is placed in the cluster state ([`Holds`]), so a channel or member coming back on
//! another node cancels it there; the node that decided the event keeps its timer and sends
//! it when the hold is over and still in place. Each event is thus sent once per cluster.

pub mod sender;

use crate::api::cluster::holds::{HoldOf, Holds, Ticket};
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

impl Hold {
    fn of(&self) -> HoldOf<'_> {
        match self {
            Hold::Vacated(app, channel) => HoldOf::Vacated { app: *app, channel },
            Hold::Removed(app, channel, user_id) => HoldOf::Removed {
                app: *app,
                channel,
                user_id,
            },
        }
    }
}

/// The API core's webhook dispatcher.
pub struct Webhooks {
    apps: Arc<Apps>,
    /// Endpoints by app index.
    endpoints: Vec<Vec<Endpoint>>,
    hold_for: Duration,
    holds: Rc<dyn Holds>,
    /// The events this node holds, by what would cancel them, with the hold's token.
    held: RefCell<AHashMap<Hold, (Box<str>, Event)>>,
    /// Tokens are `{seed}-{n}`: unique over the cluster's nodes and runs.
    seed: u64,
    tickets: Cell<u64>,
    threads: RefCell<Vec<JoinHandle<()>>>,
    pub counters: Arc<Counters>,
}

impl Webhooks {
    /// Starts one sender thread per configured endpoint; holds are released in `holds`, and
    /// `seed` makes their tokens differ from every other node's.
    pub fn start(
        apps: &Arc<Apps>,
        hold_for: Duration,
        holds: Rc<dyn Holds>,
        seed: u64,
    ) -> std::io::Result<Rc<Webhooks>> {
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
            holds,
            held: RefCell::new(AHashMap::new()),
            seed,
            tickets: Cell::new(0),
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

    /// The hold to place if a step decides a `channel_vacated` / `member_removed` (`kind`)
    /// of `app`: none when no endpoint of the app cares.
    pub fn ticket(&self, app: AppIdx, kind: Kind) -> Option<Ticket> {
        if !self.involved(app, kind) {
            return None;
        }
        let n = self.tickets.get() + 1;
        self.tickets.set(n);
        Some(Ticket {
            token: format!("{:x}-{n}", self.seed).into(),
            // The shared hold outlives the timer, in case this node is slow to release it.
            ttl: self
                .hold_for
                .saturating_mul(2)
                .saturating_add(Duration::from_secs(5)),
        })
    }

    /// A channel got its first subscriber anywhere: `channel_occupied`, unless it came back
    /// within the hold (`returned`: its `channel_vacated` was cancelled instead).
    pub fn occupied(&self, app: AppIdx, channel: &str, returned: bool) {
        if !returned && self.wants(app, Kind::ChannelOccupied) {
            let event = Event::ChannelOccupied {
                channel: channel.into(),
            };
            self.emit(app, &event);
        }
    }

    /// A channel lost its last subscriber anywhere, with `ticket` placed as its hold:
    /// `channel_vacated` when the hold is over, unless cancelled meanwhile.
    pub fn vacated(self: &Rc<Self>, app: AppIdx, channel: &str, ticket: Option<Ticket>) {
        let event = Event::ChannelVacated {
            channel: channel.into(),
        };
        self.hold(Hold::Vacated(app, channel.into()), ticket, event);
    }

    /// A user's first connection joined a presence channel: `member_added`, unless it came
    /// back within the hold.
    pub fn member_added(&self, app: AppIdx, channel: &str, user_id: &str, returned: bool) {
        if !returned && self.wants(app, Kind::MemberAdded) {
            let event = Event::MemberAdded {
                channel: channel.into(),
                user_id: user_id.into(),
            };
            self.emit(app, &event);
        }
    }

    /// A user's last connection left a presence channel, with `ticket` placed as its hold:
    /// `member_removed` when the hold is over, unless cancelled meanwhile.
    pub fn member_removed(
        self: &Rc<Self>,
        app: AppIdx,
        channel: &str,
        user_id: &str,
        ticket: Option<Ticket>,
    ) {
        let event = Event::MemberRemoved {
            channel: channel.into(),
            user_id: user_id.into(),
        };
        let key = Hold::Removed(app, channel.into(), user_id.into());
        self.hold(key, ticket, event);
    }

    /// Whether `kind` or the held event it pairs with matters to some endpoint of `app`
    /// (so apps without webhooks cost nothing here).
    fn involved(&self, app: AppIdx, kind: Kind) -> bool {
        self.wants(app, kind) || self.wants(app, kind.counterpart())
    }

    /// Keeps `event` until its hold is over, then sends it if the hold is still in place.
    fn hold(self: &Rc<Self>, key: Hold, ticket: Option<Ticket>, event: Event) {
        let Some(ticket) = ticket else { return };
        let token = ticket.token;
        self.held
            .borrow_mut()
            .insert(key.clone(), (token.clone(), event));
        let me = self.clone();
        glommio::spawn_local(async move {
            Timer::new(me.hold_for).await;
            me.release(key, &token).await;
        })
        .detach();
    }

    /// A hold of this node is over: its event goes out if the hold is still in place.
    async fn release(&self, key: Hold, token: &str) {
        let event = {
            let mut held = self.held.borrow_mut();
            match held.get(&key) {
                Some((t, _)) if **t == *token => held.remove(&key).map(|(_, e)| e),
                // Replaced by a newer hold of this node, or sent at shutdown.
                _ => None,
            }
        };
        let Some(event) = event else { return };
        let due = match self.holds.release(key.of(), token).await {
            Ok(due) => due,
            // Whether it was cancelled is unknown: sent rather than lost.
            Err(e) => {
                log::warn!("webhooks: releasing the hold of {}: {e}", event.channel());
                true
            }
        };
        if due {
            self.emit(key.of().app(), &event);
        }
    }

    /// Shutting down: sends what is held now, lets every sender flush its batch, and waits
    /// for them (at most `grace`).
    pub async fn close(&self, grace: Duration) {
        let held: Vec<(Hold, Box<str>)> = self
            .held
            .borrow()
            .iter()
            .map(|(key, (token, _))| (key.clone(), token.clone()))
            .collect();
        for (key, token) in held {
            self.release(key, &token).await;
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
