//! `/metrics` (docs/deployment.md): scraped over HTTP from `metrics_port` while real clients connect,
//! publish, fail and leave; and a metrics port in use fails the start.

mod common;
use common::metrics::*;
use common::*;
use serde_json::json;

#[test]
fn metrics_follow_connections_messages_http_and_closes() {
    let port = free_port();
    let server = Server::start(&[
        ("RINGCAST_METRICS_PORT", &port.to_string()),
        ("RINGCAST_SHARDS", "2"),
    ]);
    let text = scrape(port);
    for family in [
        "ringcast_connections",
        "ringcast_new_connections_total",
        "ringcast_disconnections_total",
        "ringcast_messages_received_total",
        "ringcast_messages_sent_total",
        "ringcast_bytes_received_total",
        "ringcast_bytes_sent_total",
        "ringcast_http_requests_total",
        "ringcast_webhook_deliveries_total",
        "ringcast_webhook_failures_total",
        "ringcast_shard_connections",
        "ringcast_shard_queue_depth",
        "ringcast_broadcast_latency_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no {family}:\n{text}"
        );
    }

    let mut clients = server.clients_on_both_shards(2);
    let n = clients.len() as f64;
    metric_reaches(port, "ringcast_connections", n);
    assert_eq!(
        value(port, "ringcast_shard_connections{shard=\"0\"}")
            + value(port, "ringcast_shard_connections{shard=\"1\"}"),
        n
    );
    for ws in &mut clients {
        ws.subscribe("m");
    }
    let mut api = server.api();
    api.trigger("m", "e", "x");
    for ws in &mut clients {
        ws.expect("e");
    }
    metric_reaches(port, "ringcast_messages_sent_total", n);
    metric_reaches(port, "ringcast_messages_received_total", n);
    metric_reaches(port, "ringcast_broadcast_latency_seconds_count", 2.0);
    assert!(value(port, "ringcast_bytes_sent_total") > 0.0);
    assert!(value(port, "ringcast_bytes_received_total") > 0.0);
    metric_reaches(port, "ringcast_http_requests_total{status=\"200\"}", 1.0);
    let bad = api
        .http
        .request("POST", "/apps/app-id/events?auth_key=app-key", &[], b"{}");
    assert_eq!(bad.status, 401);
    metric_reaches(port, "ringcast_http_requests_total{status=\"401\"}", 1.0);

    // A bad sign-in closes with 4009; a client's own close is echoed with its code.
    let mut signer = server.ws();
    signer.send_json(
        json!({"event":"pusher:signin","data":{"auth":"app-key:00","user_data":"{\"id\":\"u\"}"}}),
    );
    signer.expect_error(4009);
    signer.expect_close(4009);
    metric_reaches(port, "ringcast_disconnections_total{code=\"4009\"}", 1.0);
    clients.pop().unwrap().close();
    metric_reaches(port, "ringcast_disconnections_total{code=\"1000\"}", 1.0);
    metric_reaches(port, "ringcast_new_connections_total", n + 1.0);

    let mut http = Http::connect(([127, 0, 0, 1], port).into());
    assert_eq!(http.request("GET", "/other", &[], b"").status, 404);
}

#[test]
fn a_metrics_port_in_use_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = binary()
        .env("RINGCAST_HOST", "127.0.0.1")
        .env("RINGCAST_PORT", "0")
        .env("RINGCAST_METRICS_PORT", &port)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics_port"), "{err}");
}
