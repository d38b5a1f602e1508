//! The `publish` scenario: how many signed publishes per second the HTTP API answers over
//! keep-alive connections, optionally with an idempotency key on every request.

use crate::publisher::{Credentials, Publisher};
use crate::{Args, percentile_ms, server_stats};
use hdrhistogram::Histogram;
use serde_json::json;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
}

pub async fn run(args: Args, target: SocketAddr, creds: Rc<Credentials>) -> serde_json::Value {
    let path = format!("/apps/{}/events", creds.app_id);
    let latency = Rc::new(RefCell::new(Histogram::<u64>::new(3).expect("histogram")));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let cpu_before = args.server_pid.and_then(server_stats::cpu_seconds);
    let api_before = args
        .server_pid
        .and_then(|p| server_stats::thread_cpu_seconds(p, "api"));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    // A per-run prefix keeps keys fresh across runs against the same server.
    let run_id = start.elapsed().as_nanos() ^ u128::from(std::process::id());
    let mut tasks = Vec::new();
    for p in 0..args.publishers {
        let (creds, path, latency, tally) =
            (creds.clone(), path.clone(), latency.clone(), tally.clone());
        let keyed = args.idempotency_keys;
        tasks.push(tokio::task::spawn_local(async move {
            let Ok(mut publisher) = Publisher::connect(target).await else {
                tally.borrow_mut().failed += 1;
                return;
            };
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let key = keyed.then(|| format!("lg{run_id:x}-{p}:{n}"));
                let mut body = json!({"name":"lg","channel":"lg-publish","data":"{\"n\":1}"});
                if let Some(k) = &key {
                    body["idempotency_key"] = json!(k);
                }
                let body = body.to_string();
                let t = Instant::now();
                let status = publisher
                    .post_keyed(&creds, &path, body.as_bytes(), key.as_deref())
                    .await;
                let _ = latency.borrow_mut().record(t.elapsed().as_micros() as u64);
                match status {
                    Ok(200) => tally.borrow_mut().ok += 1,
                    _ => tally.borrow_mut().failed += 1,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let tally = tally.borrow();
    let lat = latency.borrow();
    let cpu = |before: Option<f64>, now: Option<f64>| {
        before.zip(now).map(|(b, n)| (n - b) / elapsed * 100.0)
    };
    let server_now = args.server_pid.and_then(server_stats::cpu_seconds);
    let per_publish = cpu_before
        .zip(server_now)
        .filter(|_| tally.ok > 0)
        .map(|(b, n)| (n - b) * 1e6 / tally.ok as f64);
    json!({
        "scenario": "publish",
        "publishers": args.publishers,
        "idempotency_keys": args.idempotency_keys,
        "seconds": elapsed,
        "published": tally.ok,
        "failed": tally.failed,
        "publishes_per_s": tally.ok as f64 / elapsed,
        "latency_ms": {
            "p50": percentile_ms(&lat, 0.50),
            "p99": percentile_ms(&lat, 0.99),
        },
        "server_cpu_percent": cpu(cpu_before, server_now),
        "server_cpu_us_per_publish": per_publish,
        "api_core_cpu_percent": cpu(api_before, args.server_pid.and_then(|p| server_stats::thread_cpu_seconds(p, "api"))),
    })
}
