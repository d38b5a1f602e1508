//! The shard's writer: a control task that writes broadcasts straight to idle sockets.
//!
//! A fan-out queues one shared frame per subscriber ([`super::hub::Hub::publish`]) and lists
//! each connection whose outbox was empty ([`super::write_list`]). The writer then makes one
//! non-blocking `send` per listed connection, gathering every frame queued for it by then, so
//! a delivery costs a syscall and no wake-up of the connection's task, and it runs in the
//! control queue: a broadcast is not kept waiting behind sessions busy with their clients'
//! input. Only when a socket is full (or failed) does the connection's task take over, with
//! glommio's poll for writability.

use super::Shard;
use super::hub::ConnKey;
use crate::metrics::ShardMetrics;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::Poll;

/// Writes between two checks for preemption (~40 µs of sends on loopback).
const PREEMPT_CHECK_EVERY: u32 = 16;

/// Runs until the shard stops.
pub async fn run(shard: Rc<Shard>) {
    let mut keys: Vec<ConnKey> = Vec::new();
    futures_lite::future::poll_fn(|cx| {
        loop {
            if keys.is_empty() {
                let mut state = shard.state.borrow_mut();
                state.hub.writes.take(&mut keys);
                if keys.is_empty() {
                    state.hub.writes.park(cx.waker());
                    return Poll::Pending;
                }
            }
            let mut written = 0u32;
            while let Some(key) = keys.pop() {
                write(&shard, key);
                written += 1;
                // Asked every few writes: it reads the clock (the executor preempts by deadline).
                if written.is_multiple_of(PREEMPT_CHECK_EVERY) && glommio::executor().need_preempt()
                {
                    // The rest after the shard's other work; they stay in `keys`.
                    cx.waker().wake_by_ref();
                    return Poll::<()>::Pending;
                }
            }
        }
    })
    .await;
}

/// One write of a listed connection's outbox.
fn write(shard: &Shard, key: ConnKey) {
    let mut state = shard.state.borrow_mut();
    let Some(conn) = state.hub.conn_mut(key) else {
        return;
    };
    let Some(fd) = conn.unlist() else {
        return;
    };
    let mut scratch = shard.write_scratch.borrow_mut();
    let sent = conn
        .outbox()
        .with_next_bytes(&mut scratch, super::WRITE_CHUNK_BYTES, |bytes| {
            send(fd, bytes)
        });
    if let Ok(n) = sent {
        ShardMetrics::add(&shard.stats().bytes_out, n as u64);
        conn.written(n);
    }
    if !conn.outbox().is_empty() {
        // Full, failed, or more than one write's worth.
        conn.hand_to_task();
    }
}

/// A non-blocking `send` (no SIGPIPE: a vanished peer is an error, which the connection's task
/// then meets on its own write).
fn send(fd: RawFd, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `bytes` is a valid slice; `fd` is the connection's open socket, which stays open
    // while the connection is in the hub (the session removes it before closing the socket).
    let n = unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}
