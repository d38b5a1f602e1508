//! The behaviour every cluster backend must show, as tests over the traits (they panic on a
//! broken backend): the in-memory backends run them in their own test modules, and the Redis
//! backends run the same functions against a real `redis-server` (`tests/cluster_state.rs`).
//! Each uses app indexes 0 and 1 and leaves the backend as it found it.

use super::cache::{CacheStore, LastPublish};
use super::history::{Ask, Bounds, Direction, HistoryStore, Retention, Window};
use super::holds::{HoldOf, Holds, Ticket};
use super::{Join, Left, NodeEvent, Occupancy, Presence, Transport, Users};
use crate::app::AppIdx;
use crate::bus::Broadcast;
use crate::protocol::SocketId;
use std::sync::Arc;

const APP: AppIdx = AppIdx(0);
const OTHER_APP: AppIdx = AppIdx(1);

fn socket(shard: usize, n: u64) -> SocketId {
    SocketId::new(shard, n, 7)
}

fn admitted(j: Join) -> super::Joined {
    match j {
        Join::Admitted(j) => j,
        Join::Full { max } => panic!("refused as full ({max})"),
    }
}

/// Users join on their first connection and leave with their last; the member list and the
/// limit count distinct users; apps are apart. Leaves the backend empty.
pub async fn presence(p: &dyn Presence, h: &dyn Holds) {
    let (s1, s2, s3) = (socket(0, 1), socket(1, 1), socket(0, 2));
    let j = admitted(
        p.join(APP, "presence-a", "u1", r#"{"n":1}"#, s1, 2)
            .await
            .unwrap(),
    );
    assert!(j.first_connection);
    assert_eq!(
        j.presence_data,
        r#"{"presence":{"ids":["u1"],"hash":{"u1":{"n":1}},"count":1}}"#
    );
    let again = admitted(
        p.join(APP, "presence-a", "u1", r#"{"n":1}"#, s2, 2)
            .await
            .unwrap(),
    );
    assert!(!again.first_connection, "a second connection of u1");
    let u2 = admitted(
        p.join(APP, "presence-a", "u2", "null", s3, 2)
            .await
            .unwrap(),
    );
    assert!(u2.first_connection);
    assert!(
        u2.presence_data.contains(r#""count":2"#),
        "{}",
        u2.presence_data
    );
    let full = p
        .join(APP, "presence-a", "u3", "{}", socket(1, 9), 2)
        .await
        .unwrap();
    assert_eq!(full, Join::Full { max: 2 });
    assert_eq!(p.user_ids(APP, "presence-a").await.unwrap(), ["u1", "u2"]);
    assert!(
        p.user_ids(OTHER_APP, "presence-a")
            .await
            .unwrap()
            .is_empty()
    );
    let leave = |user, s| p.leave(APP, "presence-a", user, s, None);
    assert_eq!(leave("u1", s1).await.unwrap(), Left::OtherConnectionsRemain);
    assert_eq!(leave("u1", s1).await.unwrap(), Left::NotAMember);
    assert_eq!(leave("u1", s2).await.unwrap(), Left::LastConnection);
    assert_eq!(leave("u2", s3).await.unwrap(), Left::LastConnection);
    assert!(p.user_ids(APP, "presence-a").await.unwrap().is_empty());
    // A refused join leaves nothing behind either.
    assert_eq!(
        p.leave(APP, "presence-a", "u3", socket(1, 9), None)
            .await
            .unwrap(),
        Left::NotAMember
    );
    presence_holds(p, h).await;
}

fn ticket(token: &str) -> Ticket {
    Ticket {
        token: token.into(),
        ttl: std::time::Duration::from_secs(60),
    }
}

/// A last connection's leave places its hold; a first connection's join cancels it, and the
/// holder then finds nothing to release; an uncancelled hold is released once.
async fn presence_holds(p: &dyn Presence, h: &dyn Holds) {
    let (s1, s2) = (socket(0, 1), socket(1, 1));
    let of = HoldOf::Removed {
        app: APP,
        channel: "presence-h",
        user_id: "u1",
    };
    let join = |s| p.join(APP, "presence-h", "u1", "null", s, 10);
    assert!(!admitted(join(s1).await.unwrap()).returned);
    let t1 = ticket("t1");
    let left = p.leave(APP, "presence-h", "u1", s1, Some(&t1)).await;
    assert_eq!(left.unwrap(), Left::LastConnection);
    let back = admitted(join(s2).await.unwrap());
    assert!(
        back.first_connection && back.returned,
        "came back while held"
    );
    assert!(!h.release(of, "t1").await.unwrap(), "cancelled");
    let t2 = ticket("t2");
    let left = p.leave(APP, "presence-h", "u1", s2, Some(&t2)).await;
    assert_eq!(left.unwrap(), Left::LastConnection);
    assert!(!h.release(of, "t1").await.unwrap(), "another hold");
    assert!(h.release(of, "t2").await.unwrap(), "due");
    assert!(!h.release(of, "t2").await.unwrap(), "once");
}

/// Counts add up over reporters, list by prefix, never go below zero, and apps are apart.
/// Leaves the backend empty.
pub async fn occupancy(o: &dyn Occupancy, h: &dyn Holds) {
    assert_eq!(o.add(APP, "presence-a", 1, None).await.unwrap().count, 1);
    assert_eq!(o.add(APP, "presence-a", 1, None).await.unwrap().count, 2);
    assert_eq!(o.add(APP, "news", 1, None).await.unwrap().count, 1);
    assert_eq!(o.add(OTHER_APP, "news", 1, None).await.unwrap().count, 1);
    assert_eq!(
        o.occupied(APP, "presence-").await.unwrap(),
        [("presence-a".to_string(), 2)]
    );
    assert_eq!(o.occupied(APP, "").await.unwrap().len(), 2);
    assert_eq!(o.add(APP, "news", -1, None).await.unwrap().count, 0);
    assert_eq!(o.count(APP, "news").await.unwrap(), 0);
    assert_eq!(
        o.add(APP, "news", -1, None).await.unwrap().count,
        0,
        "never below zero"
    );
    assert_eq!(
        o.occupied(APP, "").await.unwrap(),
        [("presence-a".to_string(), 2)]
    );
    assert_eq!(o.add(APP, "presence-a", -2, None).await.unwrap().count, 0);
    assert_eq!(o.add(OTHER_APP, "news", -1, None).await.unwrap().count, 0);
    // Restoring a share is idempotent and sets what this node counts.
    assert_eq!(o.add(APP, "sport", 2, None).await.unwrap().count, 2);
    o.restore(APP, "sport", 2).await.unwrap();
    assert_eq!(
        o.count(APP, "sport").await.unwrap(),
        2,
        "the same share again"
    );
    o.restore(APP, "sport", 5).await.unwrap();
    assert_eq!(o.count(APP, "sport").await.unwrap(), 5);
    o.restore(APP, "sport", 0).await.unwrap();
    assert_eq!(o.count(APP, "sport").await.unwrap(), 0);
    assert!(o.occupied(APP, "").await.unwrap().is_empty());
    // Vacating places the hold, occupying again cancels it; an uncancelled one is due once.
    let of = HoldOf::Vacated {
        app: APP,
        channel: "flap",
    };
    let (t1, t2) = (ticket("t1"), ticket("t2"));
    assert!(!o.add(APP, "flap", 1, None).await.unwrap().returned);
    assert_eq!(o.add(APP, "flap", -1, Some(&t1)).await.unwrap().count, 0);
    let back = o.add(APP, "flap", 1, None).await.unwrap();
    assert_eq!((back.count, back.returned), (1, true));
    assert!(!h.release(of, "t1").await.unwrap(), "cancelled");
    assert_eq!(o.add(APP, "flap", -1, Some(&t2)).await.unwrap().count, 0);
    assert!(h.release(of, "t2").await.unwrap(), "due");
    assert!(!h.release(of, "t2").await.unwrap(), "once");
}

/// A user is online from its first connection to its last, a connection counts once however
/// often it is reported, and apps are apart. Leaves the backend empty.
pub async fn users(u: &dyn Users) {
    let (s1, s2) = (socket(0, 1), socket(1, 1));
    assert!(u.connect(APP, "a", s1).await.unwrap());
    assert!(
        !u.connect(APP, "a", s1).await.unwrap(),
        "the same connection"
    );
    assert!(!u.connect(APP, "a", s2).await.unwrap());
    let asked: Vec<Box<str>> = vec!["b".into(), "a".into()];
    assert_eq!(u.online(APP, &asked).await.unwrap(), [Box::from("a")]);
    assert!(u.online(OTHER_APP, &asked).await.unwrap().is_empty());
    assert!(!u.disconnect(APP, "a", s1).await.unwrap());
    assert!(!u.disconnect(APP, "a", s1).await.unwrap(), "left already");
    assert!(u.disconnect(APP, "a", s2).await.unwrap());
    assert!(u.online(APP, &asked).await.unwrap().is_empty());
    assert!(
        !u.disconnect(APP, "a", s2).await.unwrap(),
        "already offline"
    );
}

fn serials(w: &Window) -> Vec<u64> {
    w.items.iter().map(|e| e.serial).collect()
}

/// One stream per channel: serials from 1, the app's count limit, windows in either direction
/// from a cursor and within bounds, apps apart.
pub async fn history(h: &dyn HistoryStore) {
    let keep = Retention {
        max_messages: 3,
        ttl_ms: 60_000,
    };
    let event = |n: u64| {
        Arc::new(Broadcast::event(
            APP,
            "news",
            "e",
            &format!("\"{n}\""),
            None,
        ))
    };
    let events: Vec<_> = (1..=5).map(event).collect();
    for e in &events {
        h.record(keep, e, "e", 1).await.unwrap();
    }
    let ask = |direction, from, bounds, count| Ask {
        direction,
        from,
        bounds,
        count,
    };
    let all = Bounds::default();
    // The window of "news" that `ask` wants (the channel has one).
    let news = |a: Ask| async move { h.window(APP, "news", keep, a).await.unwrap().unwrap() };
    let newest = ask(Direction::NewestFirst, None, all, 10);
    let w = news(newest).await;
    assert_eq!(serials(&w), [5, 4, 3], "the last three");
    assert_eq!((w.oldest.serial, w.newest.serial, w.messages), (3, 5, 3));
    let bytes: usize = events[2..].iter().map(|e| e.payload.len()).sum();
    assert_eq!(w.bytes, bytes);
    assert!(w.oldest.published_at_ms <= w.newest.published_at_ms);
    let top = &w.items[0];
    assert_eq!((&*top.name, top.data_len), ("e", 1));
    assert_eq!(top.message, events[4].payload, "the frame as delivered");
    assert!(!w.stream_id.is_empty() && w.stream_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let page = news(ask(Direction::OldestFirst, Some(4), all, 10)).await;
    assert_eq!(serials(&page), [4, 5]);
    let page = news(ask(Direction::NewestFirst, Some(4), all, 1)).await;
    assert_eq!(serials(&page), [4]);
    let bounded = Bounds {
        start_serial: Some(4),
        ..all
    };
    let page = news(ask(Direction::NewestFirst, None, bounded, 10)).await;
    assert_eq!(serials(&page), [5, 4]);
    let too_late = Bounds {
        start_time_ms: Some(w.newest.published_at_ms + 1),
        ..all
    };
    let page = news(ask(Direction::OldestFirst, None, too_late, 10)).await;
    assert!(page.items.is_empty() && page.messages == 3);
    assert!(
        h.window(OTHER_APP, "news", keep, newest)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.window(APP, "sport", keep, newest)
            .await
            .unwrap()
            .is_none()
    );
}

/// A cache channel's last event, until it expires; apps apart.
pub async fn cache(c: &dyn CacheStore) {
    let publish = |event: &'static str, data: &'static str, frame: &'static str| LastPublish {
        app: APP,
        channel: "cache-news",
        event,
        data,
        frame: frame.as_bytes(),
        ttl_s: 60,
    };
    c.remember(publish("e1", r#""one""#, r#"{"event":"e1"}"#))
        .await
        .unwrap();
    c.remember(publish("e2", r#""two""#, r#"{"event":"e2"}"#))
        .await
        .unwrap();
    let last = c.last(APP, "cache-news").await.unwrap().unwrap();
    assert_eq!((&*last.event, &*last.data), ("e2", r#""two""#));
    assert!((59..=60).contains(&last.ttl_s), "{}", last.ttl_s);
    if let Some(frame) = last.frame {
        assert_eq!(&*frame, br#"{"event":"e2"}"#);
    }
    assert_eq!(c.last(OTHER_APP, "cache-news").await.unwrap(), None);
    assert_eq!(c.last(APP, "cache-sport").await.unwrap(), None);
}

fn broadcast(channel: &str, n: u8) -> NodeEvent {
    NodeEvent::Broadcast {
        app_id: "app".into(),
        channel: channel.into(),
        payload: format!(r#"{{"event":"e","channel":"{channel}","data":"{n}"}}"#)
            .into_bytes()
            .into_boxed_slice(),
        except: None,
        cacheable: false,
    }
}

/// Three nodes: a broadcast reaches each other node interested in its channel once and in
/// order, never the sender nor an uninterested node; a cluster-wide command reaches all.
pub async fn transport(nodes: &[impl Transport; 3]) {
    let [a, b, c] = nodes;
    assert!(a.has_peers());
    for node in [a, b, c] {
        node.interest("app", "news", true).await.unwrap();
    }
    b.interest("app", "sport", true).await.unwrap();
    a.send(&broadcast("news", 1)).await.unwrap();
    a.send(&broadcast("sport", 2)).await.unwrap();
    a.send(&broadcast("news", 3)).await.unwrap();
    assert_eq!(b.recv().await.unwrap(), broadcast("news", 1));
    assert_eq!(b.recv().await.unwrap(), broadcast("sport", 2));
    assert_eq!(b.recv().await.unwrap(), broadcast("news", 3));
    // `c` is not interested in "sport"; `a` does not hear itself.
    assert_eq!(c.recv().await.unwrap(), broadcast("news", 1));
    assert_eq!(c.recv().await.unwrap(), broadcast("news", 3));
    let terminate = NodeEvent::TerminateUser {
        app_id: "app".into(),
        user_id: "u1".into(),
    };
    c.send(&terminate).await.unwrap();
    assert_eq!(
        a.recv().await.unwrap(),
        terminate,
        "a heard nothing of its own before"
    );
    assert_eq!(b.recv().await.unwrap(), terminate);
    let offline = NodeEvent::UserStatus {
        app_id: "app".into(),
        user_id: "u2".into(),
        online: false,
    };
    b.send(&offline).await.unwrap();
    assert_eq!(a.recv().await.unwrap(), offline);
    assert_eq!(c.recv().await.unwrap(), offline);
    // Interest ends: `b` no longer hears "news".
    b.interest("app", "news", false).await.unwrap();
    a.send(&broadcast("news", 4)).await.unwrap();
    a.send(&broadcast("sport", 5)).await.unwrap();
    assert_eq!(b.recv().await.unwrap(), broadcast("sport", 5));
    assert_eq!(c.recv().await.unwrap(), broadcast("news", 4));
}
