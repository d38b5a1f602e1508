//! The fan-out scenarios (`fanout`, `channels`, `slow`): subscribers on channels, signed
//! publishes at a fixed rate (open loop: each event carries its intended send time), and the
//! report of deliveries, latency, losses and the server's memory and CPU.

use crate::publisher::{Credentials, Publisher};
use crate::resolve;
use crate::wave::Subscribed;
use crate::{
    Args, Scenario, Stats, event_data, pace_until, percentile_ms, reader, server_stats, wave,
};
use hdrhistogram::Histogram;
use serde_json::json;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub async fn run(args: Args, target: SocketAddr, creds: Rc<Credentials>) -> serde_json::Value {
    let mut args = args;
    if args.scenario == Scenario::Channels && args.channels == 1 {
        args.channels = (args.connections / 4).max(1);
    }
    let slow_every = slow_every(&args);
    let epoch = Instant::now();
    let rss_before = args.server_pid.and_then(server_stats::rss_kib);

    // Connect and subscribe, `connect_concurrency` at a time.
    let wave = wave::connect_all(&args, target, "lg").await;
    let conns = wave.conns;
    let (conns, slow) = split_slow(conns, slow_every);
    let rss_after = args.server_pid.and_then(server_stats::rss_kib);
    let total_events = (args.rate * args.duration).round() as usize;
    let (stats, subscribers) = start_readers(conns, args.channels, total_events, epoch);

    let hostile =
        (args.scenario == Scenario::Hostile).then(|| crate::hostile::start(&args, target, &creds));
    // Let them get going before the measured part starts.
    if hostile.is_some() {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Open-loop publishing: event k is due at start + k / rate, whatever happened before it.
    let cpu_before = args.server_pid.and_then(server_stats::cpu_seconds);
    let publish_start = Instant::now();
    let errors = Rc::new(RefCell::new(0u64));
    let publish_to = match &args.publish_target {
        Some(t) => resolve(t),
        None => target,
    };
    let pubs = spawn_publishers(
        &args,
        publish_to,
        &creds,
        epoch,
        publish_start,
        total_events,
        &errors,
    );
    // The server's peak RSS while publishing (slow subscribers make it grow until dropped).
    let peak_rss = Rc::new(RefCell::new(rss_after));
    let sampler = args
        .server_pid
        .map(|pid| sample_peak_rss(pid, peak_rss.clone()));
    for p in pubs {
        let _ = p.await;
    }
    let publish_secs = publish_start.elapsed().as_secs_f64();
    let expected: u64 = (0..total_events)
        .map(|k| subscribers[k % args.channels])
        .sum();
    drain(&stats, expected, args.drain).await;
    let cpu_after = args.server_pid.and_then(server_stats::cpu_seconds);
    if let Some(s) = sampler {
        s.abort();
    }
    let rss_end = args.server_pid.and_then(server_stats::rss_kib);
    let slow_count = slow.len();
    drop(slow);
    let hostile = hostile.map(|h| h.stop().borrow().to_json());

    let measured = Measured {
        connect_errors: wave.errors,
        connect_secs: wave.seconds,
        connect_latency: wave.latency,
        total_events,
        publish_errors: *errors.borrow(),
        expected,
        publish_start,
        publish_secs,
        cpu: (cpu_before, cpu_after),
        rss: Rss {
            before: rss_before,
            subscribed: rss_after,
            peak: *peak_rss.borrow(),
            end: rss_end,
        },
        slow_count,
    };
    let mut report = report(&args, &stats.borrow(), &measured);
    if let Some(h) = hostile {
        report["hostile"] = h;
    }
    report
}

/// A reader task per connection, sharing the statistics; returns them and the subscribers per
/// channel.
fn start_readers(
    conns: Vec<Subscribed>,
    channels: usize,
    total_events: usize,
    epoch: Instant,
) -> (Rc<RefCell<Stats>>, Vec<u64>) {
    let mut subscribers = vec![0u64; channels];
    for (_, _, ch) in &conns {
        subscribers[*ch] += 1;
    }
    let stats = Rc::new(RefCell::new(Stats {
        latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).ok(),
        received: vec![0; total_events],
        ..Stats::default()
    }));
    for (stream, buf, _) in conns {
        tokio::task::spawn_local(reader(stream, buf, stats.clone(), epoch));
    }
    (stats, subscribers)
}

/// A slow subscriber every this many connections (none outside the slow scenario).
fn slow_every(args: &Args) -> usize {
    match args.scenario {
        Scenario::Slow if args.slow_percent > 0.0 => {
            ((100.0 / args.slow_percent).round() as usize).max(1)
        }
        _ => usize::MAX,
    }
}

/// Waits (at most `seconds`) for the deliveries still under way.
pub async fn drain(stats: &RefCell<Stats>, expected: u64, seconds: f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    while stats.borrow().delivered < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every `slow_every`-th connection is a slow subscriber: it keeps its socket open and never
/// reads it. Returns (readers, slow ones).
fn split_slow(conns: Vec<Subscribed>, slow_every: usize) -> (Vec<Subscribed>, Vec<Subscribed>) {
    let mut slow = Vec::new();
    let mut healthy = Vec::with_capacity(conns.len());
    for (i, c) in conns.into_iter().enumerate() {
        if i % slow_every == slow_every - 1 {
            slow.push(c);
        } else {
            healthy.push(c);
        }
    }
    (healthy, slow)
}

/// `args.publishers` keep-alive publishers, each sending its share of the events on time.
fn spawn_publishers(
    args: &Args,
    target: SocketAddr,
    creds: &Rc<Credentials>,
    epoch: Instant,
    publish_start: Instant,
    total_events: usize,
    errors: &Rc<RefCell<u64>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let pad = "x".repeat(args.payload_bytes);
    let mut pubs = Vec::new();
    for j in 0..args.publishers.max(1) {
        let creds = creds.clone();
        let errors = errors.clone();
        let (channels, rate, step, pad, batch) = (
            args.channels,
            args.rate,
            args.publishers.max(1),
            pad.clone(),
            args.batch,
        );
        pubs.push(tokio::task::spawn_local(async move {
            let Ok(mut p) = Publisher::connect(target).await else {
                *errors.borrow_mut() += 1;
                return;
            };
            let batch = batch.max(1);
            let path = if batch > 1 {
                format!("/apps/{}/batch_events", creds.app_id)
            } else {
                format!("/apps/{}/events", creds.app_id)
            };
            // Batch b holds events b·batch .. (b+1)·batch; publisher j sends every step-th one.
            let batches = total_events.div_ceil(batch);
            for b in (j..batches).step_by(step) {
                let first = b * batch;
                let due = publish_start + Duration::from_secs_f64(first as f64 / rate);
                pace_until(due).await;
                let intended = due.duration_since(epoch).as_nanos() as u64;
                let event = |k: usize| {
                    json!({
                        "name": "lg",
                        "channel": format!("lg-{}", k % channels),
                        "data": event_data(k as u64, intended, &pad),
                    })
                };
                let events = first..(first + batch).min(total_events);
                let body = if batch > 1 {
                    json!({ "batch": events.map(event).collect::<Vec<_>>() })
                } else {
                    event(first)
                };
                let ok = matches!(
                    p.post(&creds, &path, body.to_string().as_bytes()).await,
                    Ok(200)
                );
                if !ok {
                    *errors.borrow_mut() += 1;
                }
            }
        }));
    }
    pubs
}

/// Samples the server's RSS every 200 ms, keeping the highest.
fn sample_peak_rss(pid: u32, peak: Rc<RefCell<Option<u64>>>) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_local(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = server_stats::rss_kib(pid);
            let mut p = peak.borrow_mut();
            *p = (*p).max(now);
        }
    })
}

/// The server's RSS (KiB) at each moment of a run.
struct Rss {
    before: Option<u64>,
    subscribed: Option<u64>,
    peak: Option<u64>,
    end: Option<u64>,
}

/// What a run measured besides the readers' statistics.
struct Measured {
    connect_errors: usize,
    connect_secs: f64,
    connect_latency: Histogram<u64>,
    total_events: usize,
    publish_errors: u64,
    expected: u64,
    publish_start: Instant,
    publish_secs: f64,
    cpu: (Option<f64>, Option<f64>),
    rss: Rss,
    slow_count: usize,
}

fn report(args: &Args, s: &Stats, m: &Measured) -> serde_json::Value {
    let window = s
        .last_delivery
        .map(|l| l.duration_since(m.publish_start).as_secs_f64())
        .unwrap_or(m.publish_secs);
    let h = s.latency_us.as_ref().expect("histogram");
    let cpu_pct = match m.cpu {
        (Some(a), Some(b)) => Some(100.0 * (b - a) / window.max(m.publish_secs)),
        _ => None,
    };
    let rss_per_conn = match (m.rss.before, m.rss.subscribed) {
        (Some(a), Some(b)) if args.connections > m.connect_errors => {
            Some((b as f64 - a as f64) / (args.connections - m.connect_errors) as f64)
        }
        _ => None,
    };
    let ok = args.connections - m.connect_errors;
    // Server CPU spent while publishing and draining, per event published and per delivery.
    let cpu_seconds = match m.cpu {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let per = |n: u64| cpu_seconds.filter(|_| n > 0).map(|c| c * 1e6 / n as f64);
    json!({
        "target": args.target,
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "connections": args.connections,
        "channels": args.channels,
        "rate": args.rate,
        "duration_s": args.duration,
        "payload_bytes": args.payload_bytes,
        "connect": {
            "ok": ok,
            "errors": m.connect_errors,
            "per_s": ok as f64 / m.connect_secs,
            "p50_ms": percentile_ms(&m.connect_latency, 0.5),
            "p99_ms": percentile_ms(&m.connect_latency, 0.99),
        },
        "events_sent": m.total_events,
        "publish_errors": m.publish_errors,
        "expected_deliveries": m.expected,
        "delivered": s.delivered,
        "lost": m.expected.saturating_sub(s.delivered),
        "duplicates": s.duplicates,
        "closed_connections": s.closed,
        "deliveries_per_s": s.delivered as f64 / window.max(1e-9),
        "offered_deliveries_per_s": m.expected as f64 / args.duration,
        "latency_ms": {
            "p50": percentile_ms(h, 0.5),
            "p99": percentile_ms(h, 0.99),
            "p999": percentile_ms(h, 0.999),
            "max": h.max() as f64 / 1000.0,
        },
        "slow_connections": m.slow_count,
        "server": {
            "rss_kib_peak": m.rss.peak,
            "rss_kib_end": m.rss.end,
            "rss_kib_before": m.rss.before,
            "rss_kib_subscribed": m.rss.subscribed,
            "rss_per_connection_kib": rss_per_conn,
            "cpu_percent_of_one_core": cpu_pct,
            "cpu_us_per_publish": per(m.total_events as u64),
            "cpu_us_per_delivery": per(s.delivered),
        },
    })
}
