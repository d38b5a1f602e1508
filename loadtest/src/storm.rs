//! The `storm` scenario: N clients connected and subscribed, then every one dropped at the
//! same moment and reconnected at once, as after a network blip or a server restart behind a
//! load balancer. Reports the reconnect wave's connect latency (TCP connect to
//! `subscription_succeeded`) and errors.

use crate::{Args, client, percentile_ms, source_for};
use hdrhistogram::Histogram;
use serde_json::json;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;
use tokio::sync::Semaphore;

struct Wave {
    ok: usize,
    errors: usize,
    seconds: f64,
    latency: Histogram<u64>,
    conns: Vec<tokio::net::TcpStream>,
}

/// Connects and subscribes `args.connections` clients, `args.connect_concurrency` at a time.
async fn wave(args: &Args, target: SocketAddr) -> Wave {
    let sem = Rc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let latency = Rc::new(RefCell::new(Histogram::<u64>::new(3).expect("histogram")));
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| {
            let (sem, latency, key) = (sem.clone(), latency.clone(), args.key.clone());
            let source = source_for(i, args.sources);
            let channel = format!("storm-{}", i % args.channels.max(1));
            tokio::task::spawn_local(async move {
                let _permit = sem.acquire().await.ok()?;
                let t = Instant::now();
                let (mut stream, mut buf, _) = client::connect(target, source, &key).await.ok()?;
                client::subscribe(&mut stream, &mut buf, &channel)
                    .await
                    .ok()?;
                let _ = latency.borrow_mut().record(t.elapsed().as_micros() as u64);
                Some(stream)
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(args.connections);
    for t in tasks {
        if let Ok(Some(s)) = t.await {
            conns.push(s);
        }
    }
    let latency = latency.borrow().clone();
    Wave {
        ok: conns.len(),
        errors: args.connections - conns.len(),
        seconds: start.elapsed().as_secs_f64(),
        latency,
        conns,
    }
}

fn report(w: &Wave) -> serde_json::Value {
    json!({
        "ok": w.ok,
        "errors": w.errors,
        "seconds": w.seconds,
        "per_s": w.ok as f64 / w.seconds.max(1e-9),
        "p50_ms": percentile_ms(&w.latency, 0.5),
        "p99_ms": percentile_ms(&w.latency, 0.99),
        "max_ms": w.latency.max() as f64 / 1000.0,
    })
}

pub async fn run(args: Args, target: SocketAddr) -> serde_json::Value {
    let first = wave(&args, target).await;
    let first_report = report(&first);
    // Everyone goes at once; the server sees a flood of closes, then of connects.
    drop(first.conns);
    let storm = wave(&args, target).await;
    json!({
        "scenario": "storm",
        "connections": args.connections,
        "connect_concurrency": args.connect_concurrency,
        "initial": first_report,
        "reconnect": report(&storm),
    })
}
