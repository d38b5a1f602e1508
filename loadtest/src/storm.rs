//! The `storm` scenario: N clients connected and subscribed, then every one dropped at the
//! same moment and reconnected at once, as after a network blip or a server restart behind a
//! load balancer. Reports the reconnect wave's connect latency (TCP connect to
//! `subscription_succeeded`) and errors.

use crate::wave::{Wave, connect_all};
use crate::{Args, percentile_ms};
use serde_json::json;
use std::net::SocketAddr;

fn report(w: &Wave) -> serde_json::Value {
    json!({
        "ok": w.conns.len(),
        "errors": w.errors,
        "seconds": w.seconds,
        "per_s": w.conns.len() as f64 / w.seconds.max(1e-9),
        "p50_ms": percentile_ms(&w.latency, 0.5),
        "p99_ms": percentile_ms(&w.latency, 0.99),
        "max_ms": w.latency.max() as f64 / 1000.0,
    })
}

pub async fn run(args: Args, target: SocketAddr) -> serde_json::Value {
    let first = connect_all(&args, target, "storm").await;
    let first_report = report(&first);
    // Everyone goes at once; the server sees a flood of closes, then of connects.
    drop(first.conns);
    let storm = connect_all(&args, target, "storm").await;
    json!({
        "scenario": "storm",
        "connections": args.connections,
        "connect_concurrency": args.connect_concurrency,
        "initial": first_report,
        "reconnect": report(&storm),
    })
}
