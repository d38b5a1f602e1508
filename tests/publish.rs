//! Publishing over the signed HTTP API (docs/http-api.md): delivery, exclusion, fan-out over all
//! shards, and every refusal with its status, after which the server still serves.

mod common;
use common::*;
use serde_json::{Value, json};

#[test]
fn publish_reaches_subscribers_with_data_byte_for_byte() {
    let server = Server::start(&[]);
    let mut ws = server.ws();
    ws.subscribe("news");
    let mut api = server.api();
    let data = r#"{"b":1,"a":[1.50,"é\u00e9"]}"#;
    api.trigger("news", "story", data);
    let ev = ws.expect("story");
    assert_eq!(ev["channel"], "news");
    assert_eq!(
        ev["data"], data,
        "data is the publisher's string, unchanged"
    );
    // An object is accepted and serialized once.
    let r = api.post(
        "/events",
        &json!({"name":"obj","channel":"news","data":{"x":1}}),
    );
    assert_eq!(r.status, 200);
    let ev = ws.expect("obj");
    assert_eq!(ev["data"], r#"{"x":1}"#);
}

#[test]
fn keep_alive_batch_and_multi_channel() {
    let server = Server::start(&[]);
    let mut a = server.ws();
    let mut b = server.ws();
    a.subscribe("ch-a");
    b.subscribe("ch-b");
    let mut api = server.api();
    // Several requests on one connection.
    api.trigger("ch-a", "one", "1");
    let r = api.post(
        "/events",
        &json!({"name":"two","channels":["ch-a","ch-b"],"data":"2"}),
    );
    assert_eq!(r.status, 200);
    let r = api.post(
        "/batch_events",
        &json!({"batch":[
        {"channel":"ch-a","name":"three","data":"3"},
        {"channel":"ch-b","name":"four","data":"4"}]}),
    );
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    assert_eq!(a.expect("one")["data"], "1");
    assert_eq!(a.expect("two")["channel"], "ch-a");
    assert_eq!(a.expect("three")["data"], "3");
    assert_eq!(b.expect("two")["channel"], "ch-b");
    assert_eq!(b.expect("four")["data"], "4");
}

#[test]
fn socket_id_excludes_the_publisher() {
    let server = Server::start(&[]);
    let mut me = server.ws();
    let mut other = server.ws();
    me.subscribe("room");
    other.subscribe("room");
    let mut api = server.api();
    let r = api.post(
        "/events",
        &json!({"name":"excluded","channel":"room","data":"x","socket_id":me.socket_id}),
    );
    assert_eq!(r.status, 200);
    let r = api.post("/batch_events", &json!({"batch":[{"name":"excluded-too","channel":"room","data":"x","socket_id":me.socket_id}]}));
    assert_eq!(r.status, 200);
    api.trigger("room", "after", "y");
    // Events on a channel arrive in order: if the excluded ones had reached `me`, they would
    // come before "after".
    assert_eq!(me.expect("after")["data"], "y");
    other.expect("excluded");
    other.expect("excluded-too");
    other.expect("after");
}

#[test]
fn thousand_subscribers_over_all_shards_get_exactly_one_copy() {
    let server = Server::start(&[("RINGCAST_SHARDS", "2")]);
    let mut clients: Vec<Ws> = (0..1000).map(|_| server.ws()).collect();
    let mut shards = std::collections::HashSet::new();
    for c in &mut clients {
        shards.insert(c.shard());
        c.send_json(json!({"event":"pusher:subscribe","data":{"channel":"fanout"}}));
    }
    assert_eq!(shards.len(), 2, "connections landed on both shards");
    for c in &mut clients {
        c.expect("pusher_internal:subscription_succeeded");
    }
    let mut api = server.api();
    api.trigger("fanout", "hello", "once");
    api.trigger("fanout", "marker", "end");
    for c in &mut clients {
        assert_eq!(c.expect("hello")["data"], "once");
        // The next event is the marker: no duplicate of "hello".
        c.expect("marker");
    }
}

fn status_of(server: &Server, method: &str, target: &str, body: &[u8]) -> (u16, Value) {
    let r = server.http().request(method, target, &[], body);
    let json = r.json();
    assert!(
        json["error"].is_string() && json["code"].is_string(),
        "error shape: {}",
        r.body
    );
    (r.status, json)
}

#[test]
fn refusals_have_the_spec_status_codes() {
    let server = Server::with_config(&format!(
        "{}{}{}",
        dev_app_toml("max_event_payload_kb = 1"),
        app_toml("other", ""),
        app_toml("off", "enabled = false")
    ));
    let now = unix_now();
    let good = br#"{"name":"e","channel":"c","data":"x"}"#;
    let sign = |key: &str, secret: &str, path: &str, body: &[u8], ts: u64| {
        signed_target(key, secret, "POST", path, body, &[], ts)
    };
    let events = "/apps/app-id/events";

    struct Case<'a> {
        what: &'a str,
        key: &'a str,
        secret: &'a str,
        path: &'a str,
        /// The body the signature covers, and the body actually sent.
        bodies: (&'a [u8], &'a [u8]),
        timestamp: u64,
        status: u16,
    }
    let case = |what, key, secret, path, bodies, timestamp, status| Case {
        what,
        key,
        secret,
        path,
        bodies,
        timestamp,
        status,
    };
    let other = br#"{"name":"e","channel":"c","data":"y"}"#;
    let cases = [
        case(
            "unknown app id, before any signature check",
            "app-key",
            "app-secret",
            "/apps/nope/events",
            (good, good),
            now,
            404,
        ),
        case(
            "another app's key",
            "other-key",
            "other-secret",
            events,
            (good, good),
            now,
            401,
        ),
        case(
            "unknown key",
            "who",
            "app-secret",
            events,
            (good, good),
            now,
            401,
        ),
        case(
            "wrong secret",
            "app-key",
            "wrong",
            events,
            (good, good),
            now,
            401,
        ),
        case(
            "stale timestamp",
            "app-key",
            "app-secret",
            events,
            (good, good),
            now - 700,
            401,
        ),
        case(
            "body_md5 of another body",
            "app-key",
            "app-secret",
            events,
            (good, other),
            now,
            401,
        ),
        case(
            "disabled app",
            "off-key",
            "off-secret",
            "/apps/off/events",
            (good, good),
            now,
            403,
        ),
        case(
            "control: a good request",
            "app-key",
            "app-secret",
            events,
            (good, good),
            now,
            200,
        ),
    ];
    for c in cases {
        let target = sign(c.key, c.secret, c.path, c.bodies.0, c.timestamp);
        let r = server.http().request("POST", &target, &[], c.bodies.1);
        assert_eq!(r.status, c.status, "{}: {}", c.what, r.body);
    }
    // No signature at all.
    assert_eq!(status_of(&server, "POST", events, good).0, 401);
    // Wrong method → 405; unknown route → 404.
    let get = signed_target("app-key", "app-secret", "GET", events, b"", &[], now);
    assert_eq!(status_of(&server, "GET", &get, b"").0, 405);
    let nowhere = signed_target(
        "app-key",
        "app-secret",
        "GET",
        "/apps/app-id/nowhere",
        b"",
        &[],
        now,
    );
    assert_eq!(status_of(&server, "GET", &nowhere, b"").0, 404);

    let bad_bodies: Vec<(Value, u16)> = vec![
        (json!({"channel":"c","data":"x"}), 400),
        (json!({"name":"e","data":"x"}), 400),
        (json!({"name":"e","channel":"bad name","data":"x"}), 400),
        (
            json!({"name":"e","channels":(0..101).map(|i| format!("c{i}")).collect::<Vec<_>>(),"data":"x"}),
            400,
        ),
        (json!({"name":"e","channels":[],"data":"x"}), 400),
        (
            json!({"name":"e".repeat(201),"channel":"c","data":"x"}),
            400,
        ),
        (
            json!({"name":"e","channel":"c","data":"x","socket_id":"abc"}),
            400,
        ),
        (
            json!({"name":"e","channel":"c","data":"x","socket_id":"1.2.3"}),
            400,
        ),
        (
            json!({"name":"e","channel":"c","data":"x".repeat(2000)}),
            413,
        ),
    ];
    for (body, status) in bad_bodies {
        let bytes = body.to_string().into_bytes();
        let (got, json) = status_of(
            &server,
            "POST",
            &sign("app-key", "app-secret", events, &bytes, now),
            &bytes,
        );
        assert_eq!(got, status, "{body} → {json}");
    }
    let not_json = b"{not json";
    assert_eq!(
        status_of(
            &server,
            "POST",
            &sign("app-key", "app-secret", events, not_json, now),
            not_json
        )
        .0,
        400
    );
    let batch: Value = json!({"batch": (0..11).map(|i| json!({"name":"e","channel":format!("c{i}"),"data":"x"})).collect::<Vec<_>>()});
    let bytes = batch.to_string().into_bytes();
    assert_eq!(
        status_of(
            &server,
            "POST",
            &sign(
                "app-key",
                "app-secret",
                "/apps/app-id/batch_events",
                &bytes,
                now
            ),
            &bytes
        )
        .0,
        400
    );
    // One bad item refuses the whole batch: nothing is delivered.
    let mut ws = server.ws();
    ws.subscribe("c");
    let mixed = json!({"batch":[{"name":"first","channel":"c","data":"x"},{"name":"e","channel":"bad name","data":"x"}]}).to_string().into_bytes();
    assert_eq!(
        status_of(
            &server,
            "POST",
            &sign(
                "app-key",
                "app-secret",
                "/apps/app-id/batch_events",
                &mixed,
                now
            ),
            &mixed
        )
        .0,
        400
    );

    // After all that, publishing still works and the refused batch delivered nothing.
    let mut api = server.api();
    api.trigger("c", "fine", "ok");
    assert_eq!(ws.expect("fine")["data"], "ok");
}

#[test]
fn oversize_and_malformed_http_requests() {
    let server = Server::start(&[]);
    let mut http = server.http();
    http.send_raw(b"POST /apps/app-id/events HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n");
    assert_eq!(http.read_response().status, 413);
    let mut http = server.http();
    http.send_raw(b"\x00\x01garbage\r\n\r\n");
    assert_eq!(http.read_response().status, 400);
    let mut http = server.http();
    http.send_raw(b"POST /apps/app-id/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(http.read_response().status, 411);
    // Query strings exactly as SDKs send them (unescaped `,` and `:`) still verify.
    let mut ws = server.ws();
    ws.subscribe("q");
    let body = br#"{"name":"e","channel":"q","data":"x","info":"subscription_count,user_count"}"#;
    let target = signed_target(
        APP_KEY,
        APP_SECRET,
        "POST",
        "/apps/app-id/events",
        body,
        &[("x_extra", "a:b,c")],
        unix_now(),
    );
    assert_eq!(
        server.http().request("POST", &target, &[], body).status,
        200
    );
    ws.expect("e");
}
