//! Sign-in and watchlists.

use super::*;

#[test]
fn signin_checks_the_signature_and_the_user() {
    let mut w = World::new();
    let c = w.connect();
    let msg =
        r#"{"event":"pusher:signin","data":{"auth":"app-key:00","user_data":"{\"id\":\"1\"}"}}"#;
    let bad = w.send(c, msg);
    assert_eq!(bad.close.map(|c| c.code), Some(ErrorCode::Unauthorized));
    let no_id = w.signin(c, r#"{"name":"x"}"#);
    assert_eq!(no_id.close.map(|c| c.code), Some(ErrorCode::Unauthorized));
    assert!(!w.state.hub.conn(c).unwrap().is_authenticated());

    let ok = w.signin(c, r#"{"id":"u1","watchlist":["a","b"]}"#);
    assert_eq!(events(&ok), ["pusher:signin_success"]);
    assert_eq!(report_kinds(&ok), ["online"]);
    let ApiCommand::UserOnline { watchlist, .. } = &ok.reports[0] else {
        unreachable!()
    };
    assert_eq!(watchlist.len(), 2);
    let conn = w.state.hub.conn(c).unwrap();
    assert!(conn.is_authenticated());
    assert_eq!(conn.user_id().map(|u| &**u), Some("u1"));
}

#[test]
fn a_replayed_signin_reports_nothing_and_another_user_replaces_the_first() {
    let mut w = World::new();
    let c = w.connect();
    assert_eq!(report_kinds(&w.signin(c, r#"{"id":"u1"}"#)), ["online"]);
    let again = w.signin(c, r#"{"id":"u1"}"#);
    assert_eq!(events(&again), ["pusher:signin_success"]);
    assert!(again.reports.is_empty(), "a replay tells nobody");
    let other = w.signin(c, r#"{"id":"u2"}"#);
    assert_eq!(report_kinds(&other), ["offline", "online"]);
    let ApiCommand::UserOffline { user_id, .. } = &other.reports[0] else {
        unreachable!()
    };
    assert_eq!(&**user_id, "u1");
    let conn = w.state.hub.conn(c).unwrap();
    assert_eq!(conn.user_id().map(|u| &**u), Some("u2"));
}

#[test]
fn a_watchlist_over_100_is_cut_with_4302() {
    let mut w = World::new();
    let c = w.connect();
    let ids: Vec<String> = (0..150).map(|i| format!("w{i}")).collect();
    let data = serde_json::json!({ "id": "u1", "watchlist": ids }).to_string();
    let e = w.signin(c, &data);
    assert_eq!(events(&e), ["pusher:signin_success", "pusher:error"]);
    assert_eq!(frames(&e)[1]["data"]["code"], 4302);
    let ApiCommand::UserOnline { watchlist, .. } = &e.reports[0] else {
        unreachable!()
    };
    assert_eq!(watchlist.len(), 100);
}
