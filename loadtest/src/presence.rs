//! Presence scenarios. `presence-events`: N members on one presence channel, one of them sends
//! client events at a fixed rate, the others measure delivery latency. `presence-churn`: every
//! connection subscribes to and unsubscribes from presence channels (10 users a channel) as
//! fast as the server confirms, counting operations and errors.

use crate::client;
use crate::publisher::Credentials;
use crate::server_stats;
use crate::stream::Stream;
use crate::{Args, Stats, pace_until, percentile_ms, reader, source_for};
use hdrhistogram::Histogram;
use serde_json::json;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Connects and joins, `connect_concurrency` at a time; returns the members that made it.
async fn join_all(
    args: &Args,
    target: SocketAddr,
    creds: &Rc<Credentials>,
    channel: &str,
) -> Vec<(Stream, Vec<u8>)> {
    let sem = Rc::new(tokio::sync::Semaphore::new(args.connect_concurrency));
    let mut tasks = Vec::new();
    for i in 0..args.connections {
        let (sem, creds, key, channel) = (
            sem.clone(),
            creds.clone(),
            args.key.clone(),
            channel.to_string(),
        );
        let source = source_for(i, args.sources);
        tasks.push(tokio::task::spawn_local(async move {
            let _permit = sem.acquire().await.ok()?;
            let (mut stream, mut buf, id) = client::connect(target, source, &key).await.ok()?;
            client::subscribe_presence(
                &mut stream,
                &mut buf,
                &creds,
                &id,
                &channel,
                &format!("u{i}"),
            )
            .await
            .ok()?;
            Some((stream, buf))
        }));
    }
    let mut members = Vec::new();
    for t in tasks {
        if let Ok(Some(m)) = t.await {
            members.push(m);
        }
    }
    members
}

pub async fn events(args: Args, target: SocketAddr, creds: Rc<Credentials>) -> serde_json::Value {
    let epoch = Instant::now();
    let channel = "presence-lg";
    let mut members = join_all(&args, target, &creds, channel).await;
    let joined = members.len();
    if joined < 2 {
        return json!({"scenario": "presence-events", "error": "fewer than 2 members joined"});
    }
    let (mut sender, _) = members.remove(0);
    let total = (args.rate * args.duration).round() as usize;
    let stats = Rc::new(RefCell::new(Stats {
        latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).ok(),
        received: vec![0; total],
        ..Stats::default()
    }));
    for (stream, buf) in members {
        tokio::task::spawn_local(reader(stream, buf, stats.clone(), epoch));
    }
    // N joins sent ~N²/2 member_added frames: let them drain so the figures are the client
    // events' own.
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let start = Instant::now();
    for k in 0..total {
        let due = start + Duration::from_secs_f64(k as f64 / args.rate);
        pace_until(due).await;
        let t = due.duration_since(epoch).as_nanos();
        let msg =
            format!(r#"{{"event":"client-lg","channel":"{channel}","data":{{"i":{k},"t":{t}}}}}"#);
        if sender
            .write_all(&client::client_text(msg.as_bytes()))
            .await
            .is_err()
        {
            break;
        }
    }
    let expected = (total * (joined - 1)) as u64;
    crate::fanout::drain(&stats, expected, args.drain).await;
    let s = stats.borrow();
    let h = s.latency_us.as_ref().expect("histogram");
    json!({
        "scenario": "presence-events",
        "members": joined,
        "client_events": total,
        "rate": args.rate,
        "expected_deliveries": expected,
        "delivered": s.delivered,
        "lost": expected.saturating_sub(s.delivered),
        "duplicates": s.duplicates,
        "latency_ms": {"p50": percentile_ms(h, 0.5), "p99": percentile_ms(h, 0.99), "p999": percentile_ms(h, 0.999), "max": h.max() as f64 / 1000.0},
    })
}

/// What every churning connection shares.
struct Churn {
    /// (subscribe+unsubscribe operations, errors)
    ops: RefCell<(u64, u64)>,
    deadline: RefCell<Option<Instant>>,
    go: tokio::sync::Notify,
}

impl Churn {
    fn running(&self) -> bool {
        self.deadline.borrow().is_some_and(|d| Instant::now() < d)
    }
}

/// One connection: joins and leaves `channel` as fast as confirmed until the deadline.
async fn churn_one(
    shared: Rc<Churn>,
    connected: std::io::Result<(Stream, Vec<u8>, String)>,
    creds: Rc<Credentials>,
    channel: String,
    user: String,
) {
    let Ok((mut stream, mut buf, id)) = connected else {
        return;
    };
    shared.go.notified().await;
    while shared.running() {
        let joined =
            client::subscribe_presence(&mut stream, &mut buf, &creds, &id, &channel, &user).await;
        if joined.is_err() {
            shared.ops.borrow_mut().1 += 1;
            return;
        }
        shared.ops.borrow_mut().0 += 1;
        if client::unsubscribe(&mut stream, &channel).await.is_err() {
            shared.ops.borrow_mut().1 += 1;
            return;
        }
        shared.ops.borrow_mut().0 += 1;
    }
}

pub async fn churn(args: Args, target: SocketAddr, creds: Rc<Credentials>) -> serde_json::Value {
    let shared = Rc::new(Churn {
        ops: RefCell::new((0, 0)),
        deadline: RefCell::new(None),
        go: tokio::sync::Notify::new(),
    });
    let sem = Rc::new(tokio::sync::Semaphore::new(args.connect_concurrency));
    let ready = Rc::new(tokio::sync::Semaphore::new(0));
    let channels = (args.connections / 10).max(1);
    let mut tasks = Vec::new();
    for i in 0..args.connections {
        let (sem, ready, shared, creds, key) = (
            sem.clone(),
            ready.clone(),
            shared.clone(),
            creds.clone(),
            args.key.clone(),
        );
        let source = source_for(i, args.sources);
        let channel = format!("presence-churn-{}", i % channels);
        tasks.push(tokio::task::spawn_local(async move {
            let connected = {
                let _permit = sem.acquire().await;
                client::connect(target, source, &key).await
            };
            ready.add_permits(1);
            churn_one(shared, connected, creds, channel, format!("u{i}")).await
        }));
    }
    let _ = ready.acquire_many(args.connections as u32).await;
    let api_cpu_before = args
        .server_pid
        .and_then(|p| server_stats::thread_cpu_seconds(p, "api"));
    let start = Instant::now();
    *shared.deadline.borrow_mut() = Some(start + Duration::from_secs_f64(args.duration));
    shared.go.notify_waiters();
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let api_cpu_after = args
        .server_pid
        .and_then(|p| server_stats::thread_cpu_seconds(p, "api"));
    let (done, errors) = *shared.ops.borrow();
    json!({
        "scenario": "presence-churn",
        "connections": args.connections,
        "channels": channels,
        "operations": done,
        "operations_per_s": done as f64 / secs,
        "errors": errors,
        "api_core_cpu_percent": match (api_cpu_before, api_cpu_after) {
            (Some(a), Some(b)) => Some(100.0 * (b - a) / secs),
            _ => None,
        },
    })
}
