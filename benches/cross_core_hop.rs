//! The cross-core hop (API core → shard) in isolation: one-way latency of a message through
//! glommio's shared channel to an idle receiver, as percentiles. Run: `cargo bench --bench
//! cross_core_hop`. The sender paces messages (one every 200 µs) so the receiver goes back
//! to sleep between them, as a shard does between publishes.

use glommio::channels::shared_channel;
use glommio::timer::Timer;
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

const MESSAGES: usize = 5_000;

fn run(
    label: &str,
    sender_cpu: usize,
    receiver_cpu: usize,
    latency_queue: bool,
    spin_us: u64,
    busy: bool,
    preempt: Duration,
) {
    let (tx, rx) = shared_channel::new_bounded::<Instant>(1024);
    let receiver = LocalExecutorBuilder::new(Placement::Fixed(receiver_cpu))
        .io_memory(64 * 1024)
        .spin_before_park(Duration::from_micros(spin_us))
        .preempt_timer(preempt)
        .spawn(move || async move {
            if busy {
                // Stand-in for thousands of session tasks: work in slices of ~20 µs in a
                // throughput queue, yielding only when glommio asks.
                let q = glommio::executor().create_task_queue(
                    Shares::default(),
                    Latency::NotImportant,
                    "sessions",
                );
                glommio::spawn_local_into(
                    async {
                        loop {
                            let t = Instant::now();
                            while t.elapsed() < Duration::from_micros(20) {
                                std::hint::spin_loop();
                            }
                            glommio::yield_if_needed().await;
                        }
                    },
                    q,
                )
                .expect("queue")
                .detach();
            }
            let body = async move {
                let rx = rx.connect().await;
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                while let Some(sent) = rx.recv().await {
                    let _ = h.record(sent.elapsed().as_nanos() as u64);
                }
                h
            };
            if latency_queue {
                let q = glommio::executor().create_task_queue(
                    Shares::default(),
                    Latency::Matters(Duration::from_micros(500)),
                    "control",
                );
                glommio::spawn_local_into(body, q).expect("queue").await
            } else {
                body.await
            }
        })
        .expect("receiver");
    let sender = LocalExecutorBuilder::new(Placement::Fixed(sender_cpu))
        .io_memory(64 * 1024)
        .spawn(move || async move {
            let tx = tx.connect().await;
            for _ in 0..MESSAGES {
                Timer::new(Duration::from_micros(200)).await;
                let _ = tx.send(Instant::now()).await;
            }
        })
        .expect("sender");
    sender.join().expect("sender ran");
    let h = receiver.join().expect("receiver ran");
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{label:<46} p50 {:>8.1} µs  p99 {:>8.1} µs  p99.9 {:>8.1} µs  max {:>8.1} µs",
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0
    );
}

fn main() {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let other = if cpus > 1 { 1 } else { 0 };
    println!("cross-core hop, {MESSAGES} messages, receiver idle between them");
    // glommio's default preempt timer is 100 ms; ringcast's executors use PREEMPT_TIMER, and
    // shards run control work in a plain (not latency-sensitive) task queue.
    let (default, ours) = (Duration::from_millis(100), ringcast::server::PREEMPT_TIMER);
    // (label, receiver cpu, latency-sensitive queue, spin before park µs, busy, preempt timer)
    let cases = [
        (
            "idle, other core, glommio defaults",
            other,
            false,
            0,
            false,
            default,
        ),
        (
            "idle, same core, glommio defaults",
            0,
            false,
            0,
            false,
            default,
        ),
        (
            "idle, other core, ringcast settings",
            other,
            false,
            0,
            false,
            ours,
        ),
        (
            "idle, other core, ringcast settings + spin 50 µs",
            other,
            false,
            50,
            false,
            ours,
        ),
        (
            "busy, other core, glommio defaults",
            other,
            false,
            0,
            true,
            default,
        ),
        (
            "busy, other core, latency queue only",
            other,
            true,
            0,
            true,
            default,
        ),
        (
            "busy, other core, ringcast settings",
            other,
            false,
            0,
            true,
            ours,
        ),
        (
            "busy, same core, ringcast settings",
            0,
            false,
            0,
            true,
            ours,
        ),
    ];
    for (label, cpu, latency_queue, spin, busy, preempt) in cases {
        run(label, 0, cpu, latency_queue, spin, busy, preempt);
    }
}
