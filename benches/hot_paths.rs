//! Hot-path micro-benchmarks: client-message parsing, frame encoding, HTTP signature checks,
//! fan-out of one broadcast through a shard's channel index to 10k local subscribers, and the
//! per-publish extras (history, cache channels, the latency metric).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ringcast::app::AppIdx;
use ringcast::auth;
use ringcast::protocol::{ClientMessage, SocketId, frames};
use ringcast::shard::hub::Hub;
use ringcast::shard::outbox::Frame;
use ringcast::ws;
use std::hint::black_box;

fn parse(c: &mut Criterion) {
    let subscribe = br#"{"event":"pusher:subscribe","data":{"auth":"app-key:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}"#;
    let ping = br#"{"event":"pusher:ping","data":{}}"#;
    let mut buffers = simd_json::Buffers::new(1024);
    let mut g = c.benchmark_group("client_message_parse");
    for (name, msg) in [("subscribe", &subscribe[..]), ("ping", &ping[..])] {
        let mut buf = msg.to_vec();
        g.throughput(Throughput::Bytes(msg.len() as u64));
        // simd-json parses in place, so each iteration restores the input first (a memcpy).
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.copy_from_slice(msg);
                let m = ClientMessage::parse(black_box(&mut buf), &mut buffers).unwrap();
                black_box(matches!(m, ClientMessage::Ping));
            })
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let data = serde_json::to_string(&"x".repeat(100)).unwrap();
    let mut g = c.benchmark_group("frame_encode");
    g.bench_function("channel_event_json_100B", |b| {
        b.iter(|| {
            black_box(frames::channel_event(
                black_box("my-event"),
                black_box("my-channel"),
                &data,
                None,
            ))
        })
    });
    let payload = frames::channel_event("my-event", "my-channel", &data, None).into_bytes();
    g.bench_function("ws_text_frame_150B", |b| {
        b.iter(|| black_box(ws::frame::text(black_box(&payload))))
    });
    g.finish();
}

fn signature(c: &mut Criterion) {
    let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    let params: Vec<(String, String)> = [
        ("auth_key", "278d425bdf160c739803"),
        ("auth_timestamp", "1353088179"),
        ("auth_version", "1.0"),
        ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
        (
            "auth_signature",
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
        ),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    c.bench_function("http_signature_check", |b| {
        b.iter(|| {
            auth::verify_request(
                "7ad3773142a6692b25b8",
                "POST",
                "/apps/3/events",
                black_box(&params),
                body,
                1353088179,
            )
            .unwrap()
        })
    });
    c.bench_function("channel_auth_check", |b| {
        let token =
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
        b.iter(|| {
            assert!(auth::verify_channel_auth(
                "278d425bdf160c739803",
                "7ad3773142a6692b25b8",
                "1234.1234",
                "private-foobar",
                None,
                black_box(token)
            ))
        })
    });
}

fn fanout(c: &mut Criterion) {
    const SUBSCRIBERS: usize = 10_000;
    let app = AppIdx(0);
    let mut hub = Hub::new(1, 512 * 1024);
    let channel = ringcast::protocol::ChannelName::classify("fanout").unwrap();
    let keys: Vec<usize> = (0..SUBSCRIBERS)
        .map(|i| {
            let k = hub.add(SocketId::new(0, i as u64, 7), app, 0);
            hub.subscribe(k, &channel).unwrap();
            k
        })
        .collect();
    let payload = frames::channel_event("e", "fanout", r#""{\"i\":1,\"t\":123456789}""#, None);
    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    // One broadcast as a shard handles it: encode the frame once, queue it for every local
    // subscriber; then the write side's bookkeeping (mark it sent) for each of them.
    g.bench_function("encode_queue_dequeue_10k", |b| {
        b.iter_batched(
            || (),
            |_| {
                let frame: Frame = ws::frame::text(payload.as_bytes()).into();
                let n = hub.publish(app, "fanout", &frame, None);
                for &k in &keys {
                    if let Some(conn) = hub.conn_mut(k) {
                        let len = conn.outbox().bytes();
                        conn.written(len);
                    }
                }
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// What the API core does per publish besides signing: record it in history and, for cache
/// channels, keep it; and what a shard adds per broadcast for `/metrics`.
fn per_publish(c: &mut Criterion) {
    use ringcast::api::cluster::history::{History, Retention};
    use ringcast::app::AppIdx;
    use ringcast::bus::Broadcast;
    use ringcast::last_events::LastEvents;
    use ringcast::metrics::Histogram;
    use std::sync::Arc;

    let keep = Retention {
        max_messages: 100,
        ttl_ms: 86_400_000,
    };
    let defaults = ringcast::config::ServerConfig::default();
    let mut history = History::new(1, ringcast::fair_share::Cap::history(&defaults));
    let payload: Box<[u8]> = br#"{"event":"e","channel":"c-1","data":"{\"n\":1}"}"#
        .to_vec()
        .into();
    let mut n = 0u64;
    c.bench_function("history record (1k channels, 100 kept each)", |b| {
        b.iter(|| {
            n += 1;
            let event = Arc::new(Broadcast {
                app: AppIdx(0),
                channel: format!("c-{}", n % 1000).into(),
                payload: payload.clone(),
                except: None,
                cacheable: false,
                accepted: std::time::Instant::now(),
            });
            history.record(event, "e", 7, n, keep)
        })
    });
    let mut cache = LastEvents::new(ringcast::fair_share::Cap::cache(&defaults));
    let frame: std::rc::Rc<[u8]> = payload.to_vec().into();
    c.bench_function("cache channel store (1k channels)", |b| {
        b.iter(|| {
            n += 1;
            cache.store(AppIdx(0), &format!("cache-{}", n % 1000), frame.clone(), 10)
        })
    });
    let latency = Histogram::default();
    c.bench_function("broadcast latency record", |b| {
        b.iter(|| latency.record(std::time::Duration::from_micros(n % 100_000)))
    });
}

/// A mass disconnect: every subscriber of one 50k-subscriber channel leaves (each leaving
/// costs its own channels, never a scan of the channel's list).
fn mass_disconnect(c: &mut Criterion) {
    use ringcast::app::AppIdx;
    use ringcast::protocol::{ChannelName, SocketId};
    use ringcast::shard::hub::Hub;
    const SUBS: u64 = 50_000;
    let mut g = c.benchmark_group("hub");
    g.sample_size(10);
    g.throughput(Throughput::Elements(SUBS));
    g.bench_function("50k subscribers of one channel disconnect", |b| {
        b.iter_batched(
            || {
                let mut hub = Hub::new(1, 1 << 20);
                let name = ChannelName::parse("big", 200).unwrap();
                let keys: Vec<usize> = (0..SUBS)
                    .map(|i| {
                        let k = hub.add(SocketId::new(0, i, 1), AppIdx(0), 0);
                        hub.subscribe(k, &name).unwrap();
                        k
                    })
                    .collect();
                (hub, keys)
            },
            |(mut hub, keys)| {
                for k in keys {
                    hub.remove(k);
                }
                hub
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    parse,
    encode,
    signature,
    fanout,
    per_publish,
    mass_disconnect
);
criterion_main!(benches);
