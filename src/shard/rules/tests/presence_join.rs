//! Presence joins: checked, pending, admitted or refused, given up.

use super::*;

#[test]
fn presence_subscriptions_are_checked_before_asking() {
    let mut w = World::with(|a| a.max_presence_member_size_kb = 1);
    let c = w.connect();
    let missing = w.subscribe(c, "presence-a", Some("k:s"));
    assert_eq!(refusal_status(&missing), 400, "no channel_data");
    let data = r#"{"user_id":"u1"}"#;
    let msg = serde_json::json!({"event":"pusher:subscribe","data":{
        "channel":"presence-a","auth":format!("{KEY}:{}", "0".repeat(64)),"channel_data":data}});
    assert_eq!(refusal_status(&w.send(c, &msg.to_string())), 401);
    assert_eq!(
        refusal_status(&w.join_presence(c, "presence-a", "not json")),
        400
    );
    assert_eq!(
        refusal_status(&w.join_presence(c, "presence-a", r#"{"user_id":""}"#)),
        400
    );
    assert_eq!(
        refusal_status(&w.join_presence(c, "presence-a", r#"{"x":1}"#)),
        400
    );
    let big = format!(r#"{{"user_id":"u1","user_info":"{}"}}"#, "x".repeat(1100));
    assert_eq!(refusal_status(&w.join_presence(c, "presence-a", &big)), 403);
    assert!(w.state.outstanding.is_empty(), "nothing was asked");
}

#[test]
fn a_presence_join_is_pending_until_admitted() {
    let mut w = World::new();
    let c = w.connect();
    let e = w.join_presence(c, "presence-a", r#"{"user_id":7,"user_info":{"n":1}}"#);
    assert!(e.frames.is_empty(), "nothing until the API core answers");
    assert_eq!(report_kinds(&e), ["join"]);
    let ApiCommand::Ask {
        question: Question::PresenceJoin(j),
        ..
    } = &e.reports[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (&*j.user_id, &*j.user_info),
        ("7", r#"{"n":1}"#),
        "numbers become strings"
    );
    assert!(!w.subscribed(c, "presence-a"));
    let again = w.join_presence(c, "presence-a", r#"{"user_id":7}"#);
    assert_eq!(
        error_code(&again),
        4300,
        "a pending join counts as subscribed"
    );

    let data = r#"{"presence":{"ids":["7"],"hash":{"7":{"n":1}},"count":1}}"#;
    let done = w.answer(join_request(&e), Ok(data.into())).unwrap();
    assert_eq!(events(&done), ["pusher_internal:subscription_succeeded"]);
    assert_eq!(frames(&done)[0]["data"], data);
    assert_eq!(report_kinds(&done), ["+1"]);
    assert!(w.subscribed(c, "presence-a"));
    assert!(w.state.hub.conn(c).unwrap().is_authenticated());
}

#[test]
fn a_refused_presence_join_leaves_nothing() {
    let mut w = World::new();
    let c = w.connect();
    let e = w.join_presence(c, "presence-a", r#"{"user_id":"u1"}"#);
    let refused = w
        .answer(
            join_request(&e),
            Err(SubscriptionRefusal::ChannelFull { max: 1 }),
        )
        .unwrap();
    assert_eq!(refusal_status(&refused), 403);
    assert!(!w.subscribed(c, "presence-a"));
    assert!(
        w.state
            .hub
            .conn(c)
            .unwrap()
            .joins()
            .presence()
            .next()
            .is_none()
    );
    let gone = on_disconnect(w.state.hub.conn(c).unwrap());
    assert!(gone.reports.is_empty(), "no leave for a refused join");
}

#[test]
fn subscribe_unsubscribe_subscribe_ends_subscribed_by_the_second_join() {
    let mut w = World::new();
    let c = w.connect();
    let data = r#"{"user_id":"u1"}"#;
    let first = w.join_presence(c, "presence-a", data);
    let left = w.send(
        c,
        r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-a"}}"#,
    );
    assert_eq!(report_kinds(&left), ["leave"], "a pending join is given up");
    let second = w.join_presence(c, "presence-a", data);
    assert_ne!(join_request(&first), join_request(&second));
    // The API core answers in order; the first answer belongs to a join that is gone.
    let stale = w.answer(join_request(&first), Ok("{}".into()));
    assert!(stale.is_none(), "{stale:?}");
    assert!(!w.subscribed(c, "presence-a"));
    let done = w
        .answer(join_request(&second), Ok(r#"{"presence":{}}"#.into()))
        .unwrap();
    assert_eq!(events(&done), ["pusher_internal:subscription_succeeded"]);
    assert_eq!(frames(&done)[0]["data"], r#"{"presence":{}}"#);
    assert!(w.subscribed(c, "presence-a"));
}

#[test]
fn unsubscribe_during_a_pending_join_drops_its_answer() {
    let mut w = World::new();
    let c = w.connect();
    let e = w.join_presence(c, "presence-a", r#"{"user_id":"u1"}"#);
    w.send(
        c,
        r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-a"}}"#,
    );
    assert!(w.answer(join_request(&e), Ok("{}".into())).is_none());
    assert!(!w.subscribed(c, "presence-a"));
    let not = w.send(
        c,
        r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-a"}}"#,
    );
    assert_eq!(error_code(&not), 4300);
}

#[test]
fn a_departure_reports_subscriptions_presence_and_user() {
    let mut w = World::new();
    let c = w.connect();
    w.subscribe(c, "news", None);
    w.signin(c, r#"{"id":"u1"}"#);
    let joined = w.join_presence(c, "presence-a", r#"{"user_id":"u1"}"#);
    w.answer(join_request(&joined), Ok("{}".into()));
    w.join_presence(c, "presence-b", r#"{"user_id":"u1"}"#);
    let conn = w.state.hub.remove(c).unwrap();
    let mut kinds = report_kinds(&on_disconnect(&conn));
    kinds.sort();
    assert_eq!(kinds, ["-1", "-1", "leave", "leave", "offline"]);
}

#[test]
fn a_member_that_unsubscribes_leaves_the_index_and_the_membership() {
    let mut w = World::new();
    let c = w.connect();
    let e = w.join_presence(c, "presence-a", r#"{"user_id":"u1"}"#);
    w.answer(join_request(&e), Ok("{}".into())).unwrap();
    let left = w.send(
        c,
        r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-a"}}"#,
    );
    assert!(left.frames.is_empty());
    assert_eq!(report_kinds(&left), ["-1", "leave"]);
    let ApiCommand::PresenceLeave { user_id, .. } = &left.reports[1] else {
        unreachable!()
    };
    assert_eq!(&**user_id, "u1");
    assert!(!w.subscribed(c, "presence-a"));
    let rejoin = w.join_presence(c, "presence-a", r#"{"user_id":"u1"}"#);
    assert_eq!(report_kinds(&rejoin), ["join"], "it may join again");
}
