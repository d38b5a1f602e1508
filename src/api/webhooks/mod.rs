//! Webhooks (docs/webhooks.md): the API core decides *what* happened (it sees the whole cluster's
//! occupancy and membership), this module filters it per endpoint, holds `channel_vacated` and
//! `member_removed` for a moment in case the channel or user comes right back, and hands the
//! rest to each endpoint's sender thread ([`sender`]) over a bounded [`queue`], where each
//! event type has its own share. A full share drops the event (counted), so nothing on the
//! message path ever waits for a webhook, and a flood of one type leaves the others alone.
//!
//! A hold is placed in the cluster state ([`Holds`]), so a channel or member coming back on
//! another node cancels it there; the node that decided the event keeps its timer and sends
//! it when the hold is over and still in place. Each event is thus sent once per cluster.

mod endpoints;
mod event;
mod held;
pub mod queue;
pub mod sender;

use crate::api::cluster::holds::{Holds, Ticket};
use crate::app::{AppIdx, Apps, LiveApps};
pub use crate::webhook_kind::{Kind, Kinds};
use endpoints::Endpoints;
pub use event::Event;
use glommio::timer::Timer;
use held::{Due, Held, Hold};
use queue::Queued;
use sender::Counters;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Holds released at once (concurrently: in a cluster each is a round trip to Redis).
const RELEASE_AT_ONCE: usize = 256;

/// The API core's webhook dispatcher.
pub struct Webhooks {
    /// Every app's endpoints, following reloads ([`Webhooks::follow`]).
    endpoints: RefCell<Endpoints>,
    hold_for: Duration,
    holds: Rc<dyn Holds>,
    held: RefCell<Held>,
    /// Whether the task that releases holds as they fall due is running.
    releasing: Cell<bool>,
    /// Tokens are `{seed}-{n}`: unique over the cluster's nodes and runs.
    seed: u64,
    tickets: Cell<u64>,
    pub counters: Arc<Counters>,
}

impl Webhooks {
    /// Starts one sender thread per configured endpoint; holds are released in `holds`, and
    /// `seed` makes their tokens differ from every other node's.
    pub fn start(
        live: &Arc<LiveApps>,
        hold_for: Duration,
        holds: Rc<dyn Holds>,
        seed: u64,
    ) -> std::io::Result<Rc<Webhooks>> {
        let counters = Arc::new(Counters::default());
        let endpoints = Endpoints::start(live.clone(), counters.clone())?;
        Ok(Rc::new(Webhooks {
            endpoints: RefCell::new(endpoints),
            hold_for,
            holds,
            held: RefCell::new(Held::default()),
            releasing: Cell::new(false),
            seed,
            tickets: Cell::new(0),
            counters,
        }))
    }

    /// Whether any endpoint of `app` wants `kind` (cheap; check before building an event).
    pub fn wants(&self, app: AppIdx, kind: Kind) -> bool {
        self.endpoints.borrow().wants(app, kind)
    }

    /// Events queued for `app`'s endpoints and not yet taken by their senders.
    pub fn queued(&self, app: AppIdx) -> usize {
        let endpoints = self.endpoints.borrow();
        let queues = endpoints.of(app).iter().map(|e| e.queue.borrow());
        queues.map(|q| q.as_ref().map_or(0, |q| q.len())).sum()
    }

    /// Takes the endpoints of reloaded `apps` (as of their `LiveApps` epoch): unchanged ones
    /// keep their sender, new ones start one, removed ones drop what they hold.
    pub fn follow(&self, apps: &Arc<Apps>, epoch: u64) {
        self.endpoints.borrow_mut().follow(apps, epoch);
    }

    /// Queues `event` for every endpoint of `app` that wants it.
    pub fn emit(&self, app: AppIdx, event: &Event) {
        let endpoints = self.endpoints.borrow();
        let kind = event.kind();
        let mut json = None;
        for e in endpoints.of(app) {
            if !e.kinds.contains(kind) || !event.channel().starts_with(&*e.channel_prefix) {
                continue;
            }
            let json = json.get_or_insert_with(|| event.to_json()).clone();
            let queued = Queued {
                kind,
                channel: event.channel().into(),
                json,
            };
            if let Some(queue) = &*e.queue.borrow() {
                queue.push(queued);
            }
        }
    }

    /// The hold to place if a step decides a `channel_vacated` / `member_removed` (`kind`)
    /// of `app`: none when no endpoint of the app cares, or when the app holds all it may
    /// (the event is then sent at once, and a return is reported as such).
    pub fn ticket(&self, app: AppIdx, kind: Kind) -> Option<Ticket> {
        if !self.held.borrow().has_room(app) {
            return None;
        }
        self.ticket_for(app, kind)
    }

    /// [`Webhooks::ticket`] for a hold placed already (by a sweep of a dead node's state),
    /// which this node must keep whatever it holds.
    pub fn ticket_for(&self, app: AppIdx, kind: Kind) -> Option<Ticket> {
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
    /// Without a hold it goes now.
    fn hold(self: &Rc<Self>, key: Hold, ticket: Option<Ticket>, event: Event) {
        let Some(ticket) = ticket else {
            return self.emit(key.of().app(), &event);
        };
        let until = Instant::now() + self.hold_for;
        self.held
            .borrow_mut()
            .insert(key, ticket.token, event, until);
        if !self.releasing.replace(true) {
            glommio::spawn_local(self.clone().release_as_due()).detach();
        }
    }

    /// Releases holds as they fall due, until none is left.
    async fn release_as_due(self: Rc<Self>) {
        loop {
            let Some(at) = self.held.borrow().next_due() else {
                self.releasing.set(false);
                return;
            };
            let wait = at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                Timer::new(wait).await;
            }
            let due = self
                .held
                .borrow_mut()
                .take_due(Instant::now(), RELEASE_AT_ONCE);
            self.release_all(due).await;
        }
    }

    /// Releases `due` holds concurrently.
    async fn release_all(self: &Rc<Self>, due: Vec<Due>) {
        let tasks: Vec<_> = due
            .into_iter()
            .map(|(key, token)| {
                let me = self.clone();
                glommio::spawn_local(async move { me.release(key, &token).await })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    }

    /// A hold of this node is over: its event goes out if the hold is still in place.
    async fn release(&self, key: Hold, token: &str) {
        // None when replaced by a newer hold of this node, or sent at shutdown.
        let Some(event) = self.held.borrow_mut().remove(&key, token) else {
            return;
        };
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

    /// Shutting down: sends what is held now, lets every sender flush its batch and its
    /// retries, and waits for them (at most `grace`).
    pub async fn close(self: &Rc<Self>, grace: Duration) {
        loop {
            let all = self.held.borrow_mut().take_all();
            if all.is_empty() {
                break;
            }
            for chunk in all.chunks(RELEASE_AT_ONCE) {
                self.release_all(chunk.to_vec()).await;
            }
        }
        let threads: Vec<JoinHandle<()>> = {
            let mut endpoints = self.endpoints.borrow_mut();
            for e in endpoints.all() {
                e.queue.borrow_mut().take();
            }
            endpoints.threads.drain(..).collect()
        };
        let deadline = Instant::now() + grace;
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                Timer::new(Duration::from_millis(10)).await;
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
