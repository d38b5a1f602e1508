//! Channel history (docs/http-api.md): the exact answer, cursors that visit every retained event once
//! in either direction while publishing continues, bounds, retention, and the 400/404 rules.

mod common;
use common::*;
use serde_json::{Value, json};

fn history(api: &mut Api, channel: &str, params: &[(&str, &str)]) -> Value {
    let r = api.get(&format!("/channels/{channel}/history"), params);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn serials(page: &Value) -> Vec<u64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["serial"].as_u64().expect("serial"))
        .collect()
}

/// Follows cursors from the first page to the last; returns every serial seen.
fn walk(api: &mut Api, channel: &str, direction: &str, limit: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("direction", direction), ("limit", limit)];
        if let Some(c) = &cursor {
            params.push(("cursor", c.as_str()));
        }
        let page = history(api, channel, &params);
        seen.extend(serials(&page));
        if page["has_more"] == false {
            assert_eq!(page["next_cursor"], Value::Null);
            return seen;
        }
        let next = page["next_cursor"]
            .as_str()
            .expect("next_cursor")
            .to_string();
        assert!(
            next.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)),
            "cursor {next} is not URL-safe"
        );
        cursor = Some(next);
    }
}

#[test]
fn a_page_has_the_exact_fields() {
    let server = Server::start(&[]);
    let mut api = server.api();
    let before = unix_now() * 1000;
    api.trigger("my-channel", "my-event", r#"{"a":1}"#);
    api.trigger("my-channel", "my-event", "second");
    let page = history(&mut api, "my-channel", &[]);
    let items = page["items"].as_array().unwrap();
    assert_eq!(serials(&page), [2, 1]);
    let first = &items[1];
    let stream = first["stream_id"].as_str().unwrap();
    assert!(!stream.is_empty());
    assert_eq!(items[0]["stream_id"], stream);
    assert!(first["published_at_ms"].as_u64().unwrap() >= before);
    assert!(first["message_id"].as_str().is_some_and(|m| !m.is_empty()));
    assert_ne!(first["message_id"], items[0]["message_id"]);
    assert_eq!(first["event_name"], "my-event");
    assert_eq!(first["operation_kind"], "append");
    assert_eq!(first["payload_size_bytes"], 7);
    assert_eq!(
        first["message"],
        json!({"event":"my-event","channel":"my-channel","data":"{\"a\":1}"})
    );
    assert_eq!(page["direction"], "newest_first");
    assert_eq!(page["limit"], 100);
    assert_eq!(page["has_more"], false);
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(
        page["bounds"],
        json!({"start_serial":null,"end_serial":null,"start_time_ms":null,"end_time_ms":null})
    );
    let c = &page["continuity"];
    assert_eq!(c["stream_id"], stream);
    assert_eq!(
        (
            c["oldest_available_serial"].as_u64(),
            c["newest_available_serial"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        c["oldest_available_published_at_ms"],
        first["published_at_ms"]
    );
    assert_eq!(
        c["newest_available_published_at_ms"],
        items[0]["published_at_ms"]
    );
    assert_eq!(c["retained_messages"], 2);
    assert!(c["retained_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        (
            c["complete"].as_bool(),
            c["truncated_by_retention"].as_bool()
        ),
        (Some(true), Some(false))
    );

    // A channel without history answers an empty page.
    let none = history(&mut api, "quiet", &[]);
    assert_eq!(serials(&none), Vec::<u64>::new());
    assert_eq!(none["continuity"]["stream_id"], Value::Null);
}

#[test]
fn cursors_visit_every_event_once_in_both_directions_while_publishing_continues() {
    let server = Server::with_config(&dev_app_toml("history_max_messages = 5000"));
    let mut api = server.api();
    for i in 0..60 {
        api.trigger("busy", "e", &i.to_string());
    }
    let mut publisher = server.api();
    let running = std::thread::spawn(move || {
        for i in 60..250 {
            publisher.trigger("busy", "e", &i.to_string());
        }
    });
    let mut newest = Vec::new();
    let mut oldest = Vec::new();
    while !running.is_finished() {
        newest = walk(&mut api, "busy", "newest_first", "13");
        let top = newest[0];
        assert_eq!(newest, (1..=top).rev().collect::<Vec<_>>());
        oldest = walk(&mut api, "busy", "oldest_first", "17");
        let last = *oldest.last().unwrap();
        assert!(last >= top);
        assert_eq!(oldest, (1..=last).collect::<Vec<_>>());
    }
    running.join().unwrap();
    assert!(!newest.is_empty() && !oldest.is_empty());
    assert_eq!(
        walk(&mut api, "busy", "oldest_first", "1000"),
        (1..=250).collect::<Vec<_>>()
    );
    assert_eq!(
        walk(&mut api, "busy", "newest_first", "33"),
        (1..=250).rev().collect::<Vec<_>>()
    );
}

#[test]
fn bounds_limit_the_page_and_bad_parameters_answer_400() {
    let server = Server::start(&[]);
    let mut api = server.api();
    for i in 0..10 {
        api.trigger("b", "e", &i.to_string());
    }
    let page = history(&mut api, "b", &[("start_serial", "3"), ("end_serial", "6")]);
    assert_eq!(serials(&page), [6, 5, 4, 3]);
    assert_eq!(page["bounds"]["start_serial"], 3);
    assert_eq!(page["bounds"]["end_time_ms"], Value::Null);
    let page = history(
        &mut api,
        "b",
        &[
            ("start_serial", "3"),
            ("direction", "oldest_first"),
            ("limit", "2"),
        ],
    );
    assert_eq!(serials(&page), [3, 4]);
    assert_eq!(page["has_more"], true);

    let all = history(&mut api, "b", &[("direction", "oldest_first")]);
    let at = |i: usize| {
        all["items"][i]["published_at_ms"]
            .as_u64()
            .unwrap()
            .to_string()
    };
    let (from, to) = (at(2), at(7));
    let page = history(
        &mut api,
        "b",
        &[("start_time_ms", &from), ("end_time_ms", &to)],
    );
    let got = serials(&page);
    assert!(got.contains(&3) && got.contains(&8), "{got:?}");
    assert!(got.iter().all(|s| {
        let t = all["items"][*s as usize - 1]["published_at_ms"]
            .as_u64()
            .unwrap();
        t >= from.parse().unwrap() && t <= to.parse().unwrap()
    }));

    let newest_cursor = history(&mut api, "b", &[("limit", "1")])["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let bad: &[&[(&str, &str)]] = &[
        &[("limit", "0")],
        &[("limit", "abc")],
        &[("limit", "1001")],
        &[("direction", "sideways")],
        &[("cursor", "garbage")],
        &[("cursor", &newest_cursor), ("direction", "oldest_first")],
        &[("start_serial", "x")],
        &[("start_serial", "5"), ("end_serial", "4")],
        &[("end_time_ms", "-1")],
    ];
    for params in bad {
        let r = api.get("/channels/b/history", params);
        assert_eq!(r.status, 400, "{params:?}: {}", r.body);
        assert!(r.json()["error"].is_string());
    }
    let r = api.get("/channels/bad%20name/history", &[]);
    assert_eq!(r.status, 400);
}

#[test]
fn retention_keeps_the_newest_and_says_what_is_gone() {
    let server = Server::with_config(&dev_app_toml("history_max_messages = 5"));
    let mut api = server.api();
    for i in 0..8 {
        api.trigger("r", "e", &i.to_string());
    }
    let page = history(&mut api, "r", &[]);
    assert_eq!(serials(&page), [8, 7, 6, 5, 4]);
    let c = &page["continuity"];
    assert_eq!(c["oldest_available_serial"], 4);
    assert_eq!(c["retained_messages"], 5);
    assert_eq!(c["truncated_by_retention"], true);
    assert_eq!(c["complete"], false);
    let bounded = history(&mut api, "r", &[("start_serial", "5")]);
    assert_eq!(bounded["continuity"]["complete"], true);
}

#[test]
fn history_off_answers_404_and_a_restart_starts_a_new_stream() {
    let off = Server::with_config(&dev_app_toml("history_max_messages = 0"));
    let mut api = off.api();
    api.trigger("x", "e", "1");
    let r = api.get("/channels/x/history", &[]);
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("history"));

    let stream_of = |server: &Server| {
        let mut api = server.api();
        api.trigger("x", "e", "1");
        history(&mut api, "x", &[])["items"][0]["stream_id"].clone()
    };
    let first = stream_of(&Server::start(&[]));
    let second = stream_of(&Server::start(&[]));
    assert_ne!(first, second);
}
