//! ringcast-loadgen: opens N WebSocket connections (spread over 127.0.0.x source addresses),
//! subscribes them to C channels, publishes signed events at a fixed rate (open loop: each
//! event has an intended send time, carried in its payload, and latency counts from it), and
//! reports deliveries/s, latency percentiles, lost and duplicate deliveries, and the server's
//! RSS per connection and CPU use. Run it pinned to a core other than the server's.

mod api_publish;
mod client;
mod presence;
mod publisher;
mod server_stats;
mod storm;
mod wave;

use clap::Parser;
use hdrhistogram::Histogram;
use publisher::{Credentials, Publisher};
use serde_json::json;
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to measure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// Subscribers on `channels` channels; signed HTTP publishes at `rate`.
    Fanout,
    /// Fan-out over many channels with a few subscribers each (`channels` defaults to
    /// connections / 4).
    Channels,
    /// Fan-out where `slow_percent` of the subscribers (default 1%) never read: the healthy
    /// ones' latency and the server's RSS must stay bounded.
    Slow,
    /// N clients connected, then all dropped and reconnected at once: connect latency.
    Storm,
    /// N members on one presence channel; one sends client events at `rate`.
    PresenceEvents,
    /// Every connection subscribes to and leaves presence channels as fast as confirmed.
    #[value(alias = "presence")]
    PresenceChurn,
    /// `publishers` keep-alive connections publish signed events as fast as answered
    /// (closed loop), with `--idempotency-keys` a fresh key on each, as the Sockudo SDKs do.
    Publish,
}

#[derive(Parser, Clone)]
#[command(about = "Load generator for Pusher-compatible servers")]
pub(crate) struct Args {
    #[arg(long, value_enum, default_value_t = Scenario::Fanout)]
    scenario: Scenario,
    /// Server address (WebSocket and HTTP API on the same port).
    #[arg(long, default_value = "127.0.0.1:6001")]
    target: String,
    #[arg(long, default_value = "app-id")]
    app_id: String,
    #[arg(long, default_value = "app-key")]
    key: String,
    #[arg(long, default_value = "app-secret")]
    secret: String,
    /// WebSocket connections to open (one process holds about 19k: run several for more).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Channels; connection i subscribes to channel i % channels (1 = fan-out).
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Events per second, in total over all channels.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Source addresses 127.0.0.1 ..= 127.0.0.N.
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Parallel keep-alive publishing connections.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// Extra bytes of padding in each event's data.
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// The server's process id, to report its RSS per connection and CPU use.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds to wait for stragglers after the last publish.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Seconds to wait after joining before sending (presence-events), so the join storm's
    /// member_added frames have drained.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// slow: percent of subscribers that never read.
    #[arg(long, default_value_t = 1.0)]
    slow_percent: f64,
    /// publish: send an idempotency key (body and header) with every publish.
    #[arg(long)]
    idempotency_keys: bool,
    /// Print only the JSON report.
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
pub(crate) struct Stats {
    latency_us: Option<Histogram<u64>>,
    /// Deliveries per event sequence number.
    received: Vec<u32>,
    delivered: u64,
    duplicates: u64,
    closed: u64,
    last_delivery: Option<Instant>,
}

fn event_data(seq: u64, intended_ns: u64, pad: &str) -> String {
    format!(r#"{{"i":{seq},"t":{intended_ns},"p":"{pad}"}}"#)
}

pub(crate) async fn reader(
    stream: tokio::net::TcpStream,
    mut buf: Vec<u8>,
    stats: Rc<RefCell<Stats>>,
    epoch: Instant,
) {
    let (mut rd, mut wr) = stream.into_split();
    // Events from parallel publishers may arrive in any order; a bit per event tells a
    // duplicate from a late one.
    let events = stats.borrow().received.len();
    let mut seen = vec![0u64; events.div_ceil(64)];
    buf.reserve(16 * 1024);
    loop {
        let mut consumed = 0;
        while let Some(f) = client::parse_frame(&buf[consumed..]) {
            let payload = &buf[consumed + f.start..consumed + f.end];
            match f.opcode {
                1 => {
                    // `data` is a string (published events: escaped keys) or an object (client events).
                    let field = |escaped: &[u8], plain: &[u8]| {
                        client::number_after(payload, escaped)
                            .or_else(|| client::number_after(payload, plain))
                    };
                    if let (Some(seq), Some(t)) = (
                        field(br#"\"i\":"#, br#""i":"#),
                        field(br#"\"t\":"#, br#""t":"#),
                    ) {
                        let now = epoch.elapsed().as_nanos() as u64;
                        let mut s = stats.borrow_mut();
                        let (word, bit) = (seq as usize / 64, 1u64 << (seq % 64));
                        if seen.get(word).is_some_and(|w| w & bit != 0) {
                            s.duplicates += 1;
                        } else {
                            if let Some(w) = seen.get_mut(word) {
                                *w |= bit;
                            }
                            if let Some(r) = s.received.get_mut(seq as usize) {
                                *r += 1;
                            }
                            s.delivered += 1;
                            let us = now.saturating_sub(t) / 1000;
                            if let Some(h) = s.latency_us.as_mut() {
                                let _ = h.record(us.max(1));
                            }
                            s.last_delivery = Some(Instant::now());
                        }
                    } else if client::contains(payload, b"pusher:ping") {
                        let _ = wr
                            .write_all(&client::client_text(
                                br#"{"event":"pusher:pong","data":{}}"#,
                            ))
                            .await;
                    }
                }
                8 => {
                    stats.borrow_mut().closed += 1;
                    return;
                }
                _ => {}
            }
            consumed += f.end;
        }
        buf.drain(..consumed);
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                stats.borrow_mut().closed += 1;
                return;
            }
            Ok(_) => {}
        }
    }
}

pub(crate) fn percentile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Waits until `due`. tokio's timer has 1 ms granularity, so it sleeps until just before and
/// then yields (readers keep running) until the moment has come: the generator's own lateness
/// must not count as server latency.
pub(crate) async fn pace_until(due: Instant) {
    if let Some(early) = due.checked_sub(Duration::from_micros(1500)) {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

/// Source address of connection `i`: 127.0.0.1 ..= 127.0.0.N in turn.
pub(crate) fn source_for(i: usize, sources: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        1 + (i % sources.max(1) as usize) as u8,
    ))
}

async fn run(args: Args) -> serde_json::Value {
    let target: SocketAddr = args
        .target
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve {}", args.target));
    let creds = Rc::new(Credentials {
        app_id: args.app_id.clone(),
        key: args.key.clone(),
        secret: args.secret.clone(),
    });
    match args.scenario {
        Scenario::PresenceEvents => return presence::events(args, target, creds).await,
        Scenario::PresenceChurn => return presence::churn(args, target, creds).await,
        Scenario::Publish => return api_publish::run(args, target, creds).await,
        Scenario::Storm => return storm::run(args, target).await,
        Scenario::Fanout | Scenario::Channels | Scenario::Slow => {}
    }
    let mut args = args;
    if args.scenario == Scenario::Channels && args.channels == 1 {
        args.channels = (args.connections / 4).max(1);
    }
    // A slow subscriber every `slow_every` connections (none outside the slow scenario).
    let slow_every = match args.scenario {
        Scenario::Slow if args.slow_percent > 0.0 => {
            ((100.0 / args.slow_percent).round() as usize).max(1)
        }
        _ => usize::MAX,
    };
    let epoch = Instant::now();
    let rss_before = args.server_pid.and_then(server_stats::rss_kib);

    // Connect and subscribe, `connect_concurrency` at a time.
    let wave = wave::connect_all(&args, target, "lg").await;
    let conns = wave.conns;
    let ch = wave.latency;
    let connect_secs = wave.seconds;
    let connect_errors = wave.errors;
    // Slow subscribers keep their socket open and never read it.
    let mut slow = Vec::new();
    let mut healthy = Vec::with_capacity(conns.len());
    for (i, c) in conns.into_iter().enumerate() {
        if i % slow_every == slow_every - 1 {
            slow.push(c);
        } else {
            healthy.push(c);
        }
    }
    let conns = healthy;
    let mut subscribers = vec![0u64; args.channels];
    for (_, _, ch) in &conns {
        subscribers[*ch] += 1;
    }
    let rss_after = args.server_pid.and_then(server_stats::rss_kib);

    let total_events = (args.rate * args.duration).round() as usize;
    let stats = Rc::new(RefCell::new(Stats {
        latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).ok(),
        received: vec![0; total_events],
        ..Stats::default()
    }));
    for (stream, buf, _) in conns {
        tokio::task::spawn_local(reader(stream, buf, stats.clone(), epoch));
    }

    // Open-loop publishing: event k is due at start + k / rate, whatever happened before it.
    let cpu_before = args.server_pid.and_then(server_stats::cpu_seconds);
    let publish_start = Instant::now();
    let errors = Rc::new(RefCell::new(0u64));
    let pad = "x".repeat(args.payload_bytes);
    let mut pubs = Vec::new();
    for j in 0..args.publishers.max(1) {
        let creds = creds.clone();
        let errors = errors.clone();
        let (channels, rate, step, pad) = (
            args.channels,
            args.rate,
            args.publishers.max(1),
            pad.clone(),
        );
        pubs.push(tokio::task::spawn_local(async move {
            let Ok(mut p) = Publisher::connect(target).await else {
                *errors.borrow_mut() += 1;
                return;
            };
            let path = format!("/apps/{}/events", creds.app_id);
            for k in (j..total_events).step_by(step) {
                let due = publish_start + Duration::from_secs_f64(k as f64 / rate);
                pace_until(due).await;
                let intended = due.duration_since(epoch).as_nanos() as u64;
                let data = event_data(k as u64, intended, &pad);
                let body =
                    json!({"name": "lg", "channel": format!("lg-{}", k % channels), "data": data})
                        .to_string();
                match p.post(&creds, &path, body.as_bytes()).await {
                    Ok(200) => {}
                    _ => *errors.borrow_mut() += 1,
                }
            }
        }));
    }
    // The server's peak RSS while publishing (slow subscribers make it grow until dropped).
    let peak_rss = Rc::new(RefCell::new(rss_after));
    let sampler = args.server_pid.map(|pid| {
        let peak = peak_rss.clone();
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let now = server_stats::rss_kib(pid);
                let mut p = peak.borrow_mut();
                *p = (*p).max(now);
            }
        })
    });
    for p in pubs {
        let _ = p.await;
    }
    let publish_secs = publish_start.elapsed().as_secs_f64();
    let expected: u64 = (0..total_events)
        .map(|k| subscribers[k % args.channels])
        .sum();
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain);
    while stats.borrow().delivered < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_after = args.server_pid.and_then(server_stats::cpu_seconds);
    if let Some(s) = sampler {
        s.abort();
    }
    let rss_end = args.server_pid.and_then(server_stats::rss_kib);
    let slow_count = slow.len();
    drop(slow);

    let s = stats.borrow();
    let window = s
        .last_delivery
        .map(|l| l.duration_since(publish_start).as_secs_f64())
        .unwrap_or(publish_secs);
    let h = s.latency_us.as_ref().expect("histogram");
    let cpu_pct = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some(100.0 * (b - a) / window.max(publish_secs)),
        _ => None,
    };
    let rss_per_conn = match (rss_before, rss_after) {
        (Some(a), Some(b)) if args.connections > connect_errors => {
            Some((b as f64 - a as f64) / (args.connections - connect_errors) as f64)
        }
        _ => None,
    };
    json!({
        "target": args.target,
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "connections": args.connections,
        "channels": args.channels,
        "rate": args.rate,
        "duration_s": args.duration,
        "payload_bytes": args.payload_bytes,
        "connect": {
            "ok": args.connections - connect_errors,
            "errors": connect_errors,
            "per_s": (args.connections - connect_errors) as f64 / connect_secs,
            "p50_ms": percentile_ms(&ch, 0.5),
            "p99_ms": percentile_ms(&ch, 0.99),
        },
        "events_sent": total_events,
        "publish_errors": *errors.borrow(),
        "expected_deliveries": expected,
        "delivered": s.delivered,
        "lost": expected.saturating_sub(s.delivered),
        "duplicates": s.duplicates,
        "closed_connections": s.closed,
        "deliveries_per_s": s.delivered as f64 / window.max(1e-9),
        "offered_deliveries_per_s": expected as f64 / args.duration,
        "latency_ms": {
            "p50": percentile_ms(h, 0.5),
            "p99": percentile_ms(h, 0.99),
            "p999": percentile_ms(h, 0.999),
            "max": h.max() as f64 / 1000.0,
        },
        "slow_connections": slow_count,
        "server": {
            "rss_kib_peak": *peak_rss.borrow(),
            "rss_kib_end": rss_end,
            "rss_kib_before": rss_before,
            "rss_kib_subscribed": rss_after,
            "rss_per_connection_kib": rss_per_conn,
            "cpu_percent_of_one_core": cpu_pct,
        },
    })
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let json_only = args.json;
    let report = local.block_on(&rt, run(args));
    if json_only {
        println!("{report}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    }
}
