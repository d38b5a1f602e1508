//! The `floor` scenario: the physical reference for a server's cost per delivery. A plain
//! sender thread, pinned to `--floor-cpu` (where the server would run), writes the same frame a
//! server would send to each of N loopback sockets with one non-blocking `send` per socket per
//! event, at `--rate` events/s; the generator's readers receive them as they receive a server's.
//! Its CPU time per send is what a delivery costs with no server work at all. Each connection
//! takes two descriptors in this process: under a 20k open-files limit, ~9,500 connections.

use crate::{Args, Stats, event_data, pace_until, percentile_ms, reader, source_for};
use hdrhistogram::Histogram;
use serde_json::json;
use std::cell::RefCell;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the sender did.
struct Sent {
    sends: u64,
    would_block: u64,
    cpu_seconds: f64,
}

pub async fn run(args: Args) -> serde_json::Value {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let n = args.connections;
    let total_events = (args.rate * args.duration).round() as usize;
    let epoch = Instant::now();
    // When to start, and how many connections the readers made.
    let (start_tx, start_rx) = mpsc::channel::<(Instant, usize)>();
    let (done_tx, done_rx) = mpsc::channel::<Sent>();
    let (cpu, rate, pad) = (args.floor_cpu, args.rate, "x".repeat(args.payload_bytes));
    std::thread::spawn(move || {
        pin_to(cpu);
        let _ = listener.set_nonblocking(true);
        let mut sockets: Vec<TcpStream> = Vec::with_capacity(n);
        let mut go = None;
        // Accepts until every connection the readers made is in (some may have failed).
        let start = loop {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_nonblocking(true);
                    sockets.push(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
            if go.is_none() {
                go = start_rx.try_recv().ok();
            }
            if let Some((start, made)) = go
                && sockets.len() >= made
            {
                break start;
            }
        };
        let cpu_before = thread_cpu_seconds();
        let mut sent = Sent {
            sends: 0,
            would_block: 0,
            cpu_seconds: 0.0,
        };
        for k in 0..total_events {
            let due = start + Duration::from_secs_f64(k as f64 / rate);
            while Instant::now() < due {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            let intended = due.duration_since(epoch).as_nanos() as u64;
            let data = event_data(k as u64, intended, &pad);
            let event = json!({"event": "lg", "channel": "lg-0", "data": data}).to_string();
            let frame = server_text(event.as_bytes());
            // A frame cut short would garble the stream: that socket is dropped.
            sockets.retain_mut(|s| match s.write(&frame) {
                Ok(n) if n == frame.len() => {
                    sent.sends += 1;
                    true
                }
                Ok(_) => {
                    sent.would_block += 1;
                    false
                }
                Err(_) => {
                    sent.would_block += 1;
                    true
                }
            });
        }
        sent.cpu_seconds = thread_cpu_seconds() - cpu_before;
        let _ = done_tx.send(sent);
        // Keep the sockets open until the readers are done.
        std::thread::sleep(Duration::from_secs(60));
    });

    let stats = Rc::new(RefCell::new(Stats {
        latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).ok(),
        received: vec![0; total_events],
        ..Stats::default()
    }));
    let mut connected = 0;
    for i in 0..n {
        let Ok(stream) = connect_from(addr, i, args.sources).await else {
            continue;
        };
        connected += 1;
        tokio::task::spawn_local(reader(
            crate::stream::Stream::Plain(stream),
            Vec::new(),
            stats.clone(),
            epoch,
        ));
    }
    let start = Instant::now() + Duration::from_millis(500);
    let _ = start_tx.send((start, connected));
    pace_until(start).await;
    let sent = loop {
        if let Ok(sent) = done_rx.try_recv() {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    crate::fanout::drain(&stats, sent.sends, args.drain).await;
    let s = stats.borrow();
    let h = s.latency_us.as_ref().expect("histogram");
    json!({
        "scenario": "floor",
        "connections": connected,
        "rate": args.rate,
        "duration_s": args.duration,
        "floor_cpu": args.floor_cpu,
        "sends": sent.sends,
        "would_block": sent.would_block,
        "delivered": s.delivered,
        "latency_ms": {
            "p50": percentile_ms(h, 0.5),
            "p99": percentile_ms(h, 0.99),
            "max": h.max() as f64 / 1000.0,
        },
        "sender_cpu_seconds": sent.cpu_seconds,
        "cpu_us_per_send": (sent.sends > 0).then(|| sent.cpu_seconds * 1e6 / sent.sends as f64),
    })
}

/// A connection to the sender from the generator's `i`-th source address.
async fn connect_from(
    addr: SocketAddr,
    i: usize,
    sources: u8,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source_for(i, sources), 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An unmasked text frame, as a server sends it.
fn server_text(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81];
    match payload.len() {
        n @ 0..126 => out.push(n as u8),
        n @ 126..65536 => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CPU seconds the calling thread has used.
pub(crate) fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
