//! One WebSocket connection's state on its shard. Fields are private: every change goes
//! through a method that names its intent, so the rules that decide them live in one place.

use super::joins::Joins;
use super::outbox::{Frame, Outbox};
use crate::app::AppIdx;
use crate::clock::Tick;
use crate::protocol::{ErrorCode, SocketId};
use crate::rate::PerSecond;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::Waker;

/// A connection's place in the shard's hub.
pub type ConnKey = usize;

/// What queuing a frame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queued {
    /// Behind frames already waiting: whoever writes those writes this one.
    Behind,
    /// The first frame in an empty outbox: the shard's writer must write it
    /// ([`Conn::needs_writer`]).
    First,
    /// Not queued: the connection is closing.
    Refused,
    /// Over the outbound limit: the queue is dropped and a 4100 close requested.
    Overflow,
}

pub struct Conn {
    socket_id: SocketId,
    app: AppIdx,
    outbox: Outbox,
    /// Wakes the connection's task: a close is requested, or its outbox waits for a socket
    /// that was full.
    waker: Option<Waker>,
    /// The plain TCP socket, which the shard's writer may write to directly; `None` until
    /// the session sets it (and in unit tests), when the connection's task does all writing.
    socket: Option<RawFd>,
    /// The connection's task is running now and flushes the outbox before it yields.
    in_turn: bool,
    /// On the shard's write list.
    listed: bool,
    /// Its close frame is queued: nothing may follow it.
    sealed: bool,
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
            socket: None,
            // Created by its task, which flushes what is queued before it first yields.
            in_turn: true,
            listed: false,
            sealed: false,
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
    /// 4100 and its queue dropped: a slow consumer never holds more memory.
    pub(super) fn queue(&mut self, frame: Frame, limit: usize) -> Queued {
        if self.close.is_some() || self.sealed {
            return Queued::Refused;
        }
        // The limit bounds the backlog: one frame always fits into an empty outbox, so an
        // event larger than the limit still reaches a client that keeps up.
        if !self.outbox.is_empty() && self.outbox.bytes() + frame.len() > limit {
            self.outbox.clear();
            self.request_close(ErrorCode::OverCapacity);
            return Queued::Overflow;
        }
        let was_empty = self.outbox.is_empty();
        self.outbox.push(frame);
        if was_empty {
            Queued::First
        } else {
            Queued::Behind
        }
    }

    /// Its outbox just got its first frame: `true` when the shard's writer is to write it
    /// (once per listing). A connection whose task is running flushes at the end of its
    /// turn; one without a plain socket has its task woken to write.
    pub(super) fn needs_writer(&mut self) -> bool {
        if self.in_turn || self.listed {
            return false;
        }
        if self.socket.is_none() {
            self.wake();
            return false;
        }
        self.listed = true;
        true
    }

    /// The shard's writer takes the connection off its list: the socket to write the outbox
    /// to, unless there is nothing to write or the connection's task writes it itself.
    pub(super) fn unlist(&mut self) -> Option<RawFd> {
        self.listed = false;
        if self.in_turn || self.outbox.is_empty() {
            return None;
        }
        self.socket
    }

    /// The socket the shard's writer may write to while the connection is in the hub (the
    /// session removes it from the hub before closing the socket).
    pub fn set_socket(&mut self, fd: RawFd) {
        self.socket = Some(fd);
    }

    /// Its task starts (`true`) or ends (`false`) a turn.
    pub fn set_in_turn(&mut self, in_turn: bool) {
        self.in_turn = in_turn;
    }

    /// The close frame is queued: later frames are refused.
    pub fn seal(&mut self) {
        self.sealed = true;
    }

    /// The socket was full or failed: its task takes over writing (and finds out which).
    pub(super) fn hand_to_task(&self) {
        self.wake();
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

    /// The activity check of one connection (docs/protocol.md): close it when its sign-in deadline has
    /// passed or a ping went unanswered for `pong_timeout`; ping it after `activity_timeout`
    /// of silence. Returns what queuing the ping did, if it was sent.
    ///
    /// Times are whole-second ticks, and a tick difference of `d` means between `d - 1` and
    /// `d + 1` real seconds: a limit is reached only at `limit + 1` ticks, so, swept once a
    /// second, it fires less than two seconds late and never early.
    pub(super) fn check(
        &mut self,
        now: Tick,
        limits: &Liveness<'_>,
        signin: Option<Tick>,
    ) -> Option<Queued> {
        if self.close.is_some() {
            return None;
        }
        if let Some(deadline) = signin
            && !self.authenticated
            && now.saturating_sub(self.opened) > deadline
        {
            self.request_close(ErrorCode::Unauthorized);
            return None;
        }
        match self.ping_sent {
            Some(sent) if now.saturating_sub(sent) > limits.pong_timeout => {
                self.request_close(ErrorCode::PongTimeout);
                None
            }
            None if now.saturating_sub(self.last_seen) > limits.activity_timeout => {
                self.ping_sent = Some(now);
                Some(self.queue(limits.ping.clone(), limits.outbound_limit))
            }
            _ => None,
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
