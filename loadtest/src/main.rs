//! ringcast-loadgen: opens N WebSocket connections (spread over 127.0.0.x source addresses),
//! subscribes them to C channels, publishes signed events at a fixed rate (open loop: each
//! event has an intended send time, carried in its payload, and latency counts from it), and
//! reports deliveries/s, latency percentiles, lost and duplicate deliveries, and the server's
//! RSS per connection and CPU use. Run it pinned to a core other than the server's.

mod api_publish;
mod client;
mod fanout;
mod floor;
mod hostile;
mod presence;
mod publisher;
mod request_floor;
mod server_stats;
mod storm;
mod stream;
mod wave;

use clap::Parser;
use hdrhistogram::Histogram;
use publisher::Credentials;
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
    /// Fan-out while `--hostile` workers of each hostile kind run beside it (slow HTTP heads,
    /// channel floods, sign-in replays, never-reading sockets, malformed frames, unsigned
    /// 4 MiB bodies); compare with `--hostile 0` for the healthy clients' baseline.
    Hostile,
    /// The physical reference: a plain sender thread on `--floor-cpu` writes the same frame to
    /// `connections` loopback sockets at `rate` (no server): CPU per send with no server work.
    Floor,
    /// The reference for a publish: threads on `--floor-cpu` answer HTTP requests with a fixed
    /// 200 and nothing else (no server); publishes at `rate`: CPU per request with no server
    /// work.
    RequestFloor,
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
    /// Where the fan-out scenarios publish, when not `--target` (another node of a cluster).
    #[arg(long)]
    publish_target: Option<String>,
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
    /// Fan-out scenarios: events per request, sent with `/batch_events` when over 1 (Pusher
    /// allows 10). A batch leaves when its first event is due; all its events count from then.
    #[arg(long, default_value_t = 1)]
    batch: usize,
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
    /// floor, request-floor: the CPU the sending or answering threads run on (where the
    /// server would).
    #[arg(long, default_value_t = 0)]
    floor_cpu: usize,
    /// Speak TLS (`wss://`, `https://`) to a server whose certificate this PEM CA signed.
    #[arg(long)]
    tls_ca: Option<String>,
    /// The name the server's certificate is checked for, with `--tls-ca`.
    #[arg(long, default_value = "localhost")]
    tls_name: String,
    /// request-floor: each request goes to a second thread on `--floor-cpu` and back before
    /// it is answered, as a publish goes from the shard to the API core and back: the floor
    /// of that design rather than of a plain server.
    #[arg(long)]
    floor_hop: bool,
    /// hostile: workers of each hostile kind.
    #[arg(long, default_value_t = 10)]
    hostile: usize,
    /// hostile: which kinds run (comma-separated: slow-heads, floods, signin-replays,
    /// never-reading, malformed, unsigned-bodies); all by default.
    #[arg(long, value_delimiter = ',')]
    hostile_kinds: Vec<String>,
    /// hostile: run only the hostile workers, for `--duration` seconds (no healthy clients):
    /// beside a `fanout` run in another process, so the two do not share one event loop. The
    /// process runs at SCHED_IDLE priority, so where it shares a core with the measuring one
    /// it does not delay that one's reads.
    #[arg(long)]
    hostile_only: bool,
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

pub(crate) fn event_data(seq: u64, intended_ns: u64, pad: &str) -> String {
    format!(r#"{{"i":{seq},"t":{intended_ns},"p":"{pad}"}}"#)
}

pub(crate) async fn reader(
    stream: stream::Stream,
    buf: Vec<u8>,
    stats: Rc<RefCell<Stats>>,
    epoch: Instant,
) {
    match stream {
        // Owned halves of a plain socket: no lock between them.
        stream::Stream::Plain(tcp) => {
            let (rd, wr) = tcp.into_split();
            read_events(rd, wr, buf, stats, epoch).await
        }
        tls => {
            let (rd, wr) = tokio::io::split(tls);
            read_events(rd, wr, buf, stats, epoch).await
        }
    }
}

/// Reads a subscriber's frames until it closes, counting deliveries and answering pings.
async fn read_events(
    mut rd: impl tokio::io::AsyncRead + Unpin,
    mut wr: impl tokio::io::AsyncWrite + Unpin,
    mut buf: Vec<u8>,
    stats: Rc<RefCell<Stats>>,
    epoch: Instant,
) {
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

/// The address of `addr` (`host:port`); the generator cannot run without it.
pub(crate) fn resolve(addr: &str) -> SocketAddr {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve {addr}"))
}

async fn run(args: Args) -> serde_json::Value {
    let target = resolve(&args.target);
    let creds = Rc::new(Credentials {
        app_id: args.app_id.clone(),
        key: args.key.clone(),
        secret: args.secret.clone(),
    });
    if args.hostile_only {
        return hostile::only(&args, target, &creds).await;
    }
    match args.scenario {
        Scenario::PresenceEvents => presence::events(args, target, creds).await,
        Scenario::PresenceChurn => presence::churn(args, target, creds).await,
        Scenario::Publish => api_publish::run(args, target, creds).await,
        Scenario::Storm => storm::run(args, target).await,
        Scenario::Floor => floor::run(args).await,
        Scenario::RequestFloor => request_floor::run(args, creds).await,
        Scenario::Fanout | Scenario::Channels | Scenario::Slow | Scenario::Hostile => {
            fanout::run(args, target, creds).await
        }
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = stream::use_tls(args.tls_ca.as_deref(), &args.tls_name) {
        eprintln!("ringcast-loadgen: --tls-ca: {e}");
        std::process::exit(2);
    }
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
