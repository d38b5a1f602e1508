//! One WebSocket connection's state on its shard. Fields are private: every change goes
//! through a method that names its intent, so the rules that decide them live in one place.

use super::joins::Joins;
use super::outbox::{Frame, Outbox};
use crate::app::AppIdx;
use crate::clock::Tick;
use crate::protocol::{ErrorCode, SocketId};
use crate::rate::PerSecond;
use std::rc::Rc;
use std::task::Waker;

pub struct Conn {
    socket_id: SocketId,
    app: AppIdx,
    outbox: Outbox,
    /// Wakes the connection's task when its outbox goes from empty to non-empty or a close
    /// is requested.
    waker: Option<Waker>,
    last_seen: Tick,
    /// When the server's `pusher:ping` went out, if unanswered.
    ping_sent: Option<Tick>,
    /// A close the connection's task must carry out.
    close: Option<ErrorCode>,
    /// Channels in the shard's index for this connection, each with this connection's place
    /// in the channel's subscriber list (so leaving it costs no scan of that list).
    channels: Vec<(Rc<str>, usize)>,
    /// The user this connection signed in as (`pusher:signin`).
    user_id: Option<Rc<str>>,
    /// Client events sent in the current second.
    client_events: PerSecond,
    /// Subscribes sent in the current second.
    subscribes: PerSecond,
    joins: Joins,
    /// When the connection opened, for the required sign-in deadline.
    opened: Tick,
    /// Signed in, or subscribed to a channel that needs authorization: clear of that deadline.
    authenticated: bool,
}

impl Conn {
    pub fn new(socket_id: SocketId, app: AppIdx, now: Tick) -> Conn {
        Conn {
            socket_id,
            app,
            outbox: Outbox::default(),
            waker: None,
            last_seen: now,
            ping_sent: None,
            close: None,
            channels: Vec::new(),
            user_id: None,
            client_events: PerSecond::default(),
            subscribes: PerSecond::default(),
            joins: Joins::default(),
            opened: now,
            authenticated: false,
        }
    }

    pub fn socket_id(&self) -> SocketId {
        self.socket_id
    }

    pub fn app(&self) -> AppIdx {
        self.app
    }

    pub fn user_id(&self) -> Option<&Rc<str>> {
        self.user_id.as_ref()
    }

    pub fn channels(&self) -> impl Iterator<Item = &Rc<str>> {
        self.channels.iter().map(|(ch, _)| ch)
    }

    /// Its channels with its place in each one's subscriber list.
    pub(super) fn places(&self) -> impl Iterator<Item = &(Rc<str>, usize)> {
        self.channels.iter()
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.channels.iter().any(|(ch, _)| &**ch == channel)
    }

    pub fn joins(&self) -> &Joins {
        &self.joins
    }

    pub fn joins_mut(&mut self) -> &mut Joins {
        &mut self.joins
    }

    /// Whether the required sign-in deadline no longer applies.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Signs the connection in as `user`; returns the user it was signed in as before.
    pub fn sign_in(&mut self, user: Rc<str>) -> Option<Rc<str>> {
        self.authenticate();
        self.user_id.replace(user)
    }

    /// The one place that clears the connection of the sign-in deadline.
    fn authenticate(&mut self) {
        self.authenticated = true;
    }

    /// Joins a channel, at `place` in its subscriber list.
    pub(super) fn add_channel(&mut self, name: Rc<str>, place: usize, needs_auth: bool) {
        if needs_auth {
            self.authenticate();
        }
        self.channels.push((name, place));
    }

    /// Leaves a channel; its place in the channel's subscriber list, if it was there.
    pub(super) fn remove_channel(&mut self, channel: &str) -> Option<usize> {
        let i = self.channels.iter().position(|(ch, _)| &**ch == channel)?;
        Some(self.channels.swap_remove(i).1)
    }

    /// Its place in `channel`'s subscriber list moved to `place`.
    pub(super) fn moved(&mut self, channel: &str, place: usize) {
        if let Some(entry) = self.channels.iter_mut().find(|(ch, _)| &**ch == channel) {
            entry.1 = place;
        }
    }

    /// Counts a client event against `max` per second; `false` when over it.
    pub fn take_client_event(&mut self, now: Tick, max: u32) -> bool {
        self.client_events.take(now, max)
    }

    /// Counts a subscribe against `max` per second; `false` when over it.
    pub fn take_subscribe(&mut self, now: Tick, max: u32) -> bool {
        self.subscribes.take(now, max)
    }

    /// A close this connection's task must carry out, if one was requested.
    pub fn close_requested(&self) -> Option<ErrorCode> {
        self.close
    }

    /// Asks the connection's task to close with `code` (the first request wins).
    pub fn request_close(&mut self, code: ErrorCode) {
        if self.close.is_none() {
            self.close = Some(code);
            self.wake();
        }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Marks `n` bytes of the outbox as written.
    pub fn written(&mut self, n: usize) {
        self.outbox.consume(n);
    }

    /// Queues bytes that must go out whatever the outbound limit (the closing frames: a slow
    /// consumer's queue was already dropped to make room for them).
    pub fn push_unbounded(&mut self, frame: Frame) {
        self.outbox.push(frame);
    }

    /// Queues a frame. Over the outbound limit the connection is marked for closing with
    /// 4100 and its queue dropped: a slow consumer never holds more memory. Returns `true`
    /// when this frame is what tipped it over.
    pub(super) fn queue(&mut self, frame: Frame, limit: usize) -> bool {
        if self.close.is_some() {
            return false;
        }
        // The limit bounds the backlog: one frame always fits into an empty outbox, so an
        // event larger than the limit still reaches a client that keeps up.
        if !self.outbox.is_empty() && self.outbox.bytes() + frame.len() > limit {
            self.outbox.clear();
            self.request_close(ErrorCode::OverCapacity);
            return true;
        }
        let was_empty = self.outbox.is_empty();
        self.outbox.push(frame);
        if was_empty {
            self.wake();
        }
        false
    }

    /// Remembers the waker of the connection's task (once per task, not per poll).
    pub fn register_waker(&mut self, waker: &Waker) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
    }

    fn wake(&self) {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }

    /// The client sent something: it is alive.
    pub fn touch(&mut self, now: Tick) {
        self.last_seen = now;
        self.ping_sent = None;
    }

    /// The activity check of one connection (SPEC §2): close it when its sign-in deadline has
    /// passed or a ping went unanswered for `pong_timeout`; ping it after `activity_timeout`
    /// of silence. Returns `true` when the ping overflowed its outbox (as [`Conn::queue`]).
    ///
    /// Times are whole-second ticks, and a tick difference of `d` means between `d - 1` and
    /// `d + 1` real seconds: a limit is reached only at `limit + 1` ticks, so, swept once a
    /// second, it fires less than two seconds late and never early.
    pub(super) fn check(&mut self, now: Tick, limits: &Liveness<'_>, signin: Option<Tick>) -> bool {
        if self.close.is_some() {
            return false;
        }
        if let Some(deadline) = signin
            && !self.authenticated
            && now.saturating_sub(self.opened) > deadline
        {
            self.request_close(ErrorCode::Unauthorized);
            return false;
        }
        match self.ping_sent {
            Some(sent) if now.saturating_sub(sent) > limits.pong_timeout => {
                self.request_close(ErrorCode::PongTimeout);
                false
            }
            None if now.saturating_sub(self.last_seen) > limits.activity_timeout => {
                self.ping_sent = Some(now);
                self.queue(limits.ping.clone(), limits.outbound_limit)
            }
            _ => false,
        }
    }

    #[cfg(test)]
    pub fn ping_sent(&self) -> Option<Tick> {
        self.ping_sent
    }
}

/// What the activity check needs to know.
pub struct Liveness<'a> {
    pub activity_timeout: Tick,
    pub pong_timeout: Tick,
    pub ping: &'a Frame,
    pub outbound_limit: usize,
}
