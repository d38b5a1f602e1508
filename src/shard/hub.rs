//! A shard's local state: its connections (each with an outbox and a waker) and the local
//! channel index (channel → local subscribers). Single-threaded, no locks; the cross-core
//! side only ever hands it one message per shard.

use super::outbox::{Frame, Outbox};
use crate::app::AppIdx;
use crate::protocol::{ErrorCode, SocketId};
use ahash::AHashMap;
use slab::Slab;
use std::rc::Rc;
use std::task::Waker;

/// A connection's place in the hub.
pub type ConnKey = usize;

/// The shard's coarse clock: the sweeper advances it once a second.
pub use crate::cache::Tick;

pub struct Conn {
    pub socket_id: SocketId,
    pub app: AppIdx,
    pub outbox: Outbox,
    /// Wakes the connection's task when its outbox goes from empty to non-empty or a close
    /// is requested.
    pub waker: Option<Waker>,
    pub last_seen: Tick,
    /// When the server's `pusher:ping` went out, if unanswered.
    pub ping_sent: Option<Tick>,
    /// A close the connection's task must carry out.
    pub close: Option<ErrorCode>,
    pub channels: Vec<Rc<str>>,
    /// The user this connection signed in as (`pusher:signin`).
    pub user_id: Option<Rc<str>>,
    /// Client events sent in the current second, for `max_client_events_per_second`.
    pub client_events: (Tick, u32),
    /// Presence channels joined or being joined, with the user id given in `channel_data`.
    pub presence: Vec<PresenceSub>,
    /// When the connection opened, for the required sign-in deadline.
    pub opened: Tick,
    /// Signed in, or subscribed to a private or presence channel: clear of that deadline.
    pub authenticated: bool,
}

/// A connection's membership of a presence channel. Not `confirmed` until the API core has
/// admitted it; only then is the connection in the channel index.
#[derive(Debug, Clone)]
pub struct PresenceSub {
    pub channel: Rc<str>,
    pub user_id: Rc<str>,
    pub confirmed: bool,
}

impl Conn {
    fn wake(&self) {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    AlreadySubscribed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeError {
    NotSubscribed,
}

/// Whether a (un)subscription changed the channel's local occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occupancy {
    /// First local subscriber, or last one gone.
    Changed,
    Unchanged,
}

pub struct Hub {
    conns: Slab<Conn>,
    /// Per app: channel name → local subscribers.
    channels: Vec<AHashMap<Rc<str>, Vec<ConnKey>>>,
    outbound_limit: usize,
}

impl Hub {
    pub fn new(apps: usize, outbound_limit: usize) -> Self {
        Hub {
            conns: Slab::new(),
            channels: (0..apps).map(|_| AHashMap::new()).collect(),
            outbound_limit,
        }
    }

    pub fn add(&mut self, socket_id: SocketId, app: AppIdx, now: Tick) -> ConnKey {
        self.conns.insert(Conn {
            socket_id,
            app,
            outbox: Outbox::default(),
            waker: None,
            last_seen: now,
            ping_sent: None,
            close: None,
            channels: Vec::new(),
            user_id: None,
            client_events: (now, 0),
            presence: Vec::new(),
            opened: now,
            authenticated: false,
        })
    }

    /// Removes a connection and its subscriptions; returns it, for what must follow its
    /// departure (presence leaves).
    pub fn remove(&mut self, key: ConnKey) -> Option<Conn> {
        let conn = self.conns.try_remove(key)?;
        let index = &mut self.channels[conn.app.0 as usize];
        for ch in &conn.channels {
            if let Some(subs) = index.get_mut(ch) {
                subs.retain(|k| *k != key);
                if subs.is_empty() {
                    index.remove(ch);
                }
            }
        }
        Some(conn)
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn conn(&self, key: ConnKey) -> Option<&Conn> {
        self.conns.get(key)
    }

    pub fn conn_mut(&mut self, key: ConnKey) -> Option<&mut Conn> {
        self.conns.get_mut(key)
    }

    pub fn keys(&self) -> Vec<ConnKey> {
        self.conns.iter().map(|(k, _)| k).collect()
    }

    pub fn is_subscribed(&self, key: ConnKey, channel: &str) -> bool {
        self.conns
            .get(key)
            .is_some_and(|c| c.channels.iter().any(|ch| &**ch == channel))
    }

    pub fn subscribe(&mut self, key: ConnKey, channel: &str) -> Result<Occupancy, SubscribeError> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(Occupancy::Unchanged);
        };
        if conn.channels.iter().any(|ch| &**ch == channel) {
            return Err(SubscribeError::AlreadySubscribed);
        }
        let index = &mut self.channels[conn.app.0 as usize];
        let (name, occupancy) = match index.get_key_value(channel) {
            Some((name, _)) => (name.clone(), Occupancy::Unchanged),
            None => (Rc::from(channel), Occupancy::Changed),
        };
        index.entry(name.clone()).or_default().push(key);
        conn.channels.push(name);
        Ok(occupancy)
    }

    pub fn unsubscribe(
        &mut self,
        key: ConnKey,
        channel: &str,
    ) -> Result<Occupancy, UnsubscribeError> {
        let conn = self
            .conns
            .get_mut(key)
            .ok_or(UnsubscribeError::NotSubscribed)?;
        let pos = conn
            .channels
            .iter()
            .position(|ch| &**ch == channel)
            .ok_or(UnsubscribeError::NotSubscribed)?;
        conn.channels.swap_remove(pos);
        let index = &mut self.channels[conn.app.0 as usize];
        let Some(subs) = index.get_mut(channel) else {
            return Ok(Occupancy::Unchanged);
        };
        if let Some(i) = subs.iter().position(|k| *k == key) {
            subs.swap_remove(i);
        }
        if subs.is_empty() {
            index.remove(channel);
            return Ok(Occupancy::Changed);
        }
        Ok(Occupancy::Unchanged)
    }

    /// Local subscriber count of a channel.
    pub fn subscribers(&self, app: AppIdx, channel: &str) -> usize {
        self.channels[app.0 as usize]
            .get(channel)
            .map_or(0, Vec::len)
    }

    /// Queues a frame for one connection. A connection over its outbound limit is marked for
    /// closing with 4100 and its queue dropped: a slow consumer never holds more memory.
    pub fn send(&mut self, key: ConnKey, frame: Frame) {
        if let Some(conn) = self.conns.get_mut(key) {
            Self::push(conn, frame, self.outbound_limit);
        }
    }

    fn push(conn: &mut Conn, frame: Frame, limit: usize) {
        if conn.close.is_some() {
            return;
        }
        // The limit bounds the backlog: one frame always fits into an empty outbox, so an
        // event larger than the limit still reaches a client that keeps up.
        if !conn.outbox.is_empty() && conn.outbox.bytes() + frame.len() > limit {
            log::debug!(
                "socket {}: over {limit} unsent bytes, closing with 4100",
                conn.socket_id
            );
            conn.outbox.clear();
            conn.close = Some(ErrorCode::OverCapacity);
            conn.wake();
            return;
        }
        let was_empty = conn.outbox.is_empty();
        conn.outbox.push(frame);
        if was_empty {
            conn.wake();
        }
    }

    /// Delivers a frame to every local subscriber of a channel but `except`; returns how many
    /// connections it was queued for.
    pub fn publish(
        &mut self,
        app: AppIdx,
        channel: &str,
        frame: &Frame,
        except: Option<SocketId>,
    ) -> usize {
        let Some(subs) = self.channels[app.0 as usize].get(channel) else {
            return 0;
        };
        let mut delivered = 0;
        for &key in subs {
            let conn = &mut self.conns[key];
            if Some(conn.socket_id) == except {
                continue;
            }
            Self::push(conn, frame.clone(), self.outbound_limit);
            delivered += 1;
        }
        delivered
    }

    /// Requests that every connection signed in as `user_id` be closed with `code`.
    pub fn close_user(&mut self, app: AppIdx, user_id: &str, code: ErrorCode) {
        for (_, conn) in self.conns.iter_mut() {
            if conn.app == app && conn.user_id.as_deref() == Some(user_id) && conn.close.is_none() {
                conn.close = Some(code);
                conn.wake();
            }
        }
    }

    /// Requests that a connection be closed with `code` by its task.
    pub fn request_close(&mut self, key: ConnKey, code: ErrorCode) {
        if let Some(conn) = self.conns.get_mut(key)
            && conn.close.is_none()
        {
            conn.close = Some(code);
            conn.wake();
        }
    }

    /// Records that a connection sent something.
    pub fn touch(&mut self, key: ConnKey, now: Tick) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.last_seen = now;
            conn.ping_sent = None;
        }
    }

    /// The activity check (SPEC §2): ping connections silent for `activity_timeout`, close
    /// with 4201 those that left a ping unanswered for `pong_timeout`.
    ///
    /// `signin_deadline[app]` is the app's required sign-in time, if it requires one: a
    /// connection still unauthenticated by then is closed with 4009.
    pub fn sweep(
        &mut self,
        now: Tick,
        activity_timeout: Tick,
        pong_timeout: Tick,
        ping: &Frame,
        signin_deadline: &[Option<Tick>],
    ) {
        let limit = self.outbound_limit;
        for (_, conn) in self.conns.iter_mut() {
            if let Some(Some(deadline)) = signin_deadline.get(conn.app.0 as usize)
                && !conn.authenticated
                && conn.close.is_none()
                && now.saturating_sub(conn.opened) >= *deadline
            {
                conn.close = Some(ErrorCode::Unauthorized);
                conn.wake();
                continue;
            }
            match conn.ping_sent {
                Some(sent) if now.saturating_sub(sent) >= pong_timeout && conn.close.is_none() => {
                    conn.close = Some(ErrorCode::PongTimeout);
                    conn.wake();
                }
                None if now.saturating_sub(conn.last_seen) >= activity_timeout => {
                    conn.ping_sent = Some(now);
                    Self::push(conn, ping.clone(), limit);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Frame {
        Rc::from(s.as_bytes())
    }

    #[test]
    fn subscribe_publish_exclude_unsubscribe() {
        let mut hub = Hub::new(1, 1024);
        let app = AppIdx(0);
        let a = hub.add(SocketId::new(0, 1, 1), app, 0);
        let b = hub.add(SocketId::new(0, 2, 2), app, 0);
        assert_eq!(hub.subscribe(a, "ch"), Ok(Occupancy::Changed));
        assert_eq!(hub.subscribe(b, "ch"), Ok(Occupancy::Unchanged));
        assert_eq!(
            hub.subscribe(b, "ch"),
            Err(SubscribeError::AlreadySubscribed)
        );
        assert_eq!(
            hub.publish(app, "ch", &frame("x"), Some(SocketId::new(0, 1, 1))),
            1
        );
        assert!(hub.conn(a).unwrap().outbox.is_empty());
        assert_eq!(hub.conn(b).unwrap().outbox.bytes(), 1);
        assert_eq!(hub.unsubscribe(a, "ch"), Ok(Occupancy::Unchanged));
        assert_eq!(
            hub.unsubscribe(a, "ch"),
            Err(UnsubscribeError::NotSubscribed)
        );
        assert_eq!(hub.remove(b).map(|c| c.channels.len()), Some(1));
        assert_eq!(hub.subscribers(app, "ch"), 0);
    }

    #[test]
    fn slow_consumer_is_marked_not_grown() {
        let mut hub = Hub::new(1, 10);
        let a = hub.add(SocketId::new(0, 1, 1), AppIdx(0), 0);
        hub.subscribe(a, "ch").unwrap();
        for _ in 0..5 {
            hub.publish(AppIdx(0), "ch", &frame("abcd"), None);
        }
        let conn = hub.conn(a).unwrap();
        assert_eq!(conn.close, Some(ErrorCode::OverCapacity));
        assert!(conn.outbox.bytes() <= 10);
    }

    #[test]
    fn sweep_pings_then_closes() {
        let mut hub = Hub::new(1, 1024);
        let a = hub.add(SocketId::new(0, 1, 1), AppIdx(0), 0);
        let ping = frame("p");
        hub.sweep(5, 10, 3, &ping, &[]);
        assert!(hub.conn(a).unwrap().ping_sent.is_none());
        hub.sweep(10, 10, 3, &ping, &[]);
        assert_eq!(hub.conn(a).unwrap().ping_sent, Some(10));
        hub.sweep(13, 10, 3, &ping, &[]);
        assert_eq!(hub.conn(a).unwrap().close, Some(ErrorCode::PongTimeout));
    }
}
