//! A shard's local state: its connections (each with an outbox and a waker) and the local
//! channel index (channel → local subscribers). Single-threaded, no locks; the cross-core
//! side only ever hands it one message per shard.

use super::conn::{Conn, Liveness, Queued};
use super::outbox::Frame;
use super::write_list::WriteList;
use crate::app::AppIdx;
use crate::clock::Tick;
use crate::protocol::{ChannelName, ErrorCode, SocketId};
use ahash::AHashMap;
use slab::Slab;
use std::rc::Rc;

pub use super::conn::ConnKey;

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
    /// Connections whose outbox got a frame while their task was idle, for the shard's writer.
    pub writes: WriteList,
}

impl Hub {
    pub fn new(apps: usize, outbound_limit: usize) -> Self {
        Hub {
            conns: Slab::new(),
            channels: (0..apps).map(|_| AHashMap::new()).collect(),
            outbound_limit,
            writes: WriteList::default(),
        }
    }

    pub fn add(&mut self, socket_id: SocketId, app: AppIdx, now: Tick) -> ConnKey {
        // An app a reload added gets its index with its first connection here.
        let at = app.0 as usize;
        if self.channels.len() <= at {
            self.channels.resize_with(at + 1, AHashMap::new);
        }
        self.conns.insert(Conn::new(socket_id, app, now))
    }

    /// Removes a connection and its subscriptions; returns it, for what must follow its
    /// departure (presence leaves).
    pub fn remove(&mut self, key: ConnKey) -> Option<Conn> {
        let conn = self.conns.try_remove(key)?;
        for (ch, place) in conn.places() {
            self.leave(conn.app(), ch, *place);
        }
        Some(conn)
    }

    /// Takes the subscriber at `place` out of a channel's list: the last one moves into its
    /// place (and is told), so leaving costs no scan of the list. `Changed` when the channel
    /// has no local subscriber left.
    fn leave(&mut self, app: AppIdx, channel: &str, place: usize) -> Occupancy {
        let index = &mut self.channels[app.0 as usize];
        let Some(subs) = index.get_mut(channel) else {
            return Occupancy::Unchanged;
        };
        if place >= subs.len() {
            return Occupancy::Unchanged;
        }
        subs.swap_remove(place);
        if let Some(&moved) = subs.get(place)
            && let Some(conn) = self.conns.get_mut(moved)
        {
            conn.moved(channel, place);
        }
        if subs.is_empty() {
            index.remove(channel);
            return Occupancy::Changed;
        }
        Occupancy::Unchanged
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

    /// The connection at `key` if it is still the one with `socket` (slots are reused).
    pub fn conn_at(&mut self, key: ConnKey, socket: SocketId) -> Option<&mut Conn> {
        self.conns.get_mut(key).filter(|c| c.socket_id() == socket)
    }

    pub fn keys(&self) -> Vec<ConnKey> {
        self.conns.iter().map(|(k, _)| k).collect()
    }

    pub fn is_subscribed(&self, key: ConnKey, channel: &str) -> bool {
        self.conns
            .get(key)
            .is_some_and(|c| c.is_subscribed(channel))
    }

    /// Adds the connection to the channel's local subscribers. A channel that needs
    /// authorization clears the connection of the sign-in deadline.
    pub fn subscribe(
        &mut self,
        key: ConnKey,
        channel: &ChannelName<'_>,
    ) -> Result<Occupancy, SubscribeError> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(Occupancy::Unchanged);
        };
        if conn.is_subscribed(channel.name) {
            return Err(SubscribeError::AlreadySubscribed);
        }
        let index = &mut self.channels[conn.app().0 as usize];
        let (name, occupancy) = match index.get_key_value(channel.name) {
            Some((name, _)) => (name.clone(), Occupancy::Unchanged),
            None => (Rc::from(channel.name), Occupancy::Changed),
        };
        let subs = index.entry(name.clone()).or_default();
        let place = subs.len();
        subs.push(key);
        conn.add_channel(name, place, channel.needs_auth());
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
        let place = conn
            .remove_channel(channel)
            .ok_or(UnsubscribeError::NotSubscribed)?;
        let app = conn.app();
        Ok(self.leave(app, channel, place))
    }

    /// Local subscriber count of a channel.
    pub fn subscribers(&self, app: AppIdx, channel: &str) -> usize {
        self.channels
            .get(app.0 as usize)
            .and_then(|index| index.get(channel))
            .map_or(0, Vec::len)
    }

    /// Channels of `app` with a subscriber on this shard.
    pub fn channel_count(&self, app: AppIdx) -> usize {
        self.channels
            .get(app.0 as usize)
            .map_or(0, |index| index.len())
    }

    /// The socket ids of a channel's subscribers on this shard, `limit` at most.
    pub fn subscriber_ids(&self, app: AppIdx, channel: &str, limit: usize) -> Vec<SocketId> {
        let index = self.channels.get(app.0 as usize);
        let Some(subs) = index.and_then(|index| index.get(channel)) else {
            return Vec::new();
        };
        let conns = subs.iter().filter_map(|key| self.conns.get(*key));
        conns.take(limit).map(Conn::socket_id).collect()
    }

    /// Queues a frame for one connection, within the outbound limit.
    pub fn send(&mut self, key: ConnKey, frame: Frame) {
        if let Some(conn) = self.conns.get_mut(key) {
            queue(conn, key, frame, self.outbound_limit, &mut self.writes);
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
        let index = self.channels.get(app.0 as usize);
        let Some(subs) = index.and_then(|index| index.get(channel)) else {
            return 0;
        };
        let mut delivered = 0;
        for &key in subs {
            let conn = &mut self.conns[key];
            if Some(conn.socket_id()) == except {
                continue;
            }
            queue(
                conn,
                key,
                frame.clone(),
                self.outbound_limit,
                &mut self.writes,
            );
            delivered += 1;
        }
        delivered
    }

    /// Requests that every connection signed in as `user_id` be closed with `code`.
    pub fn close_user(&mut self, app: AppIdx, user_id: &str, code: ErrorCode) {
        for (_, conn) in self.conns.iter_mut() {
            if conn.app() == app && conn.user_id().map(|u| &**u) == Some(user_id) {
                conn.request_close(code);
            }
        }
    }

    /// Requests that every connection of `app` be closed with `code` (the app was disabled).
    pub fn close_app(&mut self, app: AppIdx, code: ErrorCode) {
        for (_, conn) in self.conns.iter_mut() {
            if conn.app() == app {
                conn.request_close(code);
            }
        }
    }

    /// Requests that a connection be closed with `code` by its task.
    pub fn request_close(&mut self, key: ConnKey, code: ErrorCode) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.request_close(code);
        }
    }

    /// The activity check (docs/protocol.md) over every connection. `signin_deadline[app]` is the
    /// app's required sign-in time, if it requires one.
    pub fn sweep(
        &mut self,
        now: Tick,
        activity_timeout: Tick,
        pong_timeout: Tick,
        ping: &Frame,
        signin_deadline: &[Option<Tick>],
    ) {
        let limits = Liveness {
            activity_timeout,
            pong_timeout,
            ping,
            outbound_limit: self.outbound_limit,
        };
        for (key, conn) in self.conns.iter_mut() {
            let deadline = signin_deadline
                .get(conn.app().0 as usize)
                .copied()
                .flatten();
            if let Some(queued) = conn.check(now, &limits, deadline) {
                queued_for(conn, key, queued, self.outbound_limit, &mut self.writes);
            }
        }
    }
}

/// Queues a frame for `conn`.
fn queue(conn: &mut Conn, key: ConnKey, frame: Frame, limit: usize, writes: &mut WriteList) {
    let queued = conn.queue(frame, limit);
    queued_for(conn, key, queued, limit, writes);
}

/// What follows a queued frame: a first frame puts the connection on the write list; one
/// that tips it over the limit makes it a slow consumer.
fn queued_for(conn: &mut Conn, key: ConnKey, queued: Queued, limit: usize, writes: &mut WriteList) {
    match queued {
        Queued::First if conn.needs_writer() => writes.push(key),
        Queued::Overflow => slow_consumer(conn, limit),
        Queued::First | Queued::Behind | Queued::Refused => {}
    }
}

fn slow_consumer(conn: &Conn, limit: usize) {
    log::debug!(
        "socket {}: over {limit} unsent bytes, closing with 4100",
        conn.socket_id()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Frame {
        Rc::from(s.as_bytes())
    }

    fn public(name: &str) -> ChannelName<'_> {
        ChannelName::classify(name).unwrap()
    }

    #[test]
    fn subscribe_publish_exclude_unsubscribe() {
        let mut hub = Hub::new(1, 1024);
        let app = AppIdx(0);
        let a = hub.add(SocketId::new(0, 1, 1), app, 0);
        let b = hub.add(SocketId::new(0, 2, 2), app, 0);
        assert_eq!(hub.subscribe(a, &public("ch")), Ok(Occupancy::Changed));
        assert_eq!(hub.subscribe(b, &public("ch")), Ok(Occupancy::Unchanged));
        assert_eq!(
            hub.subscribe(b, &public("ch")),
            Err(SubscribeError::AlreadySubscribed)
        );
        assert_eq!(
            hub.publish(app, "ch", &frame("x"), Some(SocketId::new(0, 1, 1))),
            1
        );
        assert!(hub.conn(a).unwrap().outbox().is_empty());
        assert_eq!(hub.conn(b).unwrap().outbox().bytes(), 1);
        assert_eq!(hub.unsubscribe(a, "ch"), Ok(Occupancy::Unchanged));
        assert_eq!(
            hub.unsubscribe(a, "ch"),
            Err(UnsubscribeError::NotSubscribed)
        );
        assert_eq!(hub.remove(b).map(|c| c.channel_count()), Some(1));
        assert_eq!(hub.subscribers(app, "ch"), 0);
    }

    #[test]
    fn slow_consumer_is_marked_not_grown() {
        let mut hub = Hub::new(1, 10);
        let a = hub.add(SocketId::new(0, 1, 1), AppIdx(0), 0);
        hub.subscribe(a, &public("ch")).unwrap();
        for _ in 0..5 {
            hub.publish(AppIdx(0), "ch", &frame("abcd"), None);
        }
        let conn = hub.conn(a).unwrap();
        assert_eq!(conn.close_requested(), Some(ErrorCode::OverCapacity));
        assert!(conn.outbox().bytes() <= 10);
    }

    #[test]
    fn sweep_pings_then_closes() {
        let mut hub = Hub::new(1, 1024);
        let a = hub.add(SocketId::new(0, 1, 1), AppIdx(0), 0);
        let ping = frame("p");
        // Never early: 10 ticks may be just over 9 s.
        hub.sweep(10, 10, 3, &ping, &[]);
        assert!(hub.conn(a).unwrap().ping_sent().is_none());
        hub.sweep(11, 10, 3, &ping, &[]);
        assert_eq!(hub.conn(a).unwrap().ping_sent(), Some(11));
        hub.sweep(14, 10, 3, &ping, &[]);
        assert!(hub.conn(a).unwrap().close_requested().is_none());
        hub.sweep(15, 10, 3, &ping, &[]);
        assert_eq!(
            hub.conn(a).unwrap().close_requested(),
            Some(ErrorCode::PongTimeout)
        );
    }

    #[test]
    fn the_signin_deadline_spares_authenticated_connections() {
        let mut hub = Hub::new(1, 1024);
        let a = hub.add(SocketId::new(0, 1, 1), AppIdx(0), 0);
        let b = hub.add(SocketId::new(0, 2, 2), AppIdx(0), 0);
        hub.subscribe(b, &public("private-x")).unwrap();
        hub.sweep(30, 120, 30, &frame("p"), &[Some(30)]);
        assert!(
            hub.conn(a).unwrap().close_requested().is_none(),
            "not early"
        );
        hub.sweep(31, 120, 30, &frame("p"), &[Some(30)]);
        assert_eq!(
            hub.conn(a).unwrap().close_requested(),
            Some(ErrorCode::Unauthorized)
        );
        assert_eq!(hub.conn(b).unwrap().close_requested(), None);
    }

    /// Every subscriber's recorded place is where it stands in its channel's list.
    fn places_agree(hub: &Hub) {
        for (key, conn) in hub.conns.iter() {
            for (ch, place) in conn.places() {
                let subs = &hub.channels[conn.app().0 as usize][ch];
                assert_eq!(subs[*place], key, "{ch} at {place}");
            }
        }
    }

    #[test]
    fn leaving_keeps_every_place_right_whatever_the_order() {
        let mut hub = Hub::new(1, 1024);
        let keys: Vec<ConnKey> = (0..200)
            .map(|i| hub.add(SocketId::new(0, i, 1), AppIdx(0), 0))
            .collect();
        for (i, &k) in keys.iter().enumerate() {
            hub.subscribe(k, &public("big")).unwrap();
            if i % 3 == 0 {
                hub.subscribe(k, &public("small")).unwrap();
            }
        }
        places_agree(&hub);
        // Leave in a scrambled order, by unsubscribing and by disconnecting.
        let mut order: Vec<usize> = (0..200).map(|i| (i * 73) % 200).collect();
        order.dedup();
        for (n, i) in order.into_iter().enumerate() {
            if n % 2 == 0 {
                let _ = hub.unsubscribe(keys[i], "big");
            } else {
                hub.remove(keys[i]);
            }
            places_agree(&hub);
        }
        assert_eq!(hub.subscribers(AppIdx(0), "big"), 0);
        assert!(hub.channels[0].get("big").is_none());
    }
}
