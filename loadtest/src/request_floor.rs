//! The `request-floor` scenario: the reference for a server's cost per HTTP publish. Threads
//! pinned to `--floor-cpu` (where the server would run), one per keep-alive connection with
//! blocking reads, answer every request with a fixed `200 {}` and do nothing else, while
//! `--publishers` connections send signed publishes at `--rate` (open loop), as to a server.
//! Their CPU time per request is what a request costs on this machine with no server work:
//! waking a sleeping CPU, one receive and one send. With `--floor-hop` every request also
//! goes to one shared "core" thread on the same CPU and back (blocking channels) before it is
//! answered: two thread wake-ups more, as a publish pays going from the shard to the API core
//! and back.

use crate::floor::{pin_to, thread_cpu_seconds};
use crate::publisher::{Credentials, Publisher};
use crate::{Args, pace_until, percentile_ms};
use hdrhistogram::Histogram;
use serde_json::json;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

pub async fn run(args: Args, creds: Rc<Credentials>) -> serde_json::Value {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let publishers = args.publishers.max(1);
    // Each answering thread reports its CPU seconds when its connection closes.
    let (cpu_tx, cpu_rx) = mpsc::channel::<f64>();
    let cpu = args.floor_cpu;
    let core = args.floor_hop.then(|| core_thread(cpu, cpu_tx.clone()));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(publishers).flatten() {
            let cpu_tx = cpu_tx.clone();
            let core = core.clone();
            std::thread::spawn(move || {
                pin_to(cpu);
                let before = thread_cpu_seconds();
                let mut stream = stream;
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; 64 * 1024];
                let (back_tx, back_rx) = mpsc::sync_channel::<usize>(1);
                // One read holds one request here: the publishers wait for each answer.
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Some(core) = &core
                        && (core.send((n, back_tx.clone())).is_err() || back_rx.recv().is_err())
                    {
                        break;
                    }
                    if stream.write_all(ANSWER).is_err() {
                        break;
                    }
                }
                let _ = cpu_tx.send(thread_cpu_seconds() - before);
            });
        }
    });

    let total = (args.rate * args.duration).round() as usize;
    let latency = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
    ));
    let errors = Rc::new(RefCell::new(0u64));
    let start = Instant::now() + Duration::from_millis(200);
    let body = json!({"name": "lg", "channel": "lg-0", "data": "{}"}).to_string();
    let path = format!("/apps/{}/events", creds.app_id);
    let mut tasks = Vec::new();
    for j in 0..publishers {
        let (creds, latency, errors, body, path) = (
            creds.clone(),
            latency.clone(),
            errors.clone(),
            body.clone(),
            path.clone(),
        );
        let rate = args.rate;
        tasks.push(tokio::task::spawn_local(async move {
            let Ok(mut p) = Publisher::connect(addr).await else {
                *errors.borrow_mut() += 1;
                return;
            };
            for k in (j..total).step_by(publishers) {
                let due = start + Duration::from_secs_f64(k as f64 / rate);
                pace_until(due).await;
                match p.post(&creds, &path, body.as_bytes()).await {
                    Ok(200) => {
                        let us = due.elapsed().as_micros().max(1) as u64;
                        let _ = latency.borrow_mut().record(us.min(60_000_000));
                    }
                    _ => *errors.borrow_mut() += 1,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    // The publishers are dropped: each answering thread sees its connection close and reports.
    let reports = publishers + usize::from(args.floor_hop);
    let cpu_seconds: f64 = (0..reports)
        .filter_map(|_| cpu_rx.recv_timeout(Duration::from_secs(10)).ok())
        .sum();
    let requests = latency.borrow().len();
    let h = latency.borrow();
    json!({
        "scenario": "request-floor",
        "floor_cpu": args.floor_cpu,
        "floor_hop": args.floor_hop,
        "requests": requests,
        "errors": *errors.borrow(),
        "answering_cpu_seconds": cpu_seconds,
        "cpu_us_per_request": if requests > 0 { cpu_seconds * 1e6 / requests as f64 } else { 0.0 },
        "latency_ms": {
            "p50": percentile_ms(&h, 0.5),
            "p99": percentile_ms(&h, 0.99),
            "max": h.max() as f64 / 1000.0,
        },
    })
}

/// A request's way back from the core thread: its size, and where to answer.
type Hop = (usize, mpsc::SyncSender<usize>);

/// The stand-in for the API core: one thread on `cpu` that answers each hop at once and
/// reports its CPU seconds when every answering thread has gone.
fn core_thread(cpu: usize, cpu_tx: mpsc::Sender<f64>) -> mpsc::SyncSender<Hop> {
    let (tx, rx) = mpsc::sync_channel::<Hop>(1024);
    std::thread::spawn(move || {
        pin_to(cpu);
        let before = thread_cpu_seconds();
        while let Ok((n, back)) = rx.recv() {
            let _ = back.send(n);
        }
        let _ = cpu_tx.send(thread_cpu_seconds() - before);
    });
    tx
}
