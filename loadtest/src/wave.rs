//! Connecting many clients at once: `connections` clients, `connect_concurrency` in flight,
//! each subscribed to `{prefix}-{i % channels}`, with the time from TCP connect to
//! `subscription_succeeded` recorded per client.

use crate::stream::Stream;
use crate::{Args, client, source_for};
use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// A subscribed client: its socket, bytes read past the confirmation, its channel index.
pub type Subscribed = (Stream, Vec<u8>, usize);

pub struct Wave {
    pub conns: Vec<Subscribed>,
    pub errors: usize,
    pub seconds: f64,
    /// Connect-to-confirmation latency, µs.
    pub latency: Histogram<u64>,
}

pub async fn connect_all(args: &Args, target: SocketAddr, prefix: &str) -> Wave {
    let sem = Rc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let latency = Rc::new(RefCell::new(Histogram::<u64>::new(3).expect("histogram")));
    let channels = args.channels.max(1);
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| {
            let (sem, latency, key) = (sem.clone(), latency.clone(), args.key.clone());
            let source = source_for(i, args.sources);
            let channel = format!("{prefix}-{}", i % channels);
            tokio::task::spawn_local(async move {
                let _permit = sem.acquire().await.ok()?;
                let t = Instant::now();
                let (mut stream, mut buf, _) = client::connect(target, source, &key).await.ok()?;
                client::subscribe(&mut stream, &mut buf, &channel)
                    .await
                    .ok()?;
                let _ = latency.borrow_mut().record(t.elapsed().as_micros() as u64);
                Some((stream, buf, i % channels))
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(args.connections);
    for t in tasks {
        if let Ok(Some(c)) = t.await {
            conns.push(c);
        }
    }
    let latency = latency.borrow().clone();
    Wave {
        errors: args.connections - conns.len(),
        seconds: start.elapsed().as_secs_f64(),
        latency,
        conns,
    }
}
