//! Hostile clients for the `hostile` scenario, running beside the healthy fan-out while it
//! publishes: `--hostile N` workers of each kind, each at a steady pace, reconnecting whenever
//! the server closes on them. What they did is counted for the report.
//!
//! - slow heads: an HTTP request head trickled a byte every 500 ms;
//! - channel floods: subscribe / unsubscribe pairs of fresh channel names, 2,000 messages/s;
//! - sign-in replays: one valid `pusher:signin` frame sent again 1,000 times/s;
//! - never-reading sockets: subscribed to the fan-out channels, never reading a byte;
//! - malformed frames: invalid JSON 1,000 times/s, and now and then an unmasked frame (a
//!   protocol error that closes the connection);
//! - unsigned 4 MiB bodies: an API request announcing 4 MiB without a signature, 20 times/s.

use crate::client::{self, client_text};
use crate::publisher::{Credentials, sign_channel};
use crate::{Args, source_for};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the hostile workers did.
#[derive(Default, Debug)]
pub struct Counts {
    pub slow_heads: u64,
    pub slow_head_answers: u64,
    pub flood_messages: u64,
    pub signin_replays: u64,
    pub never_reading: u64,
    pub malformed_messages: u64,
    pub protocol_errors: u64,
    pub unsigned_bodies: u64,
    pub unsigned_refused: u64,
    pub reconnects: u64,
}

impl Counts {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "slow_heads": self.slow_heads,
            "slow_head_answers": self.slow_head_answers,
            "flood_messages": self.flood_messages,
            "signin_replays": self.signin_replays,
            "never_reading_connections": self.never_reading,
            "malformed_messages": self.malformed_messages,
            "protocol_error_frames": self.protocol_errors,
            "unsigned_4mib_bodies": self.unsigned_bodies,
            "unsigned_bodies_refused": self.unsigned_refused,
            "reconnects": self.reconnects,
        })
    }
}

/// The running workers; [`Hostile::stop`] ends them.
pub struct Hostile {
    stop: Rc<Cell<bool>>,
    pub counts: Rc<RefCell<Counts>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Hostile {
    pub fn stop(self) -> Rc<RefCell<Counts>> {
        self.stop.set(true);
        for t in self.tasks {
            t.abort();
        }
        self.counts
    }
}

/// Context every worker shares.
#[derive(Clone)]
struct Ctx {
    target: SocketAddr,
    creds: Rc<Credentials>,
    sources: u8,
    channels: usize,
    stop: Rc<Cell<bool>>,
    counts: Rc<RefCell<Counts>>,
}

impl Ctx {
    fn count(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.borrow_mut());
    }

    /// A WebSocket connection from a source address of its own, or `None` (counted as a
    /// reconnect either way, after a pause).
    async fn connect(&self, worker: usize) -> Option<(crate::stream::Stream, Vec<u8>, String)> {
        self.count(|c| c.reconnects += 1);
        let source = source_for(worker + 100, self.sources);
        match client::connect(self.target, source, &self.creds.key).await {
            Ok(conn) => Some(conn),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                None
            }
        }
    }
}

pub fn start(args: &Args, target: SocketAddr, creds: &Rc<Credentials>) -> Hostile {
    let ctx = Ctx {
        target,
        creds: creds.clone(),
        sources: args.sources,
        channels: args.channels,
        stop: Rc::new(Cell::new(false)),
        counts: Rc::new(RefCell::new(Counts::default())),
    };
    let on =
        |kind: &str| args.hostile_kinds.is_empty() || args.hostile_kinds.iter().any(|k| k == kind);
    let mut tasks = Vec::new();
    for w in 0..args.hostile {
        let c = || ctx.clone();
        if on("slow-heads") {
            tasks.push(tokio::task::spawn_local(slow_head(c())));
        }
        if on("floods") {
            tasks.push(tokio::task::spawn_local(channel_flood(c(), w)));
        }
        if on("signin-replays") {
            tasks.push(tokio::task::spawn_local(signin_replay(c(), w)));
        }
        if on("never-reading") {
            tasks.push(tokio::task::spawn_local(never_reading(c(), w)));
        }
        if on("malformed") {
            tasks.push(tokio::task::spawn_local(malformed(c(), w)));
        }
        if on("unsigned-bodies") {
            tasks.push(tokio::task::spawn_local(unsigned_body(c())));
        }
    }
    Hostile {
        stop: ctx.stop,
        counts: ctx.counts,
        tasks,
    }
}

/// Only the hostile workers, for `--duration` seconds; reports what they did.
///
/// The process makes itself SCHED_IDLE first: on a test box the measuring process shares a core
/// with it, and its bursts must not delay that process's reads, which would count as server
/// latency (on the internet hostile clients run elsewhere). The workers keep their pace: the
/// measuring process leaves most of the core idle.
pub async fn only(args: &Args, target: SocketAddr, creds: &Rc<Credentials>) -> serde_json::Value {
    yield_the_core();
    let hostile = start(args, target, creds);
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let counts = hostile.stop();
    json!({ "scenario": "hostile-only", "duration_s": args.duration, "hostile": counts.borrow().to_json() })
}

/// Reads and drops whatever the server sends; returns when it closes.
async fn discard(mut rd: impl tokio::io::AsyncRead + Unpin) {
    let mut buf = vec![0u8; 16 * 1024];
    while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
}

async fn slow_head(ctx: Ctx) {
    let head = format!(
        "POST /apps/{}/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n",
        ctx.creds.app_id
    );
    let head = head.as_bytes();
    while !ctx.stop.get() {
        let Ok(mut s) = TcpStream::connect(ctx.target).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        ctx.count(|c| c.slow_heads += 1);
        for b in head.iter().cycle() {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            let mut answer = [0u8; 64];
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                r = s.read(&mut answer) => {
                    if matches!(r, Ok(n) if n > 0) {
                        ctx.count(|c| c.slow_head_answers += 1);
                    }
                    break;
                }
            }
        }
    }
}

async fn channel_flood(ctx: Ctx, worker: usize) {
    let mut n = 0u64;
    while !ctx.stop.get() {
        let Some((stream, _, _)) = ctx.connect(worker).await else {
            continue;
        };
        let (rd, mut wr) = tokio::io::split(stream);
        let reader = tokio::task::spawn_local(discard(rd));
        // 100 pairs every 100 ms: 2,000 messages/s.
        'open: while !ctx.stop.get() {
            let mut burst = Vec::new();
            for _ in 0..100 {
                n += 1;
                let channel = format!("flood-{worker}-{n}");
                for event in ["pusher:subscribe", "pusher:unsubscribe"] {
                    let msg = json!({"event": event, "data": {"channel": channel}});
                    burst.extend(client_text(msg.to_string().as_bytes()));
                }
            }
            if wr.write_all(&burst).await.is_err() {
                break 'open;
            }
            ctx.count(|c| c.flood_messages += 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        reader.abort();
    }
}

async fn signin_replay(ctx: Ctx, worker: usize) {
    while !ctx.stop.get() {
        let Some((stream, _, socket_id)) = ctx.connect(worker).await else {
            continue;
        };
        let user_data = format!(r#"{{"id":"hostile-{worker}","watchlist":["u1","u2"]}}"#);
        let auth = sign_channel(&ctx.creds, &socket_id, ":user:", &user_data);
        let msg = json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}});
        let frame = client_text(msg.to_string().as_bytes());
        let (rd, mut wr) = tokio::io::split(stream);
        let reader = tokio::task::spawn_local(discard(rd));
        // 100 replays every 100 ms.
        let burst: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 100)
            .collect();
        while !ctx.stop.get() {
            if wr.write_all(&burst).await.is_err() {
                break;
            }
            ctx.count(|c| c.signin_replays += 100);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        reader.abort();
    }
}

async fn never_reading(ctx: Ctx, worker: usize) {
    while !ctx.stop.get() {
        let Some((mut stream, mut buf, _)) = ctx.connect(worker).await else {
            continue;
        };
        let channel = format!("lg-{}", worker % ctx.channels.max(1));
        if client::subscribe(&mut stream, &mut buf, &channel)
            .await
            .is_err()
        {
            continue;
        }
        ctx.count(|c| c.never_reading += 1);
        // Never reads again: waits until the server drops it (its writes then fail).
        let ping = client_text(br#"{"event":"pusher:ping","data":{}}"#);
        while !ctx.stop.get() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if stream.write_all(&ping).await.is_err() {
                break;
            }
        }
    }
}

async fn malformed(ctx: Ctx, worker: usize) {
    while !ctx.stop.get() {
        let Some((stream, _, _)) = ctx.connect(worker).await else {
            continue;
        };
        let (rd, mut wr) = tokio::io::split(stream);
        let reader = tokio::task::spawn_local(discard(rd));
        let bad: Vec<u8> = [
            &br#"{"event":"pusher:subscribe","data":{"chan"#[..],
            b"not json at all",
            br#"{"event":42}"#,
            br#"[1,2,3]"#,
        ]
        .iter()
        .flat_map(|m| client_text(m))
        .collect();
        let burst: Vec<u8> = bad.iter().copied().cycle().take(bad.len() * 25).collect();
        // 100 malformed messages every 100 ms, and after ten bursts an unmasked frame.
        for _ in 0..10 {
            if ctx.stop.get() || wr.write_all(&burst).await.is_err() {
                break;
            }
            ctx.count(|c| c.malformed_messages += 100);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if wr.write_all(&[0x81, 0x02, b'h', b'i']).await.is_ok() {
            ctx.count(|c| c.protocol_errors += 1);
        }
        let _ = reader.await;
    }
}

async fn unsigned_body(ctx: Ctx) {
    let head = format!(
        "POST /apps/{}/events?auth_key={} HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n",
        ctx.creds.app_id, ctx.creds.key
    );
    let chunk = vec![b'x'; 64 * 1024];
    while !ctx.stop.get() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Ok(s) = TcpStream::connect(ctx.target).await else {
            continue;
        };
        ctx.count(|c| c.unsigned_bodies += 1);
        let (mut rd, mut wr) = s.into_split();
        if wr.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        // Sends body until the server answers or stops reading.
        let mut answer = [0u8; 12];
        let refused = tokio::select! {
            r = rd.read(&mut answer) => {
                matches!(r, Ok(n) if n > 0) && answer.starts_with(b"HTTP/1.1 401")
            }
            _ = async {
                for _ in 0..64 {
                    if wr.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                std::future::pending::<()>().await
            } => false,
        };
        if refused {
            ctx.count(|c| c.unsigned_refused += 1);
        }
    }
}

/// Runs this process at SCHED_IDLE priority (whatever else wants the core goes first).
fn yield_the_core() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread (the generator's only one) with a valid
    // parameter block.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        eprintln!("SCHED_IDLE refused: {}", std::io::Error::last_os_error());
    }
}
